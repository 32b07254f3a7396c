from __future__ import annotations

import pytest

from app.fleet.decisions import (
    Pull,
    blockers_in,
    find_cycle,
    interface_files,
    may_open,
    merge_order,
    overlaps,
    overlaps_of,
    owners_of,
    paths_named,
    queue_position,
    touches_interface,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Depends on #3", (3,)),
        ("Fix the thing.\n\nBlocked by #4\ndepends on #5", (4, 5)),
        ("Blocked by: #4, #5 and #6", (4, 5, 6)),
        ("- Depends on #8\n> blocked by #9", (8, 9)),
        ("Depends on #3\nDepends on #3", (3,)),
        ("This mentions #3 but depends on nothing", ()),
        ("It depends on #3 somewhere mid-sentence", ()),
        ("Depends on owner/other#3", ()),
        ("```\nDepends on #3\n```\nreal text", ()),
        ("Depends on #7", ()),  # itself
        ("", ()),
        (None, ()),
    ],
)
def test_blockers_in_reads_dependency_lines(body: str | None, expected: tuple[int, ...]) -> None:
    assert blockers_in(body, number=7) == expected


def test_find_cycle_returns_the_path_back_to_the_start() -> None:
    edges = {1: [2], 2: [3], 3: [1, 4], 4: []}
    assert find_cycle(1, edges) == (1, 2, 3, 1)
    assert find_cycle(4, edges) is None


def test_find_cycle_ignores_cycles_the_start_is_not_on() -> None:
    assert find_cycle(1, {1: [2], 2: [3], 3: [2]}) is None


def test_find_cycle_of_self_and_of_no_edges() -> None:
    assert find_cycle(5, {5: [5]}) == (5, 5)
    assert find_cycle(5, {}) is None


def test_queue_position_and_free_slots() -> None:
    queue = ["issue-1-3", "issue-1-4", "issue-1-5"]
    assert queue_position(queue, "issue-1-4") == 2
    assert queue_position(queue, "issue-1-9") == 4
    # 5 allowed, 4 open: only the head of the queue may go.
    assert may_open(4, 5, 1)
    assert not may_open(4, 5, 2)
    assert not may_open(5, 5, 1)
    assert may_open(0, 5, 5)


def test_touches_interface_sees_changed_definitions_only() -> None:
    body_only = "@@ -1,3 +1,3 @@\n def area(w, h):\n-    return w * h\n+    return h * w\n"
    signature = "@@ -1,2 +1,2 @@\n-def area(w, h):\n+def area(w, h, d=1):\n     return w * h\n"
    js = "@@ -1 +1 @@\n-export function run(a) {\n+export async function run(a, b) {\n"
    header = "--- a/area.py\n+++ b/area.py\n"
    assert not touches_interface(header + body_only)
    assert touches_interface(header + signature)
    assert touches_interface(js)


def test_paths_named_finds_paths_in_issue_text() -> None:
    text = "The bug is in `src/app.py` and ./lib/util.js, see https://x.org/a.html or v1.2 docs."
    assert paths_named(text) == {"src/app.py", "lib/util.js"}
    assert paths_named("change .github/workflows/ci.yml") == {".github/workflows/ci.yml"}
    assert paths_named(None) == frozenset()


def pull(number: int, created: float, *files: str, interface: tuple[str, ...] = ()) -> Pull:
    return Pull(number, issue=number + 100, created=created, files=frozenset(files),
                interface=frozenset(interface))  # fmt: skip


def test_overlaps_pairs_pull_requests_by_shared_files() -> None:
    a = pull(1, 10, "x.py", "y.py")
    b = pull(2, 20, "y.py", "z.py")
    c = pull(3, 30, "q.py")
    d = pull(4, 40, "x.py", "y.py")
    assert overlaps([a, b, c, d]) == {
        1: {2: {"y.py"}, 4: {"x.py", "y.py"}},
        2: {1: {"y.py"}, 4: {"y.py"}},
        4: {1: {"x.py", "y.py"}, 2: {"y.py"}},
    }
    assert overlaps_of(b, [a, b, c, d]) == {1: {"y.py"}, 4: {"y.py"}}
    assert overlaps_of(c, [a, b, c, d]) == {}


def test_merge_order_puts_the_interface_change_first_else_the_older() -> None:
    older = pull(1, 10, "shapes.py")
    newer_api = pull(2, 20, "shapes.py", interface=("shapes.py",))
    assert merge_order([older, newer_api]) == [2, 1]
    plain = pull(2, 20, "shapes.py")
    assert merge_order([plain, older]) == [1, 2]


def test_merge_order_ignores_interface_changes_to_files_not_shared() -> None:
    older = pull(1, 10, "shapes.py")
    newer = pull(2, 20, "shapes.py", "api.py", interface=("api.py",))
    assert merge_order([older, newer]) == [1, 2]


def test_owners_of_names_the_pull_requests_holding_paths() -> None:
    pulls = [pull(1, 10, "a.py", "b.py"), pull(2, 20, "c.py")]
    assert owners_of({"b.py", "d.py"}, pulls) == {1: {"b.py"}}
    assert owners_of(set(), pulls) == {}


def test_interface_files_splits_a_diff_by_file() -> None:
    diff = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-def f():\n+def f(x):\n"
        "diff --git a/b.py b/b.py\n--- a/b.py\n+++ b/b.py\n@@ -2 +2 @@\n-    return 1\n"
        "+    return 2\n"
        "diff --git a/c.py b/c.py\nnew file mode 100644\n--- /dev/null\n+++ b/c.py\n@@ -0,0 +1 @@\n"
        "+class C:\n"
        "diff --git a/d.py b/d.py\ndeleted file mode 100644\n--- a/d.py\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-def gone():\n"
    )
    assert interface_files(diff) == {"a.py", "c.py", "d.py"}
