"""Typed settings, read once from the environment and a `.env` file (SPEC §1)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from app.parsing import allow_entry, hostname, is_loopback, parse_dollars, parse_prices

AGENT_PRESETS = ("claude", "codex", "aider", "opencode", "gemini", "command")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("pretty", "json")
SANDBOXES = ("bwrap", "none")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what is expected."""


@dataclass(frozen=True)
class Settings:
    app_id: int | None = None
    private_key: str | None = None
    webhook_secret: str | None = None
    github_api_url: str = "https://api.github.com"
    redis_url: str | None = None
    workspaces_dir: Path = Path("./.forgehand/workspaces")
    agent: str = "claude"
    agent_command: str | None = None
    agent_timeout: int = 1800
    agent_idle_timeout: int = 600
    # How long a worker given SIGTERM lets its running task go on before handing it back.
    worker_drain_timeout: int = 1800
    agent_env: tuple[str, ...] = ()
    agent_sandbox: str = "bwrap"
    # Empty: nothing; the model API is reached through the gateway (jobs/boundary/gateway.py).
    agent_allow_hosts: tuple[str, ...] = ()
    # What the agent's tree may hold for forgehand to take it (jobs/boundary/tree_limits.py).
    tree_max_files: int = 100_000
    tree_max_path: int = 4096
    tree_max_bytes: int = 2 * 1024**3
    # The most disk the task's tree and the agent's home may take while it runs.
    agent_max_disk: int = 10 * 1024**3
    # The files the worker's secrets came from, which the sandbox hides even where they lie
    # under a directory it shows.
    private_key_path: Path | None = None
    env_file: Path | None = None
    # Where `forgehand setup` and `/setup` write the App's settings; None: nowhere, as in a
    # container whose files are not kept, so the page shows them to copy instead.
    setup_env_file: Path | None = Path(".env")
    trigger_label: str = "agent"
    plan_label: str = "agent:plan"
    branch_prefix: str = "agent/"
    max_attempts: int = 3
    escalation_label: str = "agent:needs-human"
    command_prefix: str = "/agent"
    webhook_path: str = "/api/github/webhooks"
    host: str = "127.0.0.1"
    port: int = 3000
    # Where people reach the web process (the dashboard); unset: HOST and PORT.
    public_url: str | None = None
    dashboard_password: str | None = field(default=None, repr=False)
    # The proxies whose X-Forwarded-For and X-Forwarded-Proto the web process believes (comma
    # separated addresses or networks, `*` for any); uvicorn's own default.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    log_level: str = "info"
    log_format: str = "pretty"
    retention_days: int = 14
    # The operator's caps in USD (None: no cap), per task and per installation per UTC day.
    max_cost_per_task: float | None = None
    max_cost_per_day: float | None = None
    # AGENT_PRICES: (model, USD in, USD out per million tokens) over the price table.
    agent_prices: tuple[tuple[str, float, float], ...] = ()

    @property
    def prices(self) -> dict[str, tuple[float, float]]:
        return {model: (given, taken) for model, given, taken in self.agent_prices}

    @property
    def web_url(self) -> str:
        """The web process's address for people: PUBLIC_URL, else what HOST and PORT reach."""
        if self.public_url is not None:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def require(self, *names: str) -> None:
        """Stop with the first required setting that is unset, by its environment name."""
        for name in names:
            if getattr(self, name.lower()) in (None, ""):
                hint = _REQUIRED_HINTS.get(name, "")
                raise SettingsError(f"{name} is required{hint}")


_REQUIRED_HINTS = {
    "APP_ID": " (the GitHub App's id; `forgehand setup` writes it to .env)",
    "PRIVATE_KEY": " (set PRIVATE_KEY to the App's PEM key or PRIVATE_KEY_PATH to its file)",
    "WEBHOOK_SECRET": " (the secret GitHub signs webhook deliveries with)",
    "REDIS_URL": " (e.g. redis://localhost:6379/0; `forgehand dev` starts an embedded Redis)",
}


