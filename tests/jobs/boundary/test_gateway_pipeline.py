"""The gateway in the real pipeline: a sandboxed command agent calls its model as a CLI would
(tests/agents/scripted.py `model`), and what it used is metered, priced and capped; a hostile
agent (tests/agents/attack.py `model-key`) gets nothing of the real key."""

from __future__ import annotations

import base64
import json
import shlex
import sys
import time
from collections.abc import Iterator

import pytest

from app import budget
from app.__main__ import main
from app.dispatch import Dispatcher
from app.store import spend
from app.tasks import Kind, State, Task
from app.web.metrics import render
from jobs import day_budget
from tests import fakes
from tests import payloads as p
from tests.agents.models.openai_chat import OpenAIChat
from tests.agents.models.server import FakeServer, Handler
from tests.jobs.boundary.test_sandbox import ATTACK, everything_public
from tests.jobs.conftest import AGENT, BRANCH, World

REAL = "sk-proj-real-key-7d1c9e0b55aa43f2"
# The scripted Chat Completions server's usage of every answer.
PER_CALL = (100, 20)


@pytest.fixture
def model(world: World) -> Iterator[OpenAIChat]:
    with OpenAIChat() as api:
        world.setenv("OPENAI_API_KEY", REAL)
        world.setenv("OPENAI_BASE_URL", api.base_url)
        world.setenv("AGENT_ENV", "OPENAI_API_KEY,OPENAI_BASE_URL,MODEL")
        world.setenv("AGENT_SANDBOX", "bwrap")
        yield api


def use_model_agent(world: World, calls: int, model_name: str = "gpt-4o") -> None:
    world.setenv("MODEL", model_name)
    argv = [sys.executable, str(AGENT), "model", "--calls", str(calls)]
    world.setenv("AGENT_COMMAND", shlex.join(argv))


