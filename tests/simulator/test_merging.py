"""The simulated GitHub's `mergeable` comes from real git, and so does its merge button."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.github import merge
from tests import fakes
from tests.simulator.test_github import REPO, call


def commit(origin: Path, branch: str, start: str, path: str, text: str) -> None:
    work = origin.parent / f"work-{branch.replace('/', '-')}"
    fakes.sh_git("clone", "--quiet", "-b", start, str(origin), str(work), cwd=origin.parent)
    fakes.sh_git("checkout", "--quiet", "-B", branch, cwd=work)
    (work / path).write_text(text)
    fakes.sh_git("add", "-A", cwd=work)
    fakes.sh_git("commit", "--quiet", "-m", f"change {path}", cwd=work)
    fakes.sh_git("push", "--quiet", "origin", branch, cwd=work)


@pytest.fixture
def gh(tmp_path: Path) -> fakes.FakeGitHub:
    origin = fakes.make_origin(tmp_path)
    fake = fakes.FakeGitHub(clone_url=f"file://{origin}")
    fake.tokens.add("ghs_test")
    commit(origin, "agent/a", "main", "calc.py", "def add(a, b):\n    return a + b\n")
    commit(origin, "agent/b", "main", "calc.py", "def add(a, b):\n    return b + a\n")
    commit(origin, "agent/c", "main", "README.md", "# calc, documented\n")
    for number, ref in ((1, "agent/a"), (2, "agent/b"), (3, "agent/c")):
        fake.add_pull(number, ref, issue=10 + number)
    return fake


def test_mergeable_follows_the_base_as_it_moves(gh: fakes.FakeGitHub) -> None:
    for number in (1, 2, 3):
        pull = call(gh, "GET", f"{REPO}/pulls/{number}")
        assert (pull["mergeable"], pull["mergeable_state"]) == (True, "clean")
    merged = merge(gh, 1)
    assert fakes.sh_git("rev-parse", "main", cwd=gh.origin).strip() == merged
    assert gh.pulls[1]["state"] == "closed" and gh.pulls[1]["merged"]
    parents = fakes.sh_git("rev-list", "--parents", "-n", "1", merged, cwd=gh.origin).split()
    assert len(parents) == 3  # a merge commit, as the button makes
    conflicted = call(gh, "GET", f"{REPO}/pulls/2")
    assert (conflicted["mergeable"], conflicted["mergeable_state"]) == (False, "dirty")
    assert call(gh, "GET", f"{REPO}/pulls/3")["mergeable"] is True
    with pytest.raises(ValueError, match="#2 conflicts with main"):
        merge(gh, 2)
