"""The agent boundary: everything a repository controls runs on its far side.

Jail a command (`Sandbox`), its only ways out (the egress proxy and its bridge, the model
gateway), take its result back as data (the pack made inside, the hand-off checked outside, tree
limits and capped reads), and forgehand's own hardened git, protected paths and redaction.
May import app.settings, app.parsing, jobs.errors and jobs.workspace; nothing else of jobs.
"""

from jobs.boundary import handoff, protected
from jobs.boundary.bounded import kill_group, spawn
from jobs.boundary.gateway import Admit, Gateway, Meter, agent_variables, new_placeholder, upstreams
from jobs.boundary.handoff import EXCLUDES
from jobs.boundary.own_git import GitError, git, git_capped
from jobs.boundary.protected import printable
from jobs.boundary.redact import Redactor, redactor_for
from jobs.boundary.sandbox import UNSAFE_WARNING, Sandbox, SandboxUnavailable
from jobs.boundary.tree_limits import Limits, disk_used
from jobs.boundary.usage import Api, Usage

__all__ = [
    "EXCLUDES",
    "UNSAFE_WARNING",
    "Admit",
    "Api",
    "Gateway",
    "GitError",
    "Limits",
    "Meter",
    "Redactor",
    "Sandbox",
    "SandboxUnavailable",
    "Usage",
    "agent_variables",
    "disk_used",
    "git",
    "git_capped",
    "handoff",
    "kill_group",
    "new_placeholder",
    "printable",
    "protected",
    "redactor_for",
    "spawn",
    "upstreams",
]
