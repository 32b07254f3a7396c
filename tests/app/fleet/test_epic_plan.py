"""The plan file read as data, checked, and worked out: no fakes, only values."""

from __future__ import annotations

import pytest

from app.fleet.epic_plan import MAX_BYTES, PlanError, check, find_cycles, order, owned, parse

PLAN = """\
summary: Split the calculator work.
issues:
  - key: fix-add
    title: add() subtracts
    body: Make add() add.
    files: [calc.py, test_calc.py]
    depends_on: []
    size: S
  - key: three
    title: add() takes three numbers
    body: A third argument.
    files: [calc.py]
    size: M
  - key: docs
    title: Document the project
    body: Say what calc does.
    files: [README.md, docs/*.md]
    depends_on: [fix-add]
    size: L
"""
FILES = ["calc.py", "test_calc.py", "README.md", "app/x.py"]


def test_a_good_plan_parses_into_rows() -> None:
    plan = parse(PLAN)
    assert plan.summary == "Split the calculator work."
    assert [r.key for r in plan.rows] == ["fix-add", "three", "docs"]
    docs = plan.row("docs")
    assert (docs.files, docs.depends_on, docs.size) == (
        ("README.md", "docs/*.md"),
        ("fix-add",),
        "L",
    )
    assert plan.row("three").depends_on == ()


def test_the_plan_is_worked_out_like_a_careful_lead_would() -> None:
    checked = check(parse(PLAN), FILES, {41: ["README.md"], 42: ["other.py"]})
    # docs/*.md matches nothing yet: it is new, as is nothing else.
    assert checked.new_files == {"docs": ("docs/*.md",)}
    assert checked.collisions == {"fix-add": ("three",), "three": ("fix-add",)}
    assert checked.shared == {("fix-add", "three"): ("calc.py",)}
    assert checked.pull_collisions == {"docs": (41,)}
    assert checked.cycles == ()
    assert checked.waves == {"fix-add": 1, "three": 1, "docs": 2}
    # S then L (4) outweighs M alone (2).
    assert checked.critical_path == ("fix-add", "docs")
    assert checked.blocking == []
    assert checked.predicted == {frozenset({"fix-add", "three"})}


def test_globs_collide_with_the_paths_they_match_even_new_ones() -> None:
    text = PLAN.replace("files: [calc.py]\n", "files: ['docs/*.md']\n")
    text = text.replace("[README.md, docs/*.md]", "[docs/guide.md]")
    checked = check(parse(text), FILES, {})
    assert checked.shared == {("three", "docs"): ("docs/guide.md",)}
    assert owned(["app/**"], FILES) == {"app/x.py"}


def test_cycles_are_found_once_and_block_filing() -> None:
    text = PLAN.replace("depends_on: []", "depends_on: [docs]")
    checked = check(parse(text), FILES, {})
    assert checked.cycles == (("docs", "fix-add", "docs"),)
    assert checked.blocking == ["the rows depend on each other in a cycle: docs → fix-add → docs"]
    assert checked.waves == {"three": 1}
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a", "b"]}) == (
        ("a", "b", "c", "a"), ("b", "c", "b"),
    )  # fmt: skip


def test_a_plan_of_rows_all_depending_on_each_other_is_checked_at_once() -> None:
    """40 rows, each depending on every other, hold more cycles than atoms in the universe:
    a plan the agent (or an edit of the plan comment) writes must not make forgehand list
    them all. A few are named; every row on one still has no wave."""
    keys = [f"r{i:02}" for i in range(40)]
    edges = {k: [o for o in keys if o != k] for k in keys}
    cycles = find_cycles(edges)
    assert 0 < len(cycles) <= 20
    assert all(c[0] == c[-1] and len(c) > 2 for c in cycles)


def test_a_cycle_is_named_even_when_the_search_for_them_all_is_cut_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.fleet.epic_plan.CYCLE_STEPS", 0)
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["b"]}) == (("b", "c", "b"),)
    assert find_cycles({"a": ["b"], "b": []}) == ()


