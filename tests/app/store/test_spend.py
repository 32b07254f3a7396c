"""Spend as Redis keeps it (app/store/spend.py) and as the dashboard shows it: a task's page, the
spend page by repository and day, and the pure pieces (labels, budgets)."""

from __future__ import annotations

import pytest
from redis import Redis

from app import budget
from app.dispatch import Dispatcher
from app.repo_config import parse as parse_config
from app.settings import SettingsError, parse
from app.store import spend
from app.store.store import Store
from tests import payloads as p
from tests.app.dashboard.test_routes import TASK, client

DAY = 1_765_000_000.0  # 2025-12-06 UTC


def call(cost: float | None, repo: str = p.REPO, attempt: int = 0, run: int = 1) -> spend.Call:
    where = spend.Where(TASK.id, run, attempt, p.INSTALLATION, repo, "claude")
    return spend.Call(where,
                      (1_000_000, 200_000, 50_000, 0), cost)  # fmt: skip


def test_calls_add_up_per_run_attempt_day_repository_and_installation(redis: Redis) -> None:
    spend.record(redis, call(0.40), DAY)
    spend.record(redis, call(0.02, attempt=1), DAY)
    spend.record(redis, call(None, repo="octo/other"), DAY)
    run = spend.task_spend(redis, TASK.id, 1)
    assert (run.calls, run.unknown, run.input, run.cost) == (3, 1, 3_000_000, 0.42)
    assert spend.task_spend(redis, TASK.id, 1, attempt=1).cost == 0.02
    assert spend.task_spend(redis, TASK.id, 2).calls == 0  # another run starts from nothing
    today = spend.spent(redis, p.INSTALLATION, p.REPO, (TASK.id, 1), DAY)
    assert today == spend.Spent(task=0.42, installation_day=0.42, repo_day=0.42)
    assert spend.spent(redis, p.INSTALLATION, "octo/other", None, DAY).repo_day == 0
    rows = spend.by_day(redis, 1, DAY)
    assert [(r.repo, r.spend.calls) for r in rows] == [(p.REPO, 2), ("octo/other", 1)]
    assert spend.by_day(redis, 1, DAY + 86400) == []  # the next day has none
    assert {(r.repo, r.spend.calls) for r in spend.totals(redis)} == {
        ("octo/other", 1), (p.REPO, 2)}  # fmt: skip


def test_a_tasks_work_spend_adds_up_all_its_runs(redis: Redis) -> None:
    Dispatcher(Store(redis), 60).enqueue(TASK, "test")
    Store(redis).redis.hset(f"fh:task:{TASK.id}", "run", "2")
    spend.record(redis, call(0.40), DAY)
    spend.record(redis, call(0.02, run=2), DAY)
    spend.record(redis, call(1.00, run=3), DAY)  # no such run yet: not counted
    found = spend.work_spend(redis, [TASK.id, "issue-1-404"])
    assert (round(found[TASK.id].cost, 6), found[TASK.id].calls) == (0.42, 2)
    assert found["issue-1-404"].calls == 0


def test_labels_say_cost_tokens_and_what_is_unknown() -> None:
    assert spend.Spend(input=1_000_000, output=200_000, cost=0.42, calls=3).label() == (
        "$0.42 · 1.2M tokens")  # fmt: skip
    unknown = spend.Spend(input=900, cost=0.0, calls=2, unknown=1)
    assert unknown.label() == "$0.00 + unknown (1 call of an unpriced model) · 900 tokens"
    assert spend.cost_cell(unknown) == "$0.00+?" and spend.cost_cell(spend.Spend()) == "-"


def test_the_caps_a_repository_and_a_raise_may_set() -> None:
    assert budget.task_cap(5.0, 2.0, None) == 2.0  # a repository lowers
    assert budget.task_cap(5.0, 9.0, None) == 5.0  # never raises
    assert budget.task_cap(5.0, 2.0, 4.0) == 4.0  # /agent budget replaces the repository's
    assert budget.task_cap(5.0, 2.0, 50.0) == 5.0  # up to the operator's
    assert budget.task_cap(None, None, None) is None
    assert budget.next_day(DAY) == 1_765_065_600.0  # 2025-12-07 00:00 UTC


def test_the_dashboard_shows_a_tasks_spend_and_the_totals_by_repository_and_day(
    redis: Redis,
) -> None:
    Dispatcher(Store(redis), 60).enqueue(TASK, "test")
    spend.record(redis, call(0.42))
    with client(redis) as c:
        index = c.get("/").text
        task = c.get(f"/tasks/{TASK.id}").text
        data = c.get(f"/tasks/{TASK.id}.json").json()
        page = c.get("/usage").text
    assert "href='/usage'" in index
    assert "<td>$0.42</td>" in index  # the work view: the spend
    assert "Model use: $0.42 · 1.2M tokens" in task
    assert data["usage"]["cost_usd"] == 0.42 and data["usage"]["input_tokens"] == 1_000_000
    assert "<h2>By repository</h2>" in page and "<h2>By day (UTC)</h2>" in page
    assert f"<td>{p.REPO}</td><td>1</td><td>1.0M tokens</td>" in page and "$0.42" in page


def test_the_operators_caps_and_prices_are_read_and_bad_ones_refused() -> None:
    settings = parse({"MAX_COST_PER_TASK": "$2.50", "MAX_COST_PER_DAY": "40",
                      "AGENT_PRICES": "local-model=0/0, gpt-4o=2.5/10"})  # fmt: skip
    assert (settings.max_cost_per_task, settings.max_cost_per_day) == (2.5, 40.0)
    assert settings.prices == {"local-model": (0.0, 0.0), "gpt-4o": (2.5, 10.0)}
    assert parse({}).max_cost_per_task is None and parse({}).prices == {}
    for name, bad in (("MAX_COST_PER_TASK", "-1"), ("MAX_COST_PER_DAY", "lots"),
                      ("MAX_COST_PER_TASK", "nan"), ("AGENT_PRICES", "gpt-4o=2.5")):  # fmt: skip
        with pytest.raises(SettingsError, match=name):
            parse({name: bad})


def test_a_repository_sets_its_caps_in_usd_and_a_bad_one_is_reported() -> None:
    config, problems = parse_config("max_cost_per_task: 2\nmax_cost_per_day: 0.5\n")
    assert (config.max_cost_per_task, config.max_cost_per_day, problems) == (2.0, 0.5, [])
    config, problems = parse_config("max_cost_per_task: lots\n")
    assert config.max_cost_per_task is None
    assert problems and "max_cost_per_task" in problems[0] and "USD" in problems[0]
