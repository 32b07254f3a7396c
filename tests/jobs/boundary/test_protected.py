from __future__ import annotations

import pytest

from app.repo_config import DEFAULT_PROTECTED
from jobs.boundary.protected import printable, violations


@pytest.mark.parametrize(
    "path",
    [
        ".github/workflows/ci.yml",
        ".github/workflows/ci\u00e9.yml",
        ".github/workflows/ci\t.yml",
        '.github/workflows/a" b.yml',
        ".github/workflows/deep/nested.yml",
        ".GitHub/Workflows/evil.yml",
        ".github/workflows",  # the directory itself, replaced by a file or a symlink
        ".github/forgehand.yml",
        ".GITHUB/FORGEHAND.YML",
    ],
)
def test_default_globs_catch_every_spelling(path: str) -> None:
    assert violations([path], DEFAULT_PROTECTED) == [path]


@pytest.mark.parametrize(
    "path", ["calc.py", ".github/CODEOWNERS", "docs/.github/workflows.md", ".github/workflowsx"]
)
def test_other_paths_pass(path: str) -> None:
    assert violations([path], DEFAULT_PROTECTED) == []


def test_names_are_deduplicated_sorted_and_empty_ones_ignored() -> None:
    names = [
        "",
        ".github/workflows/b.yml",
        "x",
        ".github/workflows/a.yml",
        ".github/workflows/b.yml",
    ]
    assert violations(names, DEFAULT_PROTECTED) == [
        ".github/workflows/a.yml",
        ".github/workflows/b.yml",
    ]


def test_a_leading_slash_in_a_glob_is_the_repository_root() -> None:
    assert violations(["secrets/key.pem"], ["/secrets/**"]) == ["secrets/key.pem"]


def test_printable_names_cannot_break_markdown() -> None:
    assert printable("a`b\tc\u00e9\n") == "a'b\\tc\u00e9\\n"
