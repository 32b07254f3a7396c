"""What the agents' model calls used, kept in Redis: per call added to its task's run (and
attempt), its repository's and agent's day, its installation's day, and the all-time totals
that /metrics serves. The gateway (jobs/boundary/gateway.py) reads each call's usage; this
adds it up."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis

from app.budget import dollars
from app.store.keys import task_key, text

KINDS = ("input", "output", "cached", "cache_write")
# Day totals are kept this long; `forgehand usage --since` looks back at most this far.
DAYS_KEPT = 400
TOTALS = "fh:metrics:model"


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _key(kind: str, *parts: object) -> str:
    """A spend total's key: `task` (id, run), `day`, `installation` (id, day), `repo` (day)."""
    return ":".join(["fh:spend", kind, *map(str, parts)])


@dataclass(frozen=True)
class Spend:
    input: int = 0
    output: int = 0
    cached: int = 0
    cache_write: int = 0
    cost: float = 0.0  # USD, of the calls whose cost is known
    calls: int = 0
    unknown: int = 0  # calls whose cost is unknown (a model no price table knows)

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cached + self.cache_write

    def label(self) -> str:
        """`$0.42 · 1.2M tokens`, saying so when some calls' cost is unknown."""
        cost = dollars(self.cost)
        if self.unknown:
            calls = f"{self.unknown} call" + ("s" if self.unknown != 1 else "")
            cost += f" + unknown ({calls} of an unpriced model)"
        return f"{cost} · {tokens_label(self.tokens)}"

    def as_json(self) -> dict[str, float | int]:
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cached_tokens": self.cached,
            "cache_write_tokens": self.cache_write,
            "cost_usd": round(self.cost, 6),
            "calls": self.calls,
            "calls_cost_unknown": self.unknown,
        }

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.input + other.input, self.output + other.output, self.cached + other.cached,
            self.cache_write + other.cache_write, self.cost + other.cost,
            self.calls + other.calls, self.unknown + other.unknown,
        )  # fmt: skip


def tokens_label(tokens: int) -> str:
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if tokens >= size:
            return f"{tokens / size:.1f}{unit} tokens"
    return f"{tokens} tokens"


def _spend(fields: dict[str, str], prefix: str = "") -> Spend:
    def num(name: str) -> float:
        try:
            return float(fields.get(prefix + name, 0))
        except ValueError:
            return 0.0

    return Spend(
        int(num("input")), int(num("output")), int(num("cached")), int(num("cache_write")),
        num("cost"), int(num("calls")), int(num("unknown")),
    )  # fmt: skip


@dataclass(frozen=True)
class Where:
    """Where a task run's model calls are counted."""

    task_id: str
    run: int
    attempt: int
    installation: int
    repo: str
    agent: str


@dataclass(frozen=True)
class Call:
    """One metered model call."""

    where: Where
    tokens: tuple[int, int, int, int]  # input, output, cached, cache_write
    cost: float | None  # None: unknown


def record(redis: Redis, call: Call, at: float | None = None) -> None:
    day = day_of(time.time() if at is None else at)
    where = call.where
    task = _key("task", where.task_id, where.run)
    group = f"{where.repo}\t{where.agent}"
    with redis.pipeline(transaction=True) as pipe:
        for prefix, key in (
            ("", task), (f"attempt:{where.attempt}:", task), (f"{group}\t", _key("day", day)),
            (f"{group}\t", TOTALS),
        ):  # fmt: skip
            for kind, amount in zip(KINDS, call.tokens, strict=True):
                if amount:
                    pipe.hincrby(key, prefix + kind, amount)
            pipe.hincrby(key, prefix + "calls", 1)
            if call.cost is None:
                pipe.hincrby(key, prefix + "unknown", 1)
            else:
                pipe.hincrbyfloat(key, prefix + "cost", call.cost)
        # The day's totals a budget is checked against, as counters: admitting a call reads
        # them, never the day's whole table.
        for key in (_key("installation", where.installation, day), _key("repo", where.repo, day)):
            if call.cost is not None:
                pipe.incrbyfloat(key, call.cost)
            pipe.expire(key, 3 * 86400)
        pipe.expire(task, DAYS_KEPT * 86400)
        pipe.expire(_key("day", day), DAYS_KEPT * 86400)
        pipe.execute()


def _fields(redis: Redis, key: str) -> dict[str, str]:
    return {text(k): text(v) for k, v in redis.hgetall(key).items()}


def task_spend(redis: Redis, task_id: str, run: int, attempt: int | None = None) -> Spend:
    """A task's run's spend, or one attempt's of it."""
    prefix = "" if attempt is None else f"attempt:{attempt}:"
    return _spend(_fields(redis, _key("task", task_id, run)), prefix)


