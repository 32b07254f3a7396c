"""The fleet end to end: four issues at once through real processes and the simulator — two
disjoint, one colliding, one dependent — to merge."""

from __future__ import annotations

import io
from pathlib import Path

from app.settings import parse
from simulator import fleet
from simulator.github import git_out
from simulator.sandbox import FLEET_AGENT, Stack, run


def test_a_fan_out_of_four_issues_plays_through_to_merge(tmp_path: Path) -> None:
    with Stack(parse({}), tmp_path / "sandbox", FLEET_AGENT, fleet.FILES) as stack:
        sim = stack.sim

        said: list[str] = []
        story = fleet.Story(sim, stack.state_of, said.append, 120)
        played = story.play(sim.repo_id)
        pulls, dependent = played["pulls"], played["dependent"]
        # The collision was flagged on both before either merged, with the order: #3's pull
        # request changes add()'s signature, so it goes first although it is younger.
        assert played["order"] == [pulls[3], pulls[1]]
        assert f"- #{pulls[3]}: `calc.py`" in played["overlap"]
        # One comment each, edited since: it now says the overlap is over (an edit the worker
        # makes after the merge the story ends with, so it may come after the story).
        assert sum(c["body"].startswith(fleet.MARKER) for c in sim.sim.comments.values()) == 2
        story.wait(lambda: "no longer changes files" in (story.overlap_comment(pulls[1]) or ""),
                   "the overlap comment to say the overlap is over")  # fmt: skip
        # The dependent issue waited, said for what, and started only from a base with #2 in it.
        (held,) = played["held"]
        assert f"blocked by [#2](https://github.test/{sim.repo}/issues/2)" in held
        readme = git_out("show", f"{sim.sim.pulls[dependent]['head']}:README.md", cwd=sim.origin)
        assert "Adds numbers" in readme
        # The conflict was resolved with a merge commit, and everything is on main.
        main = git_out("show", "main:calc.py", cwd=sim.origin)
        assert main == "def add(a, b, c=0):\n    return a + b + c  # add\n"
        assert git_out("show", "main:mul.py", cwd=sim.origin).startswith("def mul")
        assert all(p["state"] == "closed" and p["merged"] for p in sim.sim.pulls.values())
        kinds = sorted(r.task.kind.value for r in stack.store.recent(100))
        assert kinds.count("conflict") == 1 and kinds.count("issue") == 4
        assert {d.status for d in sim.deliveries} <= {202}


def assert_narrates(tmp_path: Path, story: str, lines: tuple[str, ...]) -> None:
    """`forgehand sandbox <story>` plays through and says each of `lines`."""
    out = io.StringIO()
    # The sandbox waits as long as AGENT_TIMEOUT allows each attempt (two hours by default):
    # a story that stalls fails here in minutes instead.
    settings = parse({"AGENT_TIMEOUT": "60"})
    assert run(settings, story, tmp_path / "sandbox", out) == 0, out.getvalue()
    told = out.getvalue()
    for line in lines:
        assert line in told, told


def test_the_fleet_sandbox_narrates_the_story(tmp_path: Path) -> None:
    assert_narrates(
        tmp_path,
        "fleet",
        (
            "#4 waits: it is blocked by #2",
            "both change calc.py; suggested merge order",
            "now conflicts with main",
            "all four issues are done",
        ),
    )
