"""The pull requests the App opened: which they are, the issue each answers, where each lives,
and the branch each open one merges into (a push to another branch starts nothing)."""

from __future__ import annotations

from redis.client import Pipeline

from app.store.keys import APP_PRS, Conn, Records, app_pr_member, pull_key, task_key, text

ISSUE_PR = "fh:issue_pr"  # "repo id:issue" → pull request number
PR_ISSUE = "fh:pr_issue"  # "repo id:pull request" → issue number


def bases_key(repo_id: int) -> str:
    return f"fh:pr_bases:{repo_id}"


class PullRequests(Records):
    def add_app_pull_request(
        self, repo_id: int, number: int, issue: int, repo: str, installation: int, base: str = "",
        task_id: str = "",
    ) -> None:  # fmt: skip
        """Record a pull request the App opened; with `task_id`, as the one that task's run
        opened (its issue's close then lets it finish)."""
        with self.redis.pipeline() as pipe:
            if task_id:
                pipe.hset(task_key(task_id), "pull", number)
            if base:
                self.note_base(repo_id, number, base, conn=pipe)
            pipe.sadd(APP_PRS, app_pr_member(repo_id, number))
            pipe.hset(pull_key(repo_id, number, "meta"),
                      mapping={"repo": repo, "installation": installation})  # fmt: skip
            pipe.hset(ISSUE_PR, f"{repo_id}:{issue}", number)
            pipe.hset(PR_ISSUE, f"{repo_id}:{number}", issue)
            pipe.set(pull_key(repo_id, number, "tracked"), "1")
            pipe.execute()

    def is_app_pull_request(self, repo_id: int, number: int) -> bool:
        return bool(self.redis.sismember(APP_PRS, app_pr_member(repo_id, number)))

    def open_app_pull_requests(self) -> list[tuple[int, int, str, int]]:
        """(repo id, number, repo, installation) of every pull request the App opened."""
        keys = [tuple(int(x) for x in text(m).split(":")) for m in self.redis.smembers(APP_PRS)]
        with self.redis.pipeline(transaction=False) as pipe:
            for repo_id, number in keys:
                pipe.hgetall(pull_key(repo_id, number, "meta"))
            metas = pipe.execute()
        found = []
        for (repo_id, number), meta in zip(keys, metas, strict=True):
            fields = {text(k): text(v) for k, v in meta.items()}
            if fields:
                found.append((repo_id, number, fields["repo"], int(fields["installation"])))
        return sorted(found)

    def forget_app_pull_request(self, repo_id: int, number: int) -> None:
        """Found closed by the sweep: no longer one of the App's open pull requests."""
        with self.redis.pipeline() as pipe:
            pipe.srem(APP_PRS, app_pr_member(repo_id, number))
            self.closed_pull_request(repo_id, number, conn=pipe)
            pipe.execute()

    def note_base(self, repo_id: int, number: int, base: str, conn: Conn | None = None) -> None:
        """The branch an open agent pull request merges into."""
        (conn if conn is not None else self.redis).hset(bases_key(repo_id), str(number), base)

    def closed_pull_request(self, repo_id: int, number: int, conn: Conn | None = None) -> None:
        """A closed agent pull request targets no branch any more (it stays the App's: its
        commands still answer, and the sweep forgets it)."""
        (conn if conn is not None else self.redis).hdel(bases_key(repo_id), str(number))

    def read_agent_bases(self, pipe: Pipeline, repo_id: int) -> None:
        """Queue the read of the base branches of the repository's open agent pull requests
        on the caller's pipeline (a push is decided with it)."""
        pipe.hvals(bases_key(repo_id))

    def pull_request_for_issue(self, repo_id: int, issue: int) -> int | None:
        value = self.redis.hget(ISSUE_PR, f"{repo_id}:{issue}")
        return int(value) if isinstance(value, bytes) else None

    def issue_for_pull_request(self, repo_id: int, number: int) -> int | None:
        value = self.redis.hget(PR_ISSUE, f"{repo_id}:{number}")
        return int(value) if isinstance(value, bytes) else None
