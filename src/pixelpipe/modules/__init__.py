"""Processing modules: one file per darktable operation, discovered automatically.

Adding a module means adding one file here that defines a subclass of
:class:`pixelpipe.modules.base.Module` with its ``op`` name.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil

from .base import Module


@functools.lru_cache(maxsize=None)
def registry() -> dict[str, type[Module]]:
    """All module classes by darktable operation name."""
    found: dict[str, type[Module]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in ("base", "colorspaces"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, Module) and obj is not Module and obj.op \
                    and obj.__module__ == mod.__name__:
                found[obj.op] = obj
    from ..engine.kernels import remember_sources

    remember_sources()
    return found


def get(op: str) -> type[Module]:
    from ..errors import ParamsError

    try:
        return registry()[op]
    except KeyError:
        raise ParamsError(f"unknown module {op!r}") from None
