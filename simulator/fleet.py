"""The fleet story, for `forgehand sandbox --scenario fleet` and the end-to-end test: four
issues labelled at once — two that touch different files, one that collides with the first,
one that depends on the second — played through to merge against the simulator."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from simulator.github import merges, pull_view
from simulator.sim import Simulation

CALC = """\
def add(a, b):
    return a - b  # add
"""
TESTS = "import calc\n\nprint('all tests passed')\n"
FILES = {"calc.py": CALC, "test_calc.py": TESTS, "README.md": "# calc\n"}
ISSUES = (
    (1, "add() subtracts", "`add(2, 3)` returns -1 instead of 5."),
    (2, "Document the project", "README.md says nothing about what calc does."),
    (3, "add() should take three numbers", "`add` in `calc.py` should accept a third number."),
    (4, "Add mul()", "A `mul()` next to `add()`.\n\nDepends on #2"),
)
MARKER = "<!-- forgehand:overlap -->"
ORDER = re.compile(r"Suggested merge order: ((?:#\d+(?: \([^)]*\))?(?: → )?)+)")


class Story:
    def __init__(
        self,
        sim: Simulation,
        state_of: Callable[[str], str | None],
        say: Callable[[str], None],
        timeout: float,
    ) -> None:
        self.sim = sim
        self.state_of = state_of  # a task id's state, as the task store has it
        self.say = say
        self.timeout = timeout
        self.seen: list[str] = []  # what the story checked, in order

    def wait(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + self.timeout
        while not (found := condition()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.2)
        self.seen.append(what)
        return found

    def pull_for(self, issue: int) -> int | None:
        for number, pull in self.sim.sim.pulls.items():
            if (pull.get("body") or "").startswith(f"Fixes #{issue}\n"):
                return number
        return None

    def overlap_comment(self, number: int) -> str | None:
        for comment in self.sim.sim.comments.values():
            if comment["issue"] == number and comment["body"].startswith(MARKER):
                return str(comment["body"])
        return None

    def mergeable(self, number: int) -> bool:
        view = pull_view(self.sim.sim, number)
        return merges(self.sim.origin, view["base"]["sha"], view["head"]["sha"])

    def play(self, repo_id: int) -> dict[str, Any]:
        """Run the story; what happened, for the caller to check or tell."""
        sim = self.sim
        for number, title, body in ISSUES:
            sim.open_issue(number, title, body)
        self.say("carol labels issues #1 to #4 `agent` at once; #4 depends on #2")
        for number, _title, _body in ISSUES:
            sim.label_issue(number, "agent")
        pulls: dict[int, int] = {}
        for n in (1, 2, 3):
            pulls[n] = self.wait(partial(self.pull_for, n), f"a pull request for #{n}")
        opened = ", ".join(f"#{p} for issue #{i}" for i, p in pulls.items())
        self.say(f"pull requests opened: {opened}")
        waiting = f"issue-{repo_id}-4"
        self.wait(lambda: self.state_of(waiting) == "waiting", "#4 waiting for #2")
        held = [c["body"] for c in sim.sim.comments.values() if c["issue"] == 4]
        self.say("#4 waits: it is blocked by #2, which is still open")
        first = self.wait(lambda: self.overlap_comment(pulls[1]), "the overlap comment on #1's")
        self.wait(lambda: self.overlap_comment(pulls[3]), "the overlap comment on #3's")
        match = ORDER.search(first)
        assert match is not None, first
        order = [int(n) for n in re.findall(r"#(\d+)", match[1])]
        self.say(f"#{pulls[1]} and #{pulls[3]} both change calc.py; suggested merge order: "
                 + " then ".join(f"#{n}" for n in order))  # fmt: skip
        self.say(f"carol merges #{pulls[2]} (issue #2)")
        sim.merge_pull(pulls[2])
        dependent = self.wait(lambda: self.pull_for(4), "a pull request for #4 after #2 merged")
        self.say(f"#4 started by itself from the new base and opened #{dependent}")
        head, later = order
        self.say(f"carol merges #{head}, the first in the suggested order")
        main = sim.merge_pull(head)
        assert not self.mergeable(later), f"#{later} should conflict with main now"
        self.say(f"#{later} now conflicts with main; forgehand merges main into it")
        task = f"conflict-{repo_id}-{later}-{main}"
        self.wait(
            lambda: self.state_of(task) in ("done", "failed"), f"the conflict task of #{later}"
        )
        self.wait(lambda: self.mergeable(later), f"#{later} resolved")
        self.say(f"#{later} merges again: the conflict was resolved by a new commit")
        sim.merge_pull(later)
        sim.merge_pull(dependent)
        self.say(f"carol merges #{later} and #{dependent}: all four issues are done")
        return {"pulls": pulls, "dependent": dependent, "order": order, "overlap": first,
                "held": held}  # fmt: skip
