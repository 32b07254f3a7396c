"""Benchmark 2: isolated working copies for 4 concurrent tasks on a large repository.

    .venv/bin/python bench/workspaces.py [--repeat 3]

Compares forgehand's warm mirror + `git worktree` (jobs/workspace.py, as tasks use it) with a
fresh `git clone` per task and with copying a cached clone per task (what Sweep did), on a
generated repository (20,000 files, 1,000 commits) and on Python's standard library committed
as a repository. Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from jobs.workspace import Workspaces

TASKS = 4
GIT_ENV = os.environ | {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def generated_repo(root: Path, files: int = 20_000, commits: int = 1_000) -> Path:
    """A deterministic bare repository written with git fast-import."""
    bare = root / "generated.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=root)
    lines = []
    for c in range(commits):
        lines.append("commit refs/heads/main")
        lines.append(f"committer bench <bench@example.com> {1_700_000_000 + c} +0000")
        message = f"commit {c}"
        lines.append(f"data {len(message)}\n{message}")
        start = (c * 37) % files
        touched = range(files) if c == 0 else range(start, start + 20)
        for f in touched:
            path = f"pkg{f % 200:03d}/module{f:05d}.py"
            body = f"# file {f}, revision {c}\nVALUE = {f * c}\n" + "x = 1\n" * 20
            lines.append(f"M 644 inline {path}")
            lines.append(f"data {len(body.encode())}\n{body}")
    stream = ("\n".join(lines) + "\n").encode()
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=stream, env=GIT_ENV,
                   check=True)  # fmt: skip
    return bare


def stdlib_repo(root: Path) -> Path:
    """Python's standard library, committed once, as a bare repository."""
    seed = root / "stdlib-seed"
    shutil.copytree(sysconfig.get_paths()["stdlib"], seed, ignore=shutil.ignore_patterns(
        "__pycache__", "site-packages", "*.pyc"), symlinks=True)  # fmt: skip
    git("init", "--quiet", "-b", "main", cwd=seed)
    git("add", "-A", cwd=seed)
    git("commit", "--quiet", "-m", "stdlib", cwd=seed)
    bare = root / "stdlib.git"
    git("clone", "--quiet", "--bare", str(seed), str(bare), cwd=root)
    shutil.rmtree(seed)
    return bare


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


def checked_out_size(bare: Path, scratch: Path) -> int:
    """Bytes of the files alone (no .git) of one checkout: the floor for any copy."""
    tree = scratch / "plain"
    git("clone", "--quiet", "--depth", "1", f"file://{bare}", str(tree), cwd=scratch)
    shutil.rmtree(tree / ".git")
    size = du(tree)
    shutil.rmtree(tree)
    return size


def timed(work: Callable[[int], Path]) -> tuple[float, list[Path]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(TASKS) as pool:
        paths = list(pool.map(work, range(TASKS)))
    return time.perf_counter() - started, paths


def measure(bare: Path, scratch: Path) -> dict[str, tuple[float, float]]:
    """Per strategy: median seconds for 4 concurrent copies, extra bytes per copy."""
    url = f"file://{bare}"
    results: dict[str, tuple[float, float]] = {}

    # forgehand: a warm mirror (fetched once before), then a worktree per task.
    ws = Workspaces(scratch / "ws")
    with ws.worktree("warmup", 1, url, None, "agent/warm", "main", new_branch=True):
        pass
    mirror_size = du(scratch / "ws" / "mirrors")
    times, extras = [], []
    for r in range(REPEAT):
        with ExitStack() as stack:

            def make(i: int, stack: ExitStack = stack, r: int = r) -> Path:
                tree = stack.enter_context(
                    ws.worktree(f"t{r}-{i}", 1, url, None, f"agent/t{r}-{i}", "main", True)
                )
                return tree.path

            seconds, paths = timed(make)
            times.append(seconds)
            extras.append(statistics.mean(du(p) for p in paths))
    results["forgehand: warm mirror + worktree"] = (
        statistics.median(times),
        statistics.mean(extras),
    )

    # A fresh clone per task.
    times, extras = [], []
    for r in range(REPEAT):
        base = scratch / f"clones{r}"
        base.mkdir()

        def clone(i: int, base: Path = base) -> Path:
            git("clone", "--quiet", url, str(base / f"c{i}"), cwd=base)
            return base / f"c{i}"

        seconds, paths = timed(clone)
        times.append(seconds)
        extras.append(statistics.mean(du(p) for p in paths))
        shutil.rmtree(base)
    results["fresh clone per task"] = (statistics.median(times), statistics.mean(extras))

    # Copying one cached clone per task (Sweep's way).
    cached = scratch / "cached"
    git("clone", "--quiet", url, str(cached), cwd=scratch)
    times, extras = [], []
    for r in range(REPEAT):
        base = scratch / f"copies{r}"
        base.mkdir()

        def copy(i: int, base: Path = base) -> Path:
            shutil.copytree(cached, base / f"c{i}", symlinks=True)
            return base / f"c{i}"

        seconds, paths = timed(copy)
        times.append(seconds)
        extras.append(statistics.mean(du(p) for p in paths))
        shutil.rmtree(base)
    results["copy of a cached clone per task"] = (statistics.median(times), statistics.mean(extras))
    results["(mirror, once per machine)"] = (0.0, float(mirror_size))
    return results


REPEAT = 3


def main() -> int:
    global REPEAT
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    REPEAT = parser.parse_args().repeat
    root = Path(tempfile.mkdtemp(prefix="forgehand-bench-ws-"))
    try:
        for name, make in (("generated (20,000 files, 1,000 commits)", generated_repo),
                           ("Python standard library", stdlib_repo)):  # fmt: skip
            scratch = root / name.split()[0]
            scratch.mkdir()
            bare = make(scratch)
            files = checked_out_size(bare, scratch)
            results = measure(bare, scratch)
            ours = results["forgehand: warm mirror + worktree"][0]
            print(f"\n### {name}: checked-out files {files / 2**20:.0f} MiB\n")
            print("| 4 concurrent tasks | seconds (median) | forgehand is faster by | extra disk "
                  "per workspace | ÷ checked-out files |")  # fmt: skip
            print("|---|---|---|---|---|")
            for label, (seconds, extra) in results.items():
                if label.startswith("(mirror"):
                    print(f"| {label} | — | — | {extra / 2**20:.0f} MiB | — |")
                    continue
                ratio = "—" if seconds == ours else f"{seconds / ours:.1f}x"
                cells = [
                    label,
                    f"{seconds:.2f}",
                    ratio,
                    f"{extra / 2**20:.1f} MiB",
                    f"{extra / files:.2f}",
                ]
                print("| " + " | ".join(cells) + " |")
            shutil.rmtree(scratch)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
