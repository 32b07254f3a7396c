"""The web process: `create_app`, the one webhook endpoint (verify, dedupe, decide, enqueue),
the pure event → actions table, delivery tallies, the Host check and `/setup`.

It decides and enqueues; it never calls GitHub while a request is open and never runs git or an
agent. May import app's shared modules, app.store, app.fleet and app.dashboard.
"""

from app.web import serving, triggers
from app.web.main import create_app
from app.web.setup import MANIFEST_FILE, configured, setup_app
from app.web.triggers import command_verb

__all__ = [
    "MANIFEST_FILE",
    "command_verb",
    "configured",
    "create_app",
    "serving",
    "setup_app",
    "triggers",
]
