"""What a push to an agent pull request changes in the fleet: the files it touches (from git),
whom it now overlaps, and the one comment on each overlapping pull request that names the
shared files and the suggested merge order — edited as things change, never posted twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from app.fleet import FleetState, Pull, interface_files, merge_order, overlaps, overlaps_of
from app.github import GitHubError, Installation
from jobs.boundary import git, printable

MARKER = "<!-- forgehand:overlap -->"
MAX_FILES_SHOWN = 10


def changed_files(gitdir: Path, base: str, head: str) -> tuple[frozenset[str], frozenset[str]]:
    """(files changed, files whose definitions changed) between the merge base of `base` and
    `head`, and `head`: what the pull request itself changes, not what its base gained."""
    span = f"{base}...{head}"
    names = git(["diff", "--no-renames", "-z", "--name-only", span], gitdir).split("\0")
    patch = git(["diff", "--no-renames", "--no-ext-diff", "-U0", span], gitdir)
    return frozenset(n for n in names if n), interface_files(patch)


@dataclass(frozen=True)
class Overlap:
    number: int
    shared: dict[int, frozenset[str]]  # other pull request → files both change
    order: list[int]  # suggested merge order of this one and those it overlaps


def check_push(state: FleetState, repo_id: int, pull: Pull) -> tuple[Overlap, list[Pull]]:
    """Record the pushed pull request's files and find its overlaps; also returns the fleet
    as it now stands, for the comments on the others."""
    state.record(repo_id, pull)
    fleet = state.pulls(repo_id)
    shared = overlaps_of(pull, fleet)
    group = [p for p in fleet if p.number == pull.number or p.number in shared]
    return Overlap(pull.number, shared, merge_order(group) if shared else []), fleet


def comment_body(pull: Pull, shared: dict[int, frozenset[str]], fleet: list[Pull]) -> str:
    """The overlap comment of one pull request; file names are the repository's, escaped."""
    if not shared:
        return (
            f"{MARKER}\n✅ This pull request no longer changes files that another open agent "
            "pull request changes."
        )
    lines = [MARKER, "⚠️ **Overlap**: other open agent pull requests change the same files."]
    for other in sorted(shared):
        files = sorted(shared[other])
        named = ", ".join(f"`{printable(f)}`" for f in files[:MAX_FILES_SHOWN])
        more = f" and {len(files) - MAX_FILES_SHOWN} more" if len(files) > MAX_FILES_SHOWN else ""
        lines.append(f"- #{other}: {named}{more}")
    group = [p for p in fleet if p.number == pull.number or p.number in shared]
    by_number = {p.number: p for p in group}
    common = set().union(*shared.values())
    steps = []
    for n in merge_order(group):
        why = "changes definitions in the shared files" if by_number[n].interface & common else ""
        steps.append(f"#{n}" + (f" ({why})" if why else ""))
    lines += [
        "",
        "Suggested merge order: " + " → ".join(steps) + ". The one that changes the shared "
        "interface goes first, otherwise the older; the later ones are then brought up to "
        "date with it (forgehand resolves the conflicts when the base moves).",
    ]
    return "\n".join(lines)


def update_comments(api: Installation, state: FleetState, repo: str, repo_id: int) -> list[int]:
    """Bring every open agent pull request's overlap comment up to date with the fleet;
    return the pull requests whose comment was posted or edited."""
    fleet = state.pulls(repo_id)
    shared_by = overlaps(fleet)
    changed = []
    for pull in fleet:
        shared = shared_by.get(pull.number, {})
        known = state.overlap_comment(repo_id, pull.number)
        if not shared and known is None:
            continue  # never overlapped: nothing to say
        body = comment_body(pull, shared, fleet)
        digest = hashlib.sha256(body.encode()).hexdigest()
        if known is not None and known[1] == digest:
            continue
        comment_id = post_or_edit(api, repo, pull.number, known[0] if known else None, body)
        state.set_overlap_comment(repo_id, pull.number, comment_id, digest)
        changed.append(pull.number)
    return changed


def post_or_edit(api: Installation, repo: str, number: int, known: int | None, body: str) -> int:
    """Edit comment `known` on #number, or post it anew (none yet, or deleted); its id."""
    if known is not None:
        try:
            api.patch(f"/repos/{repo}/issues/comments/{known}", {"body": body})
            return known
        except GitHubError as exc:
            if exc.status != 404:
                raise  # deleted by someone: a new one below
    created = api.post(f"/repos/{repo}/issues/{number}/comments", {"body": body})
    return int(created["id"])
