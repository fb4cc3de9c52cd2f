"""Fixtures for the AI tests (user dirs are isolated by tests/conftest.py)."""
from __future__ import annotations

import pytest

from pixelpipe import prefs


@pytest.fixture
def enable_ai():
    """AI switched on (needs onnxruntime)."""
    pytest.importorskip("onnxruntime")
    prefs.put("ai.enabled", True)
    yield


@pytest.fixture
def server():
    """A loopback GitHub-like release server; prefs point at it."""
    from aitest_helpers import ReleaseServer

    with ReleaseServer() as s:
        prefs.put("ai.api_base", s.url)
        prefs.put("ai.download_base", s.url)
        yield s
