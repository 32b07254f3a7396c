"""Pure: an epic's plan (`forgehand-plan.yml`, SPEC §6) read as data, checked, and enriched with
what a careful lead would work out before fanning out — files that do not exist yet, predicted
collisions, dependency cycles, waves and the critical path.

Nothing here does I/O. The plan's text comes from an agent (or a person editing the plan
comment), so it is parsed with no YAML tags and no aliases (a few kilobytes of nested aliases
expand to gigabytes), and every wrong field is one line of the reason.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

FILE_NAME = "forgehand-plan.yml"
# The first line of the plan comment on an epic: what tells its edits from other comments'.
COMMENT_MARKER = "<!-- forgehand:plan -->"
MAX_BYTES = 64 * 1024  # a plan of 8 rows is a few kilobytes
PLAN_MAX_ISSUES = 8  # rows a plan may have unless the repository's config says otherwise
SIZES = {"S": 1, "M": 2, "L": 3}  # weights for the critical path
MAX_TITLE = 256  # GitHub refuses longer issue titles
MAX_BODY = 20_000
MAX_FILES = 50  # per row
MAX_PROBLEMS = 20  # lines of a reason at most

_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_GLOB = re.compile(r"[*?\[]")
ROW_FIELDS = ("key", "title", "body", "files", "depends_on", "size")
REQUIRED = ("key", "title", "files", "size")


class PlanError(ValueError):
    """The plan cannot be used; `problems` has one line per thing wrong with it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        more = len(problems) - len(self.problems)
        lines = self.problems + ([f"… and {more} more"] if more > 0 else [])
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    body: str
    files: tuple[str, ...]
    depends_on: tuple[str, ...]
    size: str


@dataclass(frozen=True)
class Plan:
    summary: str
    rows: tuple[Row, ...]

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)


@dataclass(frozen=True)
class Checked:
    """A plan and what was worked out about it."""

    plan: Plan
    new_files: dict[str, tuple[str, ...]]  # row → files (or globs matching nothing) not there yet
    collisions: dict[str, tuple[str, ...]]  # row → other rows that own a file it owns
    pull_collisions: dict[str, tuple[int, ...]]  # row → open agent pull requests changing its files
    cycles: tuple[tuple[str, ...], ...]  # each a → … → a
    waves: dict[str, int]  # row → wave (1 runs first); rows on a cycle have none
    critical_path: tuple[str, ...]  # the longest chain of dependencies, weighted by size
    shared: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # (a, b) → files

    @property
    def blocking(self) -> list[str]:
        """Why this plan may not be filed as it stands (empty when it may)."""
        return [
            "the rows depend on each other in a cycle: " + " → ".join(cycle)
            for cycle in self.cycles
        ]

    @property
    def predicted(self) -> set[frozenset[str]]:
        """The pairs of rows predicted to collide."""
        return {frozenset(pair) for pair in self.shared}


# --- reading ------------------------------------------------------------------------------


