"""The pure budget rules: which cap applies, and what a plan may cost."""

from __future__ import annotations

from app.budget import plan_ceiling, task_cap


def test_a_plans_ceiling_is_each_rows_task_and_ci_fixes_at_the_task_cap() -> None:
    said = plan_ceiling(3, 0.5, 3)
    assert said.startswith("Worst-case model cost: $6.00: 3 rows of 4 tasks each")
    assert "(the issue and up to 3 CI fixes)" in said and "$0.50 task cap" in said
    assert "reviews and `/agent` requests come on top" in said


def test_without_a_task_cap_a_plan_has_no_ceiling_and_says_how_to_set_one() -> None:
    said = plan_ceiling(3, None, 3)
    assert said.startswith("No cost ceiling") and "MAX_COST_PER_TASK" in said


def test_a_repository_lowers_the_operators_cap_and_a_raise_never_passes_it() -> None:
    assert task_cap(2.0, 0.5, None) == 0.5
    assert task_cap(2.0, 5.0, None) == 2.0
    assert task_cap(2.0, 0.5, 10.0) == 2.0
    assert task_cap(None, None, None) is None
