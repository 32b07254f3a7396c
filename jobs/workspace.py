"""Mirror cache and the task's two git directories.

Layout under WORKSPACES_DIR:
    mirrors/<space>.git      one bare mirror per repository of an installation (the space:
                             `<installation id>-<repo id>`), fetched (never re-cloned) per task;
                             only forgehand writes to it, the sandbox sees its objects read-only
    mirrors/<space>.lock     serializes every change to that mirror across worker processes
    tasks/<task id>/         one task's scratch: `work/` (the tree the agent edits, with a git
                             directory of the agent's own at `work/.git`), `git/` (forgehand's
                             git directory for that tree, which the agent never sees), `home/`
                             (the agent's private home), the prompt, the owner
    pool/<space>/<slot>/     finished tasks' `work/` and `git/`, kept for the next task on that
                             repository of that installation: it rewrites only the files that
                             differ instead of checking out the whole tree again
    logs/<task id>.log       agent output, kept after the worktree is gone
    run/<pid namespace>/     the work-horses of this PID namespace (one per container): what
                             each has begun (delivering) and its agent's process group, for
                             stop and orphan reaping; a pid means another process elsewhere

forgehand commits and pushes from `git/`, whose config, hooks, index and refs are its own;
whatever the agent does to `work/.git` changes nothing forgehand runs.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobs.boundary import EXCLUDES, GitError, git, git_capped

# Kept worktrees per repository: as many as tasks on one repository usually run at once. Each
# costs the disk of one checkout while idle; one unused for POOL_IDLE seconds is removed.
POOL_SIZE = 4
POOL_IDLE = 24 * 3600
SPACE = re.compile(r"[0-9]+-[0-9]+")  # an installation's id and a repository's
FETCHES = "forgehand-fetches"  # in each mirror: fetches started, and the last one finished


@dataclass(frozen=True)
class Worktree:
    path: Path  # the work tree the agent edits
    gitdir: Path  # forgehand's git directory for it
    objects: Path  # the mirror's object store, which both git directories borrow from
    branch: str
    base: str  # the commit the task started from
    task_dir: Path

    @property
    def home(self) -> Path:
        return self.task_dir / "home"

    def git(
        self,
        args: Sequence[str],
        *,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:
        """forgehand's git on this tree: never the agent's `.git`, whatever it holds."""
        where = ["--git-dir", str(self.gitdir), "--work-tree", str(self.path)]
        return git([*where, *args], self.path, token=token, env=env, check=check)

    def capped(
        self, args: Sequence[str], limit: int, *, work_tree: bool = False
    ) -> tuple[str, bool]:
        """forgehand's git on this tree for output whose size the agent decides (a diff, a
        listing of its commits or paths): at most `limit` bytes of it, and whether it was cut
        there. Only with `work_tree` is git shown the tree the agent left: reading commits
        needs nothing of it. Run from the task's directory, which the agent never had."""
        where = ["--git-dir", str(self.gitdir)]
        if work_tree:
            where += ["--work-tree", str(self.path)]
        return git_capped([*where, *args], self.task_dir, limit)


def pid_namespace() -> str:
    """A name for this process's PID namespace: workers of several containers share the
    workspaces volume, and a pid names a process only within its namespace."""
    try:
        return f"pid-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        # No /proc: one container is one host name.
        return f"host-{socket.gethostname()}"


