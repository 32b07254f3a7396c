"""The hand-off under attack: the agent's `.git` and tree are the attacker's, and what forgehand
takes from them must carry nothing from outside the task's repository nor reach a later task.
Each test runs a hostile agent (tests/agents/attack.py) through the real pipeline, with real
git and real bubblewrap."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import parse
from app.tasks import Kind, State
from jobs.boundary import handoff, sandbox
from jobs.boundary.tree_limits import Limits
from jobs.errors import TaskFailed
from jobs.workspace import Workspaces
from tests import fakes
from tests.jobs.boundary.test_sandbox import ATTACK, attack, hostile, why
from tests.jobs.conftest import BRANCH, World
from tests.jobs.fleet.test_waiting import commit_to_main
from tests.jobs.kinds.test_conflict import base_moved, conflicting_base

__all__ = ["hostile"]  # the fixture, used by name

SECRET = "other-installation-private-4b7e1c"
LIMITS = Limits(files=1000, path=1000, size=1 << 20)


def other_mirror(world: World) -> tuple[Path, str]:
    """Another installation's private repository, mirrored on this worker as forgehand
    mirrors every repository: its path and its one commit."""
    seed = world.tmp / "other-seed"
    seed.mkdir()
    fakes.sh_git("init", "-q", "-b", "main", cwd=seed)
    (seed / "secret.txt").write_text(f"{SECRET}\n")
    fakes.sh_git("add", "-A", cwd=seed)
    fakes.sh_git("commit", "-qm", "private", cwd=seed)
    mirror = world.workspaces / "mirrors" / "7-424242.git"
    mirror.parent.mkdir(parents=True)
    fakes.sh_git("clone", "-q", "--mirror", str(seed), str(mirror), cwd=world.tmp)
    return mirror, fakes.sh_git("rev-parse", "HEAD", cwd=seed).strip()


def pushed_objects(origin: Path) -> set[str]:
    listed = fakes.sh_git("rev-list", "--objects", "--all", cwd=origin)
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def test_another_installations_history_never_reaches_the_push(hostile: World) -> None:
    mirror, commit = other_mirror(hostile)
    record = attack(hostile, "steal", str(mirror), commit)
    assert commit not in pushed_objects(hostile.origin), why(hostile, record)
    for branch in fakes.branches(hostile.origin):
        log = fakes.sh_git("log", "--format=%H %P", branch, cwd=hostile.origin)
        assert commit not in log
    # Whatever the task made of it, nothing of the other repository is in origin at all.
    packs = b"".join(p.read_bytes() for p in (hostile.origin / "objects").rglob("*") if p.is_file())
    assert SECRET.encode() not in packs
    assert record.state in (State.DONE, State.FAILED)


def test_an_evil_merge_cannot_slip_a_protected_change_past(hostile: World) -> None:
    record = attack(hostile, "protected", "merge")
    assert record.state is State.FAILED, why(hostile, record)
    assert "protected paths" in record.error
    assert set(fakes.branches(hostile.origin)) == {"main"}


def test_a_resolution_that_keeps_the_bases_protected_change_is_pushed(world: World) -> None:
    _, old_head = conflicting_base(world)
    workflow = "on: push\njobs: {lint: {}}\n"
    commit_to_main(world, ".github/workflows/ci.yml", workflow)
    world.run(base_moved(world))
    (conflict,) = [r for r in world.store.recent() if r.task.kind is Kind.CONFLICT]
    assert conflict.state is State.DONE, conflict.error
    assert world.github.head_sha(BRANCH) != old_head
    assert fakes.show(world.origin, BRANCH, ".github/workflows/ci.yml") == workflow


def test_a_nested_repository_is_refused_not_pushed_as_a_gitlink(hostile: World) -> None:
    record = attack(hostile, "nest")
    assert record.state is State.FAILED, why(hostile, record)
    assert "gitlinks" in record.error and ".github/workflows/vendor" in record.error
    assert set(fakes.branches(hostile.origin)) == {"main"}


def test_nothing_a_task_leaves_in_its_tree_reaches_the_next(hostile: World) -> None:
    first = attack(hostile, "plant")
    assert first.state is State.DONE, why(hostile, first)
    kept = list((hostile.workspaces / "pool").rglob("work"))
    assert kept, "the finished task's tree was not kept"
    hostile.github.add_issue(8, "Another", "Look around.\ntargets: []\n")
    hostile.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(ATTACK), "inventory"]))
    second = hostile.run(hostile.issue_task(8))
    assert second.state is State.DONE, why(hostile, second)
    (branch,) = (b for b in fakes.branches(hostile.origin) if b.startswith("agent/issue-8"))
    seen = fakes.show(hostile.origin, branch, "findings.txt")
    assert "inventory done" in seen
    assert "leftover" not in seen, seen


def test_a_sprawling_tree_fails_before_it_is_staged(hostile: World) -> None:
    hostile.setenv("TREE_MAX_FILES", "500")
    record = attack(hostile, "sprawl", "2000")
    assert record.state is State.FAILED, why(hostile, record)
    assert "500 files" in record.error
    assert BRANCH not in fakes.branches(hostile.origin)


def test_a_conflict_resolution_cannot_quietly_revert_the_bases_protected_change(
    hostile: World,
) -> None:
    _, old_head = conflicting_base(hostile)
    commit_to_main(hostile, ".github/workflows/ci.yml", "on: push\njobs: {lint: {}}\n")
    hostile.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(ATTACK), "keep-ours"]))
    hostile.run(base_moved(hostile))
    (conflict,) = [r for r in hostile.store.recent() if r.task.kind is Kind.CONFLICT]
    assert conflict.state is State.FAILED, why(hostile, conflict)
    assert "protected paths" in conflict.error
    assert "ci.yml" in conflict.error
    assert hostile.github.head_sha(BRANCH) == old_head


def test_an_agent_filling_the_disk_is_stopped(hostile: World) -> None:
    hostile.setenv("AGENT_MAX_DISK", str(16 << 20))
    record = attack(hostile, "fill", "64")
    assert record.state is State.FAILED, why(hostile, record)
    assert "AGENT_MAX_DISK" in record.error
    assert hostile.leftovers() == []  # the tree is not kept


def test_an_offline_jail_has_no_way_out_and_a_small_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "TMPFS_SIZE", 1 << 20)
    box = sandbox.Sandbox(parse({"WORKSPACES_DIR": str(tmp_path / "ws")}))
    work, home, objects = tmp_path / "work", tmp_path / "home", tmp_path / "objects"
    for folder in (work, objects):
        folder.mkdir()
    script = (
        "head -c 2097152 /dev/zero > /tmp/big 2>/dev/null && echo wrote-tmp; "
        "ls /run/forgehand 2>/dev/null; echo proxy=$HTTPS_PROXY"
    )
    with box.offline(work, home, objects) as jail:
        launch = jail.command(["sh", "-c", script], {"PATH": "/usr/bin:/bin"})
        done = subprocess.run(launch.argv, env=launch.env, cwd=work, capture_output=True,
                              text=True, preexec_fn=launch.preexec, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["proxy="]


# --- the bundle's checks, without an attacker --------------------------------------------


def test_a_bundle_naming_another_prerequisite_or_ref_is_refused(tmp_path: Path) -> None:
    origin = fakes.make_origin(tmp_path / "remote")
    clone = tmp_path / "clone"
    fakes.sh_git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    base = fakes.sh_git("rev-parse", "HEAD", cwd=clone).strip()
    (clone / "calc.py").write_text("x = 1\n")
    fakes.sh_git("commit", "-qam", "one", cwd=clone)
    one = fakes.sh_git("rev-parse", "HEAD", cwd=clone).strip()
    (clone / "calc.py").write_text("x = 2\n")
    fakes.sh_git("commit", "-qam", "two", cwd=clone)
    fakes.sh_git("update-ref", handoff.RESULT, "HEAD", cwd=clone)
    good = tmp_path / "good.bundle"
    fakes.sh_git("bundle", "create", "-q", str(good), handoff.RESULT, f"^{base}", cwd=clone)
    assert handoff.read_header(good) == ([base], {handoff.RESULT: fakes.sh_git(
        "rev-parse", "HEAD", cwd=clone).strip()})  # fmt: skip
    # A prerequisite other than the base: objects forgehand's directory might hold.
    other = tmp_path / "other.bundle"
    fakes.sh_git("bundle", "create", "-q", str(other), handoff.RESULT, f"^{one}", cwd=clone)
    # A nested repository, recorded as a gitlink.
    fakes.sh_git("update-index", "--add", "--cacheinfo", f"160000,{one},vendor/lib", cwd=clone)
    fakes.sh_git("commit", "-qm", "vendor", cwd=clone)
    fakes.sh_git("update-ref", handoff.RESULT, "HEAD", cwd=clone)
    linked = tmp_path / "linked.bundle"
    fakes.sh_git("bundle", "create", "-q", str(linked), handoff.RESULT, f"^{base}", cwd=clone)
    workspaces = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with workspaces.worktree("t", 1, url, None, "agent/t", "main", True) as tree:
        assert tree.base == base
        with pytest.raises(TaskFailed, match="malformed"):
            handoff.receive(tree, other)
        with pytest.raises(TaskFailed, match=r"gitlinks.*vendor/lib"):
            handoff.receive(tree, linked)
        head = handoff.receive(tree, good)
        log = fakes.sh_git("--git-dir", str(tree.gitdir), "log", "--format=%s", head, cwd=tmp_path)
        assert log.split() == ["two", "one", "Initial", "commit"]
    # Forged headers: a second ref of the same name, a line that is no ref.
    text = good.read_bytes()
    end = text.index(b"\n\n")
    line = text[len(handoff.SIGNATURE) : end].splitlines()[-1]
    for forged in (text[:end] + b"\n" + line + text[end:], text[:end] + b"\nnot a ref" + text[end:],
                   b"PACK" + text):  # fmt: skip
        bad = tmp_path / "bad.bundle"
        bad.write_bytes(forged)
        with pytest.raises(TaskFailed, match="malformed"):
            handoff.read_header(bad)


def test_a_bundle_whose_tree_names_dot_git_is_refused(tmp_path: Path) -> None:
    """What the agent packs is its own to forge: a tree holding `.git/hooks/...` (which git
    checks only when told to, and, before 2.46, not at all when fetching from a bundle) never
    enters forgehand's git directory."""
    origin = fakes.make_origin(tmp_path / "remote")
    clone = tmp_path / "clone"
    fakes.sh_git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    base = fakes.sh_git("rev-parse", "HEAD", cwd=clone).strip()
    hook = fakes.sh_git("hash-object", "-w", "--stdin", cwd=clone, input="#!/bin/sh\nid\n")
    hooks = fakes.sh_git("mktree", cwd=clone, input=f"100755 blob {hook.strip()}\tpost-checkout\n")
    dot_git = fakes.sh_git("mktree", cwd=clone, input=f"040000 tree {hooks.strip()}\thooks\n")
    listed = fakes.sh_git("ls-tree", "HEAD", cwd=clone)
    top = fakes.sh_git("mktree", cwd=clone, input=f"{listed}040000 tree {dot_git.strip()}\t.git\n")
    evil = fakes.sh_git("commit-tree", top.strip(), "-p", base, "-m", "evil", cwd=clone).strip()
    fakes.sh_git("update-ref", handoff.RESULT, evil, cwd=clone)
    bundle = tmp_path / "evil.bundle"
    fakes.sh_git("bundle", "create", "-q", str(bundle), handoff.RESULT, f"^{base}", cwd=clone)
    with Workspaces(tmp_path / "ws").worktree(
        "t", 1, f"file://{origin}", None, "agent/t", "main", True
    ) as tree:
        with pytest.raises(TaskFailed, match="refused"):
            handoff.receive(tree, bundle)
        has = ["--git-dir", str(tree.gitdir), "cat-file", "-e", evil]
        assert subprocess.run(["git", *has], capture_output=True).returncode != 0
