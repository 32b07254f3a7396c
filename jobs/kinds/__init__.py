"""One module per kind of task (SPEC §4): resolve an issue, fix CI, address a review, run an
`/agent` command, resolve a conflict, plan an epic, re-run, and what follows a closed pull
request. Each is called by jobs.entry and runs its work through jobs.pipeline.
"""

from jobs.kinds.after_close import closed, fork_notice
from jobs.kinds.ci_fix import fix_ci
from jobs.kinds.commands import run_command
from jobs.kinds.conflict import check_base, resolve_conflict
from jobs.kinds.planning import approve, plan_epic, recheck
from jobs.kinds.rerun_check import rerun
from jobs.kinds.resolve import resolve_issue
from jobs.kinds.review import address_review
from jobs.kinds.verdict import tell_verdict

__all__ = [
    "address_review",
    "approve",
    "check_base",
    "closed",
    "fix_ci",
    "fork_notice",
    "plan_epic",
    "recheck",
    "rerun",
    "resolve_conflict",
    "resolve_issue",
    "run_command",
    "tell_verdict",
]
