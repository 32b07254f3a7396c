"""The real-CLI tests' scratch: a task's workspace as its agent gets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.cli import workspace


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return workspace(tmp_path)