class Workspaces:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.mirrors = self.root / "mirrors"
        self.tasks = self.root / "tasks"
        self.logs = self.root / "logs"
        self.run_dir = self.root / "run" / pid_namespace()
        self.pool = self.root / "pool"

    def log_path(self, task_id: str) -> Path:
        return self.logs / f"{task_id}.log"

    @contextmanager
    def _locked(self, space: str) -> Iterator[Path]:
        self.mirrors.mkdir(parents=True, exist_ok=True)
        with (self.mirrors / f"{space}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.mirrors / f"{space}.git"
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refresh(self, mirror: Path, clone_url: str, token: str | None, asked: int) -> None:
        """Fetch the mirror, unless a fetch that began after this task asked for it (when the
        fetch count was `asked`) has finished since: that one has every ref the task needs.
        Tasks that arrive together — many issues labelled at once — share one fetch."""
        if not (mirror / "HEAD").exists():
            shutil.rmtree(mirror, ignore_errors=True)
            mirror.mkdir(parents=True)
            git(["init", "--bare", "--quiet", "--template="], mirror)
            git(["config", "gc.auto", "0"], mirror)  # no gc racing other tasks' trees
        started, finished = _fetches(mirror)
        if finished > asked:
            return
        _write_fetches(mirror, started + 1, finished)
        refspec = "+refs/heads/*:refs/remotes/origin/*"
        git(["fetch", "--prune", "--quiet", clone_url, refspec], mirror, token=token)
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
        identity: tuple[str, str] = ("forgehand", "forgehand@users.noreply.github.com"),
        installation: int = 0,
    ) -> Iterator[Worktree]:
        """A clean tree on `branch`, made from `origin/<start>`: a kept one when the
        repository has one (see POOL_SIZE), else a new one. Afterwards it is kept if the task
        finished, else removed.

        With new_branch the branch is created from the start point; otherwise `start` is the
        existing remote branch the task continues. `identity` (name, email) is what the
        agent's own git commits as. Mirror and kept trees are the `installation`'s own: a
        repository transferred to another owner keeps its id, and nothing of the old owner's
        tasks reaches the new one's.
        """
        space = f"{installation}-{repo_id}"
        task_dir = self.tasks / task_id
        self._discard(task_dir)
        task_dir.mkdir(parents=True)
        owner = f"{socket.gethostname()} {os.getpid()} {space}"
        (task_dir / "owner").write_text(owner)
        finished = False
        mirror = self.mirrors / f"{space}.git"
        asked = _fetches(mirror)[0]
        try:
            with self._locked(space):
                self._refresh(mirror, clone_url, token, asked)
                start_ref = f"refs/remotes/origin/{start}"
                found = git(["rev-parse", "--verify", "--quiet", start_ref], mirror, check=False)
                if not found.strip():
                    raise GitError(f"the repository has no branch {start}")
                base = found.strip()
                if new_branch:
                    branch = self._free_branch(mirror, branch)
            tree = Worktree(
                path=task_dir / "work",
                gitdir=task_dir / "git",
                objects=mirror / "objects",
                branch=branch,
                base=base,
                task_dir=task_dir,
            )
            reused = self._take_pooled(space, tree)
            if not reused:
                tree.path.mkdir()
            _checkout(tree, task_dir)
            if reused and not _clean(tree):
                # What cannot be made clean is not reused.
                _remove(tree.path)
                _remove(tree.gitdir)
                tree.path.mkdir()
                _checkout(tree, task_dir)
            _agent_repository(tree, identity)
            tree.home.mkdir()
            yield tree
            finished = True
        finally:
            # A task stopped part-way (cancelled, an error, a dead worker) loses its tree, as
            # SPEC §4 has it; only one that finished is kept for the next task.
            self._discard(task_dir, keep=finished)

    def _take_pooled(self, space: str, tree: Worktree) -> bool:
        """Move a kept tree of this repository into the task; False when there is none. Of
        its git directory only the index is kept (what makes the next checkout cheap): its
        objects and refs were the task before's."""
        claimed = tree.task_dir / "kept"
        for slot in sorted((self.pool / space).glob("*")):
            try:
                os.rename(slot, claimed)  # atomic: of tasks starting together, one gets it
            except OSError:
                continue
            try:
                tree.gitdir.mkdir()
                os.rename(claimed / "git" / "index", tree.gitdir / "index")
                os.rename(claimed / "work", tree.path)
                return True
            except OSError:
                _remove(tree.gitdir)
                _remove(tree.path)
            finally:
                _remove(claimed)
        return False

    def _discard(self, task_dir: Path, keep: bool = False) -> None:
        """With `keep`, keep a task's tree for the next task if there is room, else remove
        it; then remove the task's directory."""
        owner = _owner(task_dir)
        if keep and owner is not None:
            # The index is not refreshed here: files written in the second it was written are
            # "racily clean", and git compares their contents, not their times, at the next
            # checkout; a refresh now would vouch for a file the agent rewrote in that second
            # at the same size, and the next task would find the agent's version.
            with self._locked(owner.space):
                self._keep(owner.space, task_dir)
        _remove(task_dir)

    def _keep(self, space: str, task_dir: Path) -> None:
        pool = self.pool / space
        if pool.is_dir() and sum(1 for _ in pool.iterdir()) >= POOL_SIZE:
            return
        gitdir, work = task_dir / "git", task_dir / "work"
        if not gitdir.is_dir() or not work.is_dir() or work.is_symlink():
            return
        slot = pool / uuid.uuid4().hex
        slot.mkdir(parents=True)
        os.rename(gitdir, slot / "git")
        os.rename(work, slot / "work")
        os.utime(slot)  # when it was last used, for prune_pool

    def prune_pool(self, max_idle: float = POOL_IDLE) -> list[str]:
        """Remove kept trees unused for `max_idle` seconds."""
        removed: list[str] = []
        cutoff = time.time() - max_idle
        for repo in self.pool.glob("*") if self.pool.is_dir() else ():
            if not SPACE.fullmatch(repo.name):
                continue
            with self._locked(repo.name):
                for slot in repo.iterdir():
                    if slot.stat().st_mtime <= cutoff:
                        _remove(slot)
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
    space: str  # the installation's and the repository's ids


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


