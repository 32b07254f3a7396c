"""One task run's meter: what the gateway asks before a call (the budget) and tells after it
(the usage, priced and added up in app/store/spend.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from app import budget
from app.store import spend
from app.tasks import Kind
from jobs.boundary import Api, Usage
from jobs.spend.prices import SELF_PRICED, Prices, cost_of, priced

# The kinds that run an agent; the others (clean-ups, notices) make no model call.
AGENT_KINDS = frozenset({Kind.ISSUE, Kind.CI, Kind.REVIEW, Kind.COMMAND, Kind.CONFLICT})


@dataclass(frozen=True)
class Caps:
    """The caps on a task's spend, in USD; None: no such cap."""

    task: float | None = None
    day: float | None = None  # the operator's, for the installation's day
    repo_day: float | None = None  # the repository's, for its own day

    @property
    def any(self) -> bool:
        return self.task is not None or self.day is not None or self.repo_day is not None


def refusal(caps: Caps, spent: spend.Spent) -> str | None:
    """Why no more model calls may start under `caps`, having spent `spent`, or None."""
    if caps.task is not None and spent.task >= caps.task:
        return budget.stopped(spent.task, caps.task)
    if caps.day is not None and spent.installation_day >= caps.day:
        return budget.day_reached(spent.installation_day, caps.day)
    if caps.repo_day is not None and spent.repo_day >= caps.repo_day:
        return budget.day_reached(spent.repo_day, caps.repo_day)
    return None


def unpriced(model: str) -> str:
    shown = model[:100]
    return (
        f"no price is known for the model {shown!r}, and a cost cap applies: its calls are "
        f"refused until AGENT_PRICES gives one (e.g. AGENT_PRICES={shown}=3/15, USD per "
        "million input/output tokens)"
    )


@dataclass
class TaskMeter:
    redis: Redis
    where: spend.Where
    prices: Prices
    caps: Caps
    say: Callable[[str], None]  # a line for the task's log
    _unpriced: set[str] = field(default_factory=set)
    _uncosted: set[Api] = field(default_factory=set)  # said no cost, though reporting it
    _unsaid: bool = False  # an answer said nothing of its usage (told once)

    def admit(self, api: Api, model: str | None) -> str | None:
        """Why a call to `model` (None: a call that costs nothing) may not start now, or None.
        Under a cost cap, a model of unknown price is refused: its calls would count as free."""
        if not self.caps.any:
            return None
        where = self.where
        run = (where.task_id, where.run)
        why = refusal(self.caps, spend.spent(self.redis, where.installation, where.repo, run))
        if why is None and model is not None and not self._priced(api, model):
            return unpriced(model)
        return why

    def _priced(self, api: Api, model: str) -> bool:
        # An API that reports each call's cost prices any model, until an answer of its came
        # without one: from then on its calls could count as free too.
        if api in SELF_PRICED and api not in self._uncosted:
            return True
        return priced(model, api, self.prices)

    def record(self, api: Api, usage: Usage) -> None:
        cost = cost_of(usage, api, self.prices)
        if cost is None and api in SELF_PRICED:
            self._uncosted.add(api)
        if not usage.said:
            if not self._unsaid:
                self._unsaid = True
                self.say(
                    "forgehand: a model call's answer said nothing of what it used: such calls "
                    "are metered with their cost unknown"
                )
        elif cost is None and usage.model not in self._unpriced:
            self._unpriced.add(usage.model)
            said = (
                f"{SELF_PRICED[api]} reported no cost for a call, and "
                if api in SELF_PRICED
                else ""
            )
            self.say(
                f"forgehand: {said}no price is known for the model {usage.model[:100]!r}: its "
                "calls are metered by tokens, their cost unknown (AGENT_PRICES can give one)"
            )
        tokens = (usage.input, usage.output, usage.cached, usage.cache_write)
        call = spend.Call(self.where, tokens, cost)
        spend.record(self.redis, call)


def day_refusal(redis: Redis, installation: int, repo: str, caps: Caps) -> str | None:
    """Why the installation's (or the repository's) day allows no more model calls, or None."""
    return refusal(caps, spend.spent(redis, installation, repo))
