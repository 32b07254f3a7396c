"""Agent presets and the process runner: clean environment, own process group, timeouts.

The prompt reaches the agent as data only (stdin and a file), never spliced into a command
line; the argv of every preset is fixed text.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.agents.presets import PRESETS
from jobs.boundary import disk_used, kill_group, spawn
from jobs.errors import AgentConfigError

# What an agent may inherit from the worker's environment besides AGENT_ENV names.
BASE_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "TZ",
)
KILL_GRACE = 5.0
POLL = 0.1
FLUSH_EVERY = 0.5
# Output is bounded whatever the agent prints: a line is cut at LINE_LIMIT bytes, the log file
# stops at LOG_LIMIT bytes, and at most PENDING_LIMIT lines wait for the next flush to Redis.
LINE_LIMIT = 4096
# The last lines are also kept whole up to this length, for a preset to read its final
# message from (a CLI's last event can be longer than a line of the log).
RAW_LINE_LIMIT = 64 * 1024
LOG_LIMIT = 16 * 1024 * 1024
PENDING_LIMIT = 1000
# The work tree is walked to tell a silent but working agent from a stuck one; a tree the agent
# filled with more entries than this is judged by the first ones only.
TREE_WALK_LIMIT = 200_000
# What an agent's own complaint looks like, when it exits 0 having done nothing (aider reports
# a refused or failed API call and still exits 0).
COMPLAINT = re.compile(
    r"error|exception|fail|denied|refused|unauthori[sz]ed|forbidden|not found|cannot|can't|"
    r"unable|missing|invalid",
    re.IGNORECASE,
)


# How often, at least, the disk the agent's files take is counted (see DiskCap).
DISK_EVERY = 5.0


@dataclass(frozen=True)
class DiskCap:
    """The most disk the files under `paths` (the task's tree and the agent's home) may take;
    past it the agent is stopped, as at a timeout."""

    paths: tuple[Path, ...]
    limit: int


def argv_for(agent: str, agent_command: str | None, prompt_file: Path, workdir: Path) -> list[str]:
    if agent == "command":
        if not agent_command:
            raise AgentConfigError("agent is `command` but no agent_command is set")
        try:
            template: Sequence[str] = shlex.split(agent_command)
        except ValueError as exc:
            raise AgentConfigError(f"agent_command cannot be parsed: {exc}") from None
    elif agent in PRESETS:
        template = PRESETS[agent].argv
    else:
        raise AgentConfigError(f"unknown agent {agent!r}; use one of {', '.join(PRESETS)}, command")
    if not template:
        raise AgentConfigError("agent_command is empty")
    subs = {"{prompt_file}": str(prompt_file), "{workdir}": str(workdir)}
    out = []
    for part in template:
        for key, value in subs.items():
            part = part.replace(key, value)
        out.append(part)
    return out


def check_keys(agent: str, passthrough: Sequence[str], source: Mapping[str, str]) -> None:
    """Raise AgentConfigError unless the preset's API key is named in AGENT_ENV and set, or
    the operator gave the CLI's own configuration (and it reads)."""
    preset = PRESETS.get(agent)
    wanted = preset.keys if preset is not None else ()
    given = {name: source[name] for name in passthrough if source.get(name)}
    try:
        if preset is not None and preset.operator_config(given):
            return  # the operator's own configuration names the provider and its key
    except ValueError as exc:
        raise AgentConfigError(f"the {agent} agent's configuration: {exc}") from None
    if not wanted or any(name in given for name in wanted):
        return
    either = " or ".join(wanted)
    named = [name for name in wanted if name in passthrough]
    if named:
        raise AgentConfigError(
            f"{either} is named in AGENT_ENV but not set: the {agent} agent needs its API key"
        )
    raise AgentConfigError(
        f"AGENT_ENV lacks {either}: the {agent} agent needs its API key in the worker's "
        f"environment and its name in AGENT_ENV (e.g. AGENT_ENV={wanted[0]})"
    )


