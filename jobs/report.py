"""Pure: the words forgehand posts on GitHub — status comments and pull request bodies."""

from __future__ import annotations

import json

MARKER = "<!-- forgehand:status {task} -->"
TASK_MARKER = "<!-- forgehand:task {data} -->"
EXCERPT_LINES = 30


def status_comment(task_id: str, headline: str, detail: str = "", log: str = "") -> str:
    parts = [MARKER.format(task=task_id), headline]
    if detail:
        parts.append(detail)
    if log.strip():
        excerpt = "\n".join(log.strip().splitlines()[-EXCERPT_LINES:])
        parts.append(f"<details><summary>Log excerpt</summary>\n\n```\n{excerpt}\n```\n</details>")
    return "\n\n".join(parts)


def task_marker(data: dict[str, object]) -> str:
    # `--` cannot appear inside an HTML comment; JSON of ids and names never holds it.
    return TASK_MARKER.format(data=json.dumps(data, sort_keys=True).replace("--", "- -"))


def pull_request_body(
    issue: int, summary: str, commits: list[str], marker: dict[str, object]
) -> str:
    summary = summary.strip()
    lines = [f"Fixes #{issue}", ""]
    if summary:
        lines += ["### What the agent says it did", "", _quote(summary), ""]
    if commits:
        lines += ["### Commits", ""] + [f"- {c}" for c in commits] + [""]
    lines.append("_Opened by forgehand. Review it like any other pull request; comment_")
    lines.append("_`/agent <instructions>` to ask for changes._")
    lines.append(task_marker(marker))
    return "\n".join(lines)


def _quote(text: str, limit: int = 4000) -> str:
    text = text[-limit:]
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
