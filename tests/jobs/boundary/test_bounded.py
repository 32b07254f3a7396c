"""Commands read with a cap: the output kept, the cut, the timeout."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from jobs.boundary import bounded

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


def test_output_within_the_limit_is_kept_whole(tmp_path: Path) -> None:
    out = bounded.run(["printf", "abc"], cwd=tmp_path, env=ENV, limit=10, timeout=10)
    assert (out.stdout, out.returncode, out.cut, out.timed_out) == (b"abc", 0, False, False)


def test_endless_output_is_cut_and_the_command_stopped(tmp_path: Path) -> None:
    sink = io.BytesIO()
    out = bounded.run(["yes"], cwd=tmp_path, env=ENV, limit=1 << 20, timeout=30, sink=sink)
    assert out.cut and not out.timed_out
    assert len(sink.getvalue()) <= 1 << 20 and out.stdout == b""


def test_a_silent_command_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    out = bounded.run(["sleep", "30"], cwd=tmp_path, env=ENV, limit=10, timeout=0.2)
    assert out.timed_out and out.returncode != 0


def test_stderr_keeps_its_end(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('x' * 200000 + 'the end')"
    out = bounded.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, limit=10,
                      timeout=30)  # fmt: skip
    assert out.stderr.endswith("the end") and len(out.stderr) <= bounded.STDERR_LIMIT