def _remove(path: Path) -> None:
    """Remove a file, a symlink (never what it points to) or a whole directory."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _checkout(tree: Worktree, task_dir: Path) -> None:
    """forgehand's git directory for the tree, new, and the tree at the base on its branch."""
    git(["init", "--bare", "--quiet", "--template=", str(tree.gitdir)], task_dir)
    _borrow_objects(tree.gitdir, tree.objects)
    (tree.gitdir / "info").mkdir(exist_ok=True)
    (tree.gitdir / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n")
    tree.git(["update-ref", f"refs/heads/{tree.branch}", tree.base])
    tree.git(["symbolic-ref", "HEAD", f"refs/heads/{tree.branch}"])
    tree.git(["reset", "--quiet", "--hard", tree.base])


def _clean(tree: Worktree) -> bool:
    """Make a kept tree hold exactly the base: no repository anywhere in it (git looks into
    none, so neither `clean` nor `status` sees one inside a tracked directory), nothing
    untracked or ignored. False when that could not be done."""
    try:
        _remove_nested_git(tree.path)
    except OSError:
        return False
    tree.git(["clean", "--quiet", "-ffdx"], check=False)
    # Read with a cap: whatever is left, a byte of it is enough to refuse the tree.
    left, cut = tree.capped(
        ["status", "--porcelain", "-z", "--ignored", "--untracked-files=all"], 1, work_tree=True
    )
    return not left and not cut


def _remove_nested_git(root: Path) -> None:
    """Remove every entry named `.git` (in any case) below `root`, following no link."""
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.casefold() == ".git":
                    _remove(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))


def _borrow_objects(gitdir: Path, objects: Path) -> None:
    (gitdir / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (gitdir / "objects" / "info" / "alternates").write_text(f"{objects}\n")


def _agent_repository(tree: Worktree, identity: tuple[str, str]) -> None:
    """Give the agent a git repository of its own in the tree, at the task's base: it reads
    the mirror's objects (read-only in the sandbox) and starts with forgehand's index, so
    `git status` and `git diff` work at once. Nothing forgehand runs ever reads it."""
    agent_git = tree.path / ".git"
    _remove(agent_git)  # a kept tree's: the last agent's, maybe a symlink
    git(["init", "--quiet", "--template=", str(tree.path)], tree.task_dir)
    _borrow_objects(agent_git, tree.objects)
    name, email = identity
    with (agent_git / "config").open("a") as config:
        config.write(f"[user]\n\tname = {name}\n\temail = {email}\n")
    (agent_git / "info").mkdir(exist_ok=True)
    (agent_git / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n")
    where = ["--git-dir", str(agent_git), "--work-tree", str(tree.path)]
    git([*where, "update-ref", f"refs/heads/{tree.branch}", tree.base], tree.task_dir)
    git([*where, "symbolic-ref", "HEAD", f"refs/heads/{tree.branch}"], tree.task_dir)
    shutil.copyfile(tree.gitdir / "index", agent_git / "index")


def _remote_has(mirror: Path, branch: str) -> bool:
    ref = f"refs/remotes/origin/{branch}"
    return bool(git(["rev-parse", "--verify", "--quiet", ref], mirror, check=False).strip())


def _owner(task_dir: Path) -> _Owner | None:
    try:
        host, pid, space = (task_dir / "owner").read_text().split()
        return _Owner(host, int(pid), space)
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
