"""forgehand's own git: explicit git directory, no prompts, nothing a repository could set.

Every command runs with an environment built from nothing (never the worker's, which holds
its secrets) and with configuration given on the command line, which outranks anything in a
repository's config: no hooks, no fsmonitor, no filters or proxies the agent could have
named, no replace objects, no system or global config.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from jobs.boundary import bounded

GIT_TIMEOUT = 600

# Given through GIT_CONFIG_* (the command line's level), so a repository's own config, which
# an agent may have written, cannot turn any of them back on.
HARDENING = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.sshCommand", "false"),
    ("credential.helper", ""),
    ("http.proxy", ""),
    ("https.proxy", ""),
    ("protocol.allow", "never"),
    ("protocol.https.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.file.allow", "always"),
    ("submodule.recurse", "false"),
    ("diff.ignoreSubmodules", "all"),
    ("status.submoduleSummary", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("commit.gpgSign", "false"),
    ("advice.detachedHead", "false"),
)


class GitError(Exception):
    """A git command failed; the message holds its stderr with any token removed."""


def auth_config(token: str | None) -> list[tuple[str, str]]:
    """The header that makes git send the installation token to the remote.

    Passed per command through GIT_CONFIG_* (git ≥ 2.31), so the token never lands in a
    config file, a URL, a command line that `ps` shows, or a log.
    """
    if not token:
        return []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return [("http.extraheader", f"AUTHORIZATION: basic {basic}")]


def config_env(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def base_env(token: str | None = None) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": os.devnull,
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_NO_LAZY_FETCH": "1",
        **config_env([*HARDENING, *auth_config(token)]),
    }


def git(
    args: Sequence[str],
    cwd: Path,
    *,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
    check: bool = True,
) -> str:
    full_env = base_env(token) | dict(env or {})
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


def git_capped(args: Sequence[str], cwd: Path, limit: int) -> tuple[str, bool]:
    """A git command's output, at most `limit` bytes of it, and whether it was cut there: for
    output whose size the agent decides (a diff, a log of its commits)."""
    out = bounded.run(["git", *args], cwd=cwd, env=base_env(), limit=limit, timeout=GIT_TIMEOUT)
    if out.timed_out:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s")
    if not out.cut and out.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {out.stderr.strip()}")
    return out.stdout.decode(errors="replace"), out.cut
