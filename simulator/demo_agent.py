"""forgehand's demo agent, for the sandbox: deterministic, no model, reads its task on stdin.

Modes:
  careful  fixes only what the issue names; a CI failure then shows it the rest, which it fixes;
           a review makes it document add()
  hopeless changes something every time but never fixes anything (to show escalation)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "careful"
    task = sys.stdin.read()
    calc = Path("calc.py")
    source = calc.read_text()
    print(f"demo agent ({mode}): read a task of {len(task)} characters", flush=True)
    time.sleep(0.3)  # a moment to think, so the sandbox has something to show
    if mode == "hopeless":
        calc.write_text(source + f"# tried something at {time.strftime('%H:%M:%S')}\n")
        print("demo agent: changed a comment; the bug is beyond me", flush=True)
        return 0
    if "reviewed pull request" in task and '"""Sum' not in source:
        fixed = source.replace("def add(a, b):\n", 'def add(a, b):\n    """Sum of a and b."""\n')
        print("demo agent: the reviewer asked for clarity; documented add()", flush=True)
    elif "CI failed" in task:
        fixed = source.replace("return a + b  # sub", "return a - b  # sub")
        print("demo agent: CI says sub() is wrong too; fixing it", flush=True)
    else:
        fixed = source.replace("return a - b  # add", "return a + b  # add")
        print("demo agent: add() subtracted; it adds now", flush=True)
    calc.write_text(fixed)
    print("Summary: corrected the operator in calc.py.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
