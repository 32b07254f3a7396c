from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from jobs import workspace
from jobs.boundary.own_git import GitError, auth_config, git
from jobs.workspace import POOL_SIZE, Workspaces
from tests import fakes


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return fakes.make_origin(tmp_path / "remote")


def test_worktree_from_fresh_base_is_kept_afterwards(tmp_path: Path, origin: Path) -> None:
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with ws.worktree("t-1", 1, url, None, "agent/x", "main", new_branch=True) as tree:
        assert (tree.path / "calc.py").exists()
        assert tree.git(["branch", "--show-current"]).strip() == "agent/x"
        assert tree.base == fakes.sh_git("rev-parse", "main", cwd=origin).strip()
        # The agent's own repository, at the same commit, with a clean status.
        assert git(["rev-parse", "HEAD"], tree.path).strip() == tree.base
        assert git(["status", "--porcelain"], tree.path) == ""
        assert tree.gitdir != tree.path / ".git" and tree.gitdir.is_dir()
    assert not (tmp_path / "ws" / "tasks" / "t-1").exists()
    mirror = tmp_path / "ws" / "mirrors" / "0-1.git"
    assert git(["for-each-ref", "refs/heads"], mirror).strip() == ""
    (kept,) = (tmp_path / "ws" / "pool" / "0-1").iterdir()
    assert sorted(p.name for p in kept.iterdir()) == ["git", "work"]


def test_installations_share_no_mirror_and_no_kept_tree(tmp_path: Path, origin: Path) -> None:
    """A repository keeps its id when it moves to another owner: what one installation's
    tasks left is not the other's to start from."""
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with ws.worktree("t-1", 1, url, None, "agent/a", "main", True, installation=41) as tree:
        (tree.path / "left.txt").write_text("by installation 41\n")
    with ws.worktree("t-2", 1, url, None, "agent/b", "main", True, installation=42) as tree:
        assert not (tree.path / "left.txt").exists()
    mirrors = sorted(p.name for p in (tmp_path / "ws" / "mirrors").glob("*.git"))
    assert mirrors == ["41-1.git", "42-1.git"]
    assert {p.name for p in (tmp_path / "ws" / "pool").iterdir()} == {"41-1", "42-1"}


