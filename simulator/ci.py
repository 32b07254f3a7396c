"""Simulated CI: run the repository's test command on a commit, as a check run would."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from simulator.github import git_out

# `path.py:LINE: message` lines in test output become annotations.
_WHERE = re.compile(r"^\s*(?:File \")?([\w./-]+\.py)\"?(?:, line |:)(\d+)(?::|,)?\s*(.*)$")


@dataclass(frozen=True)
class Outcome:
    conclusion: str  # "success" or "failure"
    log: str
    annotations: list[dict[str, object]]


def run_checks(origin: Path, sha: str, command: str, timeout: float = 120) -> Outcome:
    scratch = Path(tempfile.mkdtemp(prefix="sim-ci-"))
    try:
        git_out("clone", "--quiet", "--no-checkout", str(origin), str(scratch), cwd=scratch.parent)
        git_out("checkout", "--quiet", sha, cwd=scratch)
        try:
            done = subprocess.run(
                ["sh", "-c", command],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch)},
            )
            log = (done.stdout + done.stderr).strip()
            conclusion = "success" if done.returncode == 0 else "failure"
        except subprocess.TimeoutExpired:
            log, conclusion = f"timed out after {timeout:.0f}s", "failure"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    notes: list[dict[str, object]] = []
    if conclusion == "failure":
        for line in log.splitlines():
            found = _WHERE.match(line)
            if found and not found[1].startswith("/"):
                notes.append(
                    {
                        "path": found[1],
                        "start_line": int(found[2]),
                        "end_line": int(found[2]),
                        "annotation_level": "failure",
                        "message": found[3] or line.strip(),
                    }
                )
    return Outcome(conclusion, log, notes[:20])
