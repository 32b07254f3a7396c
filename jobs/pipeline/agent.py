"""The agent's step: it, `setup` or `test` run in the sandbox on the task's tree, metered
against the budget, its output redacted into the task's log, and its ending judged."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

from app import budget
from app.store import observe_agent, spend
from jobs.agents import PRESETS, Preset
from jobs.agents import runner as agent
from jobs.boundary import UNSAFE_WARNING, protected
from jobs.errors import AgentConfigError, BudgetStopped, TaskFailed
from jobs.pipeline.context import Run, pgid_file_for
from jobs.pipeline.sandboxed import run_sandboxed
from jobs.spend import Caps, TaskMeter

CHANGED_SHOWN = 50  # paths of an unfinished change listed in the log at most
CHANGED_LISTING_LIMIT = 1024 * 1024


def run_agent(work: Run, prompt: str) -> agent.AgentResult:
    prompt_file = work.tree.task_dir / "prompt.md"
    prompt_file.write_text(prompt)
    # The task page shows the last prompt; issue text in it is shown escaped.
    work.ctx.store.set_prompt(work.task.id, work.redactor.text(prompt))
    config = work.repo.config
    name = config.agent or work.settings.agent
    command = config.agent_command if config.agent else work.settings.agent_command
    try:
        argv = agent.argv_for(name, command, prompt_file, work.tree.path)
        agent.check_keys(name, work.settings.agent_env, os.environ)
    except AgentConfigError as exc:
        raise TaskFailed(str(exc)) from None
    work.ctx.store.audit(work.task.id, "agent", " ".join(argv[:3]))
    try:
        # Only a repository's own `agent: command` is untrusted; presets and the
        # operator's AGENT_COMMAND may have their programs shown to the sandbox.
        trusted = config.agent != "command"
        preset = PRESETS.get(name)
        with work.heartbeat.beating() if work.heartbeat else nullcontext():
            result = _process(work, argv, prompt, (prompt_file,), trusted, preset)
    except AgentConfigError as exc:
        raise TaskFailed(str(exc)) from None
    observe_agent(work.ctx.store.redis, result.seconds)
    if result.stopped:
        # The budget's refusal reaches the CLI as an API error; whatever it did with it,
        # the budget is the reason. What it had done is in its log.
        said = (
            result.stopped if result.stopped.startswith("stopped") else f"stopped: {result.stopped}"
        )
        _changed_so_far(work)
        raise BudgetStopped(f"The agent {said}.", result.tail)
    if result.killed == "timeout":
        raise TaskFailed(
            f"The agent ran longer than {result.seconds:.0f}s and was stopped.", result.tail
        )
    if result.killed == "idle":
        raise TaskFailed(
            f"The agent printed nothing and changed nothing for "
            f"{work.settings.agent_idle_timeout}s and was judged stuck.",
            result.tail,
        )
    if result.exit_code != 0:
        said = result.complaint
        reason = f"The agent exited with status {result.exit_code}"
        raise TaskFailed(f"{reason}: {said}" if said else f"{reason}.", result.tail)
    return result


def shell(work: Run, label: str, command: str) -> agent.AgentResult:
    """The repository's `setup` or `test` command, sandboxed like the agent."""
    work.ctx.store.audit(work.task.id, label, command)
    work.ctx.store.append_log(work.task.id, [f"$ {command}"])
    return _process(work, ["sh", "-c", command], "")


def _meter(work: Run) -> TaskMeter:
    """The meter of this task's run and attempt as they stand, with its caps."""
    store, task = work.ctx.store, work.task
    record = store.get(task.id)
    config, settings = work.repo.config, work.settings
    raised = spend.raised_cap(store.redis, task.repo_id, task.number)
    where = spend.Where(
        task.id, record.run if record else 0, record.attempt if record else 0,
        task.installation_id, task.repo, config.agent or settings.agent,
    )  # fmt: skip
    caps = Caps(
        task=budget.task_cap(settings.max_cost_per_task, config.max_cost_per_task, raised),
        day=settings.max_cost_per_day, repo_day=config.max_cost_per_day,
    )  # fmt: skip
    return TaskMeter(
        store.redis, where, settings.prices, caps,
        say=lambda line: store.append_log(task.id, [line]),
    )  # fmt: skip


def _process(
    work: Run,
    argv: list[str],
    prompt: str,
    files: tuple[Path, ...] = (),
    trusted: bool = False,
    preset: Preset | None = None,
) -> agent.AgentResult:
    timeout = work.repo.config.timeout or work.settings.agent_timeout
    sandbox, store = work.ctx.sandbox, work.ctx.store
    if not sandbox.contained:
        store.audit(work.task.id, "unsandboxed", UNSAFE_WARNING)
    metered = _meter(work)

    def output(lines: list[str]) -> None:
        store.append_log(work.task.id, work.redactor.lines(lines))
        if work.heartbeat is not None:
            work.heartbeat.output()

    def refused(line: str) -> None:
        # The host name is the agent's choice, and could carry a secret out.
        line = work.redactor.text(line)
        store.append_log(work.task.id, [line])
        store.audit(work.task.id, "egress refused", line)

    return run_sandboxed(
        sandbox, work.tree, argv, prompt, work.env(),
        files=files, trusted=trusted, preset=preset,
        repository_allow=work.repo.config.allow_hosts, admit=metered.admit, meter=metered.record,
        log_path=work.ctx.workspaces.log_path(work.task.id),
        timeout=timeout, idle_timeout=min(work.settings.agent_idle_timeout, timeout),
        on_output=output,
        on_refused=refused,
        pgid_file=pgid_file_for(work.ctx.workspaces, os.getpid()),
    )  # fmt: skip


def _changed_so_far(work: Run) -> None:
    """Put in the task's log what the agent had changed when its budget stopped it (its work
    is not committed: the log is where it is kept)."""
    # The agent decides how many paths there are: their listing is read with a cap.
    status, cut = work.tree.capped(
        ["status", "--porcelain", "--untracked-files=all"], CHANGED_LISTING_LIMIT, work_tree=True
    )
    paths = status.splitlines()[:-1] if cut else status.splitlines()
    shown = [protected.printable(line) for line in paths[:CHANGED_SHOWN]]
    more = [f"… and {len(paths) - CHANGED_SHOWN} more"] if len(paths) > CHANGED_SHOWN else []
    count = f"more than {len(paths)}" if cut else str(len(paths))
    lines = [f"forgehand: the agent had changed {count} paths when it was stopped:"]
    work.ctx.store.append_log(work.task.id, work.redactor.lines(lines + shown + more))
