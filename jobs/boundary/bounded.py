"""A command whose output the worker reads with a cap: what an agent wrote (its tree, its
history, git's account of them) can be of any size, and the worker's memory is not."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 16
STDERR_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Output:
    stdout: bytes  # empty when it went to a sink
    stderr: str
    returncode: int
    cut: bool  # stdout passed the limit and the command was stopped
    timed_out: bool


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    preexec: Callable[[], None] | None,
    stdin: int,
    stderr: int,
) -> subprocess.Popen[bytes]:
    """Start `argv` with its stdout piped, in a session of its own: its process group holds
    all it starts, so that `kill_group` can end every one of them."""
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=preexec,
    )


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limit: int,
    timeout: float,
    preexec: Callable[[], None] | None = None,
    sink: BinaryIO | None = None,
) -> Output:
    """Run `argv`, keeping at most `limit` bytes of its stdout (in memory, or written to
    `sink`) and the last STDERR_LIMIT bytes of its stderr; past the limit or the timeout its
    whole process group is killed."""
    proc = spawn(
        argv, cwd=cwd, env=env, preexec=preexec, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = bytearray()
    timed_out = threading.Event()

    def drain_stderr() -> None:
        assert proc.stderr is not None
        while chunk := os.read(proc.stderr.fileno(), CHUNK):
            errors.extend(chunk)
            del errors[:-STDERR_LIMIT]

    def expire() -> None:
        timed_out.set()
        kill_group(proc.pid, signal.SIGKILL)

    reader = threading.Thread(target=drain_stderr, daemon=True)
    reader.start()
    timer = threading.Timer(timeout, expire)
    timer.start()
    kept, size, cut = bytearray(), 0, False
    try:
        while chunk := os.read(proc.stdout.fileno(), CHUNK):
            if size + len(chunk) > limit:
                cut = True
                kill_group(proc.pid, signal.SIGKILL)
                break
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
            else:
                kept.extend(chunk)
        proc.stdout.close()
        returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=5)
    proc.stderr.close()
    text = bytes(errors).decode(errors="replace")
    return Output(bytes(kept), text, returncode, cut, timed_out.is_set())


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group; one already gone, or no longer ours to signal, is passed over."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
