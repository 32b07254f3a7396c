"""forgehand's demo agent, for the sandbox: deterministic, no model, reads its task on stdin.

Modes:
  careful  fixes only what the issue names; a CI failure then shows it the rest, which it fixes;
           a review makes it document add()
  hopeless changes something every time but never fixes anything (to show escalation)
  fleet    the fleet scenario's issues, each by its title; and merge conflicts in calc.py;
           asked for a plan (the plan scenario's epic), writes forgehand-plan.yml
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "careful"
    task = sys.stdin.read()
    if mode == "fleet":
        return fleet(task)
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
        # Whatever follows the line (the sandbox's repository marks it `# add`, try-agent's
        # scratch repository does not).
        fixed = re.sub(r"(def add\(a, b\):\n\s+return a) - b", r"\1 + b", source)
        print("demo agent: add() subtracted; it adds now", flush=True)
    calc.write_text(fixed)
    print("Summary: corrected the operator in calc.py.", flush=True)
    return 0


FLEET_ADD = "def add(a, b, c=0):\n    return a + b + c  # add\n"
# The plan scenario's plan: `docs` waits for `fix-add`; `fix-add` and `three` both own calc.py.
PLAN = """\
summary: >-
  Fix add() and give it a third number as two rows (both change calc.py, so they are predicted
  to collide), and document the project once add() adds.
issues:
  - key: fix-add
    title: add() subtracts
    body: "`add(2, 3)` returns -1 instead of 5."
    files: [calc.py]
    size: S
  - key: three
    title: add() should take three numbers
    body: "`add` in `calc.py` should accept a third number."
    files: [calc.py]
    size: M
  - key: docs
    title: Document the project
    body: README.md says nothing about what calc does.
    files: [README.md]
    depends_on: [fix-add]
    size: S
"""


def fleet(task: str) -> int:
    """One change per issue of the fleet scenario, picked by words of its title."""
    time.sleep(0.3)
    calc = Path("calc.py")
    if "forgehand-plan.yml" in task:
        Path("forgehand-plan.yml").write_text(PLAN)
        print("demo agent: split the epic into three rows", flush=True)
    elif "merge conflicts" in task:
        # Both sides meant something: three numbers (one side), added correctly (the other).
        conflict = re.compile(r"^<<<<<<< .*?^>>>>>>> [^\n]*\n", re.M | re.S)
        calc.write_text(conflict.sub(FLEET_ADD, calc.read_text(), count=1))
        print("demo agent: kept both sides of add(): three numbers, added", flush=True)
    elif "subtracts" in task:
        calc.write_text(calc.read_text().replace("return a - b  # add", "return a + b  # add"))
        print("demo agent: add() subtracted; it adds now", flush=True)
    elif "three numbers" in task:
        calc.write_text(
            calc.read_text().replace(
                "def add(a, b):\n    return a - b  # add\n",
                "def add(a, b, c=0):\n    return a - b - c  # add\n",
            )
        )
        print("demo agent: add() takes a third number", flush=True)
    elif "Document" in task:
        Path("README.md").write_text("# calc\n\nAdds numbers: `add(2, 3)`.\n")
        print("demo agent: documented the project", flush=True)
    elif "mul()" in task:
        Path("mul.py").write_text("def mul(a, b):\n    return a * b\n")
        print("demo agent: added mul()", flush=True)
    else:
        print("demo agent: nothing here I know how to do", flush=True)
    print("Summary: see the diff.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
