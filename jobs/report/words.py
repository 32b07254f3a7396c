"""Pure: the words forgehand posts on GitHub — status comments and pull request bodies."""

from __future__ import annotations

import json
import re
import time
from typing import Any

MARKER = "<!-- forgehand:status {task} -->"
TASK_MARKER = "<!-- forgehand:task {data} -->"
# Hidden in comments on a pull request, so its attempts can be rebuilt from GitHub alone.
ATTEMPT_MARKER = "<!-- forgehand:attempt {data} -->"
RESET_MARKER = "<!-- forgehand:reset -->"
_MARKERS = re.compile(r"<!-- forgehand:(attempt|reset)( \{.*?\})? -->")
EXCERPT_LINES = 30
# Put after the `<` of an HTML comment opener in text forgehand did not write: it still reads
# `<!--`, but hides nothing and can forge no marker.
_ZERO_WIDTH_SPACE = "\u200b"


def defuse(text: str) -> str:
    """`text` (the agent's, or anyone's) with no HTML comment in it, for a comment's body."""
    return text.replace("<!--", f"<{_ZERO_WIDTH_SPACE}!--")


def code_block(text: str) -> str:
    """A fenced block that no line of `text` can close: the fence outruns its backtick runs."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def status_comment(
    task_id: str, headline: str, detail: str = "", log: str = "", spent: str = ""
) -> str:
    """The status comment's words; all but the marker and `spent` may come from the agent."""
    parts = [MARKER.format(task=task_id), defuse(headline)]
    if detail:
        parts.append(defuse(detail))
    if spent:
        parts.append(spent)
    if log.strip():
        block = code_block(defuse("\n".join(log.strip().splitlines()[-EXCERPT_LINES:])))
        parts.append(f"<details><summary>Log excerpt</summary>\n\n{block}\n</details>")
    return "\n\n".join(parts)


def _hidden(data: dict[str, Any]) -> str:
    # `--` cannot appear inside an HTML comment.
    return json.dumps(data, sort_keys=True).replace("--", "- -")


def task_marker(data: dict[str, object]) -> str:
    return TASK_MARKER.format(data=_hidden(data))


def attempt_marker(entry: dict[str, Any]) -> str:
    return ATTEMPT_MARKER.format(data=_hidden(entry))


def markers(body: str) -> list[dict[str, Any] | None]:
    """The attempt entries (and None for each reset) hidden in a comment, in order."""
    found: list[dict[str, Any] | None] = []
    for kind, data in _MARKERS.findall(body or ""):
        if kind == "reset":
            found.append(None)
            continue
        try:
            found.append(json.loads(data))
        except ValueError:
            continue
    return found


def rebuild_attempts(found: list[dict[str, Any] | None], green: set[str]) -> list[dict[str, Any]]:
    """The attempts that still count: those since the last reset or green pushed commit."""
    current: list[dict[str, Any]] = []
    for entry in found:
        if entry is None or entry.get("pushed") in green:
            current = []  # a reset, or a pushed commit that went green, ends the count
        else:
            current.append(entry)
    return current


def pull_request_body(
    issue: int, summary: str, commits: list[str], marker: dict[str, object]
) -> str:
    """The pull request's body; `summary` and the commit subjects are the agent's words."""
    summary = defuse(summary.strip())
    lines = [f"Fixes #{issue}", ""]
    if summary:
        lines += ["### What the agent says it did", "", quote(summary), ""]
    if commits:
        lines += ["### Commits", ""] + [f"- {defuse(c)}" for c in commits] + [""]
    lines.append("_Opened by forgehand. Review it like any other pull request; comment_")
    lines.append("_`/agent <instructions>` to ask for changes._")
    lines.append(task_marker(marker))
    return "\n".join(lines)


def escalation_comment(
    attempts: list[dict[str, object]],
    sha: str,
    failing: list[str],
    mention: list[str],
    label: str,
    prefix: str,
) -> str:
    rows = "\n".join(
        f"| {a.get('attempt')} | `{str(a.get('sha', ''))[:7]}` | {_cell(a.get('failed'))} "
        f"| {_cell(a.get('changed'))} | {_cell(a.get('result'))} |"
        for a in attempts
    )
    who = " ".join(f"@{m}" for m in dict.fromkeys(mention) if m)
    return "\n".join(
        [
            f"🙋 **forgehand stopped after {len(attempts)} attempts to make CI pass** and hands "
            "this pull request to a human.",
            "",
            f"CI still fails on `{sha[:7]}`: {', '.join(failing) or 'see the checks'}.",
            "",
            "| Attempt | Commit | What failed | What the agent changed | Result |",
            "|---|---|---|---|---|",
            rows,
            "",
            f"forgehand ignores CI failures here until someone comments `{prefix} retry`, "
            f"presses Re-run on its `forgehand` check, or removes the `{label}` label.",
            "",
            f"cc {who}" if who else "",
        ]
    ).rstrip()


