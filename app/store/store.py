"""Redis state: deliveries seen, task records and their audit trail, installations, App facts.

Every key starts with `fh:`, so forgehand can share a Redis database with RQ and nothing else.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from app.tasks import InstallationChange, State, Task

# GitHub lets an App redeliver for three days; a GUID must stay known at least that long.
DELIVERY_TTL = 3 * 24 * 3600
# A delivery being processed holds its GUID this long; if the web process dies meanwhile the
# claim lapses and a redelivery is accepted.
DELIVERY_CLAIM_TTL = 60
AUDIT_LIMIT = 200
log = logging.getLogger("forgehand.task")
LOG_TAIL_LIMIT = 500
# What the task page shows of the agent's prompt and of the change; the rest is cut.
PROMPT_LIMIT = 100_000
DIFF_LIMIT = 400_000

Conn = Redis | Pipeline


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients here do not decode replies)."""
    return value.decode() if isinstance(value, bytes) else value


def task_key(task_id: str) -> str:
    return f"fh:task:{task_id}"


def events_key(task_id: str) -> str:
    return f"fh:task:{task_id}:events"


def bases_key(repo_id: int) -> str:
    return f"fh:pr_bases:{repo_id}"


def target_key(repo_id: int, number: int) -> str:
    return f"fh:target:{repo_id}:{number}"


TASKS_INDEX = "fh:tasks"
ITEMS_KEY = "fh:items"


@dataclass(frozen=True)
class DeliveryFacts:
    app_slug: str | None
    allowed_bots: frozenset[str]
    repo_installed: bool | None
    app_pull_request: bool
    # The replies to the caller's own reads, made in the same round trip (claim_delivery).
    also: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class TaskRecord:
    task: Task
    state: State
    run: int
    attempt: int
    created: float
    updated: float
    error: str

    @property
    def id(self) -> str:
        return self.task.id

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.task.kind.value,
            "repo": self.task.repo,
            "number": self.task.number,
            "state": self.state.value,
            "attempt": self.attempt,
            "run": self.run,
            "created": self.created,
            "updated": self.updated,
            "error": self.error,
        }


