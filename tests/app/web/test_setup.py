from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
import pytest
import respx
import yaml
from dotenv import dotenv_values
from redis import Redis
from starlette.testclient import TestClient

from app.settings import load, parse
from app.web.main import create_app
from app.web.setup import MANIFEST_FILE, setup_app, unreachable
from tests import fakes
from tests import payloads as p
from tests.fakes import LOCAL_URL

CONVERSION = {
    "id": 31337, "slug": "my-forgehand", "html_url": "https://github.com/apps/my-forgehand",
    "pem": fakes.app_key()[0], "webhook_secret": "whsec", "client_id": "Iv1.abc",
    "client_secret": "shh",
}  # fmt: skip


def form(page: str) -> tuple[str, dict[str, object]]:
    action = html.unescape(re.search(r'action="([^"]+)"', page)[1])  # type: ignore[index]
    value = html.unescape(re.search(r'name="manifest" value="([^"]+)"', page)[1])  # type: ignore[index]
    return action, json.loads(value)


def test_page_posts_the_manifest_with_this_server_s_urls(tmp_path: Path) -> None:
    with TestClient(
        setup_app(parse({}), tmp_path / ".env"), base_url="http://me.example:3000"
    ) as c:
        action, manifest = form(c.get("/setup").text)
        org_action, _ = form(c.get("/setup?org=acme").text)
    assert action.startswith("https://github.com/settings/apps/new?state=")
    assert org_action.startswith("https://github.com/organizations/acme/settings/apps/new?state=")
    assert manifest["hook_attributes"] == {
        "url": "http://me.example:3000/api/github/webhooks",
        "active": True,
    }
    assert manifest["redirect_url"] == "http://me.example:3000/setup/callback"
    assert "issues" in manifest["default_events"]  # type: ignore[operator]


