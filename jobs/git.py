"""Running git: explicit working directory, no prompts, credentials only in the environment."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

GIT_TIMEOUT = 600


class GitError(Exception):
    """A git command failed; the message holds its stderr with any token removed."""


def auth_env(token: str | None) -> dict[str, str]:
    """Environment that makes git send the installation token to the remote.

    Passed per command through GIT_CONFIG_* (git ≥ 2.31), so the token never lands in a
    config file, a URL, a command line that `ps` shows, or a log.
    """
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",
            "LC_ALL": "C",
            # Keep the user's global and system config out of what the App does.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
    )
    return env


def git(
    args: Sequence[str],
    cwd: Path,
    *,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
    check: bool = True,
) -> str:
    full_env = base_env() | dict(env or {}) | auth_env(token)
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f}s") from None
    if check and result.returncode != 0:
        message = f"git {' '.join(args[:2])} failed: {(result.stderr or result.stdout).strip()}"
        raise GitError(message.replace(token, "***") if token else message)
    return result.stdout
