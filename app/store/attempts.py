"""What forgehand learnt of CI on a pull request: its fix attempts, whether it escalated to
people, and the results on each commit."""

from __future__ import annotations

import json
from typing import Any

from app.store.keys import Records, pull_key, text

# CI's results and who pushed each commit outlive the pull request's attempts (the dashboard
# shows them), but not for ever: gone this long after the pull request's last write.
FACTS_KEPT = 400 * 86400

# KEYS: the pull request's pushed, pushing and waiting hashes. ARGV: the commit, CI's words on
# it, how long they are kept. One step, so that a task noting its push in between (one MULTI)
# either is read here or reads the words left for it.
TELL_PUSHED = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then return entry end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return false
"""


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

    def note_pushing(self, repo_id: int, number: int, sha: str, task_id: str) -> None:
        """`task_id` is about to push `sha`: CI may finish on it before the task has noted
        the push (note_pushed), and what CI said must then wait for it, not be dropped."""
        with self.redis.pipeline() as pipe:
            pipe.hset(pull_key(repo_id, number, "pushing"), sha, task_id)
            pipe.expire(pull_key(repo_id, number, "pushing"), FACTS_KEPT)
            pipe.execute()

    def not_pushing(self, repo_id: int, number: int, sha: str) -> None:
        """The push of `sha` was refused: nothing of it reached GitHub."""
        self.redis.hdel(pull_key(repo_id, number, "pushing"), sha)

    def note_pushed(self, repo_id: int, number: int, sha: str, task_id: str, lead: str) -> str:
        """`task_id` pushed `sha`; its check run's title is `lead` followed by what CI says of
        the commit. Kept past a reset, like CI's results. Returns what CI said of it while the
        push was being made ("" when nothing), which the task is to tell."""
        entry = json.dumps({"task": task_id, "lead": lead})
        with self.redis.pipeline() as pipe:
            pipe.hset(pull_key(repo_id, number, "pushed"), sha, entry)
            pipe.expire(pull_key(repo_id, number, "pushed"), FACTS_KEPT)
            pipe.hdel(pull_key(repo_id, number, "pushing"), sha)
            pipe.hget(pull_key(repo_id, number, "waiting"), sha)
            pipe.hdel(pull_key(repo_id, number, "waiting"), sha)
            told = pipe.execute()[3]
        return text(told) if told else ""

    def ours(self, repo_id: int, number: int, sha: str) -> bool:
        """Whether a task of forgehand's pushed `sha`, or is pushing it."""
        # Two reads, between which note_pushed can move `sha` from pushing to pushed (never
        # back): read in that order, one of them sees it; the other way round, neither may.
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hexists(pull_key(repo_id, number, "pushing"), sha)
            pipe.hexists(pull_key(repo_id, number, "pushed"), sha)
            return any(pipe.execute())

    def tell_pushed(self, repo_id: int, number: int, sha: str, words: str) -> dict[str, str] | None:
        """The task that pushed `sha` and its check run's title lead, to tell CI's `words`
        to; None when no task has noted pushing it: one that is still pushing it finds the
        words when it does (note_pushed)."""
        keys = [pull_key(repo_id, number, k) for k in ("pushed", "pushing", "waiting")]
        raw = self.redis.eval(TELL_PUSHED, 3, *keys, sha, words, FACTS_KEPT)
        return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else None

    def escalated(self, repo_id: int, number: int) -> bool:
        return bool(self.redis.exists(pull_key(repo_id, number, "escalated")))

    def set_escalated(self, repo_id: int, number: int) -> None:
        self.redis.set(pull_key(repo_id, number, "escalated"), "1")
