"""Spend on the worker's side: one run's meter (the budget the gateway asks before a call, the
usage it reports after), prices, and the installation's day budget.
"""

from jobs.spend.metering import TaskMeter, day_refusal

__all__ = [
    "TaskMeter",
    "day_refusal",
]
