"""Pure decisions for a fleet of agents on one repository: dependencies, the review cap,
overlapping pull requests and the order to merge them in.

Nothing here does I/O; workers read GitHub, git and Redis and pass plain values in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

MAX_OPEN_PULL_REQUESTS = 5
OVERLAP_MODES = ("warn", "serialize")  # what `overlap` in the repo config may say

# A line of its own, as people write them: "Depends on #3", "Blocked by: #4, #5 and #6".
_DEPENDS = re.compile(r"^[ \t>*-]*(?:depends[ \t]+on|blocked[ \t]+by)\b:?(.*)$", re.I | re.M)
_NUMBER = re.compile(r"(?<![\w/])#(\d{1,9})\b")
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.M | re.S)

# A changed line that defines or declares a name: where other code meets this file.
_DEFINITION = re.compile(
    r"^[+-](?![+-])\s*(?:export\s+|pub(?:\([a-z]+\))?\s+|public\s+|async\s+)*"
    r"(?:def|class|function|fn|func|interface|type|struct|enum|trait|const|module)\b"
)

# A path the issue names: a word with a directory or an extension, as in `src/app.py`.
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]{0,7})(?![\w/])")


def blockers_in(body: str | None, number: int = 0) -> tuple[int, ...]:
    """The issues a body's `Depends on #n` / `Blocked by #n` lines name, in order, once each.

    Lines inside fenced code are examples, not dependencies; an issue never blocks itself.
    """
    if not body:
        return ()
    found: list[int] = []
    for line in _DEPENDS.finditer(_FENCE.sub("", body)):
        for n in _NUMBER.findall(line.group(1)):
            value = int(n)
            if value != number and value not in found:
                found.append(value)
    return tuple(found)


def find_cycle(start: int, edges: Mapping[int, Iterable[int]]) -> tuple[int, ...] | None:
    """A path start → … → start through `edges` (issue → issues it waits for), or None."""
    path: list[int] = [start]
    seen: set[int] = set()
    stack: list[Iterator[int]] = [iter(edges.get(start, ()))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            path.pop()
            continue
        if nxt == start:
            return (*path, start)
        if nxt not in seen:
            seen.add(nxt)
            path.append(nxt)
            stack.append(iter(edges.get(nxt, ())))
    return None


def queue_position(waiting: Iterable[str], task_id: str) -> int:
    """1-based place of `task_id` in the queue (oldest first); appended when not in it."""
    order = list(waiting)
    return order.index(task_id) + 1 if task_id in order else len(order) + 1


def may_open(open_pulls: int, cap: int, position: int) -> bool:
    """Whether the task at `position` of the cap queue may open a pull request now: only as
    many of the queue's head as there are free slots, so that the queue stays first-come."""
    return position <= cap - open_pulls


def touches_interface(patch: str) -> bool:
    """Whether a unified diff of one file adds or removes a definition line."""
    return any(_DEFINITION.match(line) for line in patch.splitlines())


def paths_named(text: str | None) -> frozenset[str]:
    """File paths an issue's text names (`src/app.py`, `README.md`)."""
    if not text:
        return frozenset()
    found = (m.group(1).removeprefix("./") for m in _PATH.finditer(text))
    return frozenset(path for path in found if "//" not in path)


@dataclass(frozen=True)
class Pull:
    """One open agent pull request as the fleet sees it."""

    number: int
    issue: int
    created: float  # when it was opened: older merges first, all else equal
    files: frozenset[str]
    interface: frozenset[str] = frozenset()  # files whose definitions it changes
    branch: str = ""


def overlaps(pulls: Iterable[Pull]) -> dict[int, dict[int, frozenset[str]]]:
    """For each pull request that shares files with others: other number → shared files."""
    owners: dict[str, list[int]] = {}
    for pull in pulls:
        for path in pull.files:
            owners.setdefault(path, []).append(pull.number)
    shared: dict[int, dict[int, set[str]]] = {}
    for path, numbers in owners.items():
        if len(numbers) < 2:
            continue
        for a in numbers:
            for b in numbers:
                if a != b:
                    shared.setdefault(a, {}).setdefault(b, set()).add(path)
    return {a: {b: frozenset(p) for b, p in others.items()} for a, others in shared.items()}


def overlaps_of(pushed: Pull, others: Iterable[Pull]) -> dict[int, frozenset[str]]:
    """The files `pushed` shares with each other pull request (those it shares none with are
    left out): what a push needs checked, without the pairs it does not take part in."""
    return owners_of(pushed.files, (o for o in others if o.number != pushed.number))


def merge_order(pulls: Iterable[Pull]) -> list[int]:
    """Suggested order to merge overlapping pull requests in: one that changes the interface
    of a file it shares goes first, so the others adapt to it once; otherwise the older first.

    A total order over all the given pull requests, so every comment agrees with the others.
    """
    items = list(pulls)
    shared = overlaps(items)

    def changes_shared_interface(pull: Pull) -> bool:
        common = set().union(*shared.get(pull.number, {}).values())
        return bool(pull.interface & common)

    ranked = sorted(items, key=lambda p: (not changes_shared_interface(p), p.created, p.number))
    return [p.number for p in ranked]


def owners_of(paths: Iterable[str], pulls: Iterable[Pull]) -> dict[int, frozenset[str]]:
    """Open pull requests that already change any of `paths`: number → those paths."""
    wanted = frozenset(paths)
    found: dict[int, frozenset[str]] = {}
    for pull in pulls:
        common = wanted & pull.files
        if common:
            found[pull.number] = common
    return found


def interface_files(diff: str) -> frozenset[str]:
    """Files of a unified diff (`git diff` with `a/` and `b/` prefixes) whose definitions it
    changes."""
    found: set[str] = set()
    path, lines = "", list[str]()
    for line in [*diff.splitlines(), "diff --git end"]:
        if line.startswith("diff --git "):
            if path and touches_interface("\n".join(lines)):
                found.add(path)
            path, lines = "", []
        elif line.startswith(("+++ b/", "--- a/")) and not path:
            path = line[6:]
        elif not line.startswith(("+++ ", "--- ")):
            lines.append(line)
    return frozenset(found)
