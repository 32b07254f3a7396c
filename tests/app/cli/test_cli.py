from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis

from app.cli import main
from app.cli.sandbox import sandbox_dir
from app.dispatch import Dispatcher
from app.settings import SettingsError
from app.store.store import Store
from app.tasks import Kind, State, Task
from tests import fakes
from tests import payloads as p

ROOT = Path(__file__).resolve().parents[3]


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
    store.note_item(p.REPO_ID, 7, "Login fails on Safari", False)
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()
    # The work in the operator's terms; the task id only in --json.
    assert header.split("  ")[0] == "REPO" and "ISSUE/PR" in header and "LAST OUTCOME" in header
    cells = [c.strip() for c in row.split("  ") if c.strip()]
    assert cells[:8] == [
        p.REPO, "issue #7", "Login fails on Safari", "queued", "1 task", "queued",
        "nothing yet: forgehand is on it", "-",
    ]  # fmt: skip
    assert f"issue-{p.REPO_ID}-7" not in out


def test_tasks_show_each_ones_attempt_state_and_reason(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    store = Store(redis)
    dispatcher = Dispatcher(store, job_timeout=60)
    for n, (state, why) in enumerate([(State.DONE, ""), (State.ESCALATED, "out of attempts")]):
        task = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 8, "ci", sha=f"{n}" * 40)
        dispatcher.enqueue(task, "test")
        store.set_attempt(task.id, n + 2)
        store.set_state(task.id, state, why)
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["state"], r["attempt"], r["error"]) for r in rows] == [
        ("escalated", 3, "out of attempts"), ("done", 2, ""),
    ]  # fmt: skip
    assert main(["tasks", "--json", "--limit", "1"]) == 0
    assert [r["state"] for r in json.loads(capsys.readouterr().out)] == ["escalated"]
    assert main(["tasks"]) == 0
    (_, row) = capsys.readouterr().out.splitlines()
    cells = [c.strip() for c in row.split("  ") if c.strip()]
    assert cells[:7] == [
        p.REPO, "PR #8", "—", "escalated", "2 tasks", "handed to a human: out of attempts",
        "a human takes over: see the ways out",
    ]  # fmt: skip


def test_a_reason_reaches_the_terminal_without_control_characters(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # A CI log's words in a reason must not rewrite the operator's screen.
    store = Store(redis)
    task = Task(Kind.CI, p.INSTALLATION, p.REPO_ID, p.REPO, 8, "ci", sha="1" * 40)
    Dispatcher(store, job_timeout=60).enqueue(task, "test")
    store.set_state(task.id, State.FAILED, "boom\x1b[2J\rall good")
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "boom\\x1b[2J\\rall good" in out


@pytest.mark.parametrize("limit", ["0", "-2", "many"])
def test_a_bad_limit_is_refused(
    limit: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["tasks", "--limit", limit])
    assert stop.value.code == 2
    assert "argument --limit:" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == "forgehand 0.1.0"


COMMANDS = ["web", "worker", "dev", "sandbox", "redeliver", "setup", "doctor", "try-agent",
            "tasks"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_says_what_it_does_and_what_it_needs(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith(f"usage: forgehand {command}")
    assert len(description.split()) >= 5  # words of its own, not only the usage
    assert "Needs: " in text


def test_every_command_is_in_the_overview(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert re.search(rf"^    {command}\b", text, re.MULTILINE), command


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_a_port_out_of_range_is_refused(tmp_path: Path, port: str) -> None:
    result = run_cli("dev", env={"WEBHOOK_SECRET": "s", "PORT": port}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"forgehand: PORT must be from 1 to 65535, got {port}"


def test_a_port_in_use_is_named_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = {"REDIS_URL": "redis://x", "APP_ID": "1", "PRIVATE_KEY": fakes.app_key()[0]}
        for command, env in (("dev", {"WEBHOOK_SECRET": "s"}), ("web", web), ("setup", {})):
            env |= {"WEBHOOK_SECRET": "s", "PORT": str(port)}
            result = run_cli(command, env=env, cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert result.stderr.strip().splitlines()[-1] == (
                f"forgehand: port {port} on 127.0.0.1 is in use by another program (another "
                f"forgehand?): stop it, or set PORT to a free port, e.g. PORT={port + 1}"
            )
            assert "listening" not in result.stdout + result.stderr


def test_setup_stopped_before_registering_says_so_and_writes_nothing(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("APP_ID", "PRIVATE_KEY")}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "setup"],
        env=clean | {"PORT": str(port), "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith("Open http://")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until it listens: Ctrl-C then stops the server
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err  # as a program stopped by Ctrl-C exits
    assert "Registered" not in out + err
    assert "Stopped before the App was registered; nothing was written." in err
    assert not (tmp_path / ".env").exists()


def test_sandbox_dir_in_use_gets_a_fresh_subdirectory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sandbox_dir(empty, "sandbox-1", False) == empty  # new or empty: used as it is
    assert sandbox_dir(tmp_path / "new", "sandbox-1", False) == tmp_path / "new"
    (empty / "github").mkdir()  # a sandbox ran here
    assert sandbox_dir(empty, "sandbox-1", False) == empty / "sandbox-1"
    assert sandbox_dir(empty, "sandbox-1", False) == empty / "sandbox-1-2"
    (tmp_path / "file").write_text("x")
    with pytest.raises(SettingsError, match=r"--dir .*/file is a file, not a directory"):
        sandbox_dir(tmp_path / "file", "sandbox-1", False)
    with pytest.raises(SettingsError, match=r"--dir .*/file/sub: cannot make .*: Not a directory"):
        sandbox_dir(tmp_path / "file" / "sub", "sandbox-1", False)


def test_doctor_exits_non_zero_with_a_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_ID=12\nWEBHOOK_SECRET=s\n")
    result = run_cli("doctor", env={"REDIS_URL": "redis://127.0.0.1:1/0"}, cwd=tmp_path)
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[0].startswith("✗ settings: missing PRIVATE_KEY → run `forgehand setup`")
    assert any(line.startswith("✗ redis: redis://127.0.0.1:1/0 does not answer") for line in out)
    assert any(line.startswith("✓ git: git version") for line in out)