def test_callback_exchanges_the_code_and_keeps_other_env_lines(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# mine\nREDIS_URL=redis://localhost:6379/0\nAPP_ID=\n")
    finished: list[bool] = []
    with respx.mock(assert_all_called=True) as router:
        route = router.post("https://api.github.com/app-manifests/c0de/conversions").mock(
            return_value=httpx.Response(201, json=CONVERSION)
        )
        with TestClient(setup_app(parse({}), env, lambda: finished.append(True))) as c:
            action, _ = form(c.get("/setup").text)
            state = action.split("state=")[1]
            done = c.get(f"/setup/callback?code=c0de&state={state}")
            replay = c.get(f"/setup/callback?code=c0de&state={state}")
    assert route.call_count == 1 and finished == [True]
    assert done.status_code == 200
    assert "https://github.com/apps/my-forgehand/installations/new" in done.text
    assert replay.status_code == 400  # a state is good once
    text = env.read_text()
    assert text.startswith("# mine\nREDIS_URL=redis://localhost:6379/0\n")
    values = dotenv_values(env)
    assert values["APP_ID"] == "31337" and values["WEBHOOK_SECRET"] == "whsec"
    assert values["GITHUB_CLIENT_SECRET"] == "shh"
    settings = load({}, env)  # forgehand reads back what setup wrote
    assert settings.app_id == 31337 and settings.private_key == fakes.app_key()[0]


def test_where_its_file_would_not_be_kept_setup_shows_the_settings_to_copy(
    tmp_path: Path, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in forgehand's image, whose files go with its container (SETUP_ENV_FILE=-).
    monkeypatch.chdir(tmp_path)
    settings = parse({"WEBHOOK_SECRET": p.SECRET, "SETUP_ENV_FILE": "-"})
    with respx.mock(assert_all_called=True) as router:
        router.post("https://api.github.com/app-manifests/c0de/conversions").mock(
            return_value=httpx.Response(201, json=CONVERSION)
        )
        with TestClient(create_app(settings, redis), base_url=LOCAL_URL) as c:
            page = c.get("/setup").text
            action, _ = form(page)
            done = c.get(f"/setup/callback?code=c0de&state={action.split('state=')[1]}")
    assert "shows them here to copy" in page and "writes its id" not in page
    assert list(tmp_path.iterdir()) == []  # nothing written where it would be lost
    assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
    assert "Nothing was written" in done.text
    block = re.search(r'<pre id="env">(.*?)</pre>', done.text, re.S)
    assert block is not None
    copied = tmp_path / "host.env"
    copied.write_text(html.unescape(block[1]))
    values = dotenv_values(copied)
    assert values["WEBHOOK_SECRET"] == "whsec" and values["GITHUB_CLIENT_SECRET"] == "shh"
    taken = load({}, copied)  # pasted into the host's .env, it is read as written
    assert taken.app_id == 31337 and taken.private_key == fakes.app_key()[0]


def test_callback_without_our_state_is_refused(tmp_path: Path) -> None:
    with TestClient(setup_app(parse({}), tmp_path / ".env")) as c:
        assert c.get("/setup/callback?code=x&state=forged").status_code == 400
    assert not (tmp_path / ".env").exists()


def test_setup_is_closed_once_the_app_is_configured(redis: Redis) -> None:
    settings = parse({"WEBHOOK_SECRET": "s", "APP_ID": "1", "PRIVATE_KEY": fakes.app_key()[0]})
    with TestClient(create_app(settings, redis), base_url=LOCAL_URL) as c:
        assert c.get("/setup").status_code == 404
        assert c.get("/setup/callback?code=x&state=y").status_code == 404
    unconfigured = parse({"WEBHOOK_SECRET": p.SECRET})
    with TestClient(create_app(unconfigured, redis), base_url=LOCAL_URL) as c:
        assert c.get("/setup").status_code == 200


def test_page_lists_the_permissions_and_events_of_app_yml(tmp_path: Path) -> None:
    wanted = yaml.safe_load(MANIFEST_FILE.read_text())
    with TestClient(
        setup_app(parse({}), tmp_path / ".env"), base_url="https://hooks.example.com"
    ) as c:
        page = c.get("/setup").text
    assert "<style>" in page  # the dashboard's look
    for name, access in wanted["default_permissions"].items():
        assert f"<tr><td><code>{name}</code></td><td>{access}</td></tr>" in page
    for event in wanted["default_events"]:
        assert f"<li><code>{event}</code></li>" in page
    assert 'id="unreachable"' not in page


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:3000/hook", "127.0.0.1 is this machine"),
        ("http://localhost:3000/hook", "localhost is this machine"),
        ("http://[::1]:3000/hook", "::1 is this machine"),
        ("http://0.0.0.0:3000/hook", "0.0.0.0 is this machine"),
        ("http://192.168.1.20:3000/hook", "192.168.1.20 is a private address"),
        ("http://10.0.0.2/hook", "10.0.0.2 is a private address"),
        ("http://devbox:3000/hook", "devbox is a name only your own network knows"),
        ("http://nas.local/hook", "nas.local is a name only your own network knows"),
        ("https://hooks.example.com/hook", ""),
        ("https://calm-river.trycloudflare.com/hook", ""),
        ("http://8.8.8.8/hook", ""),
    ],
)
def test_unreachable_webhook_urls(url: str, why: str) -> None:
    assert unreachable(url) == why


def test_page_warns_when_github_cannot_reach_the_webhook(tmp_path: Path) -> None:
    with TestClient(setup_app(parse({}), tmp_path / ".env"), base_url="http://127.0.0.1:3000") as c:
        page = c.get("/setup").text
    assert 'id="unreachable"' in page
    assert "<code>http://127.0.0.1:3000/api/github/webhooks</code></strong>: 127.0.0.1 is" in page
    assert "cloudflared tunnel --url http://127.0.0.1:3000" in page
    assert "smee.io" in page
    # The form is still there: a tunnel's address can be set in the App's settings later.
    assert 'id="register"' in page
