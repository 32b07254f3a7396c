"""Pure: the plan comment on an epic — the plan as a table, how to go on, the YAML itself in a
fenced block a person may edit — and, once filed, the fleet it became as a live checklist.

Everything in a plan came from an agent or from whoever edited the comment: it is shown as
text (cells escaped, file names quoted), never as markup that could hide or ping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.fleet import COMMENT_MARKER, Checked, Row, owned
from jobs.boundary import printable

MARKER = COMMENT_MARKER
YAML_MARKER = "<!-- forgehand:plan-yaml -->"
MAX_FILES_SHOWN = 6
_YAML_BLOCK = re.compile(
    re.escape(YAML_MARKER)
    + r"[ \t]*\n+(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)(?:\n|^)(?P=fence)[ \t]*(?:\n|$)",
    re.S | re.M,
)


@dataclass(frozen=True)
class Progress:
    """How one filed row is doing."""

    issue: int
    pull: int | None = None
    state: str = "queued"  # the issue task's state, or "merged" / "closed" for its pull request
    changed: tuple[str, ...] | None = None  # files its pull request changes, once known


def cell(text: str) -> str:
    """Text for a table cell: one line, no column breaks, no markup, no mentions."""
    flat = " ".join(text.split())
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("@", "@\u200b"),
                      ("`", "'"), ("[", "\\["), ("]", "\\]")):  # fmt: skip
        flat = flat.replace(raw, safe)
    return flat


def code(name: str) -> str:
    """A file name as inline code in a table cell (GitHub splits cells at `|` even there)."""
    shown = printable(name).replace("`", "'").replace("|", "\\|")
    return f"`{shown}`"


def _files(row: Row, new: Iterable[str]) -> str:
    fresh = set(new)
    shown = [code(f) + (" (new)" if f in fresh else "") for f in row.files[:MAX_FILES_SHOWN]]
    more = len(row.files) - MAX_FILES_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "") or "—"


def _collisions(checked: Checked, key: str) -> str:
    parts = []
    for (a, b), files in checked.shared.items():
        if key in (a, b):
            other = b if key == a else a
            parts.append(f"`{other}` ({', '.join(code(f) for f in files[:3])})")
    parts += [f"#{n} (open)" for n in checked.pull_collisions.get(key, ())]
    return ", ".join(parts) or "—"


def table(checked: Checked, filed: Mapping[str, int]) -> list[str]:
    head = "| Row | Title | Files owned | Depends on | Size | Predicted collisions | Wave |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in checked.plan.rows:
        name = f"`{row.key}`" + (f" → #{filed[row.key]}" if row.key in filed else "")
        depends = ", ".join(f"`{d}`" for d in row.depends_on) or "—"
        wave = checked.waves.get(row.key)
        lines.append(
            f"| {name} | {cell(row.title)} | {_files(row, checked.new_files.get(row.key, ()))} "
            f"| {depends} | {row.size} | {_collisions(checked, row.key)} "
            f"| {wave if wave is not None else '—'} |"
        )
    return lines


def fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def extract_yaml(body: str) -> str | None:
    """The YAML in a plan comment's fenced block, as a person may have edited it."""
    found = _YAML_BLOCK.search(body.replace("\r\n", "\n"))
    return found["body"] if found else None


def _how_to_go_on(prefix: str, filed: bool) -> list[str]:
    if filed:
        return [
            f"**Filed.** `{prefix} approve` again files only rows not filed yet (rows are matched "
            "by their key), never a duplicate; an edited plan is re-checked as before."
        ]
    return [
        "**How to go on**",
        f"- `{prefix} approve` (write access): one issue per row, each a sub-issue of this one, "
        "blocked by the rows it depends on, labelled for the fleet.",
        f"- `{prefix} plan <feedback>`: plan again with your feedback.",
        "- Edit the YAML below in this comment (write access): forgehand checks the edited plan "
        "and updates the table; the edited plan is the one approved.",
    ]


