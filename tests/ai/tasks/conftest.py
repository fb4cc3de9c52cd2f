"""Fixtures for the AI task tests: isolated sessions and caches per test."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:  # task_helpers
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _fresh_task_state():
    yield
    from pixelpipe.ai.tasks import common, mask

    common.clear_sessions()
    mask._MEMORY.clear()


@pytest.fixture
def ai_on(enable_ai, tmp_path):
    """AI on, with a folder for packages."""
    return tmp_path
