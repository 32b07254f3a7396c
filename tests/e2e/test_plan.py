"""An epic end to end through real processes and the simulator: planned, approved, filed as
sub-issues, run as a fleet to merge, with the plan comment following it."""

from __future__ import annotations

from pathlib import Path

from app.settings import parse
from simulator import fleet
from simulator.github import git_out
from simulator.plan_story import EPIC, EPIC_BODY, EPIC_TITLE, PlanStory
from simulator.sandbox import FLEET_AGENT, Stack
from tests.e2e.test_fleet import assert_narrates


def test_an_epic_becomes_a_plan_then_a_fleet_that_merges(tmp_path: Path) -> None:
    with Stack(parse({}), tmp_path / "sandbox", FLEET_AGENT, fleet.FILES) as stack:
        sim = stack.sim

        said: list[str] = []
        played = PlanStory(sim, stack.state_of, said.append, 120).play(sim.repo_id)
        rows = played["rows"]
        gh = sim.sim
        # One issue per row, each a sub-issue of the epic, filed once; docs blocked by fix-add.
        assert sorted(gh.sub_issues[EPIC]) == sorted(rows.values())
        assert gh.blocked_by == {rows["docs"]: [rows["fix-add"]]}
        assert sum(1 for i in gh.issues.values() if f"Part of #{EPIC}" in (i["body"] or "")) == 3
        assert f"Depends on #{rows['fix-add']}" in gh.issues[rows["docs"]]["body"]
        # The plan predicted the collision on calc.py; the fleet resolved it; all is on main.
        plan = played["plan"]
        assert "| `fix-add` → #" in plan and "`three` (`calc.py`)" in plan
        assert "Predicted collisions that happened: 1 of 1; collisions nobody predicted: 0." in plan
        assert git_out("show", "main:calc.py", cwd=sim.origin) == (
            "def add(a, b, c=0):\n    return a + b + c  # add\n"
        )
        assert "Adds numbers" in git_out("show", "main:README.md", cwd=sim.origin)
        assert all(p["state"] == "closed" and p["merged"] for p in gh.pulls.values())
        kinds = sorted(r.task.kind.value for r in stack.store.recent(100))
        assert kinds.count("plan") == 1 and kinds.count("approve") == 1
        assert kinds.count("issue") == 3
        # Nothing the planning agent did reached the repository but through the fleet.
        assert all(not b.startswith("agent/issue-2") for b in git_out(
            "for-each-ref", "--format=%(refname:short)", cwd=sim.origin).split())  # fmt: skip
        assert {d.status for d in sim.deliveries} <= {202}


def test_the_plan_sandbox_narrates_the_story(tmp_path: Path) -> None:
    assert_narrates(
        tmp_path,
        "plan",
        (
            "labels it `agent:plan`",
            "the agent's plan, checked by forgehand (3 rows)",
            "as sub-issues of #2",
            "as the plan predicted",
            "Every row's pull request is merged",
        ),
    )


def test_a_person_edits_the_plan_and_a_reader_cannot_approve_it(tmp_path: Path) -> None:
    with Stack(parse({}), tmp_path / "sandbox", FLEET_AGENT, fleet.FILES) as stack:
        sim = stack.sim
        story = PlanStory(sim, lambda _task_id: None, lambda _text: None, 120)
        sim.open_issue(EPIC, EPIC_TITLE, EPIC_BODY)
        sim.label_issue(EPIC, "agent:plan")
        body = story.wait(story.plan_comment, "the plan comment")
        (cid,) = [c for c, v in sim.sim.comments.items() if v["body"] == body]
        # Someone who may only read asks to approve: told once, nothing filed.
        sim.sim.permissions["mallory"] = "read"
        sim.comment(EPIC, "/agent approve", by="mallory")
        refused = "@mallory: only people with write access may approve a plan; nothing was filed."
        story.wait(lambda: refused in sim.sim.comment_bodies(EPIC), "the one-line refusal")
        # carol edits the YAML in the comment: the table follows, and the edit is what is filed.
        sim.edit_comment(cid, body.replace("title: Document the project", "title: Document calc"))
        story.wait(lambda: "| `docs` | Document calc |" in (story.plan_comment() or ""),
                   "the table to show the edit")  # fmt: skip
        sim.comment(EPIC, "/agent approve")
        story.wait(lambda: len(sim.sim.sub_issues.get(EPIC, [])) == 3, "three sub-issues")
        titles = sorted(sim.sim.issues[n]["title"] for n in sim.sim.sub_issues[EPIC])
        assert titles == ["Document calc", "add() should take three numbers", "add() subtracts"]
        assert len(sim.sim.issues) == 5  # #1, the epic, and its three rows: none for mallory