def tasks_spend(redis: Redis, runs: Iterable[tuple[str, int]]) -> list[Spend]:
    """Several tasks' runs' spend in one round trip."""
    with redis.pipeline(transaction=False) as pipe:
        for task_id, run in runs:
            pipe.hgetall(_key("task", task_id, run))
        raw = pipe.execute()
    return [_spend({text(k): text(v) for k, v in r.items()}) for r in raw]


def work_spend(redis: Redis, task_ids: Iterable[str]) -> dict[str, Spend]:
    """Each task's spend over all its runs, in two round trips."""
    ids = list(task_ids)
    with redis.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hget(task_key(task_id), "run")
        runs = [int(r or 0) for r in pipe.execute()]
    pairs = zip(ids, runs, strict=True)
    every = [(task_id, n) for task_id, run in pairs for n in range(1, run + 1)]
    found: dict[str, Spend] = dict.fromkeys(ids, Spend())
    for (task_id, _run), used in zip(every, tasks_spend(redis, every), strict=True):
        found[task_id] = found[task_id] + used
    return found


@dataclass(frozen=True)
class Spent:
    """What the calls of known cost came to so far: a task's run, and today its
    installation's and its repository's."""

    task: float
    installation_day: float
    repo_day: float


def spent(
    redis: Redis, installation: int, repo: str, run: tuple[str, int] | None = None,
    at: float | None = None,
) -> Spent:  # fmt: skip
    """What a budget is checked against, in one round trip (`run`: a task's run, else 0)."""
    day = day_of(time.time() if at is None else at)
    with redis.pipeline(transaction=False) as pipe:
        pipe.get(_key("installation", installation, day))
        pipe.get(_key("repo", repo, day))
        if run is not None:
            pipe.hget(_key("task", *run), "cost")
        found = pipe.execute()
    costs = [float(text(v)) if v is not None else 0.0 for v in found]
    return Spent(costs[2] if run is not None else 0.0, costs[0], costs[1])


def raise_cap(redis: Redis, repo_id: int, number: int, amount: float) -> None:
    """`/agent budget <USD>`: the cap of the issue's or pull request's tasks from now on."""
    redis.set(f"fh:budget:{repo_id}:{number}", str(amount), ex=DAYS_KEPT * 86400)


def raised_cap(redis: Redis, repo_id: int, number: int) -> float | None:
    value = redis.get(f"fh:budget:{repo_id}:{number}")
    return float(text(value)) if value is not None else None


@dataclass(frozen=True)
class Row:
    day: str
    repo: str
    agent: str
    spend: Spend


def by_day(redis: Redis, days: int, now: float | None = None) -> list[Row]:
    """Each day's spend by repository and agent, the last `days` days (today included)."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    wanted = [(today - timedelta(days=n)).isoformat() for n in range(min(days, DAYS_KEPT))]
    with redis.pipeline(transaction=False) as pipe:
        for day in wanted:
            pipe.hgetall(_key("day", day))
        raw = pipe.execute()
    rows: list[Row] = []
    for day, fields in zip(wanted, raw, strict=True):
        rows += _rows(day, {text(k): text(v) for k, v in fields.items()})
    return sorted(rows, key=lambda r: (r.day, r.repo, r.agent))


def totals(redis: Redis) -> list[Row]:
    """All-time spend by repository and agent (the /metrics counters)."""
    return _rows("", _fields(redis, TOTALS))


def _rows(day: str, fields: dict[str, str]) -> list[Row]:
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for name, value in fields.items():
        repo, _, rest = name.partition("\t")
        agent, _, kind = rest.partition("\t")
        groups.setdefault((repo, agent), {})[kind] = value
    return [Row(day, repo, agent, _spend(f)) for (repo, agent), f in groups.items()]


def cost_cell(used: Spend) -> str:
    """A task's cost in a table: `$0.42`, `-` before any call, `$0.42+?` with unknown ones."""
    if not used.calls:
        return "-"
    return dollars(used.cost) + ("+?" if used.unknown else "")


def usage_table(rows: list[Row]) -> list[str]:
    """`forgehand usage` as text: a line per day, repository and agent, and the total."""
    if not rows:
        return ["(no model calls metered in that time)"]
    table: list[tuple[str, ...]] = [
        ("DAY", "REPO", "AGENT", "CALLS", "INPUT", "OUTPUT", "CACHED", "COST")
    ]

    def cells(used: Spend) -> tuple[str, ...]:
        cached = used.cached + used.cache_write
        counts = (used.calls, used.input, used.output, cached)
        return (*(f"{n:,}" for n in counts), cost_cell(used))

    total = Spend()
    for row in rows:
        total += row.spend
        table.append((row.day, row.repo, row.agent, *cells(row.spend)))
    table.append(("total", "", "", *cells(total)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if total.unknown:
        calls = f"{total.unknown} call" + ("s" if total.unknown != 1 else "")
        lines.append(f"+?: and {calls} of models without a known price (AGENT_PRICES)")
    return lines
