"""A running task's progress where people look: a `forgehand` check run on a pull request's
head commit, or the status comment of an issue; refreshed at most every INTERVAL seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from app.github import GitHubError, Installation
from app.store import Store, spend
from app.tasks import Task
from jobs import ci
from jobs.boundary import Redactor
from jobs.errors import HANDED_BACK, Escalated, HandedBack, TaskFailed
from jobs.report import words as report

CHECK_NAME = "forgehand"
INTERVAL = 10.0
log = logging.getLogger("forgehand.task")


@dataclass
class Heartbeat:
    """While the agent runs, calls `publish` when it starts and every INTERVAL after, output
    or not: an agent silent for minutes shows as silent, not as gone."""

    publish: Callable[[Heartbeat], None]
    started: float = field(default_factory=time.monotonic)
    last_output: float = field(default_factory=time.monotonic)

    def output(self) -> None:
        self.last_output = time.monotonic()

    def line(self) -> str:
        now = time.monotonic()
        return report.working_line(now - self.started, now - self.last_output)

    @contextmanager
    def beating(self) -> Iterator[None]:
        self.started = self.last_output = time.monotonic()
        self._send()
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(INTERVAL):
                self._send()

        thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _send(self) -> None:
        try:
            self.publish(self)
        except Exception as exc:
            # Progress is a courtesy: failing to show it (GitHub, Redis) never stops the agent.
            log.warning("progress not shown: %s", exc)


def spend_line(store: Store, task_id: str) -> str:
    """`Model use: $0.42 · 1.2M tokens` for the task's run so far; "" before its first call."""
    record = store.get(task_id)
    used = spend.task_spend(store.redis, task_id, record.run) if record else spend.Spend()
    return f"Model use: {used.label()}" if used.calls else ""


def dashboard_url(public_url: str, task_id: str) -> str:
    return f"{public_url}/tasks/{task_id}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CheckRun:
    """The task's `forgehand` check run on one commit: in progress, then completed."""

    def __init__(
        self, api: Installation, store: Store, task: Task, sha: str, redactor: Redactor, url: str
    ) -> None:
        self.api, self.store, self.task, self.sha = api, store, task, sha
        self.redactor = redactor
        self.url = url
        self.run_id: int | None = None
        self.finished = False

    def _output(self, title: str, summary: str = "", log: str = "") -> dict[str, str]:
        clean = self.redactor.text
        steps = report.steps_so_far(self.store.events(self.task.id))
        spent = spend_line(self.store, self.task.id)
        return report.check_output(
            clean(title), clean(summary), clean(steps), self.url, clean(log), spent
        )

    def start(self) -> None:
        try:
            created = self.api.post(
                f"/repos/{self.task.repo}/check-runs",
                {
                    "name": CHECK_NAME, "head_sha": self.sha, "status": "in_progress",
                    "started_at": _now(), "details_url": self.url, "external_id": self.task.id,
                    "output": self._output("Working on it…"),
                },
            )  # fmt: skip
        except GitHubError as exc:
            # An installation from before `checks: write` refuses (403) until its owner
            # accepts the new permission; the task goes on without its check run.
            self.store.audit(self.task.id, "no check run", str(exc))
            return
        self.run_id = int(created["id"])
        self.store.set_check_run(self.task.id, self.run_id)

    def progress(self, beat: Heartbeat) -> None:
        self._patch({"output": self._output(beat.line())})

    def finish(self, conclusion: str, title: str, summary: str = "", log: str = "") -> None:
        self.finished = True
        if conclusion == "success":
            said = self._ci_words()
            conclusion, title = report.never_green_on_red(conclusion, title, self.sha, said)
        self._patch(
            {
                "status": "completed", "conclusion": conclusion, "completed_at": _now(),
                "output": self._output(title, summary, log),
            }
        )  # fmt: skip

    def _ci_words(self) -> str:
        """What is known of CI on the check run's commit, other than forgehand's own check."""
        if self.task.number and self.store.known_failed(
            self.task.repo_id, self.task.number, self.sha
        ):
            return "failed"
        try:
            return ci.verdict(*ci.read_checks(self.api, self.task.repo, self.sha)).words
        except GitHubError as exc:
            log.warning("CI on %s not read: %s", self.sha[:7], exc, extra={"task": self.task.id})
            return "unknown"

    def _patch(self, body: dict[str, object]) -> None:
        if self.run_id is None:
            return
        try:
            self.api.patch(f"/repos/{self.task.repo}/check-runs/{self.run_id}", body)
        except GitHubError as exc:
            # Showing progress is a courtesy: GitHub failing at it never fails the task
            # (nor, by raising, makes its work run twice).
            log.warning("check run not updated: %s", exc, extra={"task": self.task.id})


