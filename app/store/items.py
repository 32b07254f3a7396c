"""What the dashboard shows of an issue or pull request: its title, as a worker last read it."""

from __future__ import annotations

import json
from typing import Any

from app.store.keys import Records

ITEMS_KEY = "fh:items"


class Items(Records):
    def note_item(self, repo_id: int, number: int, title: str, pull: bool) -> None:
        """An issue's or pull request's title, as a worker last read it."""
        data = json.dumps({"title": title[:300], "pull": pull})
        self.redis.hset(ITEMS_KEY, f"{repo_id}:{number}", data)

    def items(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
        """The titles (and whether each is a pull request) of the given issues and pull
        requests, where a worker noted them."""
        if not keys:
            return {}
        raw = self.redis.hmget(ITEMS_KEY, [f"{r}:{n}" for r, n in keys])
        return {key: json.loads(value) for key, value in zip(keys, raw, strict=True) if value}
