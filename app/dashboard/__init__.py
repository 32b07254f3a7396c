"""The dashboard: the work (issues and pull requests) and its tasks, a task's page, the plan
page and the spend page, with the frame and style they share.

Reads what the worker and the webhook recorded; writes only what a person asks (cancel, retry).
May import app's shared modules, app.store and app.fleet.
"""

from app.dashboard import routes, work_text
from app.dashboard.pages import page
from app.dashboard.plan import plan_page
from app.dashboard.routes import web_base
from app.dashboard.usage import usage_page

__all__ = [
    "page",
    "plan_page",
    "routes",
    "usage_page",
    "web_base",
    "work_text",
]
