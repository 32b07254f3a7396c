"""Spend on the worker's side: one run's meter (the budget the gateway asks before a call, the
usage it reports after) and prices. May import app, app.store and jobs.boundary.
"""

from jobs.spend.metering import AGENT_KINDS, Caps, TaskMeter, day_refusal

__all__ = [
    "AGENT_KINDS",
    "Caps",
    "TaskMeter",
    "day_refusal",
]
