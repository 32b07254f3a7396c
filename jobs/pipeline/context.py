"""What every step of a task's run reads: the worker's context, the repository as read, and
the run in its worktree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from app.github import App, Identity
from app.repo_config import RepoConfig
from app.settings import Settings
from app.store import Store
from app.tasks import Task
from jobs.agents import runner as agent
from jobs.boundary import Redactor, Sandbox, redactor_for
from jobs.report import Heartbeat
from jobs.workspace import Workspaces, Worktree


@dataclass(frozen=True)
class Context:
    store: Store
    settings: Settings
    app: App
    workspaces: Workspaces

    @cached_property
    def sandbox(self) -> Sandbox:
        return Sandbox(self.settings)


@dataclass(frozen=True)
class Repo:
    """What a task knows of its repository once it has read it and its config."""

    full_name: str
    clone_url: str
    default_branch: str
    config: RepoConfig
    problems: tuple[str, ...]

    @property
    def base_branch(self) -> str:
        return self.config.base_branch or self.default_branch


def pgid_file_for(workspaces: Workspaces, horse_pid: int) -> Path:
    """Where the job in work-horse `horse_pid` records its agent's process group."""
    return workspaces.run_dir / f"agent-{horse_pid}.pgid"


@dataclass
class Run:
    """One task's run in its worktree, which each step (jobs/pipeline/flow.py) is given."""

    task: Task
    ctx: Context
    repo: Repo
    tree: Worktree
    identity: Identity
    heartbeat: Heartbeat | None = None  # shows the agent's progress while it runs
    pull: int | None = None  # the pull request whose branch it pushes to, once there is one

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @cached_property
    def redactor(self) -> Redactor:
        return redactor_for(self.settings, self.ctx.app.token(self.task.installation_id))

    def env(self) -> dict[str, str]:
        return agent.agent_env(os.environ, self.settings.agent_env, self.who())

    def who(self) -> dict[str, str]:
        """The App's identity, which forgehand's commits carry."""
        return {
            "GIT_AUTHOR_NAME": self.identity.login,
            "GIT_AUTHOR_EMAIL": self.identity.email,
            "GIT_COMMITTER_NAME": self.identity.login,
            "GIT_COMMITTER_EMAIL": self.identity.email,
        }
