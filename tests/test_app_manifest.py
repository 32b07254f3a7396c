"""app.yml subscribes to exactly the events forgehand handles, with the least permissions."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.web.triggers import HANDLED_EVENTS

MANIFEST = yaml.safe_load((Path(__file__).resolve().parents[1] / "app.yml").read_text())
# Every App receives these whether or not it subscribes; they cannot be listed.
ALWAYS_SENT = {"ping", "installation", "installation_repositories"}


def test_every_handled_event_is_subscribed_and_nothing_else() -> None:
    assert set(MANIFEST["default_events"]) == HANDLED_EVENTS - ALWAYS_SENT


def test_permissions_are_the_least_forgehand_uses() -> None:
    assert MANIFEST["default_permissions"] == {
        "actions": "read",  # job logs of failed checks
        "checks": "write",  # read CI's check runs and annotations; write its own progress
        "contents": "write",  # push branches
        "issues": "write",  # reactions, comments, labels
        "metadata": "read",
        "pull_requests": "write",  # open, review requests, thread replies
        "statuses": "read",  # commit statuses
    }


def test_manifest_has_probot_s_keys() -> None:
    assert {"name", "url", "description", "public", "hook_attributes", "default_events",
            "default_permissions"} <= set(MANIFEST)  # fmt: skip
    assert MANIFEST["public"] is False
