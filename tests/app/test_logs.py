from __future__ import annotations

import json
import logging

import pytest
from redis import Redis

from app import logs
from app.store.store import Store


def test_json_lines_carry_task_ids(redis: Redis, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    try:
        Store(redis).audit("issue-1-7", "push", "agent/issue-7-x")
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["task"] == "issue-1-7" and line["msg"] == "push: agent/issue-7-x"
    assert line["level"] == "info" and line["ts"].endswith("Z")


def test_pretty_lines_name_the_delivery(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "pretty")
    try:
        logging.getLogger("forgehand.webhook").info("issues.labeled", extra={"delivery": "d-9"})
    finally:
        logging.getLogger().handlers.clear()
    assert capsys.readouterr().err.strip().endswith("issues.labeled [delivery=d-9]")
