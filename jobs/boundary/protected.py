"""Which changed paths a repository's `protected_paths` forbid: pure, no git.

Matching ignores case, since a checkout on a case-insensitive file system (and GitHub's
own path handling for workflows) treats `.GitHub/Workflows/x.yml` as the workflow it names.
A glob `dir/**` protects `dir` itself too: replacing the directory with a symlink or a
file changes what lives under it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence


def matches(path: str, glob: str) -> bool:
    path, glob = path.casefold(), glob.casefold().lstrip("/")
    if fnmatch.fnmatchcase(path, glob):
        return True
    return glob.endswith("/**") and path == glob.removesuffix("/**")


def violations(paths: Iterable[str], globs: Sequence[str]) -> list[str]:
    """The distinct paths, sorted, that any glob protects; empty names are ignored."""
    return sorted({p for p in paths if p and any(matches(p, g) for g in globs)})


def printable(path: str) -> str:
    """A path as it can be shown in Markdown: backticks and unprintable characters escaped."""
    return "".join("'" if ch == "`" else ch if ch.isprintable() else repr(ch)[1:-1] for ch in path)