def _cell(value: object) -> str:
    text = defuse(str(value or "—")).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "…"


def help_text(prefix: str) -> str:
    return "\n".join(
        [
            "forgehand understands:",
            f"- `{prefix} <instructions>`: make that change on this pull request (or issue)",
            f"- `{prefix} stop`: cancel what is queued or running here",
            f"- `{prefix} retry`: forget failed attempts and try again",
            f"- `{prefix} budget <USD>`: the model budget of each task here, up to the operator's",
        ]
    )


def quote(text: str, limit: int = 4000) -> str:
    """Markdown block quote of the end of `text`."""
    text = text.strip()[-limit:]
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


# GitHub refuses a check run's output summary or text longer than this.
CHECK_TEXT_LIMIT = 65535
PROGRESS_STEPS = 15


def working_line(seconds: float, quiet: float) -> str:
    """`agent working · 45 s · last output 12 s ago`: how a running agent is shown."""
    return f"agent working · {seconds:.0f} s · last output {quiet:.0f} s ago"


def steps_so_far(events: list[dict[str, Any]], limit: int = PROGRESS_STEPS) -> str:
    """The task's latest timeline steps as a Markdown list; details may be the agent's words."""
    lines = []
    for event in events[-limit:]:
        when = time.strftime("%H:%M:%S", time.gmtime(float(event.get("ts", 0))))
        detail = str(event.get("detail") or "").replace("\n", " ")
        detail = detail if len(detail) <= 120 else detail[:119] + "…"
        step = defuse(str(event.get("event", ""))) + (f": {defuse(detail)}" if detail else "")
        # No backtick of the agent's can open a code span that swallows the next lines.
        lines.append(f"- `{when}` " + step.replace("`", "'"))
    return "\n".join(lines)


def never_green_on_red(conclusion: str, title: str, sha: str, ci: str) -> tuple[str, str]:
    """A check run's conclusion and title given what is known of CI on its commit `sha`
    (`ci`: "failed (unit, lint)", "pending", …): never green on a commit whose CI is red."""
    if conclusion == "success" and ci.startswith("failed"):
        return "neutral", f"{title} · CI on {sha[:7]}: {ci}"
    return conclusion, title


def ci_title(lead: str, ci: str) -> str:
    """A check-run title: what a task did (`lead`), then what CI said of the commit it pushed."""
    return f"{lead} — CI on it: {ci}"


def pushed_lead(headline: str) -> str:
    """A review's or `/agent` request's headline as the lead of its check-run title."""
    return headline.rstrip(".")


def pushed_title(headline: str, pushed: str) -> str:
    """A check run's title once its task pushed `pushed` ("" for nothing): CI on it has not
    spoken yet."""
    return ci_title(pushed_lead(headline), "pending") if pushed else headline


def fix_lead(pushed: str, attempt: int, limit: int) -> str:
    """What a CI-fix attempt did, for its check-run title."""
    return f"Fix pushed as {pushed[:7]} (attempt {attempt} of {limit})"


def ci_conclusion(ci: str, on_red: bool = False) -> str | None:
    """The conclusion of a check run whose task pushed a commit on which CI said `ci`: green
    only once CI passed, never while it is red, and never on a commit of its own whose CI is
    known red (`on_red`: a CI fix's check run sits on the commit it set out to fix); None:
    leave it as it is."""
    if ci == "passed":
        return "neutral" if on_red else "success"
    return "neutral" if ci.startswith("failed") else None


def check_output(
    title: str, summary: str, steps: str, url: str, log: str = "", spent: str = ""
) -> dict[str, str]:
    """A check run's `output`: the headline, what the agent said, its model use, its steps
    and its log tail. All but `url` and `spent` may hold the agent's words (redacted)."""
    parts = [defuse(summary.strip())] if summary.strip() else []
    if spent:
        parts.append(spent)
    if steps:
        parts.append(f"**Steps so far**\n\n{steps}")
    parts.append(f"[The task on forgehand's dashboard]({url})")
    output = {"title": defuse(title)[:200], "summary": "\n\n".join(parts)[-CHECK_TEXT_LIMIT:]}
    if log.strip():
        tail = "\n".join(log.strip().splitlines()[-EXCERPT_LINES:])
        output["text"] = f"**Log excerpt**\n\n{code_block(defuse(tail))}"[-CHECK_TEXT_LIMIT:]
    return output
