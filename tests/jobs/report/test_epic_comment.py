"""The plan comment: the table, the YAML a person edits, and the checklist it becomes."""

from __future__ import annotations

from app.fleet.epic_plan import check, parse
from jobs.report.epic_comment import (
    MARKER,
    Progress,
    cell,
    code,
    collisions_seen,
    extract_yaml,
    fence,
    render,
)
from tests.app.fleet.test_epic_plan import FILES, PLAN


def test_the_comment_has_the_table_the_yaml_and_how_to_go_on() -> None:
    checked = check(parse(PLAN), FILES, {41: ["README.md"]})
    body = render(PLAN, checked, prefix="/agent")
    assert body.startswith(MARKER)
    assert "| Row | Title | Files owned | Depends on | Size | Predicted collisions | Wave |" in body
    assert (
        "| `fix-add` | add() subtracts | `calc.py`, `test_calc.py` | — | S "
        "| `three` (`calc.py`) | 1 |" in body
    )
    assert (
        "| `docs` | Document the project | `README.md`, `docs/*.md` (new) | `fix-add` | L "
        "| #41 (open) | 2 |" in body
    )
    assert "Critical path: `fix-add` → `docs` (S + L; S=1, M=2, L=3)." in body
    assert "`/agent approve` (write access)" in body and "`/agent plan <feedback>`" in body
    # The YAML comes back out exactly as it went in, even with CRLF line ends from a browser.
    assert extract_yaml(body) == PLAN.rstrip("\n")
    assert extract_yaml(body.replace("\n", "\r\n")) == PLAN.rstrip("\n")


def test_the_ceiling_is_shown_until_the_plan_is_filed() -> None:
    checked = check(parse(PLAN), FILES, {})
    ceiling = "Worst-case model cost: $6.00: 3 rows of 4 tasks each"
    assert ceiling in render(PLAN, checked, ceiling=ceiling)
    assert ceiling not in render(PLAN, checked, ceiling=ceiling, filed={"fix-add": 8})


def test_an_edited_yaml_block_is_read_back() -> None:
    body = render(PLAN, check(parse(PLAN), FILES, {}))
    edited = body.replace("title: add() subtracts", "title: add() really subtracts")
    assert "title: add() really subtracts" in (extract_yaml(edited) or "")
    assert extract_yaml("no plan here") is None


def test_backticks_in_the_yaml_cannot_end_its_fence() -> None:
    text = PLAN.replace("Make add() add.", "'```\\n<!-- hide -->'")
    assert fence(text) == "````"
    body = render(text, check(parse(text), FILES, {}))
    assert extract_yaml(body) == text.rstrip("\n")


def test_file_names_cannot_split_a_cell() -> None:
    assert code("a|b`c") == "`a\\|b'c`"


def test_cells_are_text_not_markup() -> None:
    assert cell("a | b\n<!-- x --> @alice [l](u) `c`") == (
        "a \\| b &lt;!-- x --&gt; @\u200balice \\[l\\](u) 'c'"
    )


def test_an_invalid_plan_says_why_and_keeps_the_yaml() -> None:
    body = render("summary: [", None, ["not valid YAML at line 1: x"])
    assert "❌ **This plan is not valid**" in body and "- not valid YAML at line 1: x" in body
    assert extract_yaml(body) == "summary: ["


def test_a_cycle_is_flagged_before_approval() -> None:
    text = PLAN.replace("depends_on: []", "depends_on: [docs]")
    body = render(text, check(parse(text), FILES, {}))
    assert "⚠️ the rows depend on each other in a cycle: docs → fix-add → docs" in body


def test_the_checklist_follows_the_fleet_to_the_end() -> None:
    checked = check(parse(PLAN), FILES, {})
    going = {
        "fix-add": Progress(5, 8, "open", ("calc.py",)),
        "three": Progress(6, None, "running"),
        "docs": Progress(7, None, "waiting"),
    }
    body = render(PLAN, checked, filed={"fix-add": 5, "three": 6, "docs": 7}, progress=going)
    assert "| `fix-add` → #5 |" in body
    assert "| [ ] | `fix-add` | #5 | #8 | open | `calc.py`; as predicted |" in body
    assert "| [ ] | `docs` | #7 | — | waiting | — |" in body
    assert "Every row's pull request is merged" not in body
    done = {
        "fix-add": Progress(5, 8, "merged", ("calc.py", "test_calc.py")),
        "three": Progress(6, 9, "merged", ("calc.py",)),
        "docs": Progress(7, 10, "merged", ("README.md", "calc.py")),
    }
    body = render(PLAN, checked, filed={"fix-add": 5, "three": 6, "docs": 7}, progress=done)
    assert (
        "| [x] | `docs` | #7 | #10 | merged | `README.md`, `calc.py`; not predicted: `calc.py` |"
        in body
    )
    assert collisions_seen(checked, done) == (1, 2)
    assert (
        "✅ Every row's pull request is merged. Predicted collisions that happened: 1 of 1; "
        "collisions nobody predicted: 2." in body
    )
