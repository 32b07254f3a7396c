"""What a push to an agent pull request changes in the fleet: the files it touches (from git)
and whom it now overlaps, with the suggested merge order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.fleet import Pull, interface_files, merge_order, overlaps_of
from app.fleet_state import FleetState
from jobs.git import git


def changed_files(gitdir: Path, base: str, head: str) -> tuple[frozenset[str], frozenset[str]]:
    """(files changed, files whose definitions changed) between the merge base of `base` and
    `head`, and `head`: what the pull request itself changes, not what its base gained."""
    span = f"{base}...{head}"
    names = git(["diff", "--no-renames", "-z", "--name-only", span], gitdir).split("\0")
    patch = git(["diff", "--no-renames", "--no-ext-diff", "-U0", span], gitdir)
    return frozenset(n for n in names if n), interface_files(patch)


@dataclass(frozen=True)
class Overlap:
    number: int
    shared: dict[int, frozenset[str]]  # other pull request → files both change
    order: list[int]  # suggested merge order of this one and those it overlaps


def check_push(state: FleetState, repo_id: int, pull: Pull) -> tuple[Overlap, list[Pull]]:
    """Record the pushed pull request's files and find its overlaps; also returns the fleet
    as it now stands, for the comments on the others."""
    state.record(repo_id, pull)
    fleet = state.pulls(repo_id)
    shared = overlaps_of(pull, fleet)
    group = [p for p in fleet if p.number == pull.number or p.number in shared]
    return Overlap(pull.number, shared, merge_order(group) if shared else []), fleet
