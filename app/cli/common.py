"""What the commands share: how a command is described, settings loaded once with a bad one
ending the command in one line, the checks before serving or running agents, the Redis a
command reads, and unwinding on SIGTERM."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from app import logs
from app.settings import Settings, SettingsError, load
from app.store import connect

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

log = logging.getLogger("forgehand")

# Where `dev` leaves the address of its embedded Redis, so `forgehand tasks` run from the same
# directory finds it without REDIS_URL.
DEV_REDIS_POINTER = Path(".forgehand/dev-redis-url")


def _no_options(_parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    """A subcommand: `does` and `needs` make its --help, `options` adds its flags, `run` runs
    it with the parsed arguments and returns the exit code."""

    name: str
    does: str
    needs: str
    run: Callable[[argparse.Namespace], int]
    options: Callable[[argparse.ArgumentParser], None] = _no_options


def with_settings(
    run: Callable[[Settings, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """`run` given the settings, logging configured by them; a bad or missing setting ends it
    with one line and exit 2, Ctrl-C with 130."""

    def loaded(args: argparse.Namespace) -> int:
        try:
            settings = load()
            logs.configure(settings.log_level, settings.log_format)
            return run(settings, args)
        except SettingsError as exc:
            print(f"forgehand: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130

    return loaded


def positive(raw: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def serve(
    settings: Settings, redis_url: str, before_exit: Callable[[], None] | None = None
) -> None:
    from app.web import create_app, serving

    app = create_app(settings, connect(redis_url))
    serving.run(serving.Server(web_config(settings, app), before_exit))


def web_config(settings: Settings, app: ASGIApp) -> uvicorn.Config:
    """How `forgehand web` serves `app`: uvicorn, believing FORWARDED_ALLOW_IPS's proxies."""
    import uvicorn

    # Given explicitly, so that FORWARDED_ALLOW_IPS in .env counts as it does in the environment.
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning",
        proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
    )  # fmt: skip


def check_schema(redis_url: str) -> None:
    """Refuse a Redis written by a newer forgehand; bring an older one up to date."""
    from app.store import SchemaError, ensure

    redis = connect(redis_url)
    try:
        ensure(redis)
    except SchemaError as exc:
        raise SettingsError(str(exc)) from None
    except RedisError as exc:
        # Not up yet: the web process answers 503 meanwhile, and workers check once it is.
        log.warning("Redis does not answer yet (%s): its layout is checked later", exc)
    finally:
        redis.close()


def check_port(settings: Settings) -> None:
    """Stop with the fix when HOST:PORT cannot be listened on, before anything starts."""
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a process just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(
                    f"port {settings.port} on {settings.host} is in use by another program "
                    f"(another forgehand?): stop it, or set PORT to a free port, e.g. "
                    f"PORT={settings.port + 1 if settings.port < 65535 else 3000}"
                ) from None
            raise SettingsError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror} "
                "(check HOST and PORT)"
            ) from None


def contain(settings: Settings) -> None:
    """Refuse to run agents where the sandbox cannot be made; warn when it is turned off."""
    from jobs.boundary import UNSAFE_WARNING, Sandbox, SandboxUnavailable

    sandbox = Sandbox(settings)
    if not sandbox.contained:
        log.warning(UNSAFE_WARNING)
        return
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        raise SettingsError(str(exc)) from None


def local_redis_url(settings: Settings) -> str:
    """REDIS_URL, or the embedded Redis of a `forgehand dev` running in this directory."""
    url = settings.redis_url
    if url is None and DEV_REDIS_POINTER.is_file():
        url = DEV_REDIS_POINTER.read_text().strip()
    if url is None:
        raise SettingsError(
            "REDIS_URL is required (or run `forgehand dev` in this directory first)"
        )
    return url


def exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