class _PlainLoader(yaml.SafeLoader):
    """Safe YAML without aliases: what a plan needs, and nothing that multiplies."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a plan", None
            )
        return super().compose_node(parent, index)


def parse(text: str, max_issues: int = PLAN_MAX_ISSUES) -> Plan:
    """The plan a text describes. Raises PlanError with a line per problem."""
    if len(text.encode(errors="replace")) > MAX_BYTES:
        raise PlanError([f"the plan is larger than {MAX_BYTES // 1024} KiB"])
    try:
        data = yaml.load(text, Loader=_PlainLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PlanError(
            [f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"]
        ) from None
    if not isinstance(data, dict):
        raise PlanError([f"the plan must be a mapping with `summary` and `issues`, not "
                         f"{type(data).__name__}"])  # fmt: skip
    problems: list[str] = []
    for key in data:
        if key not in ("summary", "issues"):
            problems.append(f"unknown field `{key}` (known: summary, issues)")
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems.append("`summary` must be a non-empty string")
        summary = ""
    items = data.get("issues")
    if not isinstance(items, list) or not items:
        problems.append("`issues` must be a non-empty list of rows")
        items = []
    elif len(items) > max_issues:
        problems.append(
            f"the plan has {len(items)} rows; at most {max_issues} are allowed "
            "(`plan_max_issues` in .github/forgehand.yml)"
        )
    rows = [row for i, item in enumerate(items) if (row := _row(i, item, problems)) is not None]
    keys = [r.key for r in rows]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"key `{key}` is used by more than one row")
    for row in rows:
        for dep in row.depends_on:
            if dep == row.key:
                problems.append(f"row `{row.key}` depends on itself")
            elif dep not in keys:
                problems.append(f"row `{row.key}` depends on `{dep}`, which is no row's key")
    if problems:
        raise PlanError(problems)
    return Plan(summary.strip(), tuple(rows))


def _row(i: int, item: Any, problems: list[str]) -> Row | None:
    where = f"issues[{i}]"
    if not isinstance(item, dict):
        problems.append(f"{where} must be a mapping of {', '.join(ROW_FIELDS)}")
        return None
    before = len(problems)
    key = item.get("key")
    if isinstance(key, str) and _KEY.fullmatch(key):
        where = f"row `{key}`"
    for name in item:
        if name not in ROW_FIELDS:
            problems.append(f"{where}: unknown field `{name}` (known: {', '.join(ROW_FIELDS)})")
    for name in REQUIRED:
        if name not in item:
            problems.append(f"{where}: `{name}` is missing")
    if "key" in item and (not isinstance(key, str) or not _KEY.fullmatch(key)):
        problems.append(f"{where}: `key` must match [a-z0-9-]+ (at most 40), got {key!r:.60}")
    title = item.get("title")
    if "title" in item and (not isinstance(title, str) or not title.strip()):
        problems.append(f"{where}: `title` must be a non-empty string")
    elif isinstance(title, str) and len(title.strip()) > MAX_TITLE:
        problems.append(f"{where}: `title` is longer than {MAX_TITLE} characters")
    body = item.get("body", "")
    if body is None:
        body = ""
    if not isinstance(body, str):
        problems.append(f"{where}: `body` must be text")
    elif len(body) > MAX_BODY:
        problems.append(f"{where}: `body` is longer than {MAX_BODY} characters")
    files = item.get("files")
    if "files" in item:
        problems += [f"{where}: {p}" for p in _files_problems(files)]
    depends = item.get("depends_on", [])
    if depends is None:
        depends = []
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        problems.append(f"{where}: `depends_on` must be a list of row keys")
    size = item.get("size")
    if "size" in item and size not in SIZES:
        problems.append(f"{where}: `size` must be S, M or L, got {size!r:.20}")
    if len(problems) > before:
        return None
    return Row(
        key=str(key), title=" ".join(str(title).split()), body=str(body).strip(),
        files=tuple(dict.fromkeys(f.strip().removeprefix("./") for f in files or ())),
        depends_on=tuple(dict.fromkeys(depends)), size=str(size),
    )  # fmt: skip


def _files_problems(files: Any) -> list[str]:
    if not isinstance(files, list) or not all(isinstance(f, str) and f.strip() for f in files):
        return ["`files` must be a list of paths or globs"]
    if len(files) > MAX_FILES:
        return [f"`files` names more than {MAX_FILES} paths"]
    found = []
    for name in files:
        path = name.strip().removeprefix("./")
        parts = path.split("/")
        if path.startswith("/") or ".." in parts or "" in parts or any(ord(c) < 32 for c in path):
            found.append(f"`{path!r:.80}` is not a path inside the repository")
    return found


# --- working it out -----------------------------------------------------------------------


def is_glob(name: str) -> bool:
    return bool(_GLOB.search(name))


def _matches(pattern: str, path: str) -> bool:
    if not is_glob(pattern):
        return pattern == path
    # `**` and `*` both cross directories here, as people who write `app/**` mean.
    return fnmatch.fnmatchcase(path, pattern.replace("**", "*"))


def owned(entries: Iterable[str], files: Iterable[str]) -> frozenset[str]:
    """The paths a row's entries stand for: each path as named, each glob as what it matches."""
    existing = list(files)
    found: set[str] = set()
    for entry in entries:
        if is_glob(entry):
            found.update(f for f in existing if _matches(entry, f))
        else:
            found.add(entry)
    return frozenset(found)


def _shared(a: Row, b: Row, files: list[str]) -> tuple[str, ...]:
    """What two rows both own: paths both stand for, and the entries of one that the other's
    globs match (a new file both expect to write, a glob both name)."""
    common = set(owned(a.files, files) & owned(b.files, files))
    for x, y in ((a, b), (b, a)):
        for entry in x.files:
            if any(entry == other or (not is_glob(entry) and _matches(other, entry))
                   for other in y.files):  # fmt: skip
                common.add(entry)
    return tuple(sorted(common))


