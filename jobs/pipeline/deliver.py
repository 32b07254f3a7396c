"""The agent's work delivered: taken back as data onto the task's branch, checked against
the protected paths, and pushed without force."""

from __future__ import annotations

import re

from app.github import Installation
from jobs import hand_back
from jobs.boundary import GitError, Limits, handoff, protected
from jobs.errors import TaskFailed
from jobs.pipeline.context import Run

PUSH_TRIES = 3
# What the task page shows of the change, and how many of its commits the report lists.
DIFF_LIMIT = 16 * 1024 * 1024
MAX_COMMITS_LISTED = 100


def take(work: Run, message: str) -> str:
    """The agent's work as a commit in forgehand's git directory (jobs/boundary/handoff.py);
    the base when it changed nothing."""
    limits = Limits.of(work.settings)
    return handoff.take(work.ctx.sandbox, work.tree, message, work.who(), limits)


def commit(work: Run, message: str) -> list[str]:
    """Take the agent's work onto the branch: its commits that build on the base and its tree
    on top, handed over as data; return the commits made since the base."""
    tree = work.tree
    head = take(work, message)
    # The index stays at the base, which the tree still matches but for the agent's changes:
    # the next task's checkout of this tree rewrites only those.
    tree.git(["update-ref", "HEAD", head])
    diff, cut = tree.capped(
        ["diff", "--no-ext-diff", "--no-textconv", f"{tree.base}..{head}"], DIFF_LIMIT
    )
    if cut:
        diff += f"\n(the diff is longer than {DIFF_LIMIT} bytes; the rest is not shown)"
    work.ctx.store.set_diff(work.task.id, work.redactor.text(diff))
    log, _ = tree.capped(
        ["log", f"--max-count={MAX_COMMITS_LISTED}", "--format=%h %s", f"{tree.base}..{head}"],
        DIFF_LIMIT,
    )
    return [line for line in log.splitlines() if line.strip()]


def check_protected(work: Run, base: str | None = None) -> None:
    """Refuse the push if the change since `base` touches a protected path by any route: the
    whole change from the base, and every commit on the way, a merge included where it
    differs from all its parents (a file added then removed still counts)."""
    globs = work.repo.config.protected_paths
    if not globs:
        return
    since = base or work.tree.base
    hit = protected.violations(changed_names(work, since, "HEAD"), globs)
    if hit:
        raise TaskFailed(
            "The agent changed protected paths, so nothing was pushed: "
            + ", ".join(f"`{protected.printable(f)}`" for f in hit)
            + ". Set `protected_paths` in .github/forgehand.yml to allow them."
        )


def changed_names(work: Run, since: str, head: str, commits: bool = True) -> set[str]:
    """Every path the change from `since` to `head` touches: the two trees compared and, with
    `commits`, each commit between them on its own; both sides of a rename, NUL-separated so
    that no name is quoted or split."""
    # A gitlink is a change too (jobs/boundary/own_git.py has diffs ignore submodules).
    flags = ["--no-renames", "--ignore-submodules=none", "--name-only", "-z"]
    whole = ["diff", *flags, since, head]
    each = ["log", "-c", *flags, "--format=", f"{since}..{head}"]
    names: set[str] = set()
    for args in (whole, each) if commits else (whole,):
        out, cut = work.tree.capped(args, DIFF_LIMIT)
        if cut:
            raise TaskFailed("The change is too large to check, so nothing was pushed.")
        names |= {n for n in out.split("\0") if n}
    return names


def push(work: Run, api: Installation) -> None:
    """Push without force; if someone pushed to the branch meanwhile, replay the work on top
    of theirs and push again."""
    run_dir = work.ctx.workspaces.run_dir
    # A push of this run that began before may have landed, even if it then failed.
    landed_before = hand_back.kept(run_dir)
    hand_back.keep(run_dir)
    refused = _push(work, api)
    if refused:
        if not landed_before:
            hand_back.resume(run_dir)
        raise TaskFailed(refused)


def _push(work: Run, api: Installation) -> str:
    """Push, replaying the work on theirs while the branch moves; why nothing was pushed when
    GitHub refused every try, "" once it took one. A failure that leaves unknown whether the
    push landed raises."""
    tree, url = work.tree, work.repo.clone_url
    branch = tree.branch
    work.ctx.store.audit(work.task.id, "push", branch)
    for _ in range(PUSH_TRIES):
        head = _pushing(work)
        try:
            tree.git(["push", "--quiet", url, f"HEAD:refs/heads/{branch}"], token=api.token())
            return ""
        except GitError as exc:
            _not_pushing(work, head)
            missing = permission_refused(str(exc))
            if missing:
                return missing
            if not any(word in str(exc) for word in ("rejected", "fetch first", "non-fast")):
                # A connection lost after GitHub took the push looks the same.
                raise TaskFailed(f"Pushing {branch} failed: {exc}") from None
        work.ctx.store.audit(work.task.id, "rebase", f"{branch} moved while the agent worked")
        tree.git(["fetch", "--quiet", url, f"refs/heads/{branch}"], token=api.token())
        theirs = tree.git(["rev-parse", "FETCH_HEAD"]).strip()
        tree.git(["read-tree", "--reset", "HEAD"])  # commit() left it at the base
        try:
            tree.git(["rebase", "--quiet", theirs], env=work.env())
        except GitError:
            tree.git(["rebase", "--abort"], check=False)
            return (
                f"Someone pushed to {branch} while the agent worked, and its changes "
                "conflict with theirs; nothing was pushed."
            )
        try:
            check_protected(work, theirs)
        except TaskFailed as exc:
            return str(exc)
    return f"Pushing {branch} was rejected {PUSH_TRIES} times; nothing was forced."


def _pushing(work: Run) -> str:
    """Say which commit is about to be pushed to the run's pull request: CI can finish on it
    before the run has noted its push, and must then find it (jobs/report's tell_ci)."""
    if work.pull is None:
        return ""
    head = work.tree.git(["rev-parse", "HEAD"]).strip()
    work.ctx.store.note_pushing(work.task.repo_id, work.pull, head, work.task.id)
    return head


def _not_pushing(work: Run, head: str) -> None:
    if work.pull is not None:
        work.ctx.store.not_pushing(work.task.repo_id, work.pull, head)


_WORKFLOW_REFUSAL = re.compile(
    r"create or update workflow `([^`]*)` without `workflows` permission"
)


def permission_refused(error: str) -> str:
    """Why GitHub refused a push for a permission the App lacks, with what to change; "" when
    it refused for something else."""
    found = _WORKFLOW_REFUSAL.search(error)
    if not found:
        return ""
    path = protected.printable(found[1])[:200]
    return (
        f"GitHub refused the push: the change touches the workflow `{path}`, and the App has "
        "no `workflows` permission, which GitHub requires for any change under "
        '.github/workflows/. To allow it, give the App "Workflows: Read and write" in its '
        "settings (Permissions & events), accept the new permission on the installation, then "
        f"retry; or keep `.github/workflows/**` in `protected_paths` so such changes are never "
        "pushed. Nothing was pushed."
    )
