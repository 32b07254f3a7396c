"""What forgehand says on GitHub: a running task's `forgehand` check run, its status comment,
the words of comments and pull request bodies, and the plan comment on an epic. May import
app, jobs' top modules and jobs.boundary.
"""

from jobs.report import words
from jobs.report.epic_comment import MARKER, Progress, code, extract_yaml, render
from jobs.report.progress import (
    CheckRun,
    Heartbeat,
    checked,
    dashboard_url,
    noted_push,
    tell_ci,
)
from jobs.report.status import StatusComment
from jobs.report.words import working_line

__all__ = [
    "MARKER",
    "CheckRun",
    "Heartbeat",
    "Progress",
    "StatusComment",
    "checked",
    "code",
    "dashboard_url",
    "extract_yaml",
    "noted_push",
    "render",
    "tell_ci",
    "words",
    "working_line",
]
