"""The hand-off: the agent's work crosses the boundary as data.

Once the agent has exited, jobs/boundary/pack.py runs in the task's sandbox — where only the
task's own repository is visible — and writes a git bundle of the work to its stdout. forgehand
keeps at most TREE_MAX_BYTES of it in a file of its own, checks the bundle's header (one ref, no
prerequisite but the base), and fetches it into its own git directory with every object checked;
then it refuses a result that does not build on the base or adds a gitlink. forgehand's git
never opens the agent's `.git`, and follows nothing in the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.boundary import bounded, protected
from jobs.boundary.own_git import GIT_TIMEOUT, GitError, base_env
from jobs.boundary.sandbox import Sandbox
from jobs.boundary.tree_limits import Limits, over
from jobs.errors import TaskFailed

if TYPE_CHECKING:
    from jobs.workspace import Worktree

# Agents' own bookkeeping files that must never be committed.
EXCLUDES = (".aider*",)
PACK = Path(__file__).with_name("pack.py")
RESULT = "refs/forgehand/result"
TAKEN = "refs/forgehand/agent"
PACK_TIMEOUT = 600
HEADER_LIMIT = 64 * 1024
SIGNATURE = b"# v2 git bundle\n"
GITLINK = "160000"
# The most of git's listing of the agent's commits held in memory: a few commits can list
# gigabytes (trees that swap many files back and forth), and a change past it is refused.
LISTING_LIMIT = 16 * 1024 * 1024
# fsck's warnings that matter here become errors: a tree naming `.git` would write into a
# git directory wherever it is checked out. They are given to index-pack, which checks every
# object it reads: a fetch from a bundle checks none before git 2.46, whatever it is told.
FSCK = (
    ("fsck.hasDotgit", "error"),
    ("fsck.nulInTree", "error"),
)


def take(
    sandbox: Sandbox, tree: Worktree, message: str, who: dict[str, str], limits: Limits
) -> str:
    """The commit holding the agent's work (its commits that build on the base, then its tree),
    now in forgehand's own git directory; the base itself when the work changes nothing."""
    reason = over(tree.path, limits)
    if reason is not None:
        raise TaskFailed(f"The agent's tree has {reason}, so nothing was pushed.")
    bundle = tree.task_dir / "result.bundle"
    bundle.unlink(missing_ok=True)
    # forgehand's index of the tree at the base, shown read-only: its stat data spares
    # hashing every unchanged file again. Copied with its time, which tells git which
    # entries are racily clean (written in the index's second) and must be compared by
    # content: the agent may have rewritten one in that second at the same size.
    index = tree.task_dir / "pack.index"
    shutil.copy2(tree.gitdir / "index", index)
    env = {"PATH": os.environ.get("PATH") or os.defpath, **who}
    python = Path(getattr(sys, "_base_executable", sys.executable))
    argv = [str(python), "-I", "-S", str(PACK), str(tree.path), tree.base, str(tree.objects),
            str(index), message, *EXCLUDES]  # fmt: skip
    with sandbox.offline(tree.path, tree.home, tree.objects) as jail:
        launch = jail.command(argv, env, (PACK, index))
        with bundle.open("wb") as sink:
            out = bounded.run(
                launch.argv, cwd=tree.path, env=launch.env, limit=limits.size,
                timeout=PACK_TIMEOUT, preexec=launch.preexec, sink=sink,
            )  # fmt: skip
    if out.cut:
        raise TaskFailed(
            f"The agent's change is larger than {limits.size} bytes (TREE_MAX_BYTES), so "
            "nothing was pushed."
        )
    if out.timed_out or out.returncode != 0:
        said = (out.stderr.strip().splitlines() or ["no message"])[-1][:500]
        raise TaskFailed(f"Taking the agent's work failed ({said}), so nothing was pushed.")
    if bundle.stat().st_size == 0:
        return tree.base
    return receive(tree, bundle)


def receive(tree: Worktree, bundle: Path) -> str:
    """Check the bundle and fetch its one commit into forgehand's git directory."""
    prerequisites, refs = read_header(bundle)
    if list(refs) != [RESULT] or not set(prerequisites) <= {tree.base}:
        raise TaskFailed("The agent's work came back malformed, so nothing was pushed.")
    head = refs[RESULT]
    try:
        _index(tree, bundle)
        tree.git(["update-ref", TAKEN, head])
        # Checks too that `head` is a commit, and that the pack held it: an ancestor is one.
        tree.git(["merge-base", "--is-ancestor", tree.base, head])
    except GitError as exc:
        raise TaskFailed(f"The agent's work was refused ({exc}), so nothing was pushed.") from None
    links = gitlinks(tree, head)
    if links:
        shown = ", ".join(f"`{protected.printable(p)}`" for p in links[:10])
        raise TaskFailed(
            f"The agent's change adds nested repositories (gitlinks) at {shown}, so nothing "
            "was pushed."
        )
    return head


def _index(tree: Worktree, bundle: Path) -> None:
    """The bundle's pack into forgehand's git directory, every object checked strictly."""
    with bundle.open("rb") as f:
        f.seek(f.read(HEADER_LIMIT).index(b"\n\n") + 2)  # read_header checked it is there
        done = subprocess.run(
            ["git", *_config(FSCK), "--git-dir", str(tree.gitdir), "index-pack", "--stdin",
             "--strict", "--fix-thin"],
            stdin=f, capture_output=True, env=base_env(), timeout=GIT_TIMEOUT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise GitError(f"git index-pack failed: {' '.join(said)}")


def read_header(bundle: Path) -> tuple[list[str], dict[str, str]]:
    """A v2 bundle's prerequisites, and its refs by name, read with a cap."""
    with bundle.open("rb") as f:
        head = f.read(HEADER_LIMIT)
    end = head.find(b"\n\n")
    if not head.startswith(SIGNATURE) or end < 0:
        raise TaskFailed("The agent's work came back malformed, so nothing was pushed.")
    prerequisites: list[str] = []
    refs: dict[str, str] = {}
    for line in head[len(SIGNATURE) : end].decode(errors="replace").splitlines():
        sha, _, name = line.partition(" ")
        if sha.startswith("-"):
            prerequisites.append(sha[1:])
        elif len(sha) == 40 and all(c in "0123456789abcdef" for c in sha) and name not in refs:
            refs[name] = sha
        else:
            raise TaskFailed("The agent's work came back malformed, so nothing was pushed.")
    return prerequisites, refs


def gitlinks(tree: Worktree, head: str) -> list[str]:
    """Paths where any commit from the base to `head` (merges against each parent) records a
    gitlink: a nested repository, whose commit forgehand would reference but never check.
    (forgehand's git ignores submodules in diffs by default, so this asks not to.)"""
    raw, cut = tree.capped(
        ["log", "-m", "--raw", "--no-renames", "--no-abbrev", "--ignore-submodules=none", "-z",
         "--format=", f"{tree.base}..{head}"],
        LISTING_LIMIT,
    )  # fmt: skip
    if cut:
        raise TaskFailed("The agent's change is too large to check, so nothing was pushed.")
    fields = raw.split("\0")
    found = []
    for i, field in enumerate(fields):
        if field.startswith(":") and field[1:].split(" ")[1:2] == [GITLINK] and i + 1 < len(fields):
            found.append(fields[i + 1])
    return sorted(set(found))


def _config(pairs: tuple[tuple[str, str], ...]) -> list[str]:
    return [arg for key, value in pairs for arg in ("-c", f"{key}={value}")]
