"""Labelled issue → pull request, through a real RQ worker, git and agent processes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from app.tasks import State
from jobs.pipeline import permission_refused
from jobs.report import words as report
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import World, gone

BRANCH = "agent/issue-7-addition-subtracts"


def test_happy_path_opens_a_pull_request(world: World) -> None:
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    gh = world.github
    # The agent's change is on a new branch of origin, authored by the App's bot.
    assert set(fakes.branches(world.origin)) == {"main", BRANCH}
    assert fakes.show(world.origin, BRANCH, "calc.py") == "def add(a, b):\n    return a + b\n"
    author = fakes.sh_git("log", "-1", "--format=%an <%ae>", BRANCH, cwd=world.origin).strip()
    assert author == f"forgehand[bot] <{fakes.BOT_ID}+forgehand[bot]@users.noreply.github.com>"
    # Exactly the GitHub writes the contract asks for.
    assert gh.reactions == [(7, "eyes")]
    (pr,) = gh.pulls.values()
    assert (pr["head"], pr["base"], pr["title"], pr["draft"]) == (
        BRANCH, "main", "Addition subtracts", False,
    )  # fmt: skip
    assert pr["body"].startswith("Fixes #7\n")
    assert "Changed add() to return a + b." in pr["body"]
    assert '<!-- forgehand:task {"issue": 7, "kind": "issue", "task": "issue-' in pr["body"]
    assert gh.review_requests == {pr["number"]: ["alice"]}
    (status,) = gh.comment_bodies(7)
    assert f"✅ Opened #{pr['number']}." in status
    assert world.store.is_app_pull_request(p.REPO_ID, pr["number"])
    assert world.leftovers() == []
    assert gh.requests(pattern="unexpected") == []


def test_the_prompt_and_the_change_are_kept_for_the_task_page(world: World) -> None:
    task = world.issue_task()
    record = world.run(task)
    assert record.state is State.DONE, record.error
    assert "Addition subtracts" in world.store.prompt(task.id)
    diff = world.store.diff(task.id)
    assert "--- a/calc.py\n+++ b/calc.py" in diff
    assert "-    return a - b\n+    return a + b" in diff


def test_status_comment_is_one_comment_kept_up_to_date(world: World) -> None:
    world.run(world.issue_task())
    posts = world.github.requests("POST", r"/issues/7/comments$")
    edits = world.github.requests("PATCH", r"/issues/comments/\d+$")
    assert len(posts) == 1
    assert "⏳ Working on it" in posts[0].body["body"]
    assert len(edits) >= 1


def test_agent_without_changes_opens_no_pull_request(world: World) -> None:
    world.use_agent("noop")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert record.error == "The agent made no changes, so there is no pull request."
    assert world.github.pulls == {}
    (status,) = world.github.comment_bodies(7)
    assert "❌ The agent made no changes" in status
    assert "Nothing needed changing." in status  # the log excerpt
    assert set(fakes.branches(world.origin)) == {"main"}
    assert world.leftovers() == []


def test_an_agent_that_exits_0_after_an_error_fails_with_its_own_error_line(
    world: World,
) -> None:
    # As aider does when its model API refuses it: the error is printed, the exit status is 0.
    said = "litellm.APIConnectionError: OpenAIException - Connection refused"
    world.use_agent("noop", f"--say={said}")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert record.error == (
        "The agent changed nothing and reported an error, so there is no pull request: " + said
    )
    (status,) = world.github.comment_bodies(7)
    assert said in status


def test_agent_failure_is_reported_with_its_output(world: World) -> None:
    world.use_agent("fail")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert record.error == "The agent exited with status 3: error: the model is unavailable"
    (status,) = world.github.comment_bodies(7)
    assert "error: the model is unavailable" in status
    assert world.leftovers() == []


def test_silent_agent_is_killed_with_its_children(world: World) -> None:
    out = world.hanging_agent()
    world.setenv("AGENT_IDLE_TIMEOUT", "2")
    started = time.monotonic()
    record = world.run(world.issue_task())
    assert time.monotonic() - started < 20
    assert record.state is State.FAILED
    assert "printed nothing and changed nothing for 2s and was judged stuck" in record.error
    agent_pid, child_pid = map(int, Path(f"{out}.pids").read_text().split())
    assert gone(agent_pid) and gone(child_pid)
    assert world.leftovers() == []


def test_agent_running_too_long_is_killed_with_its_children(world: World) -> None:
    out = world.tmp / "agent.json"
    world.use_agent("forever", "--out", str(out))
    world.setenv("AGENT_TIMEOUT", "2")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "ran longer than" in record.error and "was stopped" in record.error
    agent_pid, child_pid = map(int, Path(f"{out}.pids").read_text().split())
    assert gone(agent_pid) and gone(child_pid)
    assert world.leftovers() == []


def test_commits_the_agent_made_are_kept(world: World) -> None:
    world.use_agent("commit")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    log = fakes.sh_git("log", "--format=%s", f"main..{BRANCH}", cwd=world.origin).split("\n")
    assert log[0] == "Fix add() (by the agent)"


def test_change_to_protected_path_is_refused(world: World) -> None:
    world.use_agent("protected")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "protected paths" in record.error and "`.github/workflows/ci.yml`" in record.error
    assert set(fakes.branches(world.origin)) == {"main"}
    assert world.github.pulls == {}


def test_protected_paths_can_be_lifted_by_the_repository(world: World) -> None:
    world.github.config_text = "protected_paths: []\n"
    world.use_agent("protected")
    assert world.run(world.issue_task()).state is State.DONE


def test_a_workflow_change_github_refuses_says_which_permission_to_grant(world: World) -> None:
    world.github.config_text = "protected_paths: []\n"  # the repository allows it ...
    world.github.guard_workflows()  # ... but the App has no `workflows` permission
    world.use_agent("protected")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert record.error.startswith(
        "GitHub refused the push: the change touches the workflow `.github/workflows/ci.yml`, "
        "and the App has no `workflows` permission"
    )
    assert '"Workflows: Read and write"' in record.error
    assert "rebase" not in [e["event"] for e in world.store.events(record.id)]  # no retry
    assert set(fakes.branches(world.origin)) == {"main"} and world.github.pulls == {}
    (status,) = world.github.comment_bodies(7)
    assert "`workflows` permission" in status


def test_github_s_own_words_for_a_missing_workflows_permission_are_recognised() -> None:
    said = (
        " ! [remote rejected] HEAD -> agent/issue-7-x (refusing to allow a GitHub App to "
        "create or update workflow `.github/workflows/dlc.yml` without `workflows` permission)"
    )
    assert "`.github/workflows/dlc.yml`" in permission_refused(said)
    assert permission_refused(" ! [rejected] HEAD -> agent/issue-7-x (fetch first)") == ""


def test_failing_tests_are_fed_back_once(world: World) -> None:
    world.github.config_text = (
        "test: python3 -B -c 'import calc; assert calc.add(2, 3) == 5, calc.add(2, 3)'\n"
    )
    world.use_agent("feedback")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    assert fakes.show(world.origin, BRANCH, "calc.py") == "def add(a, b):\n    return a + b\n"
    events = [e["event"] for e in world.store.events(record.id)]
    assert events.count("agent") == 2 and "test failed" in events


def test_tests_still_failing_after_feedback_fail_the_task(world: World) -> None:
    world.github.config_text = "test: python3 -B -c 'import calc; assert calc.add(2, 3) == 5'\n"
    world.use_agent("noop")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "still fails after the agent's fix" in record.error
    assert world.github.pulls == {}


def test_invalid_config_is_reported_and_defaults_used(world: World) -> None:
    world.github.config_text = "draft: maybe\nfrobnicate: 1\n"
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    (status,) = world.github.comment_bodies(7)
    assert "`draft`: must be true or false, got 'maybe'" in status
    assert "unknown setting `frobnicate`" in status
    assert next(iter(world.github.pulls.values()))["draft"] is False


def test_labeller_without_write_access_starts_nothing(world: World) -> None:
    world.github.permissions["mallory"] = "read"
    record = world.run(world.issue_task(sender="mallory"))
    assert record.state is State.FAILED
    assert record.error == f"mallory has no write access to {p.REPO}; nothing was done."
    assert world.github.reactions == [] and world.github.comments == {}


def test_relabel_while_pull_request_open_links_it(world: World) -> None:
    world.run(world.issue_task())
    again = world.run(world.issue_task())
    assert again.state is State.DONE
    assert len(world.github.pulls) == 1
    (status,) = world.github.comment_bodies(7)
    assert "already has an open pull request: #" in status


def test_relabel_after_pull_request_closed_uses_a_new_branch(world: World) -> None:
    world.run(world.issue_task())
    next(iter(world.github.pulls.values()))["state"] = "closed"
    again = world.run(world.issue_task())
    assert again.state is State.DONE, again.error
    assert set(fakes.branches(world.origin)) == {"main", BRANCH, f"{BRANCH}-2"}


def test_token_never_reaches_the_agent_the_disk_or_the_logs(world: World) -> None:
    out = world.tmp / "agent.json"
    world.use_agent("push", "--out", str(out))
    world.setenv("AGENT_ENV", "FORGEHAND_TEST_PASSTHROUGH")
    world.monkeypatch.setenv("FORGEHAND_TEST_PASSTHROUGH", "model-key")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    seen = json.loads(out.read_text())
    tokens = world.github.tokens
    assert tokens
    private, _ = fakes.app_key()
    env_text = json.dumps(seen["env"])
    for secret in (*tokens, private.splitlines()[1]):
        assert secret not in env_text
    assert seen["env"]["FORGEHAND_TEST_PASSTHROUGH"] == "model-key"
    assert "APP_ID" not in seen["env"] and "PRIVATE_KEY" not in seen["env"]
    assert "GITHUB_API_URL" not in seen["env"] and "REDIS_URL" not in seen["env"]
    # The agent's own push went nowhere.
    assert "sneaky" not in fakes.branches(world.origin)
    assert "push exit 0" not in " ".join(world.store.log_tail(record.id))
    # Nothing on disk or in Redis holds a token.
    for path in world.workspaces.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(t.encode() in data for t in tokens), path
    task_keys = [k for k in world.redis.keys("fh:task:*")]
    for key in task_keys:
        kind = world.redis.type(key)
        values = (
            world.redis.lrange(key, 0, -1)
            if kind == b"list"
            else list(world.redis.hgetall(key).values())
            if kind == b"hash"
            else [world.redis.get(key) or b""]
        )
        for value in values:
            assert not any(t.encode() in value for t in tokens)
    # Nor does any dashboard page.
    from app.dashboard.routes import index_view, task_view
    from app.dashboard.task_rows import Filters
    from app.settings import parse

    settings = parse({})
    pages = [index_view(world.store, settings, Filters(), 1),
             task_view(world.store, settings, record.id)]  # fmt: skip
    for page in pages:
        assert page is not None
        assert not any(t in page for t in tokens)
        assert private.splitlines()[1] not in page


def test_two_issues_of_one_repo_run_at_once_in_separate_worktrees(world: World) -> None:
    world.github.add_issue(8, "Subtraction adds")
    world.use_agent("barrier", "--mark", str(world.tmp / "meeting"))
    tasks = [world.issue_task(7), world.issue_task(8)]
    results = world.execute_together(tasks)
    assert sorted(results.values()) == ["opened #10", "opened #9"], results
    refs = fakes.branches(world.origin)
    assert {"agent/issue-7-addition-subtracts", "agent/issue-8-subtraction-adds"} <= set(refs)
    cwd7 = fakes.show(world.origin, "agent/issue-7-addition-subtracts", "cwd.txt")
    cwd8 = fakes.show(world.origin, "agent/issue-8-subtraction-adds", "cwd.txt")
    assert cwd7 != cwd8 and tasks[0].id in cwd7 and tasks[1].id in cwd8
    assert world.leftovers() == []


def test_missing_issue_fails_with_github_s_answer(world: World) -> None:
    record = world.run(world.issue_task(number=99))
    assert record.state is State.FAILED
    assert record.error == (
        f"GitHub answered 404 to GET /api/v3/repos/{p.REPO}/issues/99: Not Found"
    )
    (status,) = world.github.comment_bodies(99)
    assert "❌ GitHub answered 404" in status


def test_deleted_status_comment_is_posted_again(world: World) -> None:
    world.run(world.issue_task())
    world.github.comments.clear()
    next(iter(world.github.pulls.values()))["state"] = "closed"
    assert world.run(world.issue_task()).state is State.DONE
    (status,) = world.github.comment_bodies(7)
    assert "✅ Opened #" in status


HOOK_SECRET = "webhook-secret-of-the-app"


def leak(world: World) -> tuple[str, list[str]]:
    """What a hostile agent prints of the worker's secrets, and the secrets themselves."""
    world.setenv("WEBHOOK_SECRET", HOOK_SECRET)
    token = world.context().app.token(p.INSTALLATION)  # the one the task will use
    key = fakes.app_key()[0]
    said = f"token {token}\nhook {HOOK_SECRET}\n{key}"
    return said, [token, HOOK_SECRET, *key.strip().splitlines()[1:-1]]


