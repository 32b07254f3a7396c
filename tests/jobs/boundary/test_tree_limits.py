"""How much of a tree forgehand takes: counted by names and sizes, following no link."""

from __future__ import annotations

import os
from pathlib import Path

from jobs.boundary.tree_limits import Limits, over

ROOMY = Limits(files=100, path=100, size=1000)


def test_a_tree_within_the_limits_passes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_text("x" * 500)
    assert over(tmp_path, ROOMY) is None


def test_each_limit_names_its_setting(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x" * 300)
    assert over(tmp_path, Limits(files=3, path=100, size=10**6)) == (
        "more than 3 files (TREE_MAX_FILES)"
    )
    assert over(tmp_path, ROOMY) == "more than 1000 bytes (TREE_MAX_BYTES)"
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / ("n" * 60)).touch()
    assert over(tmp_path, Limits(files=100, path=40, size=10**6)) == (
        "a path longer than 40 bytes (TREE_MAX_PATH)"
    )


def test_links_are_counted_not_followed(tmp_path: Path) -> None:
    big = tmp_path / "outside"
    big.mkdir()
    (big / "huge").write_bytes(b"x" * 5000)
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(big, tree / "dir-link")
    os.symlink(big / "huge", tree / "file-link")
    assert over(tree, ROOMY) is None
