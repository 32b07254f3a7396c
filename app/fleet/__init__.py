"""The fleet: pure decisions for many agents on one repository (dependencies, the review cap,
overlaps, merge order), an epic's plan (`forgehand-plan.yml`), and their bookkeeping in Redis.

The decisions take plain values and do no I/O. May import app's shared modules and app.store.
"""

from app.fleet import plan
from app.fleet.decisions import (
    MAX_OPEN_PULL_REQUESTS,
    OVERLAP_MODES,
    Pull,
    blockers_in,
    find_cycle,
    interface_files,
    may_open,
    merge_order,
    overlaps,
    overlaps_of,
    owners_of,
    paths_named,
    queue_position,
)
from app.fleet.epic_plan import (
    COMMENT_MARKER,
    FILE_NAME,
    MAX_BYTES,
    PLAN_MAX_ISSUES,
    Checked,
    PlanError,
    Row,
    check,
    order,
    owned,
    parse,
)
from app.fleet.epic_state import Epic, EpicState
from app.fleet.state import FleetState
from app.fleet.waking import wake, wake_stale

__all__ = [
    "COMMENT_MARKER",
    "FILE_NAME",
    "MAX_BYTES",
    "MAX_OPEN_PULL_REQUESTS",
    "OVERLAP_MODES",
    "PLAN_MAX_ISSUES",
    "Checked",
    "Epic",
    "EpicState",
    "FleetState",
    "PlanError",
    "Pull",
    "Row",
    "blockers_in",
    "check",
    "find_cycle",
    "interface_files",
    "may_open",
    "merge_order",
    "order",
    "overlaps",
    "overlaps_of",
    "owned",
    "owners_of",
    "parse",
    "paths_named",
    "plan",
    "queue_position",
    "wake",
    "wake_stale",
]
