"""Address one submitted review on the App's pull request, and answer each of its threads."""

from __future__ import annotations

from app.tasks import Task
from jobs.agents import prompts
from jobs.lock import pull_request_lock
from jobs.pipeline import (
    Context,
    change_pull_request,
    check_run_for,
    prepare,
    read_pull,
    reported,
    status_for,
)
from jobs.report import checked
from jobs.report import words as report


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
        status = status_for(api, ctx, task)
        with (
            reported(status, ctx, task),
            checked(check_run_for(api, ctx, task, pr.head_sha)) as check,
        ):
            status.update(f"⏳ Addressing @{reviewer}'s review…")
            change = change_pull_request(
                task, ctx, api, repo, pr, prompt, f"Address review by {reviewer}", check
            )
            if change.head:
                reply = f"Addressed in {change.head[:7]}."
                headline = f"✅ @{reviewer}: pushed `{change.head[:7]}` for your review."
            else:
                reply = "Looked at this; the agent made no change for it (see its summary below)."
                headline = f"@{reviewer}: " + change.result.nothing_done("nothing was pushed")
            summary = status.redactor.text(change.result.summary).strip()
            if change.head:
                lead = report.pushed_lead(headline)
                ctx.store.note_pushed(task.repo_id, task.number, change.head, task.id, lead)
            check.finish(
                "success" if change.head else "neutral",
                report.pushed_title(headline, change.head), report.quote(summary),
                change.result.tail,
            )  # fmt: skip
        # GitHub threads a reply under the thread's first comment only.
        roots = dict.fromkeys(c.get("in_reply_to_id") or c["id"] for c in comments)
        for root in roots:
            api.post(f"{base}/comments/{root}/replies", {"body": reply})
        # Redacted before `quote` keeps only its end, which could cut a secret in two.
        status.update(headline, report.quote(summary) if summary else "")
        return f"pushed {change.head[:7]}" if change.head else "no change"
