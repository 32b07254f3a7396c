"""Benchmark 2: isolated working copies for 4 concurrent tasks on a large repository.

    .venv/bin/python bench/workspaces.py [--repeat 3]

Compares forgehand's workspaces (jobs/workspace.py, as tasks use them) — a new tree checked out
from the warm mirror, as the first tasks on a machine get, and a kept tree reset to the new
task's branch, as later tasks get — with a fresh `git clone` per task, with copying a cached
clone per task (what Sweep did), and with the limit of unpacking the files alone. On a
generated repository (20,000 files, 1,000 commits) and on Python's standard library committed
as a repository. Each timed round starts on a settled disk. Prints Markdown tables for
docs/benchmarks.md.
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
from contextlib import ExitStack, suppress
from pathlib import Path

from jobs.workspace import Workspaces
from simulator.sim import bare_from

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
    bare = bare_from(seed, root / "stdlib.git", "stdlib")
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


def settle() -> None:
    """Let the disk finish what earlier rounds left (writeback, discards of deleted files),
    so no strategy is timed while paying for the one before."""
    os.sync()
    time.sleep(2)


def timed(work: Callable[[int], Path]) -> tuple[float, list[Path]]:
    settle()
    started = time.perf_counter()
    with ThreadPoolExecutor(TASKS) as pool:
        paths = list(pool.map(work, range(TASKS)))
    return time.perf_counter() - started, paths


def as_an_agent_would(tree: Path) -> None:
    """Leave what a task leaves: an edited file, a new one, build output."""
    victim = next(p for p in sorted(tree.rglob("*.py")) if ".git" not in p.parts)
    victim.write_text(victim.read_text() + "# edited\n")
    (tree / "notes.txt").write_text("scratch\n")
    (tree / "__pycache__").mkdir(exist_ok=True)
    (tree / "__pycache__" / "x.pyc").write_bytes(b"0" * 4096)


class Warmed(Exception):
    """Ends the warm-up task early, so that its worktree is removed rather than kept."""


NEW = "forgehand: new tree from the warm mirror"
KEPT = "forgehand: kept tree, reset to the new task's branch"
CLONE = "fresh clone per task"
COPY = "copy of a cached clone per task"
LIMIT = "(limit) unpacking the files alone, tar -x"


def measure(bare: Path, scratch: Path) -> dict[str, tuple[float, float]]:
    """Per strategy: median seconds for 4 concurrent copies, mean extra bytes per copy.

    Rounds are interleaved, in an order that rotates, and nothing is deleted until all are
    done: on this machine's disk a large deletion stalls the writes that follow it."""
    url = f"file://{bare}"
    ws = Workspaces(scratch / "ws")
    for r in range(REPEAT):
        # One mirror per round (repository id 100 + r), fetched before any timing, as a machine
        # has it after its first task on the repository; the warm-up's worktree is not kept.
        with suppress(Warmed), ws.worktree("warmup", 100 + r, url, None, "agent/w", "main", True):
            raise Warmed
    cached = scratch / "cached"
    git("clone", "--quiet", url, str(cached), cwd=scratch)
    archive = scratch / "files.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), "main"], cwd=bare,
                   env=GIT_ENV, check=True)  # fmt: skip
    os.sync()
    time.sleep(10)

    def forgehand(r: int) -> tuple[float, float, float, float]:
        """A round of new worktrees (none kept yet: the first tasks on a machine), edited as
        an agent would, then a round that gets those kept worktrees back: the steady state."""
        out: list[float] = []
        for label in ("new", "kept"):
            with ExitStack() as stack:

                def make(i: int, stack: ExitStack = stack, label: str = label) -> Path:
                    name = f"{label}{r}-{i}"
                    tree = stack.enter_context(
                        ws.worktree(name, 100 + r, url, None, f"agent/{name}", "main", True)
                    )
                    return tree.path

                seconds, paths = timed(make)
                out += [seconds, statistics.mean(du(p) for p in paths)]
                for p in paths:
                    as_an_agent_would(p)
        return out[0], out[1], out[2], out[3]

    def others(label: str, r: int) -> tuple[float, float]:
        base = scratch / f"{label.split()[0]}{r}"
        base.mkdir()

        def one(i: int) -> Path:
            target = base / f"c{i}"
            if label == CLONE:
                git("clone", "--quiet", url, str(target), cwd=base)
            elif label == COPY:
                # cp rather than Python's copytree, which is slower: the stronger peer.
                subprocess.run(["cp", "-a", str(cached), str(target)], check=True)
            else:
                target.mkdir()
                subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
            return target

        seconds, paths = timed(one)
        return seconds, statistics.mean(du(p) for p in paths)

    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in (NEW, KEPT, CLONE, COPY, LIMIT)}
    order = ["forgehand", CLONE, COPY, LIMIT]
    for r in range(REPEAT):
        turn = order[r % len(order) :] + order[: r % len(order)]
        for label in turn:
            if label == "forgehand":
                new_s, new_x, kept_s, kept_x = forgehand(r)
                samples[NEW].append((new_s, new_x))
                samples[KEPT].append((kept_s, kept_x))
            else:
                samples[label].append(others(label, r))
    results = {
        k: (statistics.median(t for t, _ in v), statistics.mean(x for _, x in v))
        for k, v in samples.items()
    }
    mirror = float(du(scratch / "ws" / "mirrors" / "0-100.git"))
    results["(mirror, once per machine)"] = (0.0, mirror)
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
            kept, new = results[KEPT][0], results[NEW][0]
            print(f"\n### {name}: checked-out files {files / 2**20:.0f} MiB\n")
            print("| 4 concurrent tasks | seconds (median) | ÷ kept tree | ÷ new tree "
                  "| extra disk per workspace | ÷ checked-out files |")  # fmt: skip
            print("|---|---|---|---|---|---|")
            for label, (seconds, extra) in results.items():
                if label.startswith("(mirror"):
                    print(f"| {label} | — | — | — | {extra / 2**20:.0f} MiB | — |")
                    continue
                cells = [
                    label,
                    f"{seconds:.2f}",
                    f"{seconds / kept:.1f}",
                    f"{seconds / new:.1f}",
                    f"{extra / 2**20:.1f} MiB",
                    f"{extra / files:.2f}",
                ]
                print("| " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
