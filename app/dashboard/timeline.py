"""A task's timeline for people: how long each step took, and links to what a step names.

Step details are built from what GitHub and the agent said, so a link is made only to the
GitHub site itself (a pull request or issue number, a commit, a check run); any other text
stays text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# An issue or pull request number, a check run's id (its word first, so "check run 5" is not
# read as something else), a commit SHA (hex with a digit and a letter, so neither a word
# nor a plain number; short, 7 to 12, or whole, 40, and standing alone, so that neither a
# delivery's GUID nor a worker's 32-digit name reads as one), or a URL on the GitHub site.
_LINKABLE = re.compile(
    r"(?P<run>check run #?(?P<run_id>\d+))"
    r"|(?<![\w/])#(?P<number>\d+)\b"
    r"|(?<![\w-])(?P<sha>(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])"
    r"(?:[0-9a-f]{40}|[0-9a-f]{7,12}))(?![\w-])"
    r"|(?P<url>https?://[^\s<>\"']+)"
)


@dataclass(frozen=True)
class Part:
    text: str
    href: str = ""


def parts(detail: str, web: str, repo: str) -> list[Part]:
    """`detail` cut into plain text and links into `repo` on the site `web`."""
    out: list[Part] = []
    at = 0
    base = f"{web}/{repo}"
    for match in _LINKABLE.finditer(detail):
        href = ""
        if match["run_id"]:
            href = f"{base}/runs/{match['run_id']}"
        elif match["number"]:
            href = f"{base}/issues/{match['number']}"  # GitHub sends pull requests on
        elif match["sha"]:
            href = f"{base}/commit/{match['sha']}"
        elif match["url"] and match["url"].startswith(f"{web}/"):
            href = match["url"]
        if not href:
            continue
        if match.start() > at:
            out.append(Part(detail[at : match.start()]))
        out.append(Part(match[0], href))
        at = match.end()
    if at < len(detail) or not out:
        out.append(Part(detail[at:]))
    return out


def durations(stamps: list[float], end: float | None) -> list[float | None]:
    """Seconds from each step to the next; the last step's runs to `end`, or is None when
    the task finished there (its last step is the ending, not a step that took time)."""
    out: list[float | None] = [max(0.0, b - a) for a, b in pairwise(stamps)]
    if stamps:
        out.append(max(0.0, end - stamps[-1]) if end is not None else None)
    return out


def span(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    if whole >= 60:
        return f"{whole // 60}m {whole % 60}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"


def steps(events: list[dict[str, Any]], web: str, repo: str, end: float | None) -> list[Any]:
    """The timeline as JSON for the page: each event with its linked parts and duration."""
    took = durations([float(e["ts"]) for e in events], end)
    return [
        {
            "ts": e["ts"],
            "event": e["event"],
            "took": span(t),
            "parts": [{"text": p.text, "href": p.href} for p in parts(e["detail"], web, repo)],
        }
        for e, t in zip(events, took, strict=True)
    ]
