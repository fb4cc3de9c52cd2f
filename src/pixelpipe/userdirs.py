"""Per-user folders (XDG): config (preferences, presets), cache (kernels), data (models)."""
from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    v = os.environ.get(var)
    return Path(v) if v else Path.home() / fallback


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "pixelpipe"


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "pixelpipe"


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "pixelpipe"
