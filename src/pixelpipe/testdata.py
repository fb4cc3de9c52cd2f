"""Where the shared real test data lives (``PIXELPIPE_TESTDATA``)."""
from __future__ import annotations

import os
from pathlib import Path


def testdata_dir() -> Path:
    """The data folder: ``$PIXELPIPE_TESTDATA`` or ``../shared/data`` from the repo root."""
    env = os.environ.get("PIXELPIPE_TESTDATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return (repo / ".." / "shared" / "data").resolve()


def raw_dir() -> Path:
    return testdata_dir() / "raw"


def eval_dir() -> Path:
    return testdata_dir() / "eval"


def models_dir() -> Path:
    """The shared trained weights (``PIXELPIPE_MODELS``, default beside the data folder)."""
    env = os.environ.get("PIXELPIPE_MODELS")
    if env:
        return Path(env)
    return testdata_dir().parent / "models"
