"""Pipe kinds as darktable has them (dt_dev_pixelpipe_type_t) and their cache sizes."""
from __future__ import annotations

import enum


class PipeKind(enum.IntFlag):
    NONE = 0
    EXPORT = 1 << 0
    FULL = 1 << 1  # the darkroom's centre view
    PREVIEW = 1 << 2  # navigation thumbnail of the whole image
    THUMBNAIL = 1 << 3
    PREVIEW2 = 1 << 4  # second window
    FAST = 1 << 8
    IMAGE = 1 << 9
    IMAGE_FINAL = 1 << 10

    SCREEN = PREVIEW | FULL | PREVIEW2
    BASIC = FULL | PREVIEW


NAMES = {"export": PipeKind.EXPORT, "full": PipeKind.FULL, "darkroom": PipeKind.FULL,
         "preview": PipeKind.PREVIEW, "preview2": PipeKind.PREVIEW2, "thumbnail": PipeKind.THUMBNAIL}

#: cache lines per pipe kind (darktable: full 64, preview 12, preview2 5, export/thumbnail 2)
CACHE_LINES = {"full": 64, "preview": 12, "preview2": 5, "export": 2, "thumbnail": 2}


def canonical(name: str) -> str:
    from ..errors import PixelpipeError

    n = {"darkroom": "full"}.get(name, name)
    if n not in CACHE_LINES:
        raise PixelpipeError(f"unknown pipe kind {name!r}; choose one of export, full (darkroom), "
                             "preview, preview2, thumbnail")
    return n
