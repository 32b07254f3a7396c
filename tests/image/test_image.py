"""forgehand's image, as `make test-image` builds it (FORGEHAND_IMAGE names it): the real
sandbox inside it, what a worker's container needs for it, and compose.yaml's Redis, web and
worker taking one labelled issue of the simulator to a pull request."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from simulator.sandbox import APP_ID, CALC, ISSUE, TESTS, free_port, key_pair, wait_healthy
from simulator.sim import Simulation

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("FORGEHAND_IMAGE", "")
# The smallest set Podman needs for bubblewrap in a container (docs/security.md).
SANDBOX_OPTS = ["--security-opt", "seccomp=unconfined", "--security-opt", "unmask=/proc/*"]
DEMO = "/opt/forgehand/bin/python -m simulator.demo_agent careful"
PODMAN_COMPOSE = os.environ.get("PODMAN_COMPOSE", "podman-compose")

pytestmark = pytest.mark.skipif(
    not IMAGE or shutil.which("podman") is None,
    reason="FORGEHAND_IMAGE is not set: `make test-image` builds the image and runs these",
)


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_real_sandbox_runs_the_loop_inside_the_image() -> None:
    done = podman("run", "--rm", *SANDBOX_OPTS, IMAGE, "sandbox")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pull request" in done.stdout


def test_without_the_options_a_worker_refuses_to_start_and_says_why() -> None:
    env = ["-e", "REDIS_URL=redis://127.0.0.1:1/0", "-e", f"APP_ID={APP_ID}",
           "-e", f"PRIVATE_KEY={key_pair()[0]}"]  # fmt: skip
    done = podman("run", "--rm", *env, IMAGE, "worker")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "AGENT_SANDBOX=bwrap but namespaces cannot be created here" in done.stderr


def test_the_image_runs_unprivileged_and_keeps_no_build_secret() -> None:
    assert podman("run", "--rm", "--entrypoint", "id", IMAGE, "-u").stdout.strip() == "10001"
    # The CAs this machine adds to Debian's (a TLS-intercepting proxy's) served the build as a
    # secret, and are nowhere in the image.
    local = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    for cert in local:
        (line,) = re.findall(r"-----BEGIN CERTIFICATE-----\n(.+?)\n", cert.read_text())[:1]
        found = podman(
            "run", "--rm", "--user", "0", "--entrypoint", "grep", IMAGE,
            "-rlF", "--exclude-dir=proc", "--exclude-dir=sys", line, "/",
        )  # fmt: skip
        assert found.stdout == "", f"{cert} is in the image: {found.stdout}"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[Simulation, Path]]:
    """The simulator, listening on every address so that containers reach it through their
    network's gateway, and a directory holding compose.yaml as shipped beside a user's .env."""
    private, public = key_pair()
    secret = secrets.token_hex(16)
    port = free_port()
    simulation = Simulation(
        root=tmp_path / "sim", webhook_url=f"http://127.0.0.1:{port}/api/github/webhooks",
        secret=secret, app_id=APP_ID, public_key=public, test_command="python3 test_calc.py",
        host="0.0.0.0",
    )  # fmt: skip
    simulation.start({"calc.py": CALC, "test_calc.py": TESTS, "README.md": "# calc\n"})
    simulation.open_issue(1, "add() subtracts", ISSUE)
    project = tmp_path / "forgehand"
    project.mkdir()
    shutil.copy(ROOT / "compose.yaml", project)
    shutil.copy(ROOT / "tests/image/compose.test.yaml", project)
    settings = {
        "FORGEHAND_IMAGE": IMAGE,
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": private.strip().replace("\n", "\\n"),
        "WEBHOOK_SECRET": secret,
        # GitHub Enterprise Server's setting; host.containers.internal is Podman's name for the
        # machine the containers run on.
        "GITHUB_API_URL": f"http://host.containers.internal:{simulation.server.port}/api/v3",
        "REDIS_PASSWORD": secrets.token_hex(16),
        "PORT": str(port),
        "AGENT": "command",
        "AGENT_COMMAND": DEMO,
        "WORKERS": "1",
    }
    (project / ".env").write_text("".join(f'{k}="{v}"\n' for k, v in settings.items()))
    try:
        yield simulation, project
    finally:
        simulation.stop()


def compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The .env's names are taken from it alone, as on a user's machine, not from this one's.
    settings = {line.split("=", 1)[0] for line in (project / ".env").read_text().splitlines()}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    files = ["-f", "compose.yaml", "-f", "compose.test.yaml"]
    return subprocess.run(
        [PODMAN_COMPOSE, "-p", "forgehand-image-test", *files, *args], cwd=project,
        env=env | {"SIM_ROOT": str(project.parent / "sim")},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_compose_takes_a_labelled_issue_to_a_pull_request(
    sim: tuple[Simulation, Path],
) -> None:
    simulation, project = sim
    up = compose(project, "up", "-d", "--no-build")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        wait_healthy(f"http://127.0.0.1:{urlsplit(simulation.webhook_url).port}/healthz")
        simulation.label_issue(1, "agent")
        simulation.wait(lambda: simulation.sim.pulls, 180, "a pull request")
        (number,) = simulation.sim.pulls
        assert simulation.sim.pulls[number]["head"].startswith("agent/issue-1")
    finally:
        logs = compose(project, "logs")
        compose(project, "down", "-v")
        print(logs.stdout[-5000:], logs.stderr[-2000:])
