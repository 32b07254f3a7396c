"""The App's installations and the repositories each covers, the App's slug, and the bots each
repository allows to start tasks (read with a delivery's claim)."""

from __future__ import annotations

from collections.abc import Iterable

from app.store.keys import APP_SLUG, INSTALLATIONS, REPOS, Records, allowed_bots_key
from app.tasks import InstallationChange


class Installations(Records):
    def apply_installation(self, change: InstallationChange) -> None:
        with self.redis.pipeline() as pipe:
            if change.uninstalled:
                pipe.srem(INSTALLATIONS, str(change.installation_id))
                for repo, owner in self.redis.hgetall(REPOS).items():
                    if int(owner) == change.installation_id:
                        pipe.hdel(REPOS, repo)
            else:
                pipe.sadd(INSTALLATIONS, str(change.installation_id))
            for added, _name in change.added:
                pipe.hset(REPOS, str(added), str(change.installation_id))
            for removed in change.removed:
                pipe.hdel(REPOS, str(removed))
            pipe.execute()

    def installation_for(self, repo_id: int) -> int | None:
        value = self.redis.hget(REPOS, str(repo_id))
        return int(value) if value is not None else None

    def set_app_slug(self, slug: str) -> None:
        self.redis.set(APP_SLUG, slug)

    def set_allowed_bots(self, repo_id: int, bots: Iterable[str]) -> None:
        key = allowed_bots_key(repo_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            names = list(bots)
            if names:
                pipe.sadd(key, *names)
            pipe.execute()
