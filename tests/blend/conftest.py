"""Blend tests: the NumPy references (blendref.py) and helpers beside them are importable."""
from __future__ import annotations

import sys
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
if _here not in sys.path:
    sys.path.append(_here)  # after tests/ (whose conftest.py other tests import by name)