def test_rows_are_filed_dependencies_first() -> None:
    text = PLAN.replace("depends_on: []", "depends_on: [docs]").replace(
        "depends_on: [fix-add]", "depends_on: [three]"
    )
    assert [r.key for r in order(parse(text))] == ["three", "docs", "fix-add"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- a\n", "the plan must be a mapping with `summary` and `issues`, not list"),
        ("summary: x\nissues: [\n", "not valid YAML"),
        ("summary: x\nissues: []\n", "`issues` must be a non-empty list of rows"),
        ("summary: ''\nissues: [{key: a, title: t, files: [a], size: S}]\n",
         "`summary` must be a non-empty string"),
        ("summary: x\nextra: 1\nissues: [{key: a, title: t, files: [a], size: S}]\n",
         "unknown field `extra` (known: summary, issues)"),
        ("summary: x\nissues: [{key: A_b, title: t, files: [a], size: S}]\n",
         "issues[0]: `key` must match [a-z0-9-]+"),
        ("summary: x\nissues: [{key: a, title: t, files: [a], size: XL}]\n",
         "row `a`: `size` must be S, M or L, got 'XL'"),
        ("summary: x\nissues: [{key: a, title: t, files: [a], size: S, owner: me}]\n",
         "row `a`: unknown field `owner`"),
        ("summary: x\nissues: [{key: a, files: [a], size: S}]\n", "row `a`: `title` is missing"),
        ("summary: x\nissues: [{key: a, title: t, files: [../etc/passwd], size: S}]\n",
         "is not a path inside the repository"),
        ("summary: x\nissues: [{key: a, title: t, files: [/etc], size: S}]\n",
         "is not a path inside the repository"),
        ("summary: x\nissues: [{key: a, title: t, files: a, size: S}]\n",
         "`files` must be a list of paths or globs"),
        ("summary: x\nissues: [{key: a, title: t, files: [a], size: S, depends_on: [b]}]\n",
         "row `a` depends on `b`, which is no row's key"),
        ("summary: x\nissues: [{key: a, title: t, files: [a], size: S, depends_on: [a]}]\n",
         "row `a` depends on itself"),
        ("summary: x\nissues:\n- {key: a, title: t, files: [a], size: S}\n"
         "- {key: a, title: u, files: [b], size: S}\n", "key `a` is used by more than one row"),
        ("summary: !!python/object:os.system x\nissues: []\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_wrong_field_is_one_line_of_the_reason(text: str, reason: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse(text)
    assert any(reason in line for line in caught.value.problems), caught.value.problems


def test_too_many_rows_are_refused_with_the_setting_named() -> None:
    rows = "".join(f"- {{key: r{i}, title: t, files: [f{i}], size: S}}\n" for i in range(3))
    with pytest.raises(PlanError, match=r"3 rows; at most 2 are allowed \(`plan_max_issues`"):
        parse("summary: x\nissues:\n" + rows, max_issues=2)
    assert len(parse("summary: x\nissues:\n" + rows, max_issues=3).rows) == 3


def test_aliases_are_refused_before_they_can_multiply() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(PlanError, match="aliases"):
        parse(bomb)


def test_an_oversized_plan_is_refused_unread() -> None:
    with pytest.raises(PlanError, match="larger than 64 KiB"):
        parse("summary: " + "x" * MAX_BYTES)


def test_reasons_are_capped() -> None:
    rows = "".join(f"- {{key: r{i}, title: t, files: [f], size: Q}}\n" for i in range(40))
    with pytest.raises(PlanError) as caught:
        parse("summary: x\nissues:\n" + rows, max_issues=100)
    assert str(caught.value).splitlines()[-1] == "… and 20 more"


def test_of_equal_work_the_critical_path_is_the_longer_chain() -> None:
    text = "summary: x\nissues:\n" + "".join(
        f"- {{key: {k}, title: t, files: [{k}], size: {s}, depends_on: {d}}}\n"
        for k, s, d in (("c", "M", "[]"), ("a", "S", "[]"), ("b", "S", "[a]"))
    )
    assert check(parse(text), [], {}).critical_path == ("a", "b")
