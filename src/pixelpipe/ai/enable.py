"""Is AI available and switched on?  Answered without importing ONNX Runtime."""
from __future__ import annotations

import importlib.util
import sys

from pixelpipe import prefs
from pixelpipe.errors import AIError

INSTALL_HINT = "install AI support with: pip install 'pixelpipe[ai]'"
ENABLE_HINT = "enable it with: pixelpipe prefs set ai.enabled true"


def ort_available() -> bool:
    """True if ONNX Runtime can be imported (looked up, not imported)."""
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def ort_version() -> str | None:
    """The installed ONNX Runtime's version, read from its metadata (no import)."""
    if not ort_available():
        return None
    mod = sys.modules.get("onnxruntime")
    if mod is not None:
        return getattr(mod, "__version__", None)
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                 "onnxruntime-rocm", "onnxruntime-migraphx"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def ai_enabled() -> bool:
    """The effective switch: ``ai.enabled`` is true *and* ONNX Runtime is installed."""
    return bool(prefs.get("ai.enabled")) and ort_available()


def status_line() -> str | None:
    """Why AI is off and what to do about it, or None when it is on."""
    if not ort_available():
        return f"AI support is not installed (ONNX Runtime is missing); {INSTALL_HINT}"
    if not prefs.get("ai.enabled"):
        return f"AI is disabled; {ENABLE_HINT}"
    return None


def require_enabled() -> None:
    """Raise :class:`AIError` with the advice unless AI can run."""
    line = status_line()
    if line:
        raise AIError(line)
