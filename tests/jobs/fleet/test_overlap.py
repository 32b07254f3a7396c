from __future__ import annotations

from pathlib import Path

from redis import Redis

from app.fleet.decisions import Pull
from app.fleet.state import FleetState
from jobs.fleet.overlap import changed_files, check_push
from tests import fakes


def branch(origin: Path, work: Path, name: str, files: dict[str, str]) -> None:
    fakes.sh_git("checkout", "--quiet", "-B", name, "origin/main", cwd=work)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    fakes.sh_git("add", "-A", cwd=work)
    fakes.sh_git("commit", "--quiet", "-m", name, cwd=work)
    fakes.sh_git("push", "--quiet", "origin", name, cwd=work)


def test_changed_files_are_the_branch_own_and_name_interface_changes(tmp_path: Path) -> None:
    origin = fakes.make_origin(tmp_path)
    work = tmp_path / "work"
    fakes.sh_git("clone", "--quiet", str(origin), str(work), cwd=tmp_path)
    branch(origin, work, "agent/a", {"calc.py": "def add(a, b, c=0):\n    return a + b\n",
                                     "docs/use.md": "use it\n"})  # fmt: skip
    # The base moves on after the branch: its new file is not the branch's.
    branch(origin, work, "main", {"NEWS.md": "news\n"})
    files, interface = changed_files(origin, "main", "agent/a")
    assert files == {"calc.py", "docs/use.md"}
    assert interface == {"calc.py"}
    branch(origin, work, "agent/b", {"calc.py": "def add(a, b):\n    return a + b\n"})
    assert changed_files(origin, "main", "agent/b") == (frozenset({"calc.py"}), frozenset())


def test_check_push_finds_overlaps_and_the_order(redis: Redis) -> None:
    state = FleetState(redis)
    state.record(1, Pull(10, 1, 1.0, frozenset({"a.py", "b.py"})))
    state.record(1, Pull(11, 2, 2.0, frozenset({"c.py"})))
    pushed = Pull(12, 3, 3.0, frozenset({"b.py", "d.py"}), frozenset({"b.py"}))
    found, fleet = check_push(state, 1, pushed)
    assert found.shared == {10: {"b.py"}}
    assert found.order == [12, 10]  # it changes the shared definitions: it goes first
    assert [p.number for p in fleet] == [10, 11, 12]
    alone, _ = check_push(state, 1, Pull(11, 2, 2.0, frozenset({"c.py"})))
    assert (alone.shared, alone.order) == ({}, [])
