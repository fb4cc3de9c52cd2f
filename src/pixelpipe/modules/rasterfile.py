"""rasterfile: an external raster mask (PNG or PFM file) published for later modules.

As darktable's "external raster mask" module (5.2+, placed right after
temperature): the pixels pass through unchanged; the file's mask (one channel,
or the mean/max/one of its RGB channels; ``invert`` flips it) is stretched over
the whole input image — it must have the orientation of the stored sensor data,
since later distortions (orientation, crop, ...) carry it along like any raster
mask. A file whose size differs from the image's is resampled, with a notice.
A relative ``path`` is taken relative to the image's folder. An unreadable
file is an :class:`~pixelpipe.errors.InputError` naming the file.
Later modules use it with blend ``mask_mode="raster"`` and
``raster_source="rasterfile"`` (or ``"rasterfile#N"``).
Region of interest: a point operation (the mask is sampled bilinearly over the region).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..blend.raster import CHANNELS, load_mask_file, mask_over_roi
from .base import Flags, Module, Params, Piece, ROI, param, window


@dataclass
class RasterfileParams(Params):
    """External raster mask.

    path: PNG (8/16-bit, grey or RGB) or PFM file; empty: no mask.
    channel: "gray" (mean of RGB), "red", "green", "blue" or "max".
    invert: use 1 - mask.
    """

    path: str = param("")
    channel: str = param("gray", choices=CHANNELS)
    invert: bool = param(False)


class Rasterfile(Module):
    op = "rasterfile"
    name = "external raster mask"
    Params = RasterfileParams
    flags = Flags.WRITE_RASTER | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    works_on = "any"
    summary = "loads a PNG/PFM file as a raster mask for later modules"

    def _path(self, piece: Piece) -> Path | None:
        p = piece.params.path
        if not p:
            return None
        path = Path(os.path.expanduser(p))
        if not path.is_absolute() and piece.image.path:
            path = Path(piece.image.path).parent / path
        return path

    def commit(self, piece: Piece) -> None:
        path = self._path(piece)
        piece.data["mask"] = None
        if path is None:
            return
        m = load_mask_file(path, piece.params.channel)
        if piece.params.invert:
            m = 1.0 - m
        w, h = piece.buf_in
        if m.shape != (h, w):
            piece.notices.append(f"rasterfile: {path.name} is {m.shape[1]}x{m.shape[0]}, the image is {w}x{h}; "
                                 "the mask was resampled to fit")
        piece.data["mask"] = m

    def cache_salt(self, piece: Piece) -> str:
        """The file's identity (size and date) — a rewritten mask file invalidates the cache."""
        path = self._path(piece)
        if path is None:
            return ""
        try:
            st = path.stat()
            return f"{path}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            return f"{path}:missing"

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        if roi_in == roi_out:
            return inp
        return window(inp, roi_in, roi_out.x, roi_out.y, roi_out.width, roi_out.height)

    def raster_mask(self, piece: Piece, roi_out: ROI) -> np.ndarray | None:
        m = piece.data.get("mask")
        if m is None:
            return None
        w, h = piece.buf_in
        return mask_over_roi(m, w, h, roi_out)