def check(plan: Plan, files: Iterable[str], pulls: Mapping[int, Iterable[str]]) -> Checked:
    """Work out a parsed plan against the repository's files and the files each open agent
    pull request changes."""
    existing = sorted(set(files))
    present = set(existing)
    new_files: dict[str, tuple[str, ...]] = {}
    for row in plan.rows:
        missing = [
            e for e in row.files if (owned([e], existing) if is_glob(e) else {e} & present) == set()
        ]
        if missing:
            new_files[row.key] = tuple(missing)
    shared: dict[tuple[str, str], tuple[str, ...]] = {}
    for i, a in enumerate(plan.rows):
        for b in plan.rows[i + 1 :]:
            common = _shared(a, b, existing)
            if common:
                shared[(a.key, b.key)] = common
    collisions: dict[str, list[str]] = {}
    for one, other in shared:
        collisions.setdefault(one, []).append(other)
        collisions.setdefault(other, []).append(one)
    pull_collisions: dict[str, tuple[int, ...]] = {}
    for row in plan.rows:
        mine = owned(row.files, existing)
        hit = tuple(sorted(n for n, changed in pulls.items()
                           if any(p in mine or any(_matches(e, p) for e in row.files)
                                  for p in changed)))  # fmt: skip
        if hit:
            pull_collisions[row.key] = hit
    edges = {r.key: r.depends_on for r in plan.rows}
    cycles = find_cycles(edges)
    on_cycle = {k for c in cycles for k in c}
    waves = _waves(edges, on_cycle)
    return Checked(
        plan=plan,
        new_files=new_files,
        collisions={k: tuple(v) for k, v in collisions.items()},
        pull_collisions=pull_collisions,
        cycles=cycles,
        waves=waves,
        critical_path=_critical_path(plan, waves),
        shared=shared,
    )


# A plan's rows can hold exponentially many cycles: these are named, at most, within at most
# so many steps of the search; one more is always found if any exists.
CYCLES_SHOWN = 20
CYCLE_STEPS = 20_000


def find_cycles(edges: Mapping[str, Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    """Dependency cycles, each once, as a → … → a starting at its smallest key: all of them in
    a plan of a few, some of them (CYCLES_SHOWN) in one that holds very many."""
    found: set[tuple[str, ...]] = set()
    graph = {k: list(v) for k, v in edges.items()}
    steps = 0

    def walk(path: list[str]) -> bool:
        """False once enough is found or searched."""
        nonlocal steps
        for nxt in graph.get(path[-1], []):
            steps += 1
            if len(found) >= CYCLES_SHOWN or steps > CYCLE_STEPS:
                return False
            if nxt == path[0]:
                found.add((*path, nxt))
            elif nxt not in path and nxt > path[0] and not walk([*path, nxt]):
                return False
        return True

    for start in sorted(graph):
        if not walk([start]):
            break
    if not found:
        found.update(_one_cycle(graph))
    return tuple(sorted(found))


def _one_cycle(graph: Mapping[str, list[str]]) -> tuple[tuple[str, ...], ...]:
    """A cycle of the graph if it has one (a depth-first search, each row visited once)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path, on_path = [root], {root}
        todo = [iter(graph.get(root, []))]
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                left = path.pop()
                done.add(left)
                on_path.discard(left)
                todo.pop()
            elif nxt in on_path:
                loop = path[path.index(nxt) :]
                first = loop.index(min(loop))
                loop = loop[first:] + loop[:first]
                return ((*loop, loop[0]),)
            elif nxt not in done and nxt in graph:
                path.append(nxt)
                on_path.add(nxt)
                todo.append(iter(graph[nxt]))
    return ()


def _waves(edges: Mapping[str, Iterable[str]], on_cycle: set[str]) -> dict[str, int]:
    """Rows with nothing to wait for are wave 1; a row runs one wave after the latest row it
    depends on. Rows on a cycle, or waiting for one, have no wave."""
    waves: dict[str, int] = {}
    pending = [k for k in edges if k not in on_cycle]
    while pending:
        progressed = False
        for key in list(pending):
            deps = list(edges[key])
            if all(d in waves for d in deps):
                waves[key] = 1 + max((waves[d] for d in deps), default=0)
                pending.remove(key)
                progressed = True
        if not progressed:
            break  # the rest wait for a cycle
    return waves


def _critical_path(plan: Plan, waves: Mapping[str, int]) -> tuple[str, ...]:
    """The chain of dependencies with the most work on it (S 1, M 2, L 3), first row first."""
    best: dict[str, tuple[int, tuple[str, ...]]] = {}
    for key in sorted(waves, key=lambda k: (waves[k], k)):
        row = plan.row(key)
        before = max((best[d] for d in row.depends_on if d in best),
                     key=lambda b: b[0], default=(0, ()))  # fmt: skip
        best[key] = (before[0] + SIZES[row.size], (*before[1], key))
    if not best:
        return ()
    # Of equal work, the longer chain: it has more hand-offs to wait for.
    return max(best.values(), key=lambda b: (b[0], len(b[1])))[1]


def order(plan: Plan) -> list[Row]:
    """Rows with what they depend on first (plan order among equals); rows on a cycle last."""
    edges = {r.key: r.depends_on for r in plan.rows}
    waves = _waves(edges, {k for c in find_cycles(edges) for k in c})
    return sorted(plan.rows, key=lambda r: waves.get(r.key, len(plan.rows) + 1))
