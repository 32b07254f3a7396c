"""Serving with uvicorn until a signal stops it, and exiting as stopped by that signal."""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

import uvicorn


class Server(uvicorn.Server):
    """A uvicorn server that remembers the signal that stopped it; `before_exit` runs first
    (`dev` stops its worker while the web process still runs)."""

    def __init__(
        self, config: uvicorn.Config, before_exit: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.before_exit = before_exit
        self.stopped_by = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit and self.before_exit is not None:
            self.before_exit()
        self.stopped_by = self.stopped_by or sig
        super().handle_exit(sig, frame)


def run(server: Server) -> None:
    """Serve until asked to stop; stopped by a signal, exit as stopped by it (130 for Ctrl-C).
    uvicorn raises the signal again once it has shut down, but asyncio's runner can take that
    for the cancel of a task that then finishes, and the process went on to exit 0 or 1."""
    server.run()
    if server.stopped_by:
        raise SystemExit(128 + server.stopped_by)
