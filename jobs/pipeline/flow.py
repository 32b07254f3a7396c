"""The pipeline's shape, once a task has its worktree."""

from __future__ import annotations

from dataclasses import dataclass

from app.github import Installation
from jobs.agents import runner as agent
from jobs.pipeline.context import Run
from jobs.pipeline.deliver import check_protected, commit, push
from jobs.pipeline.verify import agent_then_tests, setup


@dataclass(frozen=True)
class Change:
    commits: list[str]
    head: str  # the pushed commit, or "" when the agent changed nothing
    result: agent.AgentResult


def run(work: Run, api: Installation, prompt: str, message: str) -> Change:
    """`setup`, the agent and `test`; its work taken back as a commit, checked and pushed."""
    setup(work)
    result = agent_then_tests(work, prompt)
    commits = commit(work, message)
    if not commits:
        return Change([], "", result)
    check_protected(work)
    push(work, api)
    return Change(commits, work.tree.git(["rev-parse", "HEAD"]).strip(), result)
