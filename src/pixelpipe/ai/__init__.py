"""pixelpipe's AI subsystem: opt-in, task slots, a darktable-compatible model repository,
ONNX Runtime with a choice of provider.

Importing this package is cheap: it never imports ONNX Runtime (nor numpy);
:func:`load_session` does, and only when ``ai.enabled`` is true.

Public API for consumers (the denoise, upscale, raw-denoise and mask tasks)::

    from pixelpipe import ai
    m = ai.active_model("denoise")          # InstalledModel | None
    s = ai.load_session(m)                  # runtime.Session (provider from ai.provider)
    y = ai.tiling.run_tiled(s, x_nchw, scale=1, overlap=64)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixelpipe.prefs import TASKS

from .enable import ai_enabled, ort_available, require_enabled
from .registry import (
    InstalledModel,
    activate,
    active_model,
    deactivate,
    delete,
    get_installed,
    installed_models,
    models_dir,
)

if TYPE_CHECKING:  # pragma: no cover
    from . import runtime, tiling
    from .runtime import Session

__all__ = [
    "TASKS", "InstalledModel", "Session", "activate", "active_model", "ai_enabled", "deactivate",
    "delete", "download_model", "get_installed", "install_package", "installed_models",
    "load_session", "models_dir", "ort_available", "require_enabled", "runtime", "tiling",
]


def load_session(model, provider: str | None = None, **kw) -> "Session":
    """An ONNX Runtime session for ``model`` (InstalledModel, model id or ``.onnx`` path);
    see :func:`pixelpipe.ai.runtime.load_session`."""
    from .runtime import load_session as _load

    return _load(model, provider, **kw)


def install_package(path, **kw) -> InstalledModel:
    """Install a ``.dtmodel``/zip package (see :mod:`pixelpipe.ai.package`)."""
    from .package import install_package as _install

    return _install(path, **kw)


def download_model(model_id: str, **kw) -> InstalledModel:
    """Download and install a catalogue model (see :mod:`pixelpipe.ai.download`)."""
    from .download import download_model as _download

    return _download(model_id, **kw)


def __getattr__(name: str) -> Any:
    if name in ("runtime", "tiling", "download", "package", "onnxinfo"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "Session":
        from .runtime import Session

        return Session
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