def retitle(
    api: Installation, store: Store, task_id: str, repo: str, title: str, redactor: Redactor,
    conclusion: str | None = None,
) -> None:  # fmt: skip
    """Give a finished task's check run a new title (what became of its work since), its
    summary kept, and `conclusion` if given. The title may name the repository's checks: it
    is redacted."""
    run_id = store.check_run(task_id)
    if run_id is None:
        return
    try:
        run = api.get(f"/repos/{repo}/check-runs/{run_id}")
        summary = (run.get("output") or {}).get("summary") or ""
        output = {"title": report.defuse(redactor.text(title))[:200], "summary": summary}
        body: dict[str, object] = {"output": output}
        if conclusion is not None and run.get("status") == "completed":
            body["conclusion"] = conclusion
        api.patch(f"/repos/{repo}/check-runs/{run_id}", body)
    except GitHubError as exc:
        log.warning("check run %s not retitled: %s", run_id, exc, extra={"task": task_id})


def tell_ci(
    api: Installation, store: Store, task: Task, sha: str, words: str, redactor: Redactor
) -> bool:
    """The check run of the task that pushed `sha` on `task`'s pull request now says what CI
    said of it (`words`: "passed", "failed (unit, lint)", …); False when no task has noted
    pushing it (one still pushing it tells the words itself: noted_push)."""
    pushed = store.tell_pushed(task.repo_id, task.number, sha, words)
    if pushed is None:
        return False
    title = report.ci_title(pushed["lead"], words)
    record = store.get(pushed["task"])
    sits_on = record.task.sha if record is not None else ""
    # CI's results are kept past the reset that green CI makes: facts about commits.
    on_red = bool(sits_on) and store.ci_result(task.repo_id, task.number, sits_on).startswith(
        "failed"
    )
    conclusion = report.ci_conclusion(words, on_red)
    retitle(api, store, pushed["task"], task.repo, title, redactor, conclusion)
    return True


def noted_push(
    api: Installation, store: Store, task: Task, number: int, sha: str, lead: str,
    redactor: Redactor,
) -> None:  # fmt: skip
    """`task` pushed `sha` to pull request `number`, and its check run says so: from now on CI's
    verdict on the commit retitles that run, and one given while the push was being made is
    told now."""
    words = store.note_pushed(task.repo_id, number, sha, task.id, lead)
    if words:
        tell_ci(api, store, replace(task, number=number), sha, words, redactor)


@contextmanager
def checked(check: CheckRun) -> Iterator[CheckRun]:
    """Run the body with `check` in progress; complete it however the body ends, unless the
    body completed it itself (with its own words)."""
    check.start()
    try:
        yield check
    except Escalated as exc:
        _last_word(check, "failure", "Out of attempts: handed to a human", str(exc))
        raise
    except TaskFailed as exc:
        tail = exc.log or "\n".join(check.store.log_tail(check.task.id, report.EXCERPT_LINES))
        _last_word(check, "failure", str(exc), log=tail)
        raise
    except HandedBack:
        _last_word(check, "neutral", HANDED_BACK)
        raise
    except BaseException as exc:
        _last_word(check, "neutral", "Stopped by an error; it may be run again", repr(exc)[:300])
        raise
    if not check.finished:
        check.finish("success", "Done")


def _last_word(
    check: CheckRun, conclusion: str, title: str, summary: str = "", log: str = ""
) -> None:
    if not check.finished:
        check.finish(conclusion, title, summary, log)
