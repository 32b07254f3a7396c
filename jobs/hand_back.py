"""Handing a run back to the queue when its worker stops: the signal a draining worker sends
its work-horse, and the point past which a run keeps its task whatever the worker says."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

from jobs.errors import HandedBack

# What a draining worker sends its work-horse when WORKER_DRAIN_TIMEOUT has passed.
HAND_BACK_SIGNAL = signal.SIGUSR1


def _hand_back(_signum: int, _frame: FrameType | None) -> None:
    # Once: a second signal must not interrupt the hand-back itself.
    listen(False)
    raise HandedBack


def listen(on: bool) -> None:
    """Whether this run ends at HAND_BACK_SIGNAL, raising HandedBack where it is."""
    # A work-horse runs its task on its main thread; a task run on another thread (tests run
    # several at once) has no worker to hand it back.
    if threading.current_thread() is threading.main_thread():
        signal.signal(HAND_BACK_SIGNAL, _hand_back if on else signal.SIG_IGN)


def delivering_file(run_dir: Path, horse_pid: int) -> Path:
    """Where work-horse `horse_pid` says that its run has begun to deliver."""
    return run_dir / f"delivering-{horse_pid}"


def keep(run_dir: Path) -> None:
    """The run begins to deliver (its first push): run again, it would run its agent again and
    push again, so it is handed back no more; its worker, told so, waits for it to finish."""
    if threading.current_thread() is threading.main_thread():
        listen(False)
        delivering_file(run_dir, os.getpid()).touch()


def kept(run_dir: Path) -> bool:
    """Whether this run has begun to deliver (keep) and not been let go since (resume)."""
    return delivering_file(run_dir, os.getpid()).exists()


def resume(run_dir: Path) -> None:
    """GitHub refused the push that keep preceded, so nothing of the run reached it: handed
    back, the run would push nothing twice, so it can be handed back again."""
    if threading.current_thread() is threading.main_thread():
        delivering_file(run_dir, os.getpid()).unlink(missing_ok=True)
        listen(True)
