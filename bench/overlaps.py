"""Benchmark 7: checking a push for overlaps with 50 open agent pull requests on one repository.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/overlaps.py [--db 6] [--rounds 5]

A generated repository (2,000 files, 200 commits) has 50 agent branches, each changing 20 files,
some of them shared with other branches and some changing definitions. With the other 49
recorded in Redis, each branch in turn is checked as a worker checks a push
(jobs/fleet/overlap.py): git lists its files and the files whose definitions it changes, Redis
records them and returns the fleet, and the overlaps and merge order are computed. Prints the
wall time of one check (median, p95, max) and its parts, as a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from app.fleet.decisions import Pull
from app.fleet.state import FleetState
from app.store.redis_conn import connect
from jobs.fleet.overlap import changed_files, check_push

FILES, COMMITS, PULLS, TOUCHED = 2_000, 200, 50, 20
REPO_ID = 990_001


def path(f: int) -> str:
    return f"pkg{f % 40:02d}/module{f:04d}.py"


def body(f: int, rev: int, signature: str = "") -> str:
    return f"def f{f}({signature}):\n    return {rev}\n" + "x = 1\n" * 30


def generated_repo(root: Path) -> Path:
    """A bare repository written with git fast-import: main, and one branch per pull request."""
    bare = root / "fleet.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    rng = random.Random(7)
    out: list[str] = []

    def commit(ref: str, mark: int, parent: int | None, n: int, changes: dict[int, str]) -> None:
        out.extend([f"commit {ref}", f"mark :{mark}",
                    f"committer bench <bench@example.com> {1_700_000_000 + n} +0000",
                    f"data {len(f'c{n}')}\nc{n}"])  # fmt: skip
        if parent is not None:
            out.append(f"from :{parent}")
        for f, text in changes.items():
            data = text.encode()
            out.extend([f"M 644 inline {path(f)}", f"data {len(data)}\n{text}"])

    for c in range(COMMITS):
        files = list(range(FILES)) if c == 0 else rng.sample(range(FILES), 10)
        commit("refs/heads/main", c + 1, c if c else None, c, {f: body(f, c) for f in files})
    for p in range(PULLS):
        # A few hot files many branches meet in, the rest spread over the repository.
        touched = set(rng.sample(range(20), 3)) | set(rng.sample(range(FILES), TOUCHED - 3))
        changes = {f: body(f, 10_000 + p, "a" if f % 3 == 0 else "") for f in touched}
        commit(f"refs/heads/agent/issue-{p}", COMMITS + p + 1, COMMITS, COMMITS + p, changes)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input="\n".join(out) + "\n",
                   text=True, check=True)  # fmt: skip
    return bare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    redis = connect(f"{url}/{args.db}")
    state = FleetState(redis)
    with tempfile.TemporaryDirectory() as tmp:
        bare = generated_repo(Path(tmp))
        # The fleet as the workers would have recorded it.
        for p in range(PULLS):
            files, interface = changed_files(bare, "main", f"agent/issue-{p}")
            state.record(REPO_ID, Pull(1000 + p, p, float(p), files, interface))
        total, git_part, book_part, overlapping = [], [], [], []
        for _ in range(args.rounds):
            for p in range(PULLS):
                start = time.perf_counter()
                files, interface = changed_files(bare, "main", f"agent/issue-{p}")
                mid = time.perf_counter()
                found, _fleet = check_push(
                    state, REPO_ID, Pull(1000 + p, p, float(p), files, interface)
                )
                end = time.perf_counter()
                total.append(end - start)
                git_part.append(mid - start)
                book_part.append(end - mid)
                overlapping.append(len(found.shared))
        redis.delete(f"fh:fleet:{REPO_ID}:pulls")

    def ms(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[int(len(ordered) * 0.95) - 1]
        return (
            f"{statistics.median(values) * 1000:.1f} | {p95 * 1000:.1f} | {max(values) * 1000:.1f}"
        )

    print(f"{len(total)} checks; each pull request overlaps a median of "
          f"{statistics.median(overlapping):.0f} others\n")  # fmt: skip
    print("| part | median ms | p95 ms | max ms |\n|---|---|---|---|")
    print(f"| whole check | {ms(total)} |")
    print(f"| git: files and definitions changed | {ms(git_part)} |")
    print(f"| Redis and decision: record, read 50, overlaps, order | {ms(book_part)} |")


if __name__ == "__main__":
    main()
