"""What the sandbox costs an agent: its start, and its output per line.

Runs forgehand's own runner (jobs/agents/runner.py) on a scratch tree, once through the sandbox as
tasks do (bubblewrap, the egress proxy and the bridge inside) and once unsandboxed, rounds
interleaved, and prints a Markdown table of medians:

    .venv/bin/python bench/sandbox.py [--rounds 30] [--lines 1000000]

- start: an agent that exits at once (`true`), from the runner's call to its return
- output: an agent that prints --lines lines of 80 bytes, lines per second through the runner
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.settings import parse
from jobs.agents import runner as agent
from jobs.boundary.sandbox import Sandbox

PRINTER = "import sys\nline = 'x' * 79 + '\\n'\nfor _ in range({n}): sys.stdout.write(line)\n"


def timed(sandbox: Sandbox, scratch: Path, argv: list[str]) -> float:
    work, home, objects = scratch / "work", scratch / "home", scratch / "objects"
    env = agent.agent_env({"PATH": "/usr/bin:/bin"}, (), {})
    started = time.perf_counter()
    with sandbox.jail(work, home, objects, (), lambda _line: None) as jail:
        launch = jail.command(argv, env, trusted=True)
        result = agent.run(
            launch.argv,
            workdir=work,
            prompt="",
            env=launch.env,
            log_path=scratch / "log",
            timeout=600,
            idle_timeout=600,
            preexec=launch.preexec,
        )
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.tail
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    kinds = {
        "bwrap": Sandbox(parse({"AGENT_SANDBOX": "bwrap"})),
        "none": Sandbox(parse({"AGENT_SANDBOX": "none"})),
    }
    kinds["bwrap"].check()
    printer = [sys.executable, "-c", PRINTER.format(n=args.lines)]
    starts: dict[str, list[float]] = {k: [] for k in kinds}
    outputs: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name in ("work", "home", "objects"):
            (scratch / name).mkdir()
        for round_ in range(args.rounds):
            for name, sandbox in kinds.items():
                starts[name].append(timed(sandbox, scratch, ["true"]))
                if round_ < 5:
                    outputs[name].append(args.lines / timed(sandbox, scratch, printer))
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, {git}")
    print(f"Command: `.venv/bin/python bench/sandbox.py --rounds {args.rounds} "
          f"--lines {args.lines}`, {time.strftime('%Y-%m-%d')}\n")  # fmt: skip
    print("| | unsandboxed | sandboxed (bwrap + proxy) | cost |")
    print("|---|---|---|---|")
    s_none, s_bwrap = statistics.median(starts["none"]), statistics.median(starts["bwrap"])
    print(f"| agent start (median of {args.rounds}) | {s_none * 1000:.1f} ms | "
          f"{s_bwrap * 1000:.1f} ms | +{(s_bwrap - s_none) * 1000:.1f} ms |")  # fmt: skip
    o_none, o_bwrap = statistics.median(outputs["none"]), statistics.median(outputs["bwrap"])
    print(f"| output, lines/s (median of 5) | {o_none:,.0f} | {o_bwrap:,.0f} | "
          f"{o_bwrap / o_none:.2f} of it |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
