"""forgehand as `pip install` leaves it: a wheel built from this tree, installed (not editable)
into a fresh venv, run from a directory that is not the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator.sandbox import free_port, stop_process
from tests.jobs.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("forgehand-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin directory of a fresh venv holding the wheel and its dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        timeout=600,
    )
    yield env_dir / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    # Nothing of this tree or of the test's settings may leak in: PYTHONPATH would let the
    # source tree stand in for what was installed.
    drop = ("PYTHONPATH", "REDIS_URL", "WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY", "AGENT")
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def test_the_wheel_installs_only_forgehands_own_top_level_names(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("forgehand-")}
    assert top == {"app", "jobs", "simulator"}
    assert "app/app.yml" in names
    assert "simulator/shapes/issue.json" in names


def test_installed_forgehand_runs_from_site_packages(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import app.web.setup as s; print(s.MANIFEST_FILE)"],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    manifest = Path(where.stdout.strip())
    assert manifest.is_file()
    assert "site-packages" in manifest.parts
    assert not manifest.is_relative_to(ROOT)


def test_installed_setup_serves_the_registration_page(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "setup.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [str(installed / "forgehand"), "setup"], cwd=tmp_path,
            env=_clean_env(HOST="127.0.0.1", PORT=str(port)), stdout=out, stderr=out,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/setup"

        def answers() -> bool:
            try:
                return httpx.get(url).status_code > 0
            except httpx.TransportError:
                return False

        wait_until(answers, "forgehand setup did not come up")
        page = httpx.get(url)
        assert page.status_code == 200, page.text + output.read_text()
        # The permissions and events come from app.yml, read from site-packages.
        assert 'id="permissions"' in page.text
        assert "<code>issues</code>" in page.text
    finally:
        stop_process(proc)


def test_installed_sandbox_runs_the_loop_with_the_real_sandbox(
    installed: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(installed / "forgehand"), "sandbox", "--dir", str(tmp_path / "sandbox")],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pull request" in result.stdout
