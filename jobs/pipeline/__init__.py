"""The pipeline tasks run through: workspace → agent → verify → commit → push → report.

Each kind of task (jobs/kinds) supplies what differs — the prompt, the branch, what to do with
the result — and runs the steps in between from here: `prepare` reads the repository and checks
the sender; in the task's worktree, a `Run` is given to each step, whose shape is `run`
(flow.py): `setup` and `agent_then_tests` (verify.py, running the agent of agent.py through
`run_sandboxed`, the sandbox's side of the boundary), then `commit`, `check_protected` and
`push` (deliver.py); `status_for`, `check_run_for` and `reported` show it on GitHub.
May import app, jobs.boundary, jobs.agents, jobs.report, jobs.spend, jobs.errors,
jobs.hand_back and jobs.workspace; the kinds, the fleet and the entry point import it.
"""

from jobs.pipeline.agent import run_agent
from jobs.pipeline.context import Context, Repo, Run, pgid_file_for
from jobs.pipeline.deliver import (
    changed_names,
    check_protected,
    commit,
    permission_refused,
    push,
    take,
)
from jobs.pipeline.flow import Change, run
from jobs.pipeline.prepare import branch_name, check_sender, config_problems, prepare
from jobs.pipeline.pulls import PullRequest, change_pull_request, find_pull, read_pull
from jobs.pipeline.reports import check_run_for, reported, status_for
from jobs.pipeline.sandboxed import run_sandboxed
from jobs.pipeline.verify import agent_then_tests, setup

__all__ = [
    "Change",
    "Context",
    "PullRequest",
    "Repo",
    "Run",
    "agent_then_tests",
    "branch_name",
    "change_pull_request",
    "changed_names",
    "check_protected",
    "check_run_for",
    "check_sender",
    "commit",
    "config_problems",
    "find_pull",
    "permission_refused",
    "pgid_file_for",
    "prepare",
    "push",
    "read_pull",
    "reported",
    "run",
    "run_agent",
    "run_sandboxed",
    "setup",
    "status_for",
    "take",
]
