"""Address one submitted review on the App's pull request, and answer each of its threads."""

from __future__ import annotations

from app.tasks import Task
from jobs.agents import prompts
from jobs.kinds.asked import Asked, push_asked
from jobs.lock import pull_request_lock
from jobs.pipeline import (
    Context,
    prepare,
    read_pull,
)


def address_review(task: Task, ctx: Context) -> str:
    api, repo = prepare(task, ctx)
    base = f"/repos/{task.repo}/pulls/{task.number}"
    with pull_request_lock(ctx.store.redis, task.repo_id, task.number, task.id):
        pr = read_pull(api, task, task.number)
        if pr.state != "open" or pr.fork:
            return "the pull request is closed" if pr.state != "open" else "a fork's pull request"
        review = api.get(f"{base}/reviews/{task.review_id}")
        comments = api.get(f"{base}/reviews/{task.review_id}/comments", per_page=100) or []
        reviewer = (review.get("user") or {}).get("login") or task.sender
        if not prompts.clean(review.get("body")) and not comments:
            return "the review holds nothing to address"
        notes = [
            prompts.ReviewNote(
                c.get("path", ""), c.get("line") or c.get("original_line"), c.get("diff_hunk", ""),
                c.get("body", ""),
            )
            for c in comments
        ]  # fmt: skip
        prompt = prompts.review_prompt(task.repo, task.number, reviewer, review.get("body"), notes)
        asked = Asked(
            f"⏳ Addressing @{reviewer}'s review…",
            prompt,
            f"Address review by {reviewer}",
            lambda head: f"✅ @{reviewer}: pushed `{head}` for your review.",
            f"@{reviewer}: ",
        )
        done = push_asked(task, ctx, api, repo, pr, asked)
        change = done.change
        if change.head:
            reply = f"Addressed in {change.head[:7]}."
        else:
            reply = "Looked at this; the agent made no change for it (see its summary below)."
        # GitHub threads a reply under the thread's first comment only.
        roots = dict.fromkeys(c.get("in_reply_to_id") or c["id"] for c in comments)
        for root in roots:
            api.post(f"{base}/comments/{root}/replies", {"body": reply})
        done.status.update(done.headline, done.summary)
        return f"pushed {change.head[:7]}" if change.head else "no change"
