"""`forgehand dev` as a user runs it: a separate process with its embedded Redis and worker,
a signed delivery over HTTP, a fake GitHub served over HTTP, a real agent process and git."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from simulator.sandbox import free_port, stop_process
from simulator.server import Server
from tests import fakes
from tests import payloads as p
from tests.jobs.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "tests" / "agents" / "scripted.py"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_labelled_issue_posted_to_dev_becomes_a_pull_request(tmp_path: Path) -> None:
    origin = fakes.make_origin(tmp_path / "remote")
    fake = fakes.FakeGitHub(clone_url=f"file://{origin}")
    fake.add_issue(7, "Addition subtracts")
    served = Server(fake)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AGENT_ENV")}
    env |= {
        "WEBHOOK_SECRET": p.SECRET,
        "APP_ID": str(p.APP_ID),
        "PRIVATE_KEY": fakes.app_key()[0],
        "GITHUB_API_URL": served.api_url,
        "WORKSPACES_DIR": str(tmp_path / "ws"),
        "AGENT": "command",
        "AGENT_COMMAND": shlex.join([sys.executable, str(AGENT), "fix"]),
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    dev = subprocess.Popen(
        [sys.executable, "-m", "app", "dev"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), "forgehand dev did not come up")
        body = p.encode(p.issues())
        answer = httpx.post(
            f"{url}/api/github/webhooks", content=body, headers=p.headers("issues", body, "e2e-1")
        )
        assert answer.status_code == 202
        assert answer.json() == {"delivery": "e2e-1", "tasks": [f"issue-{p.REPO_ID}-7"]}
        wait_until(lambda: fake.pulls, "no pull request was opened", 60)
        (pr,) = fake.pulls.values()
        assert pr["body"].startswith("Fixes #7")
        assert fakes.branches(origin)[pr["head"]]
        tasks = subprocess.run(
            [sys.executable, "-m", "app", "tasks", "--json"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert f'"id": "issue-{p.REPO_ID}-7"' in tasks.stdout
    finally:
        stop_process(dev)
        served.stop()
        if dev.stdout is not None:
            dev.stdout.close()
    assert not (tmp_path / ".forgehand" / "dev-redis-url").exists()


@contextlib.contextmanager
def _dev(tmp_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`forgehand dev` in a session of its own (as a terminal runs it), with an embedded Redis;
    killed on the way out if a test left it running."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "APP_ID", "PRIVATE_KEY")}
    env |= {"WEBHOOK_SECRET": p.SECRET, "PORT": str(port), "PYTHONPATH": str(ROOT),
            "WORKSPACES_DIR": str(tmp_path / "ws")}  # fmt: skip
    dev = subprocess.Popen(
        [sys.executable, "-m", "app", "dev"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield dev
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()


def _ctrl_c(dev: subprocess.Popen[bytes]) -> str:
    """What a terminal's Ctrl-C does: SIGINT to the whole foreground process group; `dev`'s
    output to its end."""
    os.killpg(dev.pid, signal.SIGINT)
    output, _ = dev.communicate(timeout=30)
    return output.decode()


def test_ctrl_c_stops_dev_cleanly_with_its_urls_printed(tmp_path: Path) -> None:
    port = free_port()
    with _dev(tmp_path, port) as dev:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), "forgehand dev did not come up")
        pointer = tmp_path / ".forgehand" / "dev-redis-url"
        redis_socket = Path(pointer.read_text().split("?")[0].removeprefix("unix://"))
        text = _ctrl_c(dev)
    assert dev.returncode == 130, text
    assert "Traceback" not in text, text
    for line in (f"webhook:   {url}/api/github/webhooks", f"dashboard: {url}/",
                 f"setup:     {url}/setup"):  # fmt: skip
        assert line in text
    assert not pointer.exists()
    assert not redis_socket.exists()  # the embedded Redis was stopped too


def test_ctrl_c_while_the_worker_is_starting_prints_no_traceback(tmp_path: Path) -> None:
    """Ctrl-C at once, while `dev`'s worker is still starting (in the terminal's process group
    until it makes a session of its own): nothing it says is a traceback, and it leaves nothing
    running (a worker left behind would hold its output open: `communicate` would time out)."""
    with _dev(tmp_path, free_port()) as dev:
        assert dev.stdout is not None
        seen = []
        for line in dev.stdout:  # printed just after the worker's process is started
            seen.append(line.decode())
            if line.startswith(b"forgehand dev on"):
                break
        text = "".join(seen) + _ctrl_c(dev)
    assert "Traceback" not in text, text
    assert dev.returncode == 130, text
