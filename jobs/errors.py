"""Failures a task reports to people, as opposed to bugs and outages."""


class TaskFailed(Exception):
    """The task cannot succeed; the message says why in words for the status comment."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log
