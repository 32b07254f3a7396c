"""Benchmark: forgehand's own time per task from the agent's exit to the pushed branch.

    .venv/bin/python bench/handoff.py SOURCE_DIR [--rounds 7]

SOURCE_DIR (e.g. an unpacked sympy sdist) is committed as the origin repository. Each round is
one task as the pipeline runs it: a worktree (kept from the round before, after the first),
ten files changed as an agent would, then what forgehand does once the agent has exited —
`commit` (the hand-off, the diff for the dashboard, the commit list), `check_protected`
and `push` to the origin — timed together. Runs against whichever forgehand is importable, so
the same script measures two checkouts (PYTHONPATH=<other checkout>). Also times a fresh
`git clone` and taking a kept tree, for the at-least-5-times target of docs/benchmarks.md.
Uses Redis at REDIS_URL (database FORGEHAND_BENCH_DB, default 3) for the task's store, as a
worker does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from redis import Redis

from app.github import App, Identity
from app.repo_config import RepoConfig
from app.settings import parse
from app.store.store import Store
from app.tasks import Kind, Task
from jobs.boundary.redact import redactor_for
from jobs.pipeline import Context, Repo, Run, check_protected, commit, push
from jobs.workspace import Workspaces
from simulator.sandbox import key_pair
from simulator.sim import bare_from

GIT_ENV = os.environ | {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip
CHANGED = 10


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def origin_from(source: Path, root: Path) -> Path:
    seed = root / "seed"
    shutil.copytree(source, seed, symlinks=True)
    bare = bare_from(seed, root / "origin.git", "import")
    shutil.rmtree(seed)
    return bare


class Token:
    """What push asks of the installation client: a token (a local origin needs none)."""

    def token(self) -> str:
        return ""


def as_an_agent_would(tree: Path, round_: int) -> None:
    files = [p for p in sorted(tree.rglob("*.py")) if ".git" not in p.parts][:CHANGED]
    for path in files:
        path.write_text(path.read_text() + f"# round {round_}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forgehand-bench-handoff-"))
    redis = Redis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        db=int(os.environ.get("FORGEHAND_BENCH_DB", "3")),
    )
    try:
        bare = origin_from(args.source.resolve(), root)
        url = f"file://{bare}"
        pem, _ = key_pair()
        settings = parse({"WORKSPACES_DIR": str(root / "ws"), "AGENT_SANDBOX": "bwrap",
                          "APP_ID": "1", "PRIVATE_KEY": pem})  # fmt: skip
        ctx = Context(Store(redis), settings, App(settings, redis), Workspaces(root / "ws"))
        repo = Repo("bench/sympy", url, "main", RepoConfig(), ())
        identity = Identity("forgehand", 1)
        handoff, kept = [], []
        for r in range(args.rounds):
            task = Task(Kind.ISSUE, 1, 1, "bench/sympy", 1000 + r, "bench")
            started = time.perf_counter()
            with ctx.workspaces.worktree(
                task.id, 1, url, None, f"agent/bench-{r}", "main", True
            ) as tree:
                if r:
                    kept.append(time.perf_counter() - started)
                as_an_agent_would(tree.path, r)
                run = Run(task, ctx, repo, tree, identity)
                run.__dict__["redactor"] = redactor_for(replace(settings), None)
                started = time.perf_counter()
                commits = commit(run, f"Change {CHANGED} files")
                check_protected(run)
                push(run, Token())  # type: ignore[arg-type]
                handoff.append(time.perf_counter() - started)
                assert commits, "nothing was committed"
        clones = []
        for r in range(3):
            started = time.perf_counter()
            git("clone", "--quiet", url, str(root / f"clone{r}"), cwd=root)
            clones.append(time.perf_counter() - started)
        files = sum(1 for p in (root / "clone0").rglob("*") if ".git" not in p.parts)
        print(f"| repository | files | hand-off (median of {args.rounds}) | kept tree | "
              "fresh clone | clone ÷ kept |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        k, c = statistics.median(kept), statistics.median(clones)
        print(f"| {args.source.name} | {files} | {statistics.median(handoff) * 1000:.0f} ms | "
              f"{k * 1000:.0f} ms | {c * 1000:.0f} ms | {c / k:.1f} times |")  # fmt: skip
        print("hand-off rounds (ms): " + " ".join(f"{s * 1000:.0f}" for s in handoff))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
