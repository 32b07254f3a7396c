from __future__ import annotations

from app.repo_config import RepoConfig, parse


def test_fleet_settings_default_to_five_pull_requests_and_warnings() -> None:
    assert parse(None) == (RepoConfig(), [])
    assert (RepoConfig().max_open_pull_requests, RepoConfig().overlap) == (5, "warn")


def test_fleet_settings_are_read() -> None:
    config, problems = parse("max_open_pull_requests: 2\noverlap: serialize\n")
    assert problems == []
    assert (config.max_open_pull_requests, config.overlap) == (2, "serialize")


def test_bad_fleet_settings_are_named_and_fall_back() -> None:
    config, problems = parse("max_open_pull_requests: 0\noverlap: block\n")
    assert (config.max_open_pull_requests, config.overlap) == (5, "warn")
    assert problems == [
        "`max_open_pull_requests`: must be a whole number of at least 1, got 0",
        "`overlap`: must be one of warn, serialize, got 'block'",
    ]


def test_plan_max_issues_defaults_to_eight_and_is_read() -> None:
    assert RepoConfig().plan_max_issues == 8
    assert parse("plan_max_issues: 3\n") == (RepoConfig(plan_max_issues=3), [])
    config, problems = parse("plan_max_issues: none\n")
    assert config.plan_max_issues == 8
    assert problems == ["`plan_max_issues`: must be a whole number of at least 1, got 'none'"]
