"""Faults with real processes: Redis stopped and restarted under a stream of deliveries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.redis_conn import connect, redis_server_binary
from app.store import Store
from simulator.sandbox import free_port, stop_process
from simulator.server import Server
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def start_redis(port: int, data: Path) -> subprocess.Popen[bytes]:
    # Appendfsync always: what was acknowledged survives the restart, as production Redis should.
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = connect(f"redis://127.0.0.1:{port}/0")
    wait_until(lambda: _pings(client), "private redis-server to start", 10)
    return proc


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    fake = fakes.FakeGitHub(clone_url="file:///nowhere")
    fake.permissions = {}  # every labeller lacks write access: tasks end at once, no git
    served = Server(fake)
    redis_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AGENT_ENV")} | {
        "WEBHOOK_SECRET": p.SECRET,
        "APP_ID": str(p.APP_ID),
        "PRIVATE_KEY": fakes.app_key()[0],
        "GITHUB_API_URL": served.api_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "WORKSPACES_DIR": str(tmp_path / "ws"),
        "PORT": str(web_port),
        "PYTHONPATH": str(ROOT),
        "AGENT": "command",
        "AGENT_COMMAND": "true",
    }
    data = tmp_path / "redis"
    data.mkdir()
    redis = start_redis(redis_port, data)
    procs = []
    for cmd in ("web", "worker"):
        with (tmp_path / f"{cmd}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app", cmd],
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    url = f"http://127.0.0.1:{web_port}"
    wait_until(lambda: _up(url), "forgehand web")
    try:
        yield url, redis_port, data
    finally:
        for proc in procs:
            stop_process(proc)
        served.stop()
        stop_process(redis)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_redis_restart_under_a_stream_loses_and_doubles_nothing(
    stack: tuple[str, int, Path],
) -> None:
    url, redis_port, data = stack
    accepted: dict[int, str] = {}
    refused = 0
    redis_proc: subprocess.Popen[bytes] | None = None
    with httpx.Client(timeout=10) as client:
        for n in range(1, 121):
            if n == 40:  # Redis goes away mid-stream ...
                connect(f"redis://127.0.0.1:{redis_port}/0").shutdown(save=False, nosave=False)
            if n == 80:  # ... and comes back with what it had acknowledged
                redis_proc = start_redis(redis_port, data)
            body = p.encode(p.issues(number=n))
            answer = client.post(
                f"{url}/api/github/webhooks",
                content=body,
                headers=p.headers("issues", body, f"stream-{n}"),
            )
            if answer.status_code == 202:
                accepted[n] = answer.json()["tasks"][0]
            else:
                assert answer.status_code == 503, answer.text
                refused += 1
            time.sleep(0.01)
    try:
        assert refused > 0 and len(accepted) + refused == 120
        store = Store(connect(f"redis://127.0.0.1:{redis_port}/0"))

        # The worker, never restarted, works through everything accepted; the job it was in
        # when Redis went away is taken over once its heartbeat lapses.
        def pending() -> list[str]:
            return [t for t in accepted.values() if not _finished(store, t)]

        deadline = time.monotonic() + 120
        while pending() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = pending()
        assert not left, [(t, store.get(t), store.events(t)) for t in left[:3]]
        for task_id in accepted.values():
            record = store.get(task_id)
            assert record is not None and record.run == 1  # exactly one task, run once
        assert len(store.recent(1000)) == len(accepted)
    finally:
        if redis_proc is not None:
            stop_process(redis_proc)


def _finished(store: Store, task_id: str) -> bool:
    record = store.get(task_id)
    return record is not None and not record.state.active
