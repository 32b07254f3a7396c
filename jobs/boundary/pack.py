"""Runs INSIDE the sandbox once the agent has exited: turns its work into a git bundle on
stdout, the only form in which it leaves. Standard library only (run with `python -I -S`).

    pack.py WORK BASE OBJECTS INDEX MESSAGE [EXCLUDE...]

The agent's commits are taken from its `.git` when they build on BASE, and the tree as it left
it is committed on top; the bundle holds what BASE lacks of that commit, under one ref,
refs/forgehand/result. Nothing is printed when the work changes nothing. INDEX, a copy of
forgehand's index of the tree at the base (in a conflict task, of the merge), lets staging
hash only the files whose size or time changed rather than every file.

Whatever this reads — the agent's `.git`, its config, alternates, links in the tree — is read
here, where only the task's own repository (OBJECTS, read-only) and its tree are visible; the
worker's git (jobs/boundary/handoff.py) reads only the bundle, and checks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULT = "refs/forgehand/result"
# The agent's repository config still holds whatever it wrote: these outrank it.
HARDENING = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.splitIndex", "false"),
    # The index was written outside the sandbox, where the tree's owner and device differ;
    # size and whole-second times (ctime, which nothing can set, included) still count.
    ("core.checkStat", "minimal"),
    ("submodule.recurse", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("commit.gpgSign", "false"),
)


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": os.devnull,
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_CONFIG_COUNT": str(len(HARDENING)),
    }
    for i, (key, value) in enumerate(HARDENING):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    for name in ("AUTHOR", "COMMITTER"):
        for part in ("NAME", "EMAIL"):
            key = f"GIT_{name}_{part}"
            if key in os.environ:
                env[key] = os.environ[key]
    return env | extra


def run(args: list[str], env: dict[str, str], check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        sys.stderr.write(f"git {args[0]} failed: {done.stderr.strip()[-2000:]}\n")
        sys.exit(2)
    return done.stdout.strip() if done.returncode == 0 else ""


def agent_head(work: Path, env: dict[str, str]) -> str:
    """The commit the agent's own repository is at, if it has one."""
    mine = env | {"GIT_DIR": str(work / ".git")}
    mine.pop("GIT_WORK_TREE", None)
    mine.pop("GIT_INDEX_FILE", None)
    return run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], mine, check=False)


def main(argv: list[str]) -> int:
    work, base, objects, index, message = Path(argv[1]), argv[2], argv[3], argv[4], argv[5]
    scratch = Path(tempfile.mkdtemp(prefix="pack-"))
    gitdir = scratch / "git"
    env = environment({})
    # What `git init --bare` writes, without a process for it.
    for folder in ("objects/info", "refs/heads", "info"):
        (gitdir / folder).mkdir(parents=True)
    (gitdir / "HEAD").write_text("ref: refs/heads/main\n")
    (gitdir / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")
    borrowed = [objects]
    agent_objects = work / ".git" / "objects"
    if agent_objects.is_dir():
        borrowed.append(str(agent_objects))
    (gitdir / "objects" / "info" / "alternates").write_text("\n".join(borrowed) + "\n")
    (gitdir / "info" / "exclude").write_text("".join(f"{x}\n" for x in argv[6:]))
    shutil.copy2(index, scratch / "index")  # with its time: see jobs/boundary/handoff.py
    env |= {
        "GIT_DIR": str(gitdir),
        "GIT_WORK_TREE": str(work),
        "GIT_INDEX_FILE": str(scratch / "index"),
    }
    head = agent_head(work, env)
    start = base
    if head and head != base:
        built_on_base = subprocess.run(
            ["git", "merge-base", "--is-ancestor", base, head],
            env=env, capture_output=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        # Commits that do not build on the base are dropped; their tree still counts.
        if built_on_base.returncode == 0:
            start = head
    # INDEX holds the base (or a merge of it, in conflict); on the agent's own commits,
    # --reset keeps the stat data of entries that are the same in `start`.
    if start != base:
        run(["read-tree", "--reset", start], env)
    run(["add", "--all", "."], env | {"GIT_DIR": str(gitdir)})
    tree = run(["write-tree"], env)
    result = start
    if tree != run(["rev-parse", f"{start}^{{tree}}"], env):
        result = run(["commit-tree", tree, "-p", start, "-m", message], env)
    if result == base:
        return 0
    run(["update-ref", RESULT, result], env)
    sys.stdout.flush()
    bundled = subprocess.run(
        ["git", "bundle", "create", "--quiet", "-", RESULT, f"^{base}"],
        env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    if bundled.returncode != 0:
        sys.stderr.write(f"git bundle failed: {bundled.stderr.decode(errors='replace')[-2000:]}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