def load(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Read settings from `environ` (default: the process environment) over `.env`.

    Variables set in the environment win over the file, as with every other dotenv tool.
    """
    source: dict[str, str] = {}
    dotenv = env_file if env_file is not None else Path(".env")
    found = dotenv.is_file()
    if found:
        source.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    source.update(os.environ if environ is None else environ)
    settings = parse(source)
    return replace(settings, env_file=dotenv.resolve()) if found else settings


def parse(source: Mapping[str, str]) -> Settings:
    def text(name: str) -> str | None:
        value = source.get(name, "").strip()
        return value or None

    def whole(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        raw = text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            within = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise SettingsError(f"{name} must be {within}, got {value}")
        return value

    def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (text(name) or default).lower()
        if value not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    app_id_raw = text("APP_ID")
    app_id = whole("APP_ID", 0) if app_id_raw is not None else None

    agent = choice("AGENT", "claude", AGENT_PRESETS)
    agent_command = text("AGENT_COMMAND")
    if agent == "command" and agent_command is None:
        raise SettingsError("AGENT_COMMAND is required when AGENT=command")

    webhook_path = text("WEBHOOK_PATH") or "/api/github/webhooks"
    if not webhook_path.startswith("/"):
        raise SettingsError(f"WEBHOOK_PATH must start with '/', got {webhook_path!r}")

    api_url = (text("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise SettingsError(f"GITHUB_API_URL must be an http(s) URL, got {api_url!r}")

    allow_hosts = _list(text("AGENT_ALLOW_HOSTS"))
    try:
        for entry in allow_hosts:
            allow_entry(entry)
    except ValueError as exc:
        raise SettingsError(f"AGENT_ALLOW_HOSTS: {exc}") from None

    public_url = text("PUBLIC_URL")
    if public_url is not None:
        if not public_url.startswith(("http://", "https://")):
            raise SettingsError(f"PUBLIC_URL must be an http(s) URL, got {public_url!r}")
        public_url = public_url.rstrip("/")
        if not is_loopback(hostname(urlsplit(public_url).netloc)) and not text(
            "DASHBOARD_PASSWORD"
        ):
            # Only this machine may see the dashboard without a password, and behind a
            # reverse proxy every request comes from this machine.
            raise SettingsError(
                "DASHBOARD_PASSWORD is required when PUBLIC_URL is not a loopback address: "
                "behind a reverse proxy every request looks local"
            )

    forwarded_allow_ips = text("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
    afar = _off_this_machine(forwarded_allow_ips)
    if afar and not text("DASHBOARD_PASSWORD"):
        raise SettingsError(
            "DASHBOARD_PASSWORD is required when FORWARDED_ALLOW_IPS trusts a proxy off this "
            f"machine ({', '.join(afar)}): a client it lets through may name 127.0.0.1 in "
            "X-Forwarded-For, and without a password the dashboard answers to this machine"
        )

    redis_url = text("REDIS_URL")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}"
        )

    def dollars(name: str) -> float | None:
        raw = text(name)
        if raw is None:
            return None
        try:
            return parse_dollars(raw)
        except ValueError as exc:
            raise SettingsError(f"{name} {exc}") from None

    try:
        prices = parse_prices(text("AGENT_PRICES") or "")
    except ValueError as exc:
        raise SettingsError(f"AGENT_PRICES: {exc}") from None

    agent_timeout = whole("AGENT_TIMEOUT", 1800)
    setup_env = text("SETUP_ENV_FILE") or ".env"
    return Settings(
        app_id=app_id,
        private_key=_private_key(text("PRIVATE_KEY"), text("PRIVATE_KEY_PATH")),
        webhook_secret=text("WEBHOOK_SECRET"),
        github_api_url=api_url,
        redis_url=redis_url,
        workspaces_dir=Path(text("WORKSPACES_DIR") or "./.forgehand/workspaces"),
        agent=agent,
        agent_command=agent_command,
        agent_timeout=agent_timeout,
        agent_idle_timeout=whole("AGENT_IDLE_TIMEOUT", 600),
        worker_drain_timeout=whole("WORKER_DRAIN_TIMEOUT", agent_timeout),
        agent_env=_list(text("AGENT_ENV")),
        agent_sandbox=choice("AGENT_SANDBOX", "bwrap", SANDBOXES),
        agent_allow_hosts=allow_hosts,
        tree_max_files=whole("TREE_MAX_FILES", 100_000),
        tree_max_path=whole("TREE_MAX_PATH", 4096),
        tree_max_bytes=whole("TREE_MAX_BYTES", 2 * 1024**3),
        agent_max_disk=whole("AGENT_MAX_DISK", 10 * 1024**3),
        private_key_path=_key_path(text("PRIVATE_KEY"), text("PRIVATE_KEY_PATH")),
        trigger_label=text("TRIGGER_LABEL") or "agent",
        plan_label=text("PLAN_LABEL") or "agent:plan",
        branch_prefix=text("BRANCH_PREFIX") or "agent/",
        max_attempts=whole("MAX_ATTEMPTS", 3),
        escalation_label=text("ESCALATION_LABEL") or "agent:needs-human",
        command_prefix=text("COMMAND_PREFIX") or "/agent",
        webhook_path=webhook_path,
        host=text("HOST") or "127.0.0.1",
        port=whole("PORT", 3000, maximum=65535),
        public_url=public_url,
        dashboard_password=text("DASHBOARD_PASSWORD"),
        forwarded_allow_ips=forwarded_allow_ips,
        setup_env_file=None if setup_env == "-" else Path(setup_env),
        log_level=choice("LOG_LEVEL", "info", LOG_LEVELS),
        log_format=choice("LOG_FORMAT", "pretty", LOG_FORMATS),
        retention_days=whole("RETENTION_DAYS", 14),
        max_cost_per_task=dollars("MAX_COST_PER_TASK"),
        max_cost_per_day=dollars("MAX_COST_PER_DAY"),
        agent_prices=tuple((m, i, o) for m, (i, o) in prices.items()),
    )


def _off_this_machine(allow: str) -> list[str]:
    """The entries of FORWARDED_ALLOW_IPS that trust an address other than loopback."""
    found = []
    for entry in _list(allow):
        # uvicorn reads `*` as any only when alone; anywhere, it says what was meant.
        if entry == "*":
            found.append(entry)
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue  # uvicorn compares it as text, and a client's address is never that
        ends = (network.network_address, network.broadcast_address)
        if not all(is_loopback(str(end)) for end in ends):
            found.append(entry)
    return found


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (raw or "").split(",") if n.strip())


def _key_path(inline: str | None, path: str | None) -> Path | None:
    return Path(path).expanduser().resolve() if path is not None and inline is None else None


def _private_key(inline: str | None, path: str | None) -> str | None:
    if inline is not None:
        # A key pasted into one environment line carries its newlines as a literal `\n`.
        key = inline.replace("\\n", "\n")
    elif path is not None:
        try:
            key = Path(path).expanduser().read_text()
        except OSError as exc:
            raise SettingsError(
                f"PRIVATE_KEY_PATH cannot be read: {exc.strerror}: {path}"
            ) from None
    else:
        return None
    if "-----BEGIN" not in key or "PRIVATE KEY-----" not in key:
        name = "PRIVATE_KEY" if inline is not None else "PRIVATE_KEY_PATH"
        raise SettingsError(f"{name} is not a PEM private key (no '-----BEGIN ... PRIVATE KEY')")
    return key.strip() + "\n"
