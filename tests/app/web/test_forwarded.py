"""Which proxies the web process believes about the client's address: FORWARDED_ALLOW_IPS,
read from .env as from the environment, with a real `forgehand web`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

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
        # A proxy elsewhere is believed; this request's header, from 127.0.0.1, is not.
        ("10.0.0.2", 200),
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
