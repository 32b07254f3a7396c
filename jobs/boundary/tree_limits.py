"""How much of a tree forgehand will take: the agent wrote it, and a tree of a million empty
files with long names costs whoever stages it as much as one of real work. Counted from names
and sizes alone, following no link, stopping at the first limit passed."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings


@dataclass(frozen=True)
class Limits:
    files: int
    path: int  # bytes of a path inside the tree
    size: int  # bytes of all files together

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.tree_max_files, settings.tree_max_path, settings.tree_max_bytes)


def over(root: Path, limits: Limits) -> str | None:
    """Why the tree at `root` passes a limit (naming the setting), or None."""
    files = size = 0
    stack = [(os.fsencode(root), b"")]
    while stack:
        directory, prefix = stack.pop()
        for entry in _entries(directory):
            name = prefix + entry.name
            if len(name) > limits.path:
                return f"a path longer than {limits.path} bytes (TREE_MAX_PATH)"
            files += 1
            if files > limits.files:
                return f"more than {limits.files} files (TREE_MAX_FILES)"
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, name + b"/"))
                    continue
                size += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            if size > limits.size:
                return f"more than {limits.size} bytes (TREE_MAX_BYTES)"
    return None


def disk_used(roots: Sequence[Path], stop_at: int) -> int:
    """Bytes of disk the files under `roots` take (blocks, so sparse files count as what
    they cost), following no link; counting stops once past `stop_at`."""
    used = 0
    stack = [os.fsencode(r) for r in roots]
    while stack and used <= stop_at:
        for entry in _entries(stack.pop()):
            try:
                info = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
            except OSError:
                continue
            used += info.st_blocks * 512
    return used


def _entries(directory: bytes) -> Iterator[os.DirEntry[bytes]]:
    """A directory's entries one at a time: the agent may have made a million names in one,
    never held whole here. None when it is gone or unreadable (nothing there to take)."""
    try:
        with os.scandir(directory) as found:
            yield from found
    except OSError:
        return
