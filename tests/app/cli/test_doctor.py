from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import doctor
from tests import fakes
from tests import payloads as p

HOOK = "https://forgehand.test/api/github/webhooks"


@pytest.fixture
def github() -> Iterator[fakes.FakeGitHub]:
    fake = fakes.FakeGitHub(clone_url="file:///nowhere", webhook_url=HOOK)
    for router in fakes.mocked(fake):
        router.post(HOOK).mock(return_value=httpx.Response(401, json={"error": "bad signature"}))
        yield fake


def good_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "APP_ID": str(p.APP_ID),
        "PRIVATE_KEY": fakes.app_key()[0],
        "WEBHOOK_SECRET": "s",
        "REDIS_URL": redis_url,
        "GITHUB_API_URL": fakes.API,
        "WORKSPACES_DIR": str(tmp_path / "ws"),
        "AGENT": "command",
        "AGENT_COMMAND": f"{sys.executable} agent.py",
        "PATH": "/usr/bin:/bin",
    }


def lines(checks: list[doctor.Check]) -> dict[str, str]:
    return {c.name: c.line() for c in checks}


def test_green_on_a_correct_setup(github: fakes.FakeGitHub, redis_url: str, tmp_path: Path) -> None:
    checks = doctor.run(good_env(redis_url, tmp_path), tmp_path / "no.env")
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    names = [c.name for c in checks]
    assert names == ["settings", "private key", "GitHub App", "installations", "webhook",
                     "redis", "git", "workspaces", "agent", "sandbox"]  # fmt: skip
    assert lines(checks)["GitHub App"].startswith("✓ GitHub App: JWT accepted for forgehand")
    assert "refuses unsigned deliveries" in lines(checks)["webhook"]


@pytest.mark.parametrize(
    ("change", "name", "says"),
    [
        ({"APP_ID": "999"}, "GitHub App", "GitHub answered 401 to GET /api/v3/app"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "redis", "does not answer"),
        (
            {"AGENT": "codex", "AGENT_COMMAND": ""},
            "agent",
            "codex is not on PATH → npm install -g @openai/codex",
        ),
        ({"WORKSPACES_DIR": "/proc/forgehand"}, "workspaces", "is not writable"),
        ({"WEBHOOK_SECRET": ""}, "settings", "missing WEBHOOK_SECRET"),
        ({"AGENT_SANDBOX": "none"}, "sandbox", "AGENT_SANDBOX=none: agents and setup/test"),
    ],
)
def test_a_broken_setup_says_what_and_how_to_fix(
    github: fakes.FakeGitHub,
    redis_url: str,
    tmp_path: Path,
    change: dict[str, str],
    name: str,
    says: str,
) -> None:
    env = good_env(redis_url, tmp_path) | change
    checks = doctor.run({k: v for k, v in env.items() if v}, tmp_path / "no.env")
    line = lines(checks)[name]
    assert line.startswith("✗") and says in line, line


def test_unparsable_key_and_malformed_settings(tmp_path: Path, redis_url: str) -> None:
    broken = "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"
    checks = doctor.run(good_env(redis_url, tmp_path) | {"PRIVATE_KEY": broken}, tmp_path / "x")
    assert lines(checks)["private key"].startswith("✗ private key: does not parse")
    (only,) = doctor.run({"APP_ID": "abc"}, tmp_path / "x")
    assert only.line().startswith("✗ settings: APP_ID must be a whole number")


def test_webhook_that_accepts_unsigned_posts_is_not_forgehand(
    redis_url: str, tmp_path: Path
) -> None:
    fake = fakes.FakeGitHub(clone_url="file:///nowhere", webhook_url=HOOK)
    for router in fakes.mocked(fake):
        router.post(HOOK).mock(return_value=httpx.Response(200))
        checks = doctor.run(good_env(redis_url, tmp_path), tmp_path / "no.env")
    assert "answered 200 to an unsigned delivery" in lines(checks)["webhook"]


@pytest.mark.parametrize(
    ("bind", "host", "exposed"),
    [
        ("127.0.0.1 -::1", "127.0.0.1", []),
        ("", "localhost", []),
        ("* -::*", "127.0.0.1", ["*", "::*"]),
        ("0.0.0.0", "127.0.0.1", ["0.0.0.0"]),
        ("", "redis.internal", ["redis.internal"]),
        ("10.0.0.5 127.0.0.1", "10.0.0.5", ["10.0.0.5"]),
    ],
)
def test_redis_without_a_password_beyond_loopback_is_flagged(
    bind: str, host: str, exposed: list[str]
) -> None:
    assert doctor.exposed_addresses(bind, host) == exposed


def test_a_tool_the_agent_would_download_at_run_time_is_flagged(
    github: fakes.FakeGitHub, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    env = good_env(redis_url, tmp_path) | {"AGENT": "opencode", "AGENT_COMMAND": ""}
    checks = doctor.run({k: v for k, v in env.items() if v}, tmp_path / "no.env")
    line = lines(checks)["agent tools"]
    assert line.startswith("⚠ agent tools: rg is not on PATH") and "apt-get install ripgrep" in line
    rg = bin_dir / "rg"
    rg.write_text("#!/bin/sh\n")
    rg.chmod(0o755)
    checks = doctor.run({k: v for k, v in env.items() if v}, tmp_path / "no.env")
    assert "agent tools" not in lines(checks)


def test_the_operators_opencode_configuration_is_checked(
    github: fakes.FakeGitHub, redis_url: str, tmp_path: Path
) -> None:
    env = good_env(redis_url, tmp_path) | {
        "AGENT": "opencode", "AGENT_COMMAND": "", "AGENT_ENV": "OPENCODE_CONFIG_CONTENT",
        "OPENCODE_CONFIG_CONTENT": '{"model": "mine/m", "provider": {"mine": {}}}',
    }  # fmt: skip
    checks = doctor.run({k: v for k, v in env.items() if v}, tmp_path / "no.env")
    assert lines(checks)["agent config"] == (
        "✓ agent config: opencode uses your configuration (OPENCODE_CONFIG_CONTENT) under "
        "forgehand's safety settings"
    )
    env["OPENCODE_CONFIG_CONTENT"] = "[1, 2]"
    checks = doctor.run({k: v for k, v in env.items() if v}, tmp_path / "no.env")
    assert lines(checks)["agent config"] == (
        "✗ agent config: the opencode agent's configuration: OPENCODE_CONFIG_CONTENT is not a "
        "JSON object → fix OPENCODE_CONFIG_CONTENT"
    )
