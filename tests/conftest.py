"""Shared fixtures: real test data through PIXELPIPE_TESTDATA.

Where the data is absent the tests that need it skip with the reason printed;
with ``PIXELPIPE_REQUIRE_TESTDATA=1`` (set by .ci/run) that skip becomes a
failure, so CI always runs on the real data.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixelpipe.testdata import eval_dir, models_dir, raw_dir

from helpers import REQUIRE, need, raw_file  # noqa: E402,F401 (shared with test modules)


@pytest.fixture(scope="session")
def raws() -> Path:
    return need(raw_dir(), "real raw test data")


@pytest.fixture(scope="session")
def evaldata() -> Path:
    return need(eval_dir(), "evaluation image sets")


@pytest.fixture(scope="session")
def shared_models() -> Path:
    return need(models_dir(), "shared trained weights")





# compiled Halide kernels are shared by the whole run (and later runs) so each
# test does not pay the compile again; tests of the cache itself use their own
os.environ.setdefault("PIXELPIPE_KERNEL_CACHE",
                      str(Path(__file__).resolve().parents[1] / "build" / "test-kernels"))


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Never touch the real user's config/cache: each test gets its own."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
