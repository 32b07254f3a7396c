"""The work view as aligned text for a terminal: `forgehand tasks` and the sandbox's ending."""

from __future__ import annotations

import time

from app.dashboard import work_items
from app.store import Store, spend
from jobs.boundary import printable

HEAD = ("REPO", "ISSUE/PR", "TITLE", "STATE", "ATTEMPTS", "LAST OUTCOME", "NEXT", "SPEND",
        "UPDATED")  # fmt: skip


def table(store: Store, max_attempts: int, limit: int) -> list[str]:
    """The `limit` most recently updated issues and pull requests, one line each."""
    items = work_items.read_items(store)[:limit]
    spent = work_items.spend_of(store.redis, items)
    rows = [HEAD]
    for item in items:
        updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(item.updated))
        rows.append(
            (item.repo, work_items.name(item), cell(work_items.heading(item) or "—", 40),
             item.state, work_items.tries(item, max_attempts), cell(item.outcome, 70),
             cell(item.next_step, 50), spend.cost_cell(spent[item.key]), updated)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return lines if items else [*lines, "(no work yet)"]


def cell(words: str, limit: int) -> str:
    """One line of at most `limit` characters. Titles, outcomes and reasons carry an issue's,
    a CI log's or an agent's words: no control characters reach the operator's terminal."""
    flat = printable(words.replace("\n", " "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