class Store:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    # --- deliveries ---------------------------------------------------------------------

    def finish_delivery(self, guid: str, conn: Conn | None = None) -> None:
        (conn if conn is not None else self.redis).set(
            f"fh:delivery:{guid}", "done", ex=DELIVERY_TTL
        )

    def release_delivery(self, guid: str) -> None:
        self.redis.delete(f"fh:delivery:{guid}")

    # --- tasks ----------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskRecord | None:
        raw = self.redis.hgetall(task_key(task_id))
        return record_from_hash(raw) if raw else None

    def write_queued(self, pipe: Pipeline, task: Task, run: int, created: float | None) -> None:
        """Queue writes (inside the caller's MULTI) that mark `task` queued as run `run`."""
        now = time.time()
        fields: dict[FieldT, EncodableT] = {}
        fields.update(task.to_fields())
        fields |= {
            "state": State.QUEUED.value,
            "run": str(run),
            "created": str(created if created is not None else now),
            "updated": str(now),
            "error": "",
            "result": "",
        }
        pipe.hset(task_key(task.id), mapping=fields)
        pipe.hsetnx(task_key(task.id), "attempt", "0")
        pipe.zadd(TASKS_INDEX, {task.id: now})
        pipe.sadd(target_key(task.repo_id, task.number), task.id)

    def set_state(
        self, task_id: str, state: State, error: str = "", conn: Conn | None = None
    ) -> None:
        now = time.time()
        target = conn if conn is not None else self.redis
        target.hset(
            task_key(task_id), mapping={"state": state.value, "updated": str(now), "error": error}
        )
        target.zadd(TASKS_INDEX, {task_id: now})

    def set_result(self, task_id: str, result: str) -> None:
        """What a finished task did, in a few words ("pushed abc1234", "no change")."""
        self.redis.hset(task_key(task_id), "result", result)

    def set_check_run(self, task_id: str, run_id: int) -> None:
        """The task's `forgehand` check run, so that a later task can say what became of it."""
        self.redis.hset(task_key(task_id), "check_run", str(run_id))

    def check_run(self, task_id: str) -> int | None:
        value = self.redis.hget(task_key(task_id), "check_run")
        return int(value) if isinstance(value, bytes) and value.isdigit() else None

    def set_attempt(self, task_id: str, attempt: int) -> None:
        """The CI-fix attempt on its pull request this task is making (1 for the first)."""
        self.redis.hset(task_key(task_id), "attempt", str(attempt))

    def transition(self, task_id: str, frm: Iterable[State], to: State, error: str = "") -> bool:
        """Move a task to `to` only if it is in one of `frm`; atomic against other writers."""
        allowed = {s.value for s in frm}
        key = task_key(task_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current = pipe.hget(key, "state")
                    if not isinstance(current, bytes) or current.decode() not in allowed:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    self.set_state(task_id, to, error, conn=pipe)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def audit(self, task_id: str, event: str, detail: str = "", conn: Conn | None = None) -> None:
        """Record a step in the task's timeline; every step is also one log line."""
        self.audit_log(task_id, event, detail)
        self.audit_write(conn if conn is not None else self.redis, task_id, event, detail)

    def audit_log(self, task_id: str, event: str, detail: str) -> None:
        log.info("%s%s", event, f": {detail}" if detail else "", extra={"task": task_id})

    def audit_write(self, conn: Conn, task_id: str, event: str, detail: str) -> None:
        """The timeline entry alone, for a caller that logs only once its writes are applied."""
        entry = json.dumps({"ts": time.time(), "event": event, "detail": detail})
        conn.rpush(events_key(task_id), entry)
        conn.ltrim(events_key(task_id), -AUDIT_LIMIT, -1)

    def events(self, task_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(events_key(task_id), 0, -1)]

    def append_log(self, task_id: str, lines: list[str]) -> None:
        key = f"fh:task:{task_id}:log"
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *lines)
            pipe.ltrim(key, -LOG_TAIL_LIMIT, -1)
            pipe.execute()

    def log_tail(self, task_id: str, lines: int = LOG_TAIL_LIMIT) -> list[str]:
        return [text(x) for x in self.redis.lrange(f"fh:task:{task_id}:log", -lines, -1)]

    def status_comment(self, task_id: str) -> int | None:
        value = self.redis.get(f"fh:task:{task_id}:comment")
        return int(value) if isinstance(value, bytes) else None

    def set_status_comment(self, task_id: str, comment_id: int) -> None:
        self.redis.set(f"fh:task:{task_id}:comment", comment_id)

    # --- pull requests: attempts, escalation, failing commits --------------------------------

    def attempts(self, repo_id: int, number: int) -> list[dict[str, Any]]:
        raw = self.redis.lrange(f"fh:pr:{repo_id}:{number}:attempts", 0, -1)
        return [json.loads(a) for a in raw]

    def add_attempt(self, repo_id: int, number: int, entry: dict[str, Any]) -> int:
        key = f"fh:pr:{repo_id}:{number}:attempts"
        return int(self.redis.rpush(key, json.dumps(entry)))

    def reset_attempts(self, repo_id: int, number: int, sha: str = "") -> bool:
        """Forget attempts and escalation; with `sha`, only if that commit never failed."""
        base = f"fh:pr:{repo_id}:{number}"
        if sha and self.redis.sismember(f"{base}:failed", sha):
            return False
        with self.redis.pipeline() as pipe:
            pipe.delete(f"{base}:attempts", f"{base}:escalated", f"{base}:failed")
            if sha:
                pipe.hset(f"{base}:ci", sha, "passed")
            pipe.execute()
        return True

    def tracked(self, repo_id: int, number: int) -> bool:
        """Whether this Redis knows the pull request's attempts (it may have been emptied)."""
        return bool(self.redis.exists(f"fh:pr:{repo_id}:{number}:tracked"))

    def restore_attempts(
        self, repo_id: int, number: int, entries: list[dict[str, Any]], escalated: bool
    ) -> None:
        base = f"fh:pr:{repo_id}:{number}"
        with self.redis.pipeline() as pipe:
            pipe.delete(f"{base}:attempts", f"{base}:escalated")
            if entries:
                pipe.rpush(f"{base}:attempts", *(json.dumps(e) for e in entries))
            if escalated:
                pipe.set(f"{base}:escalated", "1")
            pipe.set(f"{base}:tracked", "1")
            pipe.execute()

    def mark_failed(self, repo_id: int, number: int, sha: str, words: str = "failed") -> None:
        """CI failed on `sha`; `words` say how ("failed (unit, lint)"), for people."""
        with self.redis.pipeline() as pipe:
            pipe.sadd(f"fh:pr:{repo_id}:{number}:failed", sha)
            pipe.hset(f"fh:pr:{repo_id}:{number}:ci", sha, words)
            pipe.execute()

    def known_failed(self, repo_id: int, number: int, sha: str) -> bool:
        return bool(self.redis.sismember(f"fh:pr:{repo_id}:{number}:failed", sha))

    def ci_results(self, repo_id: int, number: int) -> dict[str, str]:
        """What forgehand learnt of CI on the pull request's commits: SHA → "passed",
        "failed (unit, lint)". Kept past a reset: they are facts about commits."""
        raw = self.redis.hgetall(f"fh:pr:{repo_id}:{number}:ci")
        return {text(k): text(v) for k, v in raw.items()}

    def note_pushed(self, repo_id: int, number: int, sha: str, task_id: str, lead: str) -> None:
        """`task_id` pushed `sha`; its check run's title is `lead` followed by what CI says of
        the commit. Kept past a reset, like CI's results."""
        entry = json.dumps({"task": task_id, "lead": lead})
        self.redis.hset(f"fh:pr:{repo_id}:{number}:pushed", sha, entry)

    def pushed_by(self, repo_id: int, number: int, sha: str) -> dict[str, str] | None:
        """The task that pushed `sha` and its check run's title lead, if a task did."""
        raw = self.redis.hget(f"fh:pr:{repo_id}:{number}:pushed", sha)
        return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else None

    def escalated(self, repo_id: int, number: int) -> bool:
        return bool(self.redis.exists(f"fh:pr:{repo_id}:{number}:escalated"))

    def set_escalated(self, repo_id: int, number: int) -> None:
        self.redis.set(f"fh:pr:{repo_id}:{number}:escalated", "1")

    def issue_for_pull_request(self, repo_id: int, number: int) -> int | None:
        value = self.redis.hget("fh:pr_issue", f"{repo_id}:{number}")
        return int(value) if isinstance(value, bytes) else None

    def recent(self, limit: int = 100) -> list[TaskRecord]:
        ids = [
            text(i) for i in self.redis.zrevrange(TASKS_INDEX, 0, limit - 1) if isinstance(i, bytes)
        ]
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(task_key(task_id))
            raws = pipe.execute()
        return [record_from_hash(raw) for raw in raws if raw]

    def state_totals(self, batch: int = 1000) -> dict[State, int]:
        """How many tasks Redis holds in each state (every state present, zero or not)."""
        totals = dict.fromkeys(State, 0)
        ids = [text(i) for i in self.redis.zrange(TASKS_INDEX, 0, -1) if isinstance(i, bytes)]
        for start in range(0, len(ids), batch):
            with self.redis.pipeline(transaction=False) as pipe:
                for task_id in ids[start : start + batch]:
                    pipe.hget(task_key(task_id), "state")
                states = pipe.execute()
            for state in states:
                if state is not None:
                    totals[State(text(state))] += 1
        return totals

    def prune(self, before: float, batch: int = 500) -> int:
        """Delete finished tasks last updated before `before`, with their trail and log."""
        removed, offset = 0, 0
        while True:
            found = self.redis.zrangebyscore(TASKS_INDEX, 0, before, offset, batch)
            old = [text(i) for i in found if isinstance(i, bytes | str)]
            gone = self._prune(old)
            removed += gone
            offset += len(old) - gone  # live tasks stay in the index; step over them
            if len(old) < batch:
                return removed

    def _prune(self, old: list[str]) -> int:
        removed = 0
        for task_id in old:
            record = self.get(task_id)
            if record is not None and record.state.active:
                continue  # a live task is never pruned, however old
            keys = [task_key(task_id), events_key(task_id), f"fh:task:{task_id}:log",
                    f"fh:task:{task_id}:comment", f"fh:task:{task_id}:prompt",
                    f"fh:task:{task_id}:diff"]  # fmt: skip
            with self.redis.pipeline() as pipe:
                pipe.delete(*keys)
                pipe.zrem(TASKS_INDEX, task_id)
                if record is not None:
                    pipe.srem(target_key(record.task.repo_id, record.task.number), task_id)
                pipe.execute()
            removed += 1
        return removed

    def on_target(self, repo_id: int, number: int) -> list[str]:
        return sorted(text(i) for i in self.redis.smembers(target_key(repo_id, number)))

    # --- facts the web side decides with ------------------------------------------------------

    def is_app_pull_request(self, repo_id: int, number: int) -> bool:
        return bool(self.redis.sismember("fh:app_prs", f"{repo_id}:{number}"))

    def add_app_pull_request(
        self, repo_id: int, number: int, issue: int, repo: str, installation: int, base: str = ""
    ) -> None:
        with self.redis.pipeline() as pipe:
            if base:
                pipe.hset(bases_key(repo_id), str(number), base)
            pipe.sadd("fh:app_prs", f"{repo_id}:{number}")
            pipe.hset(f"fh:pr:{repo_id}:{number}:meta",
                      mapping={"repo": repo, "installation": installation})  # fmt: skip
            pipe.hset("fh:issue_pr", f"{repo_id}:{issue}", number)
            pipe.hset("fh:pr_issue", f"{repo_id}:{number}", issue)
            pipe.set(f"fh:pr:{repo_id}:{number}:tracked", "1")
            pipe.execute()

    def open_app_pull_requests(self) -> list[tuple[int, int, str, int]]:
        """(repo id, number, repo, installation) of every pull request the App opened."""
        keys = [
            tuple(int(x) for x in text(m).split(":")) for m in self.redis.smembers("fh:app_prs")
        ]
        with self.redis.pipeline(transaction=False) as pipe:
            for repo_id, number in keys:
                pipe.hgetall(f"fh:pr:{repo_id}:{number}:meta")
            metas = pipe.execute()
        found = []
        for (repo_id, number), meta in zip(keys, metas, strict=True):
            fields = {text(k): text(v) for k, v in meta.items()}
            if fields:
                found.append((repo_id, number, fields["repo"], int(fields["installation"])))
        return sorted(found)

    def forget_app_pull_request(self, repo_id: int, number: int) -> None:
        self.redis.srem("fh:app_prs", f"{repo_id}:{number}")
        self.redis.hdel(bases_key(repo_id), str(number))

    def note_base(self, repo_id: int, number: int, base: str) -> None:
        """The branch an open agent pull request merges into."""
        self.redis.hset(bases_key(repo_id), str(number), base)

    def closed_pull_request(self, repo_id: int, number: int) -> None:
        """A closed agent pull request targets no branch any more."""
        self.redis.hdel(bases_key(repo_id), str(number))

    def read_agent_bases(self, pipe: Pipeline, repo_id: int) -> None:
        """Queue the read of the base branches of the repository's open agent pull requests
        on the caller's pipeline (a push is decided with it)."""
        pipe.hvals(bases_key(repo_id))

    def pull_request_for_issue(self, repo_id: int, issue: int) -> int | None:
        value = self.redis.hget("fh:issue_pr", f"{repo_id}:{issue}")
        return int(value) if isinstance(value, bytes) else None

    def set_app_slug(self, slug: str) -> None:
        self.redis.set("fh:app:slug", slug)

    def set_allowed_bots(self, repo_id: int, bots: Iterable[str]) -> None:
        key = f"fh:allowed_bots:{repo_id}"
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            names = list(bots)
            if names:
                pipe.sadd(key, *names)
            pipe.execute()

    def apply_installation(self, change: InstallationChange) -> None:
        key = "fh:repos"  # repo id → installation id
        with self.redis.pipeline() as pipe:
            if change.uninstalled:
                pipe.srem("fh:installations", str(change.installation_id))
                for repo, owner in self.redis.hgetall(key).items():
                    if int(owner) == change.installation_id:
                        pipe.hdel(key, repo)
            else:
                pipe.sadd("fh:installations", str(change.installation_id))
            for added, _name in change.added:
                pipe.hset(key, str(added), str(change.installation_id))
            for removed in change.removed:
                pipe.hdel(key, str(removed))
            pipe.execute()

    def claim_delivery(
        self,
        guid: str,
        repo_id: int | None,
        installation_id: int | None,
        pull: tuple[int, int] | None,
        also: Callable[[Pipeline], None] | None = None,
    ) -> DeliveryFacts | None:
        """Claim a delivery's GUID and read what deciding it needs, in one round trip.

        None when the GUID was already processed or is being processed. The facts are read
        either way: a wasted read on the rare duplicate costs less than a second round trip
        on every delivery.
        """
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(f"fh:delivery:{guid}", "pending", nx=True, ex=DELIVERY_CLAIM_TTL)
            pipe.get("fh:app:slug")
            pipe.smembers(f"fh:allowed_bots:{repo_id}")
            pipe.hget("fh:repos", str(repo_id))
            pipe.sismember("fh:installations", str(installation_id))
            pipe.sismember("fh:app_prs", f"{pull[0]}:{pull[1]}" if pull else "")
            if also is not None:
                also(pipe)
            claimed, slug, bots, owner, known, app_pr, *extra = pipe.execute()
        if not claimed:
            return None
        installed: bool | None = None
        if repo_id is not None and installation_id is not None:
            # Installation events put the repository elsewhere, or named its installation
            # without it; when they never spoke of the installation, nothing can be said.
            if owner is not None:
                installed = int(owner) == installation_id
            elif known:
                installed = False
        return DeliveryFacts(
            app_slug=text(slug) if slug else None,
            allowed_bots=frozenset(text(b) for b in bots) if repo_id is not None else frozenset(),
            repo_installed=installed,
            app_pull_request=bool(app_pr) if pull else False,
            also=extra,
        )

    def installation_for(self, repo_id: int) -> int | None:
        value = self.redis.hget("fh:repos", str(repo_id))
        return int(value) if value is not None else None

    # --- what the dashboard shows of an issue or pull request ------------------------------------

    def note_item(self, repo_id: int, number: int, title: str, pull: bool) -> None:
        """An issue's or pull request's title, as a worker last read it."""
        data = json.dumps({"title": title[:300], "pull": pull})
        self.redis.hset(ITEMS_KEY, f"{repo_id}:{number}", data)

    def items(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
        """The titles (and whether each is a pull request) of the given issues and pull
        requests, where a worker noted them."""
        if not keys:
            return {}
        raw = self.redis.hmget(ITEMS_KEY, [f"{r}:{n}" for r, n in keys])
        return {key: json.loads(value) for key, value in zip(keys, raw, strict=True) if value}

    # --- what the task page shows of a run: the agent's last prompt, the change ----------------

    def set_prompt(self, task_id: str, prompt: str) -> None:
        self.redis.set(f"fh:task:{task_id}:prompt", _cut(prompt, PROMPT_LIMIT))

    def prompt(self, task_id: str) -> str:
        value = self.redis.get(f"fh:task:{task_id}:prompt")
        return text(value) if isinstance(value, bytes) else ""

    def set_diff(self, task_id: str, diff: str) -> None:
        self.redis.set(f"fh:task:{task_id}:diff", _cut(diff, DIFF_LIMIT))

    def diff(self, task_id: str) -> str:
        value = self.redis.get(f"fh:task:{task_id}:diff")
        return text(value) if isinstance(value, bytes) else ""


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[:limit] + f"\n… ({len(value) - limit} more characters not kept)\n"


def record_from_hash(raw: dict[Any, Any]) -> TaskRecord:
    fields = {text(k): text(v) for k, v in raw.items()}
    return TaskRecord(
        task=Task.from_fields(fields),
        state=State(fields["state"]),
        run=int(fields.get("run", "1")),
        attempt=int(fields.get("attempt", "0")),
        created=float(fields.get("created", "0")),
        updated=float(fields.get("updated", "0")),
        error=fields.get("error", ""),
    )
