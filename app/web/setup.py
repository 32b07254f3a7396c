"""Registering the App through GitHub's manifest flow (`forgehand setup`, `GET /setup`).

The page posts app.yml, with this server's URLs filled in, to GitHub's "new App" form; GitHub
sends the browser back with a code, which is exchanged for the App's id, key and secrets; those
are written to .env, leaving every other line of it as it was.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from dotenv import set_key
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from app.dashboard import page as styled
from app.dashboard import web_base
from app.github import HEADERS
from app.parsing import is_loopback
from app.settings import Settings

MANIFEST_FILE = Path(__file__).parents[1] / "app.yml"
# Names that resolve only inside a home or company network.
LOCAL_SUFFIXES = (".local", ".lan", ".internal", ".home.arpa", ".localdomain")
ENV_KEYS = ("APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET", "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET")


def configured(settings: Settings) -> bool:
    return settings.app_id is not None and settings.private_key is not None


def manifest(base_url: str, webhook_path: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST_FILE.read_text())
    data["hook_attributes"] = {"url": f"{base_url}{webhook_path}", "active": True}
    data["redirect_url"] = f"{base_url}/setup/callback"
    data["url"] = data.get("url") or base_url
    return data


def new_app_url(settings: Settings, org: str) -> str:
    site = web_base(settings.github_api_url)
    if org:
        return f"{site}/organizations/{org}/settings/apps/new"
    return f"{site}/settings/apps/new"


def unreachable(url: str) -> str:
    """Why GitHub cannot deliver webhooks to `url`, or "" when it may."""
    host = (urlsplit(url).hostname or "").lower()
    if is_loopback(host):
        return f"{host} is this machine"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host.endswith(LOCAL_SUFFIXES):
            return f"{host} is a name only your own network knows"
        return ""
    if ip.is_unspecified:
        return f"{host} is this machine"
    if ip.is_private or ip.is_link_local or ip.is_reserved:
        return f"{host} is a private address"
    return ""


def _warning(hook: str) -> str:
    why = unreachable(hook)
    if not why:
        return ""
    port = urlsplit(hook).port or 80
    return f"""<div class="warn" id="unreachable"><p><strong>GitHub cannot reach
<code>{escape(hook)}</code></strong>: {escape(why)}, so no webhook would ever arrive.</p>
<p>Open this page through an address GitHub can reach; the App is registered with it:</p>
<ul><li>a public URL of this server (a host name or address on the internet);</li>
<li>a tunnel: <code>cloudflared tunnel --url http://127.0.0.1:{port}</code> prints a public
https address; open <code>/setup</code> there;</li>
<li>or a channel made on <a href="https://smee.io">smee.io</a> relayed here with
<code>npx smee-client --url https://smee.io/CHANNEL --target {escape(hook)}</code>; once the
App is registered, set its webhook URL to the channel in its settings on GitHub.</li></ul></div>"""


def setup_page(settings: Settings, base_url: str, org: str, state: str) -> str:
    action = f"{new_app_url(settings, org)}?state={state}"
    data = manifest(base_url, settings.webhook_path)
    hook = base_url + settings.webhook_path
    permissions = "".join(
        f"<tr><td><code>{escape(str(name))}</code></td><td>{escape(str(access))}</td></tr>"
        for name, access in (data.get("default_permissions") or {}).items()
    )
    events = "".join(
        f"<li><code>{escape(str(event))}</code></li>" for event in data.get("default_events") or []
    )
    body = f"""<h1>Register forgehand as a GitHub App</h1>
<p>This creates the App on GitHub from <code>app.yml</code>, with webhooks sent to
<code>{escape(hook)}</code>, then writes its id, key and secrets to <code>.env</code>.</p>
{_warning(hook)}
<h2>Permissions it asks for</h2><table id="permissions"><tr><th>Permission</th>
<th>Access</th></tr>{permissions}</table>
<h2>Events it subscribes to</h2><ul id="events">{events}</ul>
<p class="muted">Installation events are always sent to an App.</p>
<form id="register" method="post" action="{escape(action)}">
<input type="hidden" name="manifest" value="{escape(json.dumps(data))}">
<button type="submit">Create the GitHub App{" for " + escape(org) if org else ""}</button>
</form>
<p class="muted">For an organization, open <code>/setup?org=NAME</code> instead.</p>"""
    return styled("Register forgehand", body)


def exchange(settings: Settings, code: str) -> dict[str, Any]:
    """Trade the one-time code for the App's credentials (no authentication needed)."""
    url = f"{settings.github_api_url}/app-manifests/{code}/conversions"
    response = httpx.post(url, headers=HEADERS, timeout=30)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def write_env(env_file: Path, app: dict[str, Any]) -> None:
    values = {
        "APP_ID": str(app["id"]),
        # One line, as the settings accept it: literal \n inside the quotes.
        "PRIVATE_KEY": app["pem"].strip().replace("\n", "\\n"),
        "WEBHOOK_SECRET": app["webhook_secret"],
        "GITHUB_CLIENT_ID": app.get("client_id") or "",
        "GITHUB_CLIENT_SECRET": app.get("client_secret") or "",
    }
    env_file.touch(mode=0o600, exist_ok=True)
    for key, value in values.items():
        set_key(env_file, key, value, quote_mode="always")


def routes(settings: Settings, env_file: Path, on_done: Any = None) -> list[Route]:
    states: set[str] = set()

    async def page(request: Request) -> Response:
        if configured(settings):
            return HTMLResponse("forgehand is already registered (APP_ID is set).", 404)
        state = secrets.token_urlsafe(16)
        states.add(state)
        base = str(request.base_url).rstrip("/")
        org = request.query_params.get("org", "")
        return HTMLResponse(setup_page(settings, base, org, state))

    async def callback(request: Request) -> Response:
        if configured(settings):
            return HTMLResponse("forgehand is already registered (APP_ID is set).", 404)
        code = request.query_params.get("code", "")
        state = request.query_params.get("state", "")
        if not code or state not in states:
            return HTMLResponse("This link is not from the registration this server started.", 400)
        states.discard(state)
        try:
            app = await run_in_threadpool(exchange, settings, code)
        except httpx.HTTPError as exc:
            return HTMLResponse(f"GitHub refused the registration code: {escape(str(exc))}", 502)
        await run_in_threadpool(write_env, env_file, app)
        if on_done is not None:
            on_done()
        install = f"{app['html_url']}/installations/new"
        return HTMLResponse(
            styled(
                "forgehand is registered",
                f"<h1>{escape(app['slug'])} is registered</h1>"
                f"<p>APP_ID, PRIVATE_KEY and WEBHOOK_SECRET are in "
                f"<code>{escape(str(env_file))}</code>. Restart forgehand to use them.</p>"
                f"<p><a id='install' href='{escape(install)}'>Install it on a repository</a></p>",
            )
        )

    return [
        Route("/setup", page, methods=["GET"]),
        Route("/setup/callback", callback, methods=["GET"]),
    ]


def setup_app(settings: Settings, env_file: Path, on_done: Any = None) -> Starlette:
    return Starlette(routes=routes(settings, env_file, on_done))
