"""Registering the App through GitHub's manifest flow (`forgehand setup`, `GET /setup`).

The page posts app.yml, with this server's URLs filled in, to GitHub's "new App" form; GitHub
sends the browser back with a code, which is exchanged for the App's id, key and secrets; those
are written to .env, leaving every other line of it as it was. Where that file would not be kept
(a container's, SETUP_ENV_FILE=-), the last page shows them as a .env block to copy instead.
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


def _kept_where(env_file: Path | None) -> str:
    if env_file is None:
        return ("then shows them here to copy into your <code>.env</code>: this server's files "
                "are not kept (<code>SETUP_ENV_FILE=-</code>), so it writes nothing")  # fmt: skip
    return f"then writes its id, key and secrets to <code>{escape(str(env_file))}</code>"


def setup_page(
    settings: Settings, base_url: str, org: str, state: str, env_file: Path | None
) -> str:
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
<code>{escape(hook)}</code>, {_kept_where(env_file)}.</p>
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


def env_values(app: dict[str, Any]) -> dict[str, str]:
    return {
        "APP_ID": str(app["id"]),
        # One line, as the settings accept it: literal \n inside the quotes.
        "PRIVATE_KEY": app["pem"].strip().replace("\n", "\\n"),
        "WEBHOOK_SECRET": app["webhook_secret"],
        "GITHUB_CLIENT_ID": app.get("client_id") or "",
        "GITHUB_CLIENT_SECRET": app.get("client_secret") or "",
    }


def write_env(env_file: Path, app: dict[str, Any]) -> None:
    env_file.touch(mode=0o600, exist_ok=True)
    for key, value in env_values(app).items():
        set_key(env_file, key, value, quote_mode="always")


def env_block(app: dict[str, Any]) -> str:
    """The lines write_env would write, quoted as it quotes them."""
    quoted = {key: value.replace("'", "\\'") for key, value in env_values(app).items()}
    return "".join(f"{key}='{value}'\n" for key, value in quoted.items())


def routes(settings: Settings, env_file: Path | None, on_done: Any = None) -> list[Route]:
    """`env_file`: where the App's settings are written; None: shown on the last page."""
    states: set[str] = set()

    async def page(request: Request) -> Response:
        if configured(settings):
            return HTMLResponse("forgehand is already registered (APP_ID is set).", 404)
        state = secrets.token_urlsafe(16)
        states.add(state)
        base = str(request.base_url).rstrip("/")
        org = request.query_params.get("org", "")
        return HTMLResponse(setup_page(settings, base, org, state, env_file))

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
        if env_file is not None:
            await run_in_threadpool(write_env, env_file, app)
        if on_done is not None:
            on_done()
        install = f"{app['html_url']}/installations/new"
        body = (
            f"<h1>{escape(app['slug'])} is registered</h1>{_where_they_are(env_file, app)}"
            f"<p><a id='install' href='{escape(install)}'>Install it on a repository</a></p>"
        )
        # The App's key may be on it: no cache keeps a copy.
        return HTMLResponse(styled("forgehand is registered", body),
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    return [
        Route("/setup", page, methods=["GET"]),
        Route("/setup/callback", callback, methods=["GET"]),
    ]


def _where_they_are(env_file: Path | None, app: dict[str, Any]) -> str:
    if env_file is not None:
        return (
            f"<p>APP_ID, PRIVATE_KEY and WEBHOOK_SECRET are in "
            f"<code>{escape(str(env_file))}</code>. Restart forgehand to use them.</p>"
        )
    return f"""<p><strong>Nothing was written</strong>: this server's files are not kept
(<code>SETUP_ENV_FILE=-</code>, as in forgehand's image). Copy these lines into the
<code>.env</code> that forgehand reads (compose's, on the host), then start it again. They hold
the App's private key: this page is their only copy.</p>
<pre id="env">{escape(env_block(app))}</pre>"""


def setup_app(settings: Settings, env_file: Path | None, on_done: Any = None) -> Starlette:
    return Starlette(routes=routes(settings, env_file, on_done))
