"""The repository's own checks around the agent: `setup` before it, `test` after it, and the
failure of `test` shown to the agent once."""

from __future__ import annotations

from jobs.agents import prompts
from jobs.agents import runner as agent
from jobs.errors import TaskFailed
from jobs.pipeline.agent import run_agent, shell
from jobs.pipeline.context import Run


def setup(work: Run) -> None:
    command = work.repo.config.setup
    if command:
        result = shell(work, "setup", command)
        if not result.ok:
            raise TaskFailed(f"The setup command `{command}` failed.", result.tail)


def agent_then_tests(work: Run, prompt: str) -> agent.AgentResult:
    """Run the agent; if `test` fails afterwards, show it the failure once more."""
    result = run_agent(work, prompt)
    test = work.repo.config.test
    if not test:
        return result
    checked = shell(work, "test", test)
    if checked.ok:
        return result
    work.ctx.store.audit(work.task.id, "test failed", "feeding the failure back to the agent")
    result = run_agent(work, prompts.test_feedback_prompt(test, checked.tail))
    checked = shell(work, "test", test)
    if not checked.ok:
        raise TaskFailed(
            f"The test command `{test}` still fails after the agent's fix.", checked.tail
        )
    return result