def test_a_kept_worktree_comes_back_clean_on_the_new_base(tmp_path: Path, origin: Path) -> None:
    """Whatever the last task left — edits, commits, new and ignored files, a poisoned
    `.git` — the next task sees exactly its branch's tree and a fresh repository."""
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with ws.worktree("t-1", 1, url, None, "agent/a", "main", new_branch=True) as tree:
        first = tree.path.resolve()
        (tree.path / "calc.py").write_text("garbage\n")
        (tree.path / ".gitignore").write_text("build/\n")
        tree.git(["add", ".gitignore"])
        tree.git(["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "x"])
        (tree.path / "build").mkdir()
        (tree.path / "build" / "out.o").write_text("object\n")
        (tree.path / "stray.txt").write_text("left behind\n")
        subprocess.run(["rm", "-rf", str(tree.path / ".git")], check=True)
        (tree.path / ".git").symlink_to(elsewhere)
        # Where git never looks: a repository inside a tracked directory.
        git(["init", "-q", str(tree.path / ".github")], tmp_path)
        tree.git(["update-ref", "refs/forgehand/agent", "HEAD"])
    push_a_new_file(tmp_path, origin)
    with ws.worktree("t-2", 1, url, None, "agent/b", "main", new_branch=True) as tree:
        assert tree.path.resolve() != first  # moved into the new task's directory
        assert tree.git(["branch", "--show-current"]).strip() == "agent/b"
        assert tree.git(["rev-parse", "HEAD"]).strip() == tree.base
        assert tree.git(["status", "--porcelain", "--ignored"]) == ""
        assert (tree.path / "new.txt").exists() and not (tree.path / ".gitignore").exists()
        original = tmp_path / "remote" / "seed" / "calc.py"
        assert (tree.path / "calc.py").read_text() == original.read_text()
        assert not (tree.path / ".git").is_symlink()
        assert git(["rev-parse", "HEAD"], tree.path).strip() == tree.base
        assert not (tree.path / ".github" / ".git").exists()
        refs = tree.git(["for-each-ref", "--format=%(refname)"]).split()
        assert refs == ["refs/heads/agent/b"]  # the last task's git directory is not kept
    assert list(elsewhere.iterdir()) == []
    assert len(list((tmp_path / "ws" / "pool" / "0-1").iterdir())) == 1


def test_what_the_agent_does_to_its_git_hides_nothing_from_forgehand(
    tmp_path: Path, origin: Path
) -> None:
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with ws.worktree("t-1", 1, url, None, "agent/a", "main", new_branch=True) as tree:
        (tree.path / "calc.py").write_text("hidden change\n")
        git(["update-index", "--assume-unchanged", "calc.py"], tree.path)
        assert git(["status", "--porcelain"], tree.path) == ""  # hidden from the agent's git
        assert tree.git(["status", "--porcelain"]).strip() == "M calc.py"


def test_capped_reads_with_a_cap_and_shows_git_the_tree_only_when_asked(
    tmp_path: Path, origin: Path
) -> None:
    ws = Workspaces(tmp_path / "ws")
    with ws.worktree("t-1", 1, f"file://{origin}", None, "agent/x", "main", True) as tree:
        (tree.path / "new.txt").write_text("by the agent\n")
        status = ["status", "--porcelain"]
        assert tree.capped(status, 1024, work_tree=True) == ("?? new.txt\n", False)
        with pytest.raises(GitError, match="work tree"):
            tree.capped(status, 1024)
        log, cut = tree.capped(["log", "--format=%H", tree.base], 10)
        assert cut and len(log) <= 10


def test_a_task_stopped_part_way_loses_its_worktree(tmp_path: Path, origin: Path) -> None:
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with (
        pytest.raises(RuntimeError),
        ws.worktree("t-1", 1, url, None, "agent/a", "main", new_branch=True),
    ):
        raise RuntimeError("cancelled")
    assert not (tmp_path / "ws" / "pool" / "0-1").exists()
    assert not (tmp_path / "ws" / "tasks" / "t-1").exists()


def test_the_pool_is_bounded_and_idle_worktrees_go(tmp_path: Path, origin: Path) -> None:
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with ExitStack() as stack:
        for i in range(POOL_SIZE + 2):
            stack.enter_context(
                ws.worktree(f"t-{i}", 1, url, None, f"agent/{i}", "main", new_branch=True)
            )
    pool = tmp_path / "ws" / "pool" / "0-1"
    assert len(list(pool.iterdir())) == POOL_SIZE
    assert ws.prune_pool() == []  # all used just now
    assert len(ws.prune_pool(max_idle=0)) == POOL_SIZE
    assert list(pool.iterdir()) == []


def push_a_new_file(tmp_path: Path, origin: Path) -> None:
    seed = tmp_path / "remote" / "seed"
    (seed / "new.txt").write_text("new\n")
    fakes.sh_git("add", "-A", cwd=seed)
    fakes.sh_git("commit", "-qm", "second", cwd=seed)
    fakes.sh_git("push", "-q", str(origin), "main", cwd=seed)


def test_mirror_is_fetched_not_recloned(tmp_path: Path, origin: Path) -> None:
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with ws.worktree("t-1", 1, url, None, "agent/a", "main", new_branch=True):
        pass
    mirror = tmp_path / "ws" / "mirrors" / "0-1.git"
    marker = os.stat(mirror / "HEAD").st_ino
    push_a_new_file(tmp_path, origin)
    with ws.worktree("t-2", 1, url, None, "agent/b", "main", new_branch=True) as tree:
        assert (tree.path / "new.txt").exists()
    assert os.stat(mirror / "HEAD").st_ino == marker


def test_existing_remote_branch_gets_a_new_name(tmp_path: Path, origin: Path) -> None:
    fakes.sh_git("branch", "agent/x", "main", cwd=origin)
    ws = Workspaces(tmp_path / "ws")
    with ws.worktree("t", 1, f"file://{origin}", None, "agent/x", "main", new_branch=True) as t:
        assert t.branch == "agent/x-2"


def test_missing_base_branch_is_a_clear_error(tmp_path: Path, origin: Path) -> None:
    ws = Workspaces(tmp_path / "ws")
    with (
        pytest.raises(GitError, match="no branch develop"),
        ws.worktree("t", 1, f"file://{origin}", None, "agent/x", "develop", new_branch=True),
    ):
        pass
    assert not (tmp_path / "ws" / "tasks" / "t").exists()


def test_stale_worktree_of_a_dead_process_is_pruned(tmp_path: Path, origin: Path) -> None:
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    dead = subprocess.Popen(["true"])
    dead.wait()
    cm = ws.worktree("t-dead", 1, url, None, "agent/dead", "main", new_branch=True)
    tree = cm.__enter__()
    owner = tree.task_dir / "owner"
    host, _pid, rest = owner.read_text().split(" ", 2)
    owner.write_text(f"{host} {dead.pid} {rest}")  # as if a killed worker had made it
    with ws.worktree("t-live", 1, url, None, "agent/live", "main", new_branch=True):
        assert ws.prune_stale() == ["t-dead"]
        assert (tmp_path / "ws" / "tasks" / "t-live" / "work").is_dir()
    assert not tree.path.exists()


def test_token_travels_in_the_environment_only() -> None:
    ((key, value),) = auth_config("ghs_secret")
    assert key == "http.extraheader"
    assert "ghs_secret" not in value  # base64 of x-access-token:…
    assert auth_config(None) == []


def test_git_errors_never_show_the_token(tmp_path: Path) -> None:
    with pytest.raises(GitError) as err:
        git(["fetch", "file:///nonexistent/ghs_secret"], tmp_path, token="ghs_secret")
    assert "ghs_secret" not in str(err.value)


def test_tasks_that_asked_together_share_one_fetch(
    tmp_path: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch that began after a task asked for the mirror serves it; one that began before
    does not (it may miss what was pushed in between)."""
    ws = Workspaces(tmp_path / "ws")
    url = f"file://{origin}"
    with ws.worktree("t-0", 1, url, None, "agent/0", "main", new_branch=True):
        pass
    mirror = tmp_path / "ws" / "mirrors" / "0-1.git"
    fetches: list[list[str]] = []

    def counting(args: list[str], cwd: Path, **kwargs: Any) -> str:
        if args[0] == "fetch":
            fetches.append(args)
        return git(args, cwd, **kwargs)

    monkeypatch.setattr(workspace, "git", counting)
    asked = workspace._fetches(mirror)[0]  # two tasks ask while no fetch is running
    ws._refresh(mirror, url, None, asked)  # the first one fetches
    ws._refresh(mirror, url, None, asked)  # the second one is served by it
    assert len(fetches) == 1
    ws._refresh(mirror, url, None, workspace._fetches(mirror)[0])  # a later task fetches
    assert len(fetches) == 2
