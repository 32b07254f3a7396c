"""`.github/forgehand.yml`: the per-repository settings (SPEC §1), parsed and validated.

Parsing never raises: a broken file yields the defaults for what is broken and a list of
problems, which the task reports in a comment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

from app.fleet import MAX_OPEN_PULL_REQUESTS, OVERLAP_MODES, PLAN_MAX_ISSUES
from app.parsing import allow_entry
from app.settings import AGENT_PRESETS

PATH = ".github/forgehand.yml"
DEFAULT_PROTECTED = (".github/workflows/**", PATH)


@dataclass(frozen=True)
class RepoConfig:
    agent: str | None = None
    agent_command: str | None = None
    setup: str | None = None
    test: str | None = None
    max_attempts: int | None = None
    draft: bool = False
    base_branch: str | None = None
    escalate_to: tuple[str, ...] = ()
    allowed_bots: tuple[str, ...] = ()
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED
    timeout: int | None = None
    allow_hosts: tuple[str, ...] = ()
    max_open_pull_requests: int = MAX_OPEN_PULL_REQUESTS
    overlap: str = "warn"
    # USD; the lower of these and the operator's MAX_COST_PER_* applies (app/budget.py).
    max_cost_per_task: float | None = None
    max_cost_per_day: float | None = None
    plan_max_issues: int = PLAN_MAX_ISSUES


KNOWN = {f.name for f in fields(RepoConfig)}


def parse(text: str | None) -> tuple[RepoConfig, list[str]]:
    """The config a file describes, and what is wrong with it (empty when nothing is)."""
    if text is None or not text.strip():
        return RepoConfig(), []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return RepoConfig(), [f"{PATH} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"]
    if data is None:
        return RepoConfig(), []
    if not isinstance(data, dict):
        return RepoConfig(), [f"{PATH} must be a mapping of settings, not {type(data).__name__}"]
    config, problems = RepoConfig(), []
    for key, value in data.items():
        if key not in KNOWN:
            problems.append(f"unknown setting `{key}` (known: {', '.join(sorted(KNOWN))})")
            continue
        try:
            config = replace(config, **{key: _CHECKS[key](value)})
        except ValueError as exc:
            problems.append(f"`{key}`: {exc}")
    if config.agent == "command" and not config.agent_command:
        problems.append("`agent: command` needs `agent_command`")
        config = replace(config, agent=None)
    return config, problems


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number of at least 1, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError("must be a list of names")
    return tuple(i.strip().removeprefix("@") if "/" not in i else i.strip() for i in items)


def _globs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(i, str) and i.strip() for i in value):
        raise ValueError("must be a list of path globs (an empty list allows every path)")
    return tuple(i.strip() for i in value)


def _hosts(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError("must be a list of host or host:port names")
    hosts = tuple(i.strip().lower() for i in items)
    for host in hosts:
        allow_entry(host)  # raises ValueError naming a malformed entry
    return hosts


def _dollars(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        raise ValueError(f"must be an amount in USD such as 5 or 0.50, got {value!r}")
    return float(value)


def _overlap(value: Any) -> str:
    if value not in OVERLAP_MODES:
        raise ValueError(f"must be one of {', '.join(OVERLAP_MODES)}, got {value!r}")
    return str(value)


def _agent(value: Any) -> str:
    name = _text(value).lower()
    if name not in AGENT_PRESETS:
        raise ValueError(f"must be one of {', '.join(AGENT_PRESETS)}, got {value!r}")
    return name


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "agent": _agent,
    "agent_command": _text,
    "setup": _text,
    "test": _text,
    "max_attempts": _positive,
    "draft": _flag,
    "base_branch": _text,
    "escalate_to": _names,
    "allowed_bots": _names,
    "protected_paths": _globs,
    "timeout": _positive,
    "allow_hosts": _hosts,
    "max_open_pull_requests": _positive,
    "overlap": _overlap,
    "max_cost_per_task": _dollars,
    "max_cost_per_day": _dollars,
    "plan_max_issues": _positive,
}
