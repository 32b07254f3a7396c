"""Counters kept in Redis, so web and workers on any machine add to the same numbers; the web
process serves them at /metrics (app/web/metrics.py)."""

from __future__ import annotations

import math
from contextlib import suppress

from redis import Redis
from redis.exceptions import RedisError

AGENT_BUCKETS = (5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, math.inf)
DELIVERIES = "fh:metrics:deliveries"
TASKS = "fh:metrics:tasks"
AGENT = "fh:metrics:agent_seconds"
ESCALATIONS = "fh:metrics:escalations"


def count_delivery(redis: Redis, event: str, outcome: str, amount: int = 1) -> None:
    with suppress(RedisError):  # metrics never fail a delivery
        redis.hincrby(DELIVERIES, f"{event}|{outcome}", amount)


def count_task(redis: Redis, kind: str, outcome: str) -> None:
    redis.hincrby(TASKS, f"{kind}|{outcome}", 1)


def count_escalation(redis: Redis) -> None:
    redis.incr(ESCALATIONS)


def observe_agent(redis: Redis, seconds: float) -> None:
    with redis.pipeline(transaction=False) as pipe:
        for bound in AGENT_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(AGENT, bucket_name(bound), 1)
        pipe.hincrbyfloat(AGENT, "sum", seconds)
        pipe.hincrby(AGENT, "count", 1)
        pipe.execute()


def bucket_name(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else str(float(bound))
