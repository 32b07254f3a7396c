from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from app.__main__ import main
from app.dispatch import Dispatcher
from app.store import Store
from app.tasks import Kind, Task
from tests import payloads as p

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "WEBHOOK_SECRET")}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=clean | env | {"PYTHONPATH": str(ROOT)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["web"], {}, "forgehand: WEBHOOK_SECRET is required"),
        (["web"], {"WEBHOOK_SECRET": "s"}, "forgehand: REDIS_URL is required"),
        (["worker"], {}, "forgehand: REDIS_URL is required"),
        (
            ["worker"],
            {"REDIS_URL": "redis://x", "APP_ID": "x"},
            "forgehand: APP_ID must be a whole",
        ),
        (["tasks"], {}, "forgehand: REDIS_URL is required (or run `forgehand dev`"),
    ],
)
def test_missing_or_malformed_setting_stops_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], line: str
) -> None:
    result = run_cli(*args, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(line), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tasks_lists_what_the_store_holds(
    redis: Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store(redis)
    Dispatcher(store, job_timeout=60).enqueue(
        Task(Kind.ISSUE, p.INSTALLATION, p.REPO_ID, p.REPO, 7, "alice"), "test"
    )
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["tasks", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["id"], row["kind"], row["repo"], row["number"], row["state"], row["attempt"]) == (
        f"issue-{p.REPO_ID}-7",
        "issue",
        p.REPO,
        7,
        "queued",
        0,
    )
    assert main(["tasks"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "KIND", "REPO", "NUMBER", "STATE", "ATTEMPT", "UPDATED"]
    assert table[1].split()[:6] == [f"issue-{p.REPO_ID}-7", "issue", p.REPO, "#7", "queued", "0"]


def test_doctor_exits_non_zero_with_a_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_ID=12\nWEBHOOK_SECRET=s\n")
    result = run_cli("doctor", env={"REDIS_URL": "redis://127.0.0.1:1/0"}, cwd=tmp_path)
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[0].startswith("✗ settings: missing PRIVATE_KEY → run `forgehand setup`")
    assert any(line.startswith("✗ redis: redis://127.0.0.1:1/0 does not answer") for line in out)
    assert any(line.startswith("✓ git: git version") for line in out)
