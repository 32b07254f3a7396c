"""The one webhook endpoint (SPEC §3): verify, dedupe, decide, enqueue — never call GitHub."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from githubkit.webhooks import verify
from redis.client import Pipeline
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.dispatch import Dispatcher, Seen, read_seen, seen_from
from app.fleet import wake
from app.store import Store, text
from app.tasks import Cancel, InstallationChange, ResetAttempts, Task, Wake
from app.web.tally import Tally
from app.web.triggers import Facts, PayloadError, decide, early_decision, needs_pull_request_fact

MAX_BODY = 25 * 1024 * 1024  # GitHub caps deliveries at 25 MB
log = logging.getLogger("forgehand.webhook")


@dataclass
class Result:
    delivery: str
    tasks: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    ignored: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"delivery": self.delivery, "tasks": self.tasks}
        if self.cancelled:
            out["cancelled"] = self.cancelled
        if self.ignored is not None:
            out["ignored"] = self.ignored
        return out


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_capped(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def receive(request: Request) -> JSONResponse:
    response = await _receive(request)
    if response.status_code in (400, 401, 413):
        request.app.state.tally.add(request.headers.get("x-github-event", ""), "rejected")
    return response


async def _receive(request: Request) -> JSONResponse:
    body = await _read_capped(request)
    if body is None:
        return _error(413, "payload larger than 25 MB")
    secret: str = request.app.state.settings.webhook_secret
    signature = request.headers.get("x-hub-signature-256", "")
    # Only SHA-256: githubkit would also accept a SHA-1 signature, which we never ask for.
    if not signature.startswith("sha256=") or not verify(secret, body, signature):
        log.warning("rejected delivery with a bad or missing signature")
        return _error(401, "bad or missing X-Hub-Signature-256")
    event = request.headers.get("x-github-event", "").strip()
    delivery = request.headers.get("x-github-delivery", "").strip()
    if not event or not delivery:
        return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery header")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return _error(400, "content type must be application/json")
    try:
        # orjson refuses nesting deeper than 1024 with an error, where json recurses until
        # RecursionError; a signed body cannot crash the endpoint.
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        return _error(400, "body must be a JSON object")
    if event == "ping":
        log.info("ping", extra={"delivery": delivery})
        return JSONResponse(Result(delivery).body(), status_code=200)

    intake: Intake = request.app.state.intake
    # Most deliveries an App receives start nothing; answered here, on the event loop, from
    # the payload alone: no thread hop, no Redis, no log line of their own.
    early = early_decision(event, payload, intake.facts)
    if early is not None and early.ignored is not None:
        intake.tally.add(event, "ignored")
        name = _name(event, payload)
        log.debug("%s: ignored: %s", name, early.ignored, extra={"delivery": delivery})
        return JSONResponse(Result(delivery, ignored=early.ignored).body(), status_code=202)
    candidates = [t.id for t in early.tasks] if early is not None else []
    try:
        result = await run_in_threadpool(intake.process, event, delivery, payload, candidates)
    except PayloadError as exc:
        log.warning("malformed %s payload: %s", event, exc, extra={"delivery": delivery})
        return _error(400, str(exc))
    except RedisError as exc:
        log.error("redis unavailable: %s", exc, extra={"delivery": delivery})
        return _error(503, "task store unavailable; the delivery can be redelivered")
    return JSONResponse(result.body(), status_code=202)


class Intake:
    """The synchronous part of a delivery that may start work, run off the event loop: all
    of it talks to Redis."""

    def __init__(self, store: Store, dispatcher: Dispatcher, facts: Facts, tally: Tally) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.facts = facts
        self.tally = tally

    def process(
        self, event: str, delivery: str, payload: dict[str, Any], candidates: list[str]
    ) -> Result:
        """Claim the delivery and decide it in one round trip, write what it starts in one
        more. `candidates` are the tasks the payload alone would start: what they need to be
        enqueued is read with the claim."""
        result = Result(delivery)

        repo_id = _number(payload, "repository")
        bases = event == "push" and repo_id is not None

        def read_candidates(pipe: Pipeline) -> None:
            for task_id in candidates:
                read_seen(pipe, task_id)
            if bases and repo_id is not None:
                self.store.read_agent_bases(pipe, repo_id)

        found = self.store.claim_delivery(
            delivery,
            repo_id,
            _number(payload, "installation"),
            needs_pull_request_fact(event, payload),
            also=read_candidates,
        )
        if found is None:
            result.ignored = "duplicate delivery"
            log.info("%s: duplicate delivery", event, extra={"delivery": delivery})
            self.tally.add(event, "duplicate")
            return result
        seen = {
            task_id: seen_from(found.also[2 * i : 2 * i + 2])
            for i, task_id in enumerate(candidates)
        }
        facts = replace(
            self.facts,
            app_slug=found.app_slug,
            allowed_bots=found.allowed_bots,
            app_pull_request=found.app_pull_request,
            repo_installed=found.repo_installed,
            agent_bases=(
                frozenset(text(b) for b in found.also[2 * len(candidates)]) if bases else None
            ),
        )
        try:
            finished = self._apply(event, delivery, payload, facts, seen, result)
            if not finished:
                self.store.finish_delivery(delivery)
        except BaseException:
            self.store.release_delivery(delivery)
            raise
        outcome = "queued" if result.tasks else "ignored" if result.ignored else "applied"
        self.tally.add(event, outcome)
        return result

    def _apply(
        self,
        event: str,
        delivery: str,
        payload: dict[str, Any],
        facts: Facts,
        seen: dict[str, Seen],
        result: Result,
    ) -> bool:
        """Carry out the decision; True when the delivery was marked done with the last write."""
        decision = decide(event, payload, facts)
        name = _name(event, payload)
        origin = f"delivery {delivery} ({name})"
        skipped = []
        finished = False
        for i, act in enumerate(decision.actions):
            if isinstance(act, Task):
                last = i == len(decision.actions) - 1
                outcome = self.dispatcher.enqueue(
                    act,
                    origin,
                    seen.get(act.id),
                    # The common delivery, one task: marked done in the same round trip.
                    then=(lambda pipe: self.store.finish_delivery(delivery, conn=pipe))
                    if last
                    else None,
                )
                finished = last
                if outcome.enqueued:
                    result.tasks.append(act.id)
                else:
                    skipped.append(f"{act.id} {outcome.note}")
            elif isinstance(act, Cancel):
                result.cancelled.extend(self.dispatcher.cancel(act))
            elif isinstance(act, InstallationChange):
                self.store.apply_installation(act)
            elif isinstance(act, ResetAttempts):
                self.store.reset_attempts(act.repo_id, act.number, act.sha)
            elif isinstance(act, Wake):
                result.tasks.extend(wake(self.store, self.dispatcher, act.repo_id, origin))
        result.ignored = decision.ignored or ("; ".join(skipped) if skipped else None)
        if result.ignored and not decision.actions:
            # Counted in the tally's summary line, like the deliveries of the fast path.
            log.debug("%s: ignored: %s", name, result.ignored, extra={"delivery": delivery})
            return finished
        log.info(
            "%s: %s",
            name,
            f"ignored: {result.ignored}" if result.ignored else f"tasks {result.tasks}",
            extra={"delivery": delivery, "task": ",".join(result.tasks)},
        )
        return finished


def _name(event: str, payload: dict[str, Any]) -> str:
    action = payload.get("action")
    return f"{event}.{action}" if isinstance(action, str) else event


def _number(payload: dict[str, Any], key: str) -> int | None:
    """payload[key]["id"] when it is a whole number; anything else is the decider's to judge."""
    node = payload.get(key)
    value = node.get("id") if isinstance(node, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