def test_a_command_agents_calls_are_metered_as_the_api_reported_them(
    world: World, model: OpenAIChat, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    world.setenv("AGENT_PRICES", "gpt-4o=1000/2000")
    use_model_agent(world, calls=2)
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    assert "return a + b" in fakes.show(world.origin, BRANCH, "calc.py")
    used = spend.task_spend(world.redis, record.id, record.run)
    assert (used.calls, used.input, used.output) == (2, 2 * PER_CALL[0], 2 * PER_CALL[1])
    assert used.cost == pytest.approx((200 * 1000 + 40 * 2000) / 1e6)
    assert used.unknown == 0 and used.label() == "$0.28 · 240 tokens"
    # Every call reached the model with the real key, asked for its streamed usage.
    assert all(r.headers.get("authorization") == f"Bearer {REAL}" for r in model.completions)
    (row,) = spend.by_day(world.redis, 1)
    assert (row.repo, row.agent, row.spend.calls) == (record.task.repo, "command", 2)
    today = spend.spent(world.redis, record.task.installation_id, record.task.repo)
    assert today.installation_day == today.repo_day == used.cost
    # Where people see it: the status comment, /metrics, `forgehand tasks` and `usage`.
    assert any("Model use: $0.28 · 240 tokens" in b for b in world.github.comment_bodies(7))
    text = render(world.redis).decode()
    labels = f'agent="command",kind="input",repo="{record.task.repo}"'
    assert f"forgehand_model_tokens_total{{{labels}}} 200.0" in text
    assert (
        f'forgehand_model_cost_usd_total{{agent="command",repo="{record.task.repo}"}} 0.28' in text
    )
    world.setenv("REDIS_URL", redis_url)
    assert main(["tasks", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["usage"]["input_tokens"] == 200 and row["usage"]["cost_usd"] == 0.28
    assert main(["usage", "--since", "7d"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[1:] == [record.task.repo, "command", "2", "200", "40", "0", "$0.28"]
    assert main(["usage", "--json"]) == 0
    (day,) = json.loads(capsys.readouterr().out)
    assert (day["repo"], day["calls"], day["output_tokens"]) == (record.task.repo, 2, 40)


def test_an_unknown_model_is_metered_by_tokens_and_says_its_cost_is_unknown(
    world: World, model: OpenAIChat
) -> None:
    use_model_agent(world, calls=1, model_name="forgehand-fake-model")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    used = spend.task_spend(world.redis, record.id, record.run)
    assert (used.calls, used.unknown, used.cost, used.tokens) == (1, 1, 0.0, sum(PER_CALL))
    assert "unknown" in used.label()
    log = "\n".join(world.store.log_tail(record.id))
    assert "no price is known for the model 'forgehand-fake-model'" in log


def test_a_task_past_its_budget_is_stopped_and_says_so(world: World, model: OpenAIChat) -> None:
    # $0.12 a call; the cap is passed by the first, so the second is refused.
    world.setenv("AGENT_PRICES", "gpt-4o=1000/1000")
    world.setenv("MAX_COST_PER_TASK", "0.10")
    use_model_agent(world, calls=3)
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "stopped at $0.12 of the $0.10 budget" in record.error
    assert len(model.completions) == 1
    log = "\n".join(world.store.log_tail(record.id))
    assert "402" in log and "forgehand: stopped at $0.12 of the $0.10 budget" in log
    # What it had changed is kept in the log.
    assert "forgehand: the agent had changed 1 paths when it was stopped:" in log
    assert " M calc.py" in log
    assert world.github.pulls == {}


def test_a_repository_may_lower_the_budget_but_never_raise_it(
    world: World, model: OpenAIChat
) -> None:
    world.setenv("AGENT_PRICES", "gpt-4o=1000/1000")
    world.setenv("MAX_COST_PER_TASK", "0.10")
    world.github.config_text = "max_cost_per_task: 1000\n"
    use_model_agent(world, calls=2)
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "of the $0.10 budget" in record.error


class Echo(Handler):
    def do_POST(self) -> None:
        self.recorded()
        headers = dict(self.headers.items())
        self.send_json(200, {"echo": headers}, headers={"X-Echo": json.dumps(headers)})


class EchoingModel(FakeServer):
    """A model API that answers every request with the request's own headers."""

    def __init__(self) -> None:
        super().__init__(Echo)


def test_a_hostile_agent_gets_nothing_of_the_real_key(world: World) -> None:
    with EchoingModel() as upstream:
        world.setenv("OPENAI_API_KEY", REAL)
        world.setenv("OPENAI_BASE_URL", upstream.base_url)
        world.setenv("AGENT_ENV", "OPENAI_API_KEY,OPENAI_BASE_URL")
        world.setenv("AGENT_SANDBOX", "bwrap")
        targets = json.dumps([f"127.0.0.1:{upstream.port}"])
        world.github.add_issue(7, "Addition subtracts", f"Tidy up.\ntargets: {targets}\n")
        world.setenv("AGENT_COMMAND", shlex.join([sys.executable, str(ATTACK), "model-key"]))
        record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    found = fakes.show(world.origin, BRANCH, "findings.txt")
    # It did reach the model through the gateway (the upstream saw the real key) and tried
    # everything; the echo came back redacted, forged keys and other paths were refused, the
    # model host itself was out of reach.
    assert any(r.headers.get("authorization") == f"Bearer {REAL}" for r in upstream.requests)
    assert "proxied /chat/completions 200" in found and "straight /chat/completions 200" in found
    assert "[redacted]" in found
    assert "proxied /chat/completions 401" in found and "straight /files 403" in found
    assert f"direct 127.0.0.1:{upstream.port}: connected" not in found
    public = everything_public(world, record)
    for form in (REAL, base64.b64encode(REAL.encode()).decode()[:24], REAL.encode().hex()):
        assert form not in public


def test_when_the_day_budget_is_reached_new_tasks_wait_for_the_next_utc_day(
    world: World, model: OpenAIChat
) -> None:
    world.setenv("AGENT_PRICES", "gpt-4o=1000/1000")
    world.setenv("MAX_COST_PER_DAY", "0.10")
    use_model_agent(world, calls=1)
    first = world.run(world.issue_task())
    assert first.state is State.DONE, first.error  # it started under the cap; $0.12 now
    world.github.add_issue(8, "Subtraction adds", "`sub(3, 2)` returns 5.")
    second = world.run(world.issue_task(8))
    assert second.state is State.WAITING
    assert second.error == "daily budget reached ($0.12 of $0.10 today), resumes at 00:00 UTC"
    assert len(model.completions) == 1  # its agent never ran
    said = world.github.comment_bodies(8)[-1]
    assert "Waiting: daily budget reached ($0.12 of $0.10 today), resumes at 00:00 UTC" in said
    dispatcher = Dispatcher(world.store, 600)
    assert day_budget.wake_due(world.store, dispatcher) == []  # not before midnight
    tomorrow = budget.next_day(time.time()) + 1
    assert day_budget.wake_due(world.store, dispatcher, tomorrow) == [second.id]
    record = world.store.get(second.id)
    assert record is not None and record.state is State.QUEUED


def test_agent_budget_raises_one_issues_cap_but_never_past_the_operators(
    world: World, model: OpenAIChat
) -> None:
    world.setenv("AGENT_PRICES", "gpt-4o=1000/1000")  # $0.12 a call
    world.setenv("MAX_COST_PER_TASK", "1")
    world.github.config_text = "max_cost_per_task: 0.10\n"
    use_model_agent(world, calls=3)
    first = world.run(world.issue_task())
    assert "of the $0.10 budget" in first.error  # the repository's lower cap
    world.github.issue_comments[9300] = {"id": 9300, "body": "/agent budget 50",
                                         "user": {"login": "alice"}}  # fmt: skip
    asked = Task(Kind.COMMAND, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice", comment_id=9300)
    world.run(asked)
    reply = world.github.comment_bodies(7)[-1]
    assert "may now spend $1.00" in reply and "the operator's cap is the most" in reply
    again = world.run(world.issue_task())
    assert again.state is State.DONE, again.error  # three calls, $0.36, under $1


def test_a_ci_fix_past_its_budget_escalates_at_once(world: World, model: OpenAIChat) -> None:
    use_model_agent(world, calls=1)
    number = world.open_pull_request()
    world.setenv("MAX_COST_PER_TASK", "0")
    head = world.github.head_sha(BRANCH)
    world.github.add_check_run(head, "tests")
    record = world.run(world.ci_task(number, head))
    assert record.state is State.ESCALATED
    assert "stopped at $0.00 of the $0.00 budget" in record.error
    # One attempt, not all three: trying again could not have helped.
    assert len(world.store.attempts(p.REPO_ID, number)) == 1
    assert world.store.escalated(p.REPO_ID, number)


def test_a_model_of_unknown_price_is_refused_under_a_cost_cap_until_agent_prices_gives_one(
    world: World, model: OpenAIChat
) -> None:
    # Metered as free, its calls would never reach the cap: they are refused (fail closed).
    world.setenv("MAX_COST_PER_TASK", "5")
    use_model_agent(world, calls=1, model_name="forgehand-fake-model")
    record = world.run(world.issue_task())
    assert record.state is State.FAILED
    assert "no price is known for the model 'forgehand-fake-model'" in record.error
    assert model.completions == []
    # The CLI showed the gateway's error, which says what to set.
    log = "\n".join(world.store.log_tail(record.id))
    assert "402" in log and "AGENT_PRICES=forgehand-fake-model=3/15" in log
    world.setenv("AGENT_PRICES", "forgehand-fake-model=1/1")
    again = world.run(world.issue_task())
    assert again.state is State.DONE, again.error
    assert spend.task_spend(world.redis, again.id, again.run).unknown == 0


def test_a_repositorys_own_day_budget_makes_new_tasks_wait_for_the_next_utc_day(
    world: World, model: OpenAIChat
) -> None:
    world.setenv("AGENT_PRICES", "gpt-4o=1000/1000")
    world.github.config_text = "max_cost_per_day: 0.10\n"
    use_model_agent(world, calls=1)
    first = world.run(world.issue_task())
    assert first.state is State.DONE, first.error  # it started under the cap; $0.12 now
    world.github.add_issue(8, "Subtraction adds", "`sub(3, 2)` returns 5.")
    second = world.run(world.issue_task(8))
    assert second.state is State.WAITING, second.error
    assert second.error == "daily budget reached ($0.12 of $0.10 today), resumes at 00:00 UTC"
    assert len(model.completions) == 1  # its agent never ran
    said = world.github.comment_bodies(8)[-1]
    assert "Waiting: daily budget reached ($0.12 of $0.10 today), resumes at 00:00 UTC" in said
    tomorrow = budget.next_day(time.time()) + 1
    assert day_budget.wake_due(world.store, Dispatcher(world.store, 600), tomorrow) == [second.id]
