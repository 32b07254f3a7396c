"""Several machines: two workers with WORKSPACES_DIRs (and so mirrors) of their own, and the
web process, against one Redis that asks for a password and speaks only TLS (rediss://)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rq import Worker

from app.settings import parse
from app.store.redis_conn import connect
from app.tasks import State
from simulator.sandbox import Stack, free_port, stop_process
from tests.jobs.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "simulator" / "demo_agent.py"
# Slow enough that the second issue finds the first worker busy and goes to the other one.
SLOW_DEMO = [
    sys.executable, "-c",
    "import runpy, sys, time; time.sleep(2); sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')",
    str(DEMO), "careful",
]  # fmt: skip
TASKS = ("issue-4101-1", "issue-4101-2")
PASSWORD = "s3cret-redis-password"


def _write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forgehand test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "redis.pem", directory / "redis.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis speaking only TLS, with a password; its rediss:// URL."""
    server = shutil.which("redis-server")
    if (
        server is None
        or "libssl"
        not in subprocess.run(["ldd", server], capture_output=True, text=True, check=False).stdout
    ):
        pytest.skip("no redis-server built with TLS (Debian's `redis-server` is)")
    ca, cert, key = _write_tls(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"rediss://:{PASSWORD}@localhost:{port}/0?ssl_ca_certs={ca}"
    client = connect(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except Exception:
            return False

    try:
        wait_until(answers, "the TLS Redis to start", 10)
        yield url
    finally:
        client.close()
        stop_process(proc)


def test_two_machines_share_one_tls_redis_with_a_password(tls_redis: str, tmp_path: Path) -> None:
    # Without TLS, or without the password, this Redis refuses.
    plain = tls_redis.replace("rediss://", "redis://").split("?")[0]
    with pytest.raises(Exception):  # noqa: B017 - a connection reset or a protocol error
        connect(plain).ping()
    with pytest.raises(Exception, match=r"(?i)auth"):
        connect(tls_redis.replace(f":{PASSWORD}@", "")).ping()

    root = tmp_path / "sandbox"
    with Stack(parse({"REDIS_URL": tls_redis}), root, SLOW_DEMO) as stack:
        first = stack.worker
        assert first is not None
        # The second machine: its own WORKSPACES_DIR, so its own mirrors and worktrees.
        stack.env["WORKSPACES_DIR"] = str(tmp_path / "machine-b")
        second = stack.start_worker()
        try:
            redis = stack.store.redis
            wait_until(lambda: len(Worker.all(connection=redis)) == 2, "both workers", 30)
            sim = stack.sim
            sim.open_issue(2, "sub() adds", "sub(3, 1) should be 2.")
            sim.label_issue(1, "agent")
            wait_until(lambda: _state(stack, TASKS[0]) is State.RUNNING, "the first task", 30)
            sim.label_issue(2, "agent")
            sim.wait(lambda: len(sim.sim.pulls) == 2, 120, "both pull requests")
            ran_on = {_worker_of(stack, task_id) for task_id in TASKS}
            assert len(ran_on) == 2, ran_on
            # Each machine fetched the repository into a mirror of its own.
            for workspaces in (root / "workspaces", tmp_path / "machine-b"):
                assert any(workspaces.glob("mirrors/*")), sorted(workspaces.iterdir())
        finally:
            stop_process(second)


def _state(stack: Stack, task_id: str) -> State | None:
    record = stack.store.get(task_id)
    return record.state if record else None


def _worker_of(stack: Stack, task_id: str) -> str:
    running = [e for e in stack.store.events(task_id) if e["event"] == "running"]
    return str(running[-1]["detail"])
