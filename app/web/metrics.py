"""GET /metrics: the Prometheus text of the counters that web and workers keep in Redis
(app/store/metrics.py), the queue, the workers and the model spend."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import Redis
from rq import Worker

from app.dispatch import queue_for
from app.store import (
    AGENT,
    AGENT_BUCKETS,
    DELIVERIES,
    ESCALATIONS,
    TASKS,
    Store,
    bucket_name,
    spend,
    text,
)


class RedisCollector(Collector):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        yield self._counter(
            "forgehand_deliveries", "Webhook deliveries by event and outcome", "event", DELIVERIES
        )
        yield self._counter("forgehand_tasks", "Finished tasks by kind and outcome", "kind", TASKS)
        states = GaugeMetricFamily(
            "forgehand_task_states", "Tasks Redis holds, by their state now", labels=["state"]
        )
        for state, count in Store(self.redis).state_totals().items():
            states.add_metric([state.value], float(count))
        yield states
        agent = self._hash(AGENT)
        buckets = [(bucket_name(b), float(agent.get(bucket_name(b), 0))) for b in AGENT_BUCKETS]
        yield HistogramMetricFamily(
            "forgehand_agent_duration_seconds", "Wall time of agent runs",
            buckets=buckets, sum_value=float(agent.get("sum", 0)),
        )  # fmt: skip
        escalations = CounterMetricFamily(
            "forgehand_escalations", "Pull requests handed to a human"
        )
        escalations.add_metric([], float(self.redis.get(ESCALATIONS) or 0))
        yield escalations
        depth = GaugeMetricFamily("forgehand_queue_depth", "Tasks waiting for a worker")
        depth.add_metric([], float(queue_for(self.redis).count))
        yield depth
        tokens = CounterMetricFamily(
            "forgehand_model_tokens", "Model tokens the agents used, through the gateway",
            labels=["repo", "agent", "kind"],
        )  # fmt: skip
        cost = CounterMetricFamily(
            "forgehand_model_cost_usd", "USD the agents' model calls of known price cost",
            labels=["repo", "agent"],
        )  # fmt: skip
        for row in spend.totals(self.redis):
            used = row.spend
            for kind in spend.KINDS:
                tokens.add_metric([row.repo, row.agent, kind], float(getattr(used, kind)))
            cost.add_metric([row.repo, row.agent], used.cost)
        yield tokens
        yield cost
        workers = GaugeMetricFamily("forgehand_workers", "RQ workers alive")
        workers.add_metric([], float(Worker.count(connection=self.redis)))
        yield workers

    def _counter(self, name: str, doc: str, label: str, key: str) -> CounterMetricFamily:
        """A counter from a hash whose fields are `<label value>|<outcome>`."""
        family = CounterMetricFamily(name, doc, labels=[label, "outcome"])
        for field, value in self._hash(key).items():
            family.add_metric(field.split("|", 1), float(value))
        return family

    def _hash(self, key: str) -> dict[str, str]:
        raw = self.redis.hgetall(key)
        return {text(k): text(v) for k, v in raw.items()}


def render(redis: Redis) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(redis))
    return generate_latest(registry)