def agent_env(
    source: Mapping[str, str], passthrough: Sequence[str], extra: Mapping[str, str]
) -> dict[str, str]:
    """A clean environment: the basics, the named passthrough variables, and `extra`."""
    env = {k: source[k] for k in (*BASE_ENV, *passthrough) if k in source}
    env.setdefault("PATH", os.defpath)
    env.update({"GIT_TERMINAL_PROMPT": "0", "TERM": "dumb", "NO_COLOR": "1", "CI": "true"})
    env.update(extra)
    return env


@dataclass(frozen=True)
class AgentResult:
    exit_code: int | None
    killed: str | None  # "timeout" or "idle" when forgehand stopped it
    seconds: float
    tail: str  # the last lines of output as the dashboard shows them, for status comments
    lines: tuple[str, ...] = ()  # the same lines as printed, each up to RAW_LINE_LIMIT
    summary: str = ""  # the agent's final message, where its preset knows how to find it
    stopped: str = ""  # why the model gateway refused its calls (its budget), if it did

    @property
    def ok(self) -> bool:
        return self.killed is None and self.exit_code == 0

    @property
    def complaint(self) -> str:
        """The agent's last line that reads like an error, or ""."""
        for line in reversed(self.tail.splitlines()):
            if COMPLAINT.search(line):
                return line.strip()
        return ""

    def nothing_done(self, what: str) -> str:
        """Why a run that changed nothing did so, in the agent's own words where it gave any."""
        said = self.complaint
        if said:
            return f"The agent changed nothing and reported an error, so {what}: {said}"
        return f"The agent made no changes, so {what}."