def test_secrets_the_agent_prints_reach_neither_the_pull_request_nor_the_dashboard(
    world: World,
) -> None:
    said, secrets = leak(world)
    world.use_agent("fix", f"--say={said}")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    (pr,) = world.github.pulls.values()
    logged = "\n".join(world.store.log_tail(record.id))
    for text in (pr["body"], logged):
        assert "[redacted]" in text and "Changed add() to return a + b." in text
        assert [s for s in secrets if s in text] == []


def test_a_failed_agent_s_log_is_redacted_and_fenced_in_the_status_comment(world: World) -> None:
    said, secrets = leak(world)
    forged = f"```\n{report.RESET_MARKER}\n✅ Opened #99."
    world.use_agent("fail", f"--say={said}\n{forged}")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    (status,) = world.github.comment_bodies(7)
    assert "[redacted]" in status and "error: the model is unavailable" in status
    assert [s for s in secrets if s in status] == []
    fence = max(re.findall(r"^`{3,}$", status, re.MULTILINE), key=len)
    excerpt = status.split(fence)[1]
    assert "✅ Opened #99." in excerpt and len(fence) > 3
    assert report.markers(status) == []


def test_a_preset_without_its_api_key_fails_at_once_saying_which(world: World) -> None:
    world.setenv("AGENT", "claude")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "AGENT_ENV lacks ANTHROPIC_API_KEY" in record.error
    assert world.github.pulls == {}
