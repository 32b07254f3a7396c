"""`forgehand doctor`: one line per check, ✓ or ✗ with the fix; non-zero exit on any ✗."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from redis.exceptions import RedisError

from app.cli.common import Command
from app.github import App, GitHubError
from app.settings import Settings, SettingsError, load
from app.store import connect

# GIT_CONFIG_COUNT, which passes the token to git without a file, arrived in git 2.31.
MIN_GIT = (2, 31)
MIN_FREE_BYTES = 2 * 1024**3
LOOPBACK = ("127.0.0.1", "::1", "localhost", "")


@dataclass(frozen=True)
class Check:
    ok: bool
    name: str
    detail: str
    fix: str = ""
    warning: bool = False  # works, but outside what was tested: said, not failed

    def line(self) -> str:
        mark = "⚠" if self.ok and self.warning else "✓" if self.ok else "✗"
        tail = f" → {self.fix}" if (not self.ok or self.warning) and self.fix else ""
        return f"{mark} {self.name}: {self.detail}{tail}"


def run(environ: dict[str, str] | None = None, env_file: Path | None = None) -> list[Check]:
    try:
        settings = load(environ, env_file)
    except SettingsError as exc:
        return [Check(False, "settings", str(exc), "fix that line of your environment or .env")]
    return list(_checks(settings, os.environ if environ is None else environ))


def _checks(settings: Settings, source: Mapping[str, str]) -> Iterator[Check]:
    missing = [
        n
        for n in ("APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET", "REDIS_URL")
        if getattr(settings, n.lower()) in (None, "")
    ]
    if missing:
        yield Check(
            False,
            "settings",
            f"missing {', '.join(missing)}",
            "run `forgehand setup`, or set them in .env (see the README)",
        )
    else:
        yield Check(True, "settings", "APP_ID, private key, WEBHOOK_SECRET and REDIS_URL are set")
    yield from _key_and_github(settings)
    yield _redis(settings)
    yield from _redis_exposure(settings)
    yield _git()
    yield _workspaces(settings)
    yield _agent(settings)
    yield from _agent_config(settings, source)
    yield from _agent_tools(settings)
    yield _sandbox(settings)


def _key_and_github(settings: Settings) -> Iterator[Check]:
    if settings.private_key is None or settings.app_id is None:
        return
    try:
        load_pem_private_key(settings.private_key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        yield Check(
            False,
            "private key",
            f"does not parse: {exc}",
            "download a new key from the App's settings page",
        )
        return
    yield Check(True, "private key", "parses")
    # The App's JWT calls touch no Redis; the client connects lazily, if ever.
    app = App(settings, connect(settings.redis_url or "redis://127.0.0.1:6379/0"))
    try:
        data = app.app_request("GET", "/app")
    except GitHubError as exc:
        yield Check(
            False,
            "GitHub App",
            str(exc),
            f"check APP_ID and the key against the App; GITHUB_API_URL is "
            f"{settings.github_api_url}",
        )
        return
    yield Check(
        True, "GitHub App", f"JWT accepted for {data.get('slug')} at {settings.github_api_url}"
    )
    try:
        installations = app.app_request("GET", "/app/installations", params={"per_page": 100})
    except GitHubError as exc:
        yield Check(False, "installations", str(exc))
        return
    if installations:
        names = ", ".join(i.get("account", {}).get("login", "?") for i in installations)
        yield Check(True, "installations", f"{len(installations)}: {names}")
    else:
        yield Check(
            False,
            "installations",
            "the App is installed nowhere",
            f"install it: https://github.com/apps/{data.get('slug')}/installations/new",
        )
    yield from _webhook(app)


def _webhook(app: App) -> Iterator[Check]:
    try:
        config = app.app_request("GET", "/app/hook/config")
    except GitHubError as exc:
        yield Check(False, "webhook", str(exc))
        return
    url = config.get("url") or ""
    if not url:
        yield Check(False, "webhook", "the App has no webhook URL", "set one in the App's settings")
        return
    try:
        # Unsigned on purpose: forgehand must refuse it with 401, which proves it is listening.
        answer = httpx.post(url, content=b"{}", timeout=10).status_code
    except httpx.HTTPError as exc:
        yield Check(
            False,
            "webhook",
            f"{url} is unreachable: {exc}",
            "start `forgehand web` and make that URL reach it",
        )
        return
    if answer == 401:
        yield Check(True, "webhook", f"{url} answers and refuses unsigned deliveries")
    else:
        yield Check(
            False,
            "webhook",
            f"{url} answered {answer} to an unsigned delivery",
            "point the App's webhook URL at forgehand's WEBHOOK_PATH",
        )


def _redis(settings: Settings) -> Check:
    if settings.redis_url is None:
        return Check(False, "redis", "REDIS_URL is unset", "set REDIS_URL (dev/sandbox embed one)")
    try:
        info = connect(settings.redis_url).info("server")
    except RedisError as exc:
        return Check(
            False,
            "redis",
            f"{settings.redis_url} does not answer: {exc}",
            "start Redis or fix REDIS_URL",
        )
    version = str(info.get("redis_version", "?"))
    if _version(version) < (5, 0):
        return Check(False, "redis", f"version {version}", "RQ needs Redis 5 or newer")
    return Check(True, "redis", f"version {version} at {settings.redis_url}")


def _redis_exposure(settings: Settings) -> Iterator[Check]:
    """A Redis without a password that listens beyond loopback lets anyone on the network
    read installation tokens and queue jobs that workers run."""
    if settings.redis_url is None or urlsplit(settings.redis_url).password:
        return
    try:
        bind = connect(settings.redis_url).config_get("bind").get("bind", "")
    except RedisError:
        bind = ""  # CONFIG may be renamed away; judge by the address we reach it at
    exposed = exposed_addresses(str(bind), urlsplit(settings.redis_url).hostname or "")
    if exposed:
        yield Check(
            False,
            "redis exposure",
            f"no password, listening on {', '.join(exposed)}",
            "set `requirepass` (and put it in REDIS_URL) or bind Redis to 127.0.0.1",
        )


def exposed_addresses(bind: str, host: str) -> list[str]:
    """The addresses beyond loopback a Redis listens on, from its `bind` setting (a leading
    `-` marks an optional one), or from the host it is reached at when that is unknown."""
    addresses = [a.lstrip("-") for a in bind.split()] or [host]
    return [a for a in dict.fromkeys(addresses) if a not in LOOPBACK]


def _sandbox(settings: Settings) -> Check:
    from jobs.boundary import Sandbox, SandboxUnavailable

    sandbox = Sandbox(settings)
    if not sandbox.contained:
        return Check(
            False,
            "sandbox",
            "AGENT_SANDBOX=none: agents and setup/test commands run uncontained",
            "unset AGENT_SANDBOX to contain them with bubblewrap (the default)",
        )
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        return Check(False, "sandbox", str(exc))
    return Check(True, "sandbox", f"bubblewrap at {sandbox.bwrap} makes namespaces")


def _git() -> Check:
    try:
        out = subprocess.run(
            ["git", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(False, "git", f"not runnable: {exc}", "install git 2.31 or newer")
    found = _version(out)
    if found < MIN_GIT:
        return Check(False, "git", out.strip(), "install git 2.31 or newer")
    return Check(True, "git", out.strip())


def _workspaces(settings: Settings) -> Check:
    path = settings.workspaces_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".doctor"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check(
            False,
            "workspaces",
            f"{path} is not writable: {exc.strerror}",
            "set WORKSPACES_DIR to a writable directory",
        )
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        return Check(
            False,
            "workspaces",
            f"{path}: only {free / 1024**3:.1f} GiB free",
            "free space or move WORKSPACES_DIR",
        )
    return Check(True, "workspaces", f"{path} is writable, {free / 1024**3:.0f} GiB free")


def _agent(settings: Settings) -> Check:
    from jobs.agents import PRESETS

    preset = PRESETS.get(settings.agent)
    command = shlex.split(settings.agent_command or "") or [""]
    program = command[0] if preset is None else preset.argv[0]
    found = shutil.which(program)
    if found is None:
        hint = preset.install if preset is not None else "fix AGENT_COMMAND"
        return Check(False, "agent", f"{program} is not on PATH", hint)
    if preset is None:
        return Check(True, "agent", f"{found} (AGENT=command)")
    try:
        done = subprocess.run(
            [found, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ | {"NO_COLOR": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(False, "agent", f"{found} does not run: {exc}", "reinstall it")
    version = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0:
        return Check(False, "agent", f"{found} --version exited {done.returncode}", "reinstall it")
    shown = version[0] if version else "?"
    if _version(shown) != _version(preset.tested):
        return Check(
            True, "agent",
            f"{settings.agent}: {shown}, but forgehand's {settings.agent} preset was proven "
            f"with {preset.tested}",
            f"`{preset.install}`, or check it with `forgehand try-agent`", warning=True,
        )  # fmt: skip
    return Check(True, "agent", f"{settings.agent}: {shown} (tested: {preset.tested})")


def _agent_config(settings: Settings, source: Mapping[str, str]) -> Iterator[Check]:
    """The CLI's own configuration, where the operator gives it (OpenCode's provider)."""
    from jobs.agents import PRESETS, check_keys
    from jobs.errors import AgentConfigError

    preset = PRESETS.get(settings.agent)
    if preset is None:
        return
    named = [n for n in preset.config_vars if n in settings.agent_env and source.get(n)]
    if not named:
        return
    try:
        check_keys(settings.agent, settings.agent_env, source)
    except AgentConfigError as exc:
        yield Check(False, "agent config", str(exc), f"fix {' or '.join(named)}")
        return
    yield Check(
        True, "agent config",
        f"{settings.agent} uses your configuration ({', '.join(named)}) under forgehand's "
        "safety settings",
    )  # fmt: skip


def _agent_tools(settings: Settings) -> Iterator[Check]:
    from jobs.agents import PRESETS

    preset = PRESETS.get(settings.agent)
    for program, install in preset.tools if preset is not None else ():
        if shutil.which(program) is None:
            yield Check(
                True, "agent tools",
                f"{program} is not on PATH: {settings.agent} would download it at run time, "
                "which the sandbox refuses, so that feature of the agent fails", install,
                warning=True,
            )  # fmt: skip


def _version(text: str) -> tuple[int, ...]:
    found = re.search(r"(\d+)\.(\d+)", text)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _doctor(_args: argparse.Namespace) -> int:
    # Doctor reports a bad setting as one of its checks instead of stopping at it, so it loads
    # the settings itself rather than through with_settings.
    checks = run()
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


COMMAND = Command(
    "doctor", "Check settings, key, GitHub, installations, webhook URL, Redis, git, "
    "disk, agent and sandbox: one line each; non-zero exit on any problem.",
    "whatever the other commands need; it says which are missing.",
    _doctor,
)  # fmt: skip