def render(
    yaml_text: str,
    checked: Checked | None,
    problems: Iterable[str] = (),
    *,
    prefix: str = "/agent",
    filed: Mapping[str, int] | None = None,
    progress: Mapping[str, Progress] | None = None,
    notes: Iterable[str] = (),
    ceiling: str = "",
) -> str:
    """The whole plan comment. `checked` is None when the YAML is not a valid plan (then
    `problems` says why); `filed` maps row keys to the issues filed for them; `ceiling` is
    what the plan may cost, shown until it is filed."""
    filed = filed or {}
    lines = [MARKER, "### 📋 Plan"]
    wrong = list(problems)
    if checked is None:
        lines += ["", "❌ **This plan is not valid**, so it cannot be approved:"]
        lines += [f"- {cell(p)}" for p in wrong]
    else:
        lines += ["", cell(checked.plan.summary), "", *table(checked, filed)]
        if checked.critical_path:
            weights = " + ".join(checked.plan.row(k).size for k in checked.critical_path)
            lines += ["", "Critical path: " + " → ".join(f"`{k}`" for k in checked.critical_path)
                      + f" ({weights}; S=1, M=2, L=3)."]  # fmt: skip
        if ceiling and not filed:
            lines += ["", ceiling]  # forgehand's own figures: no stranger's text to defuse
        if checked.shared or checked.pull_collisions:
            lines += [
                "",
                "Rows predicted to collide change the same files: the fleet flags their pull "
                "requests' overlap and resolves conflicts as they merge.",
            ]
        for reason in checked.blocking + wrong:
            lines += ["", f"⚠️ {cell(reason)}: fix it before approving."]
    if progress:
        lines += ["", *checklist(checked, progress)]
    for note in notes:
        lines += ["", f"Note: {note}"]
    lines.append("")
    lines += [*_how_to_go_on(prefix, bool(filed)), "", YAML_MARKER]
    mark = fence(yaml_text)
    lines += [f"{mark}yaml", yaml_text.rstrip("\n"), mark]
    return "\n".join(lines)


def checklist(checked: Checked | None, progress: Mapping[str, Progress]) -> list[str]:
    """The fleet as it goes: each filed row's issue, pull request, state, and the files its pull
    request changes against those the row predicted; a last line once every one merged."""
    rows = {r.key: r for r in checked.plan.rows} if checked is not None else {}
    head = "| | Row | Issue | Pull request | State | Files changed vs. predicted |"
    lines = ["**Fleet**", "", head, "|---|---|---|---|---|---|"]
    for key, step in progress.items():
        box = "x" if step.state == "merged" else " "
        pull = f"#{step.pull}" if step.pull else "—"
        lines.append(f"| [{box}] | `{key}` | #{step.issue} | {pull} | {step.state} "
                     f"| {_versus(rows.get(key), step.changed)} |")  # fmt: skip
    if progress and all(s.state == "merged" for s in progress.values()):
        happened, surprises = collisions_seen(checked, progress)
        predicted = len(checked.shared) if checked is not None else 0
        lines += [
            "",
            "✅ Every row's pull request is merged. Predicted collisions that happened: "
            f"{happened} of {predicted}; collisions nobody predicted: {surprises}.",
        ]
    return lines


def _versus(row: Row | None, changed: tuple[str, ...] | None) -> str:
    if changed is None:
        return "—"
    expected = owned(row.files if row is not None else (), changed)
    extra = [f for f in changed if f not in expected]
    shown = ", ".join(code(f) for f in changed[:MAX_FILES_SHOWN]) or "none"
    if extra:
        return f"{shown}; not predicted: {', '.join(code(f) for f in extra[:MAX_FILES_SHOWN])}"
    return f"{shown}; as predicted"


def collisions_seen(checked: Checked | None, progress: Mapping[str, Progress]) -> tuple[int, int]:
    """(predicted pairs that did change a file in common, pairs that did so unpredicted)."""
    predicted = checked.predicted if checked is not None else set()
    changed = {k: set(s.changed or ()) for k, s in progress.items()}
    keys = sorted(changed)
    happened = surprises = 0
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if changed[a] & changed[b]:
                if frozenset({a, b}) in predicted:
                    happened += 1
                else:
                    surprises += 1
    return happened, surprises
