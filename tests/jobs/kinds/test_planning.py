"""An epic → a plan → approved → issues, through real agent processes, git and the fake GitHub."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from app.fleet.epic_state import EpicState
from app.github import GitHubError
from app.tasks import Kind, State, Task
from jobs.entry import execute
from jobs.kinds.planning import follow
from jobs.report.epic_comment import MARKER, extract_yaml
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import World

ATTACK = Path(__file__).resolve().parents[2] / "agents" / "attack.py"
ISSUES = f"POST /repos/{p.REPO}/issues"


def plan_task(comment_id: int = 0, sender: str = "alice") -> Task:
    return Task(Kind.PLAN, p.INSTALLATION, p.REPO_ID, p.REPO, 7, sender, comment_id=comment_id)


def approve_task(comment_id: int = 1, sender: str = "alice") -> Task:
    return Task(Kind.APPROVE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, sender, comment_id=comment_id)


def execute_alone(world: World, task: Task) -> str:
    """Run one task's job here, leaving what it queues (the fleet's issue tasks) queued."""
    world.enqueue(task)
    record = world.store.get(task.id)
    assert record is not None
    return execute(world.context(), task.id, record.run, "test")


def plan_comment(world: World) -> tuple[int, str]:
    ((cid, body),) = [(c, v["body"]) for c, v in world.github.comments.items()
                      if v["issue"] == 7 and v["body"].startswith(MARKER)]  # fmt: skip
    return cid, body


def planned(world: World) -> tuple[int, str]:
    world.use_agent("plan")
    record = world.run(plan_task())
    assert record.state is State.DONE, record.error
    return plan_comment(world)


def test_a_labelled_epic_gets_a_checked_plan_and_nothing_is_pushed(world: World) -> None:
    before = fakes.branches(world.origin)
    _cid, body = planned(world)
    assert "| `fix-add` | add() subtracts | `calc.py` | — | S | `three` (`calc.py`) | 1 |" in body
    assert "| `docs` | Document add() | `README.md`, `docs/usage.md` (new) | `fix-add` | S" in body
    assert "Critical path: `fix-add` → `docs`" in body or "Critical path: `three`" in body
    assert "summary: Fix add() first" in (extract_yaml(body) or "")
    # The agent also broke calc.py: discarded, and nothing reached the repository.
    assert fakes.branches(world.origin) == before
    assert world.github.pulls == {}
    status = [b for b in world.github.comment_bodies(7) if not b.startswith(MARKER)]
    assert any("📋 Plan posted: 3 rows in 2 waves, 1 predicted collisions" in b for b in status)
    prompt = world.store.prompt(plan_task().id)
    assert "Addition subtracts" in prompt and "calc.py\nREADME.md" not in prompt
    assert ".github/workflows/ci.yml" in prompt and "forgehand-plan.yml" in prompt
    assert world.leftovers() == []


def test_the_plan_says_what_it_may_cost_under_the_repositorys_cap(world: World) -> None:
    world.setenv("MAX_COST_PER_TASK", "2")
    world.github.config_text = "max_cost_per_task: 0.50\nmax_attempts: 2\n"
    _cid, body = planned(world)
    assert "Worst-case model cost: $4.50: 3 rows of 3 tasks each" in body
    assert "each stopped at the $0.50 task cap" in body


def test_planning_again_edits_the_same_comment_with_the_guidance_in_the_prompt(
    world: World, tmp_path: Path
) -> None:
    cid, _body = planned(world)
    out = tmp_path / "seen.json"
    world.use_agent("plan", "--out", str(out))
    world.github.issue_comments[55] = {"id": 55, "body": "/agent plan fewer rows\nand docs last",
                                       "user": {"login": "alice"}, "issue": 7}  # fmt: skip
    record = world.run(plan_task(comment_id=55))
    assert record.state is State.DONE, record.error
    prompt = json.loads(out.read_text())["prompt"]
    assert '<untrusted source="guidance for this plan">\nfewer rows\nand docs last' in prompt
    assert plan_comment(world)[0] == cid


def test_an_invalid_plan_fails_with_the_reason_and_the_files_first_lines(world: World) -> None:
    world.use_agent("bad-plan")
    record = world.run(plan_task())
    assert record.state is State.FAILED
    assert "row `three`: `size` must be S, M or L, got 'XXL'" in record.error
    (status,) = world.github.comment_bodies(7)
    assert "summary: Fix add() first" in status and "- key: fix-add" in status
    assert EpicState(world.redis).get(p.REPO_ID, 7) is None


def test_no_plan_fails_the_task_and_says_so(world: World) -> None:
    world.use_agent("no-plan")
    record = world.run(plan_task())
    assert record.state is State.FAILED
    assert record.error == (
        "The agent wrote no `forgehand-plan.yml` at the root of its tree, so there is no plan."
    )
    (status,) = world.github.comment_bodies(7)
    assert "I could not decide." in status


def attack(world: World, kind: str, target: str = "") -> str:
    world.github.issues[7]["body"] = "Split this.\ntargets: " + json.dumps([kind, target])
    world.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(ATTACK), "plan-trap"]))
    world.setenv("AGENT_SANDBOX", "bwrap")
    record = world.run(plan_task())
    assert record.state is State.FAILED
    assert world.leftovers() == []
    return record.error


def test_a_plan_that_links_to_a_worker_file_is_not_followed(world: World, tmp_path: Path) -> None:
    secret = tmp_path / "worker-secret.yml"
    secret.write_text("summary: WORKER-SECRET-123\nissues: []\n")
    error = attack(world, "link", str(secret))
    assert error == (
        "`forgehand-plan.yml` is not a regular file (a link, a directory or a pipe); it was not "
        "read."
    )
    assert not any("WORKER-SECRET" in b for b in world.github.comment_bodies(7))


def test_a_plan_left_as_a_pipe_or_a_directory_is_not_opened(world: World) -> None:
    assert "is not a regular file" in attack(world, "fifo")
    assert "is not a regular file" in attack(world, "dir")


def test_an_oversized_plan_is_not_read_whole(world: World) -> None:
    assert attack(world, "huge") == "`forgehand-plan.yml` is larger than 64 KiB; it was not read."


# --- approval -------------------------------------------------------------------------------


def test_approving_files_each_row_once_as_linked_labelled_running_issues(world: World) -> None:
    planned(world)
    gh = world.github
    assert execute_alone(world, approve_task()) == "filed 3"
    # Dependencies first: fix-add, three, then docs, which depends on fix-add.
    titles = {n: i["title"] for n, i in gh.issues.items() if n != 7}
    assert titles == {8: "add() subtracts", 9: "add() takes three numbers", 10: "Document add()"}
    docs = gh.issues[10]["body"]
    assert docs.startswith("Say in README.md what add() does.")
    assert "Files this issue is expected to change: `README.md`, `docs/usage.md`" in docs
    assert "Part of #7 (row `docs` of its plan)." in docs and "Depends on #8" in docs
    assert gh.sub_issues == {7: [8, 9, 10]}
    assert gh.blocked_by == {10: [8]}
    assert all(gh.labels[n] == ["agent"] for n in (8, 9, 10))
    for n in (8, 9, 10):
        record = world.store.get(f"issue-{p.REPO_ID}-{n}")
        assert record is not None and record.state is State.QUEUED and record.task.sender == "alice"
    reply = gh.comment_bodies(7)[-1]
    assert reply.startswith("✅ Filed #8 (`fix-add`), #9 (`three`), #10 (`docs`)")
    _cid, body = plan_comment(world)
    assert "| `fix-add` → #8 |" in body and "| [ ] | `docs` | #10 | — | queued | — |" in body
    # Again: nothing new.
    assert execute_alone(world, approve_task(comment_id=2)) == "filed 0"
    assert len(gh.issues) == 4
    assert gh.comment_bodies(7)[-1] == (
        "Every row of this plan is already filed; nothing new was filed."
    )


def test_an_edited_plan_is_checked_again_and_is_the_one_filed(world: World) -> None:
    cid, body = planned(world)
    gh = world.github
    edited = body.replace("title: add() takes three numbers", "title: add() takes 3 numbers")
    gh.comments[cid]["body"] = edited
    edit = Task(Kind.PLAN_EDIT, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice", sha="e1",
                comment_id=cid)  # fmt: skip
    assert world.run(edit).state is State.DONE
    _cid, now = plan_comment(world)
    assert "| `three` | add() takes 3 numbers |" in now
    assert execute_alone(world, approve_task()) == "filed 3"
    assert gh.issues[9]["title"] == "add() takes 3 numbers"
    # After filing, a row added to the YAML is filed alone on the next approval.
    extra = "  - key: extra\n    title: Add mul()\n    files: [mul.py]\n    size: S\n"
    yaml_text = extract_yaml(plan_comment(world)[1]) or ""
    gh.comments[cid]["body"] = plan_comment(world)[1].replace(yaml_text, yaml_text + "\n" + extra)
    assert execute_alone(world, approve_task(comment_id=3)) == "filed 1"
    assert gh.issues[11]["title"] == "Add mul()" and len(gh.issues) == 5


def test_an_edit_of_another_comment_costs_no_github_call(world: World) -> None:
    cid, _body = planned(world)
    before = len(world.github.requests())
    for other in (cid + 1, 0):  # another comment, or one on an epic with no plan
        edit = Task(Kind.PLAN_EDIT, p.INSTALLATION, p.REPO_ID, p.REPO, 7 if other else 8,
                    "alice", sha=f"e{other}", comment_id=other or cid)  # fmt: skip
        assert execute_alone(world, edit) == "not this epic's plan comment"
    assert world.github.requests()[before:] == []


def test_an_invalid_edit_is_shown_and_refused_at_approval(world: World) -> None:
    cid, body = planned(world)
    gh = world.github
    gh.comments[cid]["body"] = body.replace("size: M", "size: huge")
    edit = Task(Kind.PLAN_EDIT, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice", sha="e2",
                comment_id=cid)  # fmt: skip
    world.run(edit)
    _cid, now = plan_comment(world)
    assert "❌ **This plan is not valid**" in now and "size: huge" in (extract_yaml(now) or "")
    assert execute_alone(world, approve_task()) == "plan not valid"
    assert "row `three`: `size` must be S, M or L, got 'huge'" in gh.comment_bodies(7)[-1]
    assert len(gh.issues) == 1


def test_approval_without_write_access_is_answered_once_and_files_nothing(world: World) -> None:
    planned(world)
    gh = world.github
    assert execute_alone(world, approve_task(sender="mallory")).startswith("refused")
    assert execute_alone(world, approve_task(comment_id=2, sender="mallory")).startswith("refused")
    refusals = [b for b in gh.comment_bodies(7) if "only people with write access" in b]
    assert refusals == [
        "@mallory: only people with write access may approve a plan; nothing was filed."
    ]
    assert len(gh.issues) == 1


def test_approval_after_the_plan_comment_was_deleted_says_so(world: World) -> None:
    cid, _body = planned(world)
    del world.github.comments[cid]
    assert execute_alone(world, approve_task()) == "plan not valid"
    assert (
        "the plan comment was deleted; `/agent plan` makes a new one"
        in (world.github.comment_bodies(7)[-1])
    )
    assert len(world.github.issues) == 1


def test_approval_before_any_plan_says_how_to_get_one(world: World) -> None:
    assert execute_alone(world, approve_task()) == "no plan"
    assert world.github.comment_bodies(7) == [
        "There is no plan on this issue yet: `/agent plan` makes one."
    ]


def test_a_row_github_refuses_leaves_the_others_filed_and_says_why(world: World) -> None:
    planned(world)
    gh = world.github
    gh.failures[ISSUES] = [422]  # the first row filed: fix-add
    assert execute_alone(world, approve_task()) == "filed 2, 1 failed"
    assert sorted(i["title"] for n, i in gh.issues.items() if n != 7) == [
        "Document add()", "add() takes three numbers",
    ]  # fmt: skip
    reply = gh.comment_bodies(7)[-1]
    assert "❌ Row `fix-add` could not be filed:" in reply and "forced 422" in reply
    docs = next(i["body"] for i in gh.issues.values() if i["title"] == "Document add()")
    assert "dependency on `fix-add` is not recorded" in docs
    # Approving again files the row that failed, and only it.
    assert execute_alone(world, approve_task(comment_id=2)) == "filed 1"
    assert len(gh.issues) == 4 and gh.issues[10]["title"] == "add() subtracts"
    # The dependency it could not record before is recorded now.
    assert gh.blocked_by == {9: [10]}


def test_without_sub_issues_and_dependencies_a_task_list_stands_in(world: World) -> None:
    planned(world)
    gh = world.github
    gh.failures[f"POST /repos/{p.REPO}/issues/7/sub_issues"] = [404, 404, 404]
    gh.failures[f"POST /repos/{p.REPO}/issues/10/dependencies/blocked_by"] = [404]
    assert execute_alone(world, approve_task()) == "filed 3"
    assert gh.sub_issues == {} and gh.blocked_by == {}
    assert gh.issues[7]["body"].endswith("**Plan**\n\n- [ ] #8\n- [ ] #9\n- [ ] #10\n")
    assert "Depends on #8" in gh.issues[10]["body"]
    assert "no sub-issue or issue-dependency API" in gh.comment_bodies(7)[-1]
    assert "no sub-issue or issue-dependency API" in plan_comment(world)[1]


def test_the_plan_comment_follows_its_fleet_to_the_end(world: World) -> None:
    planned(world)
    execute_alone(world, approve_task())
    ctx = world.context()
    api = ctx.app.installation(p.INSTALLATION)
    follow(api, ctx, world.issue_task(8), 8, {"pull": 20, "state": "open", "changed": ["calc.py"]})
    body = plan_comment(world)[1]
    assert "| [ ] | `fix-add` | #8 | #20 | open | `calc.py`; as predicted |" in body
    follow(api, ctx, world.issue_task(8), 8, {"state": "merged"})
    follow(api, ctx, world.issue_task(9), 9, {"pull": 21, "state": "merged",
                                              "changed": ["calc.py"]})  # fmt: skip
    assert "Every row's pull request is merged" not in plan_comment(world)[1]
    follow(api, ctx, world.issue_task(10), 10, {"pull": 22, "state": "merged",
                                                "changed": ["README.md", "calc.py"]})  # fmt: skip
    body = plan_comment(world)[1]
    assert (
        "| [x] | `docs` | #10 | #22 | merged | `README.md`, `calc.py`; not predicted: `calc.py` |"
        in body
    )
    assert (
        "✅ Every row's pull request is merged. Predicted collisions that happened: 1 of 1; "
        "collisions nobody predicted: 2." in body  # docs with fix-add, and with three
    )
    # An issue of no plan changes no comment.
    edits = len(world.github.requests("PATCH"))
    follow(api, ctx, world.issue_task(7), 7, {"state": "merged"})
    assert len(world.github.requests("PATCH")) == edits


def test_rows_filed_but_never_started_are_started_by_the_next_approval(world: World) -> None:
    planned(world)
    gh = world.github
    # Labelling the second issue fails after the first was labelled and started: an outage.
    gh.failures[f"POST /repos/{p.REPO}/issues/9/labels"] = [502, 502, 502, 502]
    with pytest.raises(GitHubError):  # an outage: RQ runs the job again, later
        execute_alone(world, approve_task())
    assert len(gh.issues) == 4 and world.store.get(f"issue-{p.REPO_ID}-9") is None
    assert execute_alone(world, approve_task(comment_id=2)) == "filed 0"
    assert len(gh.issues) == 4
    for n in (8, 9, 10):
        record = world.store.get(f"issue-{p.REPO_ID}-{n}")
        assert record is not None and record.state is State.QUEUED
    assert gh.labels[9] == ["agent"]


def test_the_checklist_shows_rows_waiting_and_failing(world: World) -> None:
    planned(world)
    execute_alone(world, approve_task())
    world.use_agent("noop")  # changes nothing: the issue tasks fail
    world.work()
    body = plan_comment(world)[1]
    assert "| [ ] | `fix-add` | #8 | — | failed | — |" in body
    assert "| [ ] | `three` | #9 | — | failed | — |" in body
    assert "| [ ] | `docs` | #10 | — | waiting | — |" in body  # blocked by #8, still open
    # Tried again, it is running, then its pull request is open: the failure is forgotten.
    world.use_agent("fix")
    assert world.run(world.issue_task(8)).state is State.DONE
    assert (
        "| [ ] | `fix-add` | #8 | #11 | open | `calc.py`; as predicted |"
        in (plan_comment(world)[1])
    )
