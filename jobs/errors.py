"""Failures a task reports to people, as opposed to bugs and outages."""


class TaskFailed(Exception):
    """The task cannot succeed; the message says why in words for the status comment."""
