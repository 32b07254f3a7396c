"""What forgehand keeps in Redis: deliveries seen, task records and their timelines,
installations, counters for /metrics, the model spend, the schema version, and the connection
(or an embedded server where the machine has none).

May import app's shared modules only.
"""

from app.store import schema, spend
from app.store.keys import TASKS_INDEX, task_key, text
from app.store.metrics import (
    AGENT,
    AGENT_BUCKETS,
    DELIVERIES,
    ESCALATIONS,
    TASKS,
    bucket_name,
    count_delivery,
    count_escalation,
    count_task,
    observe_agent,
)
from app.store.redis_conn import connect, embedded_redis
from app.store.schema import SchemaError, ensure
from app.store.spend import Spend, cost_cell, work_spend
from app.store.store import Store
from app.store.tasks import TaskRecord

__all__ = [
    "AGENT",
    "AGENT_BUCKETS",
    "DELIVERIES",
    "ESCALATIONS",
    "TASKS",
    "TASKS_INDEX",
    "SchemaError",
    "Spend",
    "Store",
    "TaskRecord",
    "bucket_name",
    "connect",
    "cost_cell",
    "count_delivery",
    "count_escalation",
    "count_task",
    "embedded_redis",
    "ensure",
    "observe_agent",
    "schema",
    "spend",
    "task_key",
    "text",
    "work_spend",
]
