"""The fleet's side of a task: what an agent pull request that opened, moved or closed changes
for the others (files touched, overlaps, the plan), and whether a labelled issue may start or
waits. The decisions themselves are app.fleet's. May import app, jobs' top modules,
jobs.boundary and jobs.report.
"""

from jobs.fleet import overlap, pulls, waiting
from jobs.fleet.overlap import post_or_edit

__all__ = [
    "overlap",
    "post_or_edit",
    "pulls",
    "waiting",
]
