"""What forgehand learnt of CI on a pull request: its fix attempts, whether it escalated to
people, and the results on each commit."""

from __future__ import annotations

import json
from typing import Any

from app.store.keys import Records, pull_key, text

# CI's results and who pushed each commit outlive the pull request's attempts (the dashboard
# shows them), but not for ever: gone this long after the pull request's last write.
FACTS_KEPT = 400 * 86400


class Attempts(Records):
    def attempts(self, repo_id: int, number: int) -> list[dict[str, Any]]:
        raw = self.redis.lrange(pull_key(repo_id, number, "attempts"), 0, -1)
        return [json.loads(a) for a in raw]

    def add_attempt(self, repo_id: int, number: int, entry: dict[str, Any]) -> int:
        return int(self.redis.rpush(pull_key(repo_id, number, "attempts"), json.dumps(entry)))

    def reset_attempts(self, repo_id: int, number: int, sha: str = "") -> bool:
        """Forget attempts and escalation; with `sha`, only if that commit never failed."""
        if sha and self.known_failed(repo_id, number, sha):
            return False
        with self.redis.pipeline() as pipe:
            pipe.delete(
                *(pull_key(repo_id, number, p) for p in ("attempts", "escalated", "failed"))
            )
            if sha:
                pipe.hset(pull_key(repo_id, number, "ci"), sha, "passed")
                pipe.expire(pull_key(repo_id, number, "ci"), FACTS_KEPT)
            pipe.execute()
        return True

    def tracked(self, repo_id: int, number: int) -> bool:
        """Whether this Redis knows the pull request's attempts (it may have been emptied)."""
        return bool(self.redis.exists(pull_key(repo_id, number, "tracked")))

    def restore_attempts(
        self, repo_id: int, number: int, entries: list[dict[str, Any]], escalated: bool
    ) -> None:
        attempts = pull_key(repo_id, number, "attempts")
        with self.redis.pipeline() as pipe:
            pipe.delete(attempts, pull_key(repo_id, number, "escalated"))
            if entries:
                pipe.rpush(attempts, *(json.dumps(e) for e in entries))
            if escalated:
                pipe.set(pull_key(repo_id, number, "escalated"), "1")
            pipe.set(pull_key(repo_id, number, "tracked"), "1")
            pipe.execute()

    def mark_failed(self, repo_id: int, number: int, sha: str, words: str = "failed") -> None:
        """CI failed on `sha`; `words` say how ("failed (unit, lint)"), for people."""
        with self.redis.pipeline() as pipe:
            pipe.sadd(pull_key(repo_id, number, "failed"), sha)
            pipe.hset(pull_key(repo_id, number, "ci"), sha, words)
            pipe.expire(pull_key(repo_id, number, "ci"), FACTS_KEPT)
            pipe.execute()

    def known_failed(self, repo_id: int, number: int, sha: str) -> bool:
        return bool(self.redis.sismember(pull_key(repo_id, number, "failed"), sha))

    def ci_results(self, repo_id: int, number: int) -> dict[str, str]:
        """What forgehand learnt of CI on the pull request's commits: SHA → "passed",
        "failed (unit, lint)". Kept past a reset: they are facts about commits."""
        raw = self.redis.hgetall(pull_key(repo_id, number, "ci"))
        return {text(k): text(v) for k, v in raw.items()}

    def ci_result(self, repo_id: int, number: int, sha: str) -> str:
        """What CI said of one commit ("" when nothing is known)."""
        return text(self.redis.hget(pull_key(repo_id, number, "ci"), sha) or b"")

    def note_pushed(self, repo_id: int, number: int, sha: str, task_id: str, lead: str) -> None:
        """`task_id` pushed `sha`; its check run's title is `lead` followed by what CI says of
        the commit. Kept past a reset, like CI's results."""
        entry = json.dumps({"task": task_id, "lead": lead})
        with self.redis.pipeline() as pipe:
            pipe.hset(pull_key(repo_id, number, "pushed"), sha, entry)
            pipe.expire(pull_key(repo_id, number, "pushed"), FACTS_KEPT)
            pipe.execute()

    def pushed_by(self, repo_id: int, number: int, sha: str) -> dict[str, str] | None:
        """The task that pushed `sha` and its check run's title lead, if a task did."""
        raw = self.redis.hget(pull_key(repo_id, number, "pushed"), sha)
        return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else None

    def escalated(self, repo_id: int, number: int) -> bool:
        return bool(self.redis.exists(pull_key(repo_id, number, "escalated")))

    def set_escalated(self, repo_id: int, number: int) -> None:
        self.redis.set(pull_key(repo_id, number, "escalated"), "1")
