"""Which proxies the web process believes about the client's address: FORWARDED_ALLOW_IPS,
read from .env as from the environment, with a real `forgehand web`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis import Redis
from starlette.testclient import TestClient

from app.cli.common import web_config
from app.settings import Settings, SettingsError, parse
from app.web import create_app
from simulator.sandbox import free_port, stop_process, wait_healthy
from tests import fakes
from tests import payloads as p

ROOT = Path(__file__).resolve().parents[3]
FORWARDED = {"X-Forwarded-For": "203.0.113.9"}


@pytest.mark.parametrize(
    ("allow", "status"),
    [
        # The default believes a proxy on this machine: the client is 203.0.113.9, a stranger.
        (None, 403),
        # Another proxy on this machine is believed; this request's, from 127.0.0.1, is not.
        ("127.0.0.2", 200),
    ],
)
def test_forwarded_for_counts_only_from_the_allowed_proxies(
    redis_url: str, tmp_path: Path, allow: str | None, status: int
) -> None:
    port = free_port()
    env_file = {
        "WEBHOOK_SECRET": p.SECRET, "REDIS_URL": redis_url, "APP_ID": str(p.APP_ID),
        "PORT": str(port),
    }  # fmt: skip
    if allow is not None:
        env_file["FORWARDED_ALLOW_IPS"] = allow
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env_file.items()))
    drop = ("REDIS_URL", "WEBHOOK_SECRET", "FORWARDED_ALLOW_IPS", "DASHBOARD_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {"PRIVATE_KEY": fakes.app_key()[0], "PYTHONPATH": str(ROOT)}
    with (tmp_path / "web.log").open("wb") as log:
        web = subprocess.Popen(
            [sys.executable, "-m", "app", "web"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/healthz")
        assert httpx.get(f"{url}/", headers=FORWARDED).status_code == status
        assert httpx.get(f"{url}/").status_code == 200  # from this machine, nothing forwarded
    finally:
        stop_process(web)


AFAR = ("198.51.100.7", 40000)  # a client off this machine
THIS_MACHINE = {"X-Forwarded-For": "127.0.0.1"}  # what it claims


def through_uvicorn(settings: Settings, redis: Redis) -> TestClient:
    """The web process as `forgehand web` serves it, behind uvicorn's own middleware."""
    config = web_config(settings, create_app(settings, redis))
    config.load()
    return TestClient(config.loaded_app, client=AFAR, base_url=fakes.LOCAL_URL)


@pytest.mark.parametrize("allow", ["*", "198.51.100.0/24", "198.51.100.7"])
def test_a_client_afar_claiming_to_be_this_machine_never_sees_the_dashboard(
    redis: Redis, allow: str
) -> None:
    source = {"WEBHOOK_SECRET": p.SECRET, "FORWARDED_ALLOW_IPS": allow}
    refused = pytest.raises(SettingsError, match="DASHBOARD_PASSWORD is required when FORWARDED")
    # Taken, these settings would believe the claim, and "only this machine" would let it in.
    with refused, through_uvicorn(parse(source), redis) as c:
        assert c.get("/", headers=THIS_MACHINE).status_code != 200
    with through_uvicorn(parse(source | {"DASHBOARD_PASSWORD": "sesame"}), redis) as c:
        assert c.get("/", headers=THIS_MACHINE).status_code == 401
        assert c.get("/", headers=THIS_MACHINE, auth=("", "sesame")).status_code == 200
