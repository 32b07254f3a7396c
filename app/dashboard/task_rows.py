"""What the dashboard reads of tasks: one page of rows under filters, and totals per state.

A row keeps its state as the string Redis holds, so that a state this web process does not
know yet (a newer worker wrote it) is still shown rather than breaking the page.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from redis import Redis

from app.store import TASKS_INDEX, task_key, text
from app.tasks import Task

PAGE_SIZE = 200
BATCH = 1000
# Waiting for something outside (a human, CI) counts as live: the clock keeps running.
ACTIVE_STATES = frozenset({"queued", "running", "waiting"})


@dataclass(frozen=True)
class Row:
    task: Task
    state: str
    attempt: int
    created: float
    updated: float
    error: str
    result: str = ""  # what a finished task did ("pushed abc1234", "no change")

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class Filters:
    state: str = ""
    repo: str = ""
    kind: str = ""

    def matches(self, state: str, repo: str, kind: str) -> bool:
        return self.state in ("", state) and self.repo in ("", repo) and self.kind in ("", kind)


@dataclass(frozen=True)
class Summary:
    """The three fields a task is filtered and counted by."""

    id: str
    state: str
    repo: str
    kind: str


@dataclass(frozen=True)
class Selection:
    ids: list[str]  # this page's, newest first
    totals: dict[str, int]  # every task, per state, whatever the filters
    repos: list[str]
    matching: int
    page: int  # 1-based, clamped to the pages there are
    pages: int


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    selection: Selection


def select(summaries: list[Summary], filters: Filters, page: int, size: int) -> Selection:
    """Filter newest-first summaries and cut out page `page` of `size` rows."""
    totals = Counter(s.state for s in summaries)
    matched = [s.id for s in summaries if filters.matches(s.state, s.repo, s.kind)]
    pages = max(1, -(-len(matched) // size))
    page = min(max(1, page), pages)
    start = (page - 1) * size
    return Selection(
        ids=matched[start : start + size],
        totals=dict(totals),
        repos=sorted({s.repo for s in summaries}),
        matching=len(matched),
        page=page,
        pages=pages,
    )


def row_from_hash(raw: dict[bytes | str, bytes | str]) -> Row:
    fields = {text(k): text(v) for k, v in raw.items()}
    return Row(
        task=Task.from_fields(fields),
        state=fields.get("state", ""),
        attempt=int(fields.get("attempt") or "0"),
        created=float(fields.get("created") or "0"),
        updated=float(fields.get("updated") or "0"),
        error=fields.get("error", ""),
        result=fields.get("result", ""),
    )


def read_row(redis: Redis, task_id: str) -> Row | None:
    raw = redis.hgetall(task_key(task_id))
    return row_from_hash(raw) if raw else None


def summaries(redis: Redis) -> list[Summary]:
    """Every indexed task's state, repository and kind, newest first."""
    ids = [text(i) for i in redis.zrevrange(TASKS_INDEX, 0, -1) if isinstance(i, bytes | str)]
    found: list[Summary] = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        with redis.pipeline(transaction=False) as pipe:
            for task_id in chunk:
                pipe.hmget(task_key(task_id), ["state", "repo", "kind"])
            replies = pipe.execute()
        for task_id, (state, repo, kind) in zip(chunk, replies, strict=True):
            if state is not None:  # pruned between the two reads
                found.append(Summary(task_id, text(state), text(repo or b""), text(kind or b"")))
    return found


def listing(redis: Redis, filters: Filters, page: int, size: int = PAGE_SIZE) -> Listing:
    chosen = select(summaries(redis), filters, page, size)
    with redis.pipeline(transaction=False) as pipe:
        for task_id in chosen.ids:
            pipe.hgetall(task_key(task_id))
        raws = pipe.execute()
    return Listing([row_from_hash(raw) for raw in raws if raw], chosen)
