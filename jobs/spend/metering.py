"""One task run's meter: what the gateway asks before a call (the budget) and tells after it
(the usage, priced and added up in app/store/spend.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from app import budget
from app.store import spend
from jobs.boundary import Api, Usage
from jobs.spend.prices import Prices, cost_of


@dataclass
class TaskMeter:
    redis: Redis
    where: spend.Where
    prices: Prices
    task_cap: float | None
    day_cap: float | None  # the operator's, for the installation's day
    repo_day_cap: float | None  # the repository's, for its own day
    say: Callable[[str], None]  # a line for the task's log
    _unpriced: set[str] = field(default_factory=set)

    def admit(self) -> str | None:
        """Why a call may not start now, or None."""
        if self.task_cap is not None:
            spent = spend.task_spend(self.redis, self.where.task_id, self.where.run).cost
            if spent >= self.task_cap:
                return budget.stopped(spent, self.task_cap)
        where = self.where
        return day_refusal(
            self.redis, where.installation, where.repo, self.day_cap, self.repo_day_cap
        )

    def record(self, api: Api, usage: Usage) -> None:
        cost = cost_of(usage, api, self.prices)
        if cost is None and usage.model not in self._unpriced:
            self._unpriced.add(usage.model)
            self.say(
                f"forgehand: no price is known for the model {usage.model[:100]!r}: its calls are "
                "metered by tokens, their cost unknown (AGENT_PRICES can give one)"
            )
        tokens = (usage.input, usage.output, usage.cached, usage.cache_write)
        call = spend.Call(self.where, tokens, cost)
        spend.record(self.redis, call)


def day_refusal(
    redis: Redis, installation: int, repo: str, day_cap: float | None, repo_day_cap: float | None
) -> str | None:
    """Why the installation's (or the repository's) day allows no more model calls, or None."""
    if day_cap is not None:
        today = spend.installation_day_cost(redis, installation)
        if today >= day_cap:
            return budget.day_reached(today, day_cap)
    if repo_day_cap is not None:
        today = spend.repo_day_cost(redis, repo)
        if today >= repo_day_cap:
            return budget.day_reached(today, repo_day_cap)
    return None