def run(
    argv: Sequence[str],
    *,
    workdir: Path,
    prompt: str,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float,
    idle_timeout: float,
    on_output: Callable[[list[str]], None] | None = None,
    pgid_file: Path | None = None,
    tail_lines: int = 60,
    preexec: Callable[[], None] | None = None,
    render: Callable[[str], str | None] | None = None,
    disk: DiskCap | None = None,
) -> AgentResult:
    """Run one agent process to its end, or until a timeout (or passing `disk`) kills its
    whole process group."""
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = spawn(
            argv,
            cwd=workdir,
            env=env,
            preexec=preexec,
            stdin=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except FileNotFoundError:
        raise AgentConfigError(f"agent program not found: {argv[0]}") from None
    except PermissionError:
        raise AgentConfigError(f"agent program is not executable: {argv[0]}") from None
    if pgid_file is not None:
        pgid_file.parent.mkdir(parents=True, exist_ok=True)
        pgid_file.write_text(str(proc.pid))
    try:
        return _supervise(
            proc, workdir, prompt, log_path, timeout, idle_timeout, on_output, started, tail_lines,
            render, disk,
        )  # fmt: skip
    finally:
        kill_group(proc.pid, signal.SIGKILL)
        # Reaped here too when the run was interrupted (a hand-back), not only at its end.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if pgid_file is not None:
            pgid_file.unlink(missing_ok=True)


def _supervise(
    proc: subprocess.Popen[bytes],
    workdir: Path,
    prompt: str,
    log_path: Path,
    timeout: float,
    idle_timeout: float,
    on_output: Callable[[list[str]], None] | None,
    started: float,
    tail_lines: int,
    render: Callable[[str], str | None] | None,
    disk: DiskCap | None = None,
) -> AgentResult:
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    last_output = [time.monotonic()]
    pending: list[str] = []
    tail: list[str] = []
    raw_tail: list[str] = []
    lock = threading.Lock()

    def feed() -> None:
        try:
            stdin.write(prompt.encode())
            stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the agent need not read its stdin

    def read() -> None:
        with log_path.open("ab") as log:
            written = log.tell()
            skipped = 0
            while raw := stdout.readline(RAW_LINE_LIMIT):
                cut = not raw.endswith(b"\n")
                while cut and (rest := stdout.readline(RAW_LINE_LIMIT)):
                    # The rest of an over-long line is read and dropped, never held.
                    last_output[0] = time.monotonic()
                    if rest.endswith(b"\n"):
                        break
                whole = raw.decode(errors="replace").rstrip("\n") + (" [line cut]" if cut else "")
                line = _cut(whole)
                if written < LOG_LIMIT:
                    out = (line + "\n").encode()
                    if written + len(out) >= LOG_LIMIT:
                        out = b"[forgehand: log limit reached; the rest is not kept]\n"
                    log.write(out)
                    log.flush()
                    written += len(out)
                readable = render(whole) if render is not None else whole
                shown = [_cut(x) for x in (readable or "").splitlines() if x.strip()]
                with lock:
                    last_output[0] = time.monotonic()
                    raw_tail.append(whole)
                    del raw_tail[:-tail_lines]
                    tail.extend(shown)
                    del tail[:-tail_lines]
                    if len(pending) >= PENDING_LIMIT:
                        skipped += len(shown)
                        continue
                    if skipped:
                        pending.append(f"[forgehand: {skipped} lines skipped]")
                        skipped = 0
                    pending.extend(shown)

    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=read, daemon=True),
    ]
    for t in threads:
        t.start()

    def flush() -> None:
        with lock:
            batch = pending[:]
            pending.clear()
        if batch and on_output is not None:
            on_output(batch)

    killed: str | None = None
    last_flush = time.monotonic()
    tree = tree_mark(workdir)
    next_disk = time.monotonic()
    while proc.poll() is None:
        now = time.monotonic()
        with lock:
            idle = now - last_output[0]
        if now - started > timeout:
            killed = "timeout"
        elif disk is not None and now >= next_disk:
            if disk_used(disk.paths, disk.limit) > disk.limit:
                killed = "disk"
            # Counting costs a walk of the tree: at most a twentieth of the time.
            next_disk = time.monotonic() + max(DISK_EVERY, 20 * (time.monotonic() - now))
        elif idle > idle_timeout:
            # Silent is not stuck while the work tree keeps changing; the tree is walked only
            # here, at most once per idle period.
            seen = tree_mark(workdir)
            if seen != tree:
                tree = seen
                with lock:
                    last_output[0] = now
            else:
                killed = "idle"
        if killed:
            _terminate(proc)
            break
        if now - last_flush >= FLUSH_EVERY:
            flush()
            last_flush = now
        # Returns as soon as the agent exits, so its end is seen at once.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=POLL)
    # Children the agent left running would hold the output pipe open; they go too.
    kill_group(proc.pid, signal.SIGKILL)
    threads[1].join(timeout=10)
    stdout.close()
    flush()
    with lock:
        text, lines = "\n".join(tail), tuple(raw_tail)
    return AgentResult(proc.wait(), killed, time.monotonic() - started, text, lines)


def tree_mark(root: Path) -> int:
    """A fingerprint of the names, sizes and modification times under `root` (links are not
    followed; the object store is skipped, its refs and index say enough)."""
    marks: list[tuple[str, int, int]] = []
    objects = str(root / ".git" / "objects")
    stack = [str(root)]
    while stack and len(marks) < TREE_WALK_LIMIT:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    marks.append((entry.path, info.st_size, info.st_mtime_ns))
                    if entry.is_dir(follow_symlinks=False) and entry.path != objects:
                        stack.append(entry.path)
    return hash(tuple(sorted(marks)))


def _cut(line: str) -> str:
    return line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT] + " [line cut]"


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_recorded(pgid_file: Path) -> bool:
    """Kill the agent process group a pgid file names; used when its job is stopped."""
    try:
        pgid = int(pgid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    kill_group(pgid, signal.SIGKILL)
    pgid_file.unlink(missing_ok=True)
    return True
