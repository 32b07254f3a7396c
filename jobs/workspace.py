"""Mirror cache and worktree lifecycle.

Layout under WORKSPACES_DIR:
    mirrors/<repo id>.git    one bare mirror per repository, fetched (never re-cloned) per task
    mirrors/<repo id>.lock   serializes every change to that mirror across worker processes
    tasks/<task id>/         one task's scratch: `work/` (its worktree), prompt, owner
    pool/<repo id>/<slot>/   finished tasks' worktrees, detached and kept for the next task
                             on that repository: it rewrites only the files that differ
                             instead of checking out the whole tree again
    logs/<task id>.log       agent output, kept after the worktree is gone
    run/                     process-group ids of running agents, for stop and orphan reaping
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobs.git import GitError, git

# Agents' own bookkeeping files that must never be committed.
EXCLUDES = (".aider*",)
# A push URL that cannot work: only forgehand, passing the real URL explicitly, can push.
NO_PUSH = "no-push://forgehand-pushes-for-the-agent"
# Kept worktrees per repository: as many as tasks on one repository usually run at once. Each
# costs the disk of one checkout while idle; one unused for POOL_IDLE seconds is removed.
POOL_SIZE = 4
POOL_IDLE = 24 * 3600
FETCHES = "forgehand-fetches"  # in each mirror: fetches started, and the last one finished


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    base: str  # the commit the task started from
    task_dir: Path


class Workspaces:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.mirrors = self.root / "mirrors"
        self.tasks = self.root / "tasks"
        self.logs = self.root / "logs"
        self.run_dir = self.root / "run"
        self.pool = self.root / "pool"

    def log_path(self, task_id: str) -> Path:
        return self.logs / f"{task_id}.log"

    @contextmanager
    def _locked(self, repo_id: int) -> Iterator[Path]:
        self.mirrors.mkdir(parents=True, exist_ok=True)
        with (self.mirrors / f"{repo_id}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.mirrors / f"{repo_id}.git"
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refresh(self, mirror: Path, clone_url: str, token: str | None, asked: int) -> None:
        """Fetch the mirror, unless a fetch that began after this task asked for it (when the
        fetch count was `asked`) has finished since: that one has every ref the task needs.
        Tasks that arrive together — many issues labelled at once — share one fetch."""
        if not (mirror / "HEAD").exists():
            shutil.rmtree(mirror, ignore_errors=True)
            mirror.mkdir(parents=True)
            git(["init", "--bare", "--quiet"], mirror)
            git(["remote", "add", "origin", clone_url], mirror)
            git(["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], mirror)
            git(["config", "remote.origin.pushurl", NO_PUSH], mirror)
            git(["config", "gc.auto", "0"], mirror)  # no gc racing other tasks' worktrees
            (mirror / "info").mkdir(exist_ok=True)
            (mirror / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n")
        else:
            git(["remote", "set-url", "origin", clone_url], mirror)
        started, finished = _fetches(mirror)
        if finished > asked:
            return
        _write_fetches(mirror, started + 1, finished)
        git(["fetch", "--prune", "--quiet", "origin"], mirror, token=token)
        _write_fetches(mirror, started + 1, started + 1)

    @staticmethod
    def _free_branch(mirror: Path, branch: str) -> str:
        """`branch`, or `branch-2`, `-3`… when an earlier run's branch is still on the remote:
        forgehand never pushes onto a branch it cannot fast-forward."""
        candidate, n = branch, 1
        while _remote_has(mirror, candidate):
            n += 1
            candidate = f"{branch}-{n}"
        return candidate

    @contextmanager
    def worktree(
        self,
        task_id: str,
        repo_id: int,
        clone_url: str,
        token: str | None,
        branch: str,
        start: str,
        new_branch: bool,
    ) -> Iterator[Worktree]:
        """A clean worktree on `branch`, made from `origin/<start>`: a kept one when the
        repository has one (see POOL_SIZE), else a new one. Afterwards it is kept if the task
        finished, else removed.

        With new_branch the branch is created from the start point; otherwise `start` is the
        existing remote branch the task continues.
        """
        task_dir = self.tasks / task_id
        self._discard(task_dir)
        task_dir.mkdir(parents=True)
        owner = f"{socket.gethostname()} {os.getpid()} {repo_id} {branch}"
        (task_dir / "owner").write_text(owner)
        path = task_dir / "work"
        finished = False
        asked = _fetches(self.mirrors / f"{repo_id}.git")[0]
        try:
            with self._locked(repo_id) as mirror:
                self._refresh(mirror, clone_url, token, asked)
                start_ref = f"refs/remotes/origin/{start}"
                found = git(["rev-parse", "--verify", "--quiet", start_ref], mirror, check=False)
                if not found.strip():
                    raise GitError(f"the repository has no branch {start}")
                base = found.strip()
                if new_branch:
                    branch = self._free_branch(mirror, branch)
                    (task_dir / "owner").write_text(f"{owner.rsplit(' ', 1)[0]} {branch}")
                git(["branch", "-D", branch], mirror, check=False)
                git(["branch", branch, base], mirror)
                reused = self._take_pooled(mirror, repo_id, path)
                if not reused:
                    # Only the bookkeeping under the lock; the checkout itself, the slow part
                    # on a large tree, runs outside it so concurrent tasks check out in parallel.
                    git(["worktree", "add", "--quiet", "--no-checkout", str(path), branch],
                        mirror)  # fmt: skip
            if reused:
                reused = self._reset_kept(mirror, path, branch)
            if not reused:
                git(["reset", "--quiet", "--hard", base], path)
            if not new_branch:
                git(["branch", "--set-upstream-to", f"origin/{start}", branch], path, check=False)
            yield Worktree(path=path, branch=branch, base=base, task_dir=task_dir)
            finished = True
        finally:
            # A task stopped part-way (cancelled, an error, a dead worker) loses its worktree,
            # as SPEC §4 has it; only one that finished is kept for the next task.
            self._discard(task_dir, keep=finished)

    def _take_pooled(self, mirror: Path, repo_id: int, path: Path) -> bool:
        """Move a kept worktree of this repository to `path`; False when there is none.
        Called with the mirror locked."""
        for slot in sorted((self.pool / str(repo_id)).glob("*")):
            try:
                git(["worktree", "move", str(slot), str(path)], mirror)
                return True
            except GitError:
                _remove_worktree(mirror, slot)
        return False

    def _reset_kept(self, mirror: Path, path: Path, branch: str) -> bool:
        """Bring a kept worktree to exactly the branch's tree: tracked files reset (only those
        that differ are written), everything untracked or ignored removed. On failure it is
        replaced by a new, empty worktree and False returned."""
        try:
            git(["checkout", "--quiet", "--force", branch], path)
            git(["clean", "--quiet", "-ffdx"], path)
            return True
        except GitError:
            with self._locked(int(mirror.stem)):
                _remove_worktree(mirror, path)
                git(["worktree", "add", "--quiet", "--no-checkout", str(path), branch], mirror)
            return False

    def _discard(self, task_dir: Path, keep: bool = False) -> None:
        """With `keep`, keep a task's worktree for the next task if there is room and it can
        be trusted, else remove it; then remove its local branch and its directory."""
        owner = _owner(task_dir)
        mirror = self.mirrors / f"{owner.repo_id}.git" if owner else None
        if owner is not None and mirror is not None and mirror.exists():
            with self._locked(owner.repo_id):
                path = task_dir / "work"
                if path.exists() and not (keep and self._keep(mirror, owner.repo_id, path)):
                    _remove_worktree(mirror, path)
                shutil.rmtree(task_dir, ignore_errors=True)
                git(["worktree", "prune"], mirror, check=False)
                git(["branch", "-D", owner.branch], mirror, check=False)
        shutil.rmtree(task_dir, ignore_errors=True)

    def _keep(self, mirror: Path, repo_id: int, path: Path) -> bool:
        pool = self.pool / str(repo_id)
        if pool.is_dir() and sum(1 for _ in pool.iterdir()) >= POOL_SIZE:
            return False
        try:
            # An index entry marked assume-unchanged or skip-worktree (lower-case or S in
            # `ls-files -v`) could hide a changed file from the next task's checkout.
            flags = git(["ls-files", "-v"], path)
            if any(line[:1] != "H" for line in flags.splitlines()):
                return False
            git(["checkout", "--quiet", "--detach"], path)  # frees the branch; files stay
            pool.mkdir(parents=True, exist_ok=True)
            slot = pool / uuid.uuid4().hex
            git(["worktree", "move", str(path), str(slot)], mirror)
        except GitError:
            return False
        os.utime(slot)  # when it was last used, for prune_pool
        return True

    def prune_pool(self, max_idle: float = POOL_IDLE) -> list[str]:
        """Remove kept worktrees unused for `max_idle` seconds."""
        removed: list[str] = []
        cutoff = time.time() - max_idle
        for repo in self.pool.glob("*") if self.pool.is_dir() else ():
            if not repo.name.isdigit():
                continue
            mirror = self.mirrors / f"{repo.name}.git"
            with self._locked(int(repo.name)):
                for slot in repo.iterdir():
                    if slot.stat().st_mtime <= cutoff:
                        _remove_worktree(mirror, slot)
                        removed.append(f"{repo.name}/{slot.name}")
        return removed

    def prune_stale(self) -> list[str]:
        """Remove worktrees whose owning process on this machine is gone (a killed worker)."""
        removed: list[str] = []
        if not self.tasks.is_dir():
            return removed
        host = socket.gethostname()
        for task_dir in self.tasks.iterdir():
            owner = _owner(task_dir)
            if owner is not None and (owner.host != host or pid_alive(owner.pid)):
                continue
            self._discard(task_dir)
            removed.append(task_dir.name)
        return removed


@dataclass(frozen=True)
class _Owner:
    host: str
    pid: int
    repo_id: int
    branch: str


def _fetches(mirror: Path) -> tuple[int, int]:
    """How many fetches of the mirror have started, and the number of the last one finished."""
    try:
        started, finished = (mirror / FETCHES).read_text().split()
        return int(started), int(finished)
    except (OSError, ValueError):
        return 0, 0


def _write_fetches(mirror: Path, started: int, finished: int) -> None:
    # Replaced whole, so that a task reading it without the lock never sees it half-written.
    scratch = mirror / f"{FETCHES}.{os.getpid()}"
    scratch.write_text(f"{started} {finished}\n")
    os.replace(scratch, mirror / FETCHES)


def _remove_worktree(mirror: Path, path: Path) -> None:
    if mirror.exists():
        git(["worktree", "remove", "--force", "--force", str(path)], mirror, check=False)
    shutil.rmtree(path, ignore_errors=True)
    if mirror.exists():
        git(["worktree", "prune"], mirror, check=False)


def _remote_has(mirror: Path, branch: str) -> bool:
    ref = f"refs/remotes/origin/{branch}"
    return bool(git(["rev-parse", "--verify", "--quiet", ref], mirror, check=False).strip())


def _owner(task_dir: Path) -> _Owner | None:
    try:
        host, pid, repo_id, branch = (task_dir / "owner").read_text().split(maxsplit=3)
        return _Owner(host, int(pid), int(repo_id), branch)
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
