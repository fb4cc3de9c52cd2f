"""crop: keep a rectangle of the image.

Parameters as darktable's crop: left/top edge (``cx``, ``cy``) and right/bottom
edge (``cw``, ``ch``), all relative to the module's input, 0..1.
Point transform: ``(x, y) -> (x - left, y - top)`` in full-resolution pixels.
Region of interest: the output region shifted by the crop origin (at the
region's scale). While crop is focused in the darkroom the pipe runs fast and
bypasses crop and later distortions, so the whole frame shows (skip rule).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Flags, Module, Params, Piece, ROI, Tags, param, window


@dataclass
class CropParams(Params):
    """Crop rectangle, relative to the input (0..1).

    cx, cy: left and top edges; cw, ch: right and bottom edges (must exceed cx, cy).
    """

    cx: float = param(0.0, min=0.0, max=1.0)
    cy: float = param(0.0, min=0.0, max=1.0)
    cw: float = param(1.0, min=0.0, max=1.0)
    ch: float = param(1.0, min=0.0, max=1.0)

    def validate(self, op):
        super().validate(op)
        from ..errors import ParamsError

        if self.cw <= self.cx or self.ch <= self.cy:
            raise ParamsError(f"module {op}: the crop rectangle is empty (right edge cw must exceed cx "
                              "and bottom edge ch must exceed cy)")
        return self


class Crop(Module):
    op = "crop"
    name = "crop"
    Params = CropParams
    flags = Flags.ALLOW_TILING | Flags.ALLOW_FAST_PIPE | Flags.INCLUDE_IN_STYLES | Flags.ONE_INSTANCE
    tags = Tags.DISTORT | Tags.CROPPING
    tags_filter = Tags.DISTORT
    summary = "crop to a rectangle"

    def _box(self, piece) -> tuple[int, int, int, int]:
        """Crop box at full resolution: x0, y0, width, height (whole frame while focused)."""
        w, h = piece.buf_in
        if piece.focused:
            return 0, 0, w, h
        p = piece.params
        x0, y0 = int(round(p.cx * w)), int(round(p.cy * h))
        x1, y1 = int(round(p.cw * w)), int(round(p.ch * h))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)

    def modify_roi_out(self, piece, roi_in):
        x0, y0, w, h = self._box(piece)
        return ROI(0, 0, max(1, int(round(w * roi_in.scale))), max(1, int(round(h * roi_in.scale))), roi_in.scale)

    def modify_roi_in(self, piece, roi_out):
        x0, y0, _, _ = self._box(piece)
        s = roi_out.scale
        return ROI(roi_out.x + int(round(x0 * s)), roi_out.y + int(round(y0 * s)),
                   roi_out.width, roi_out.height, s)

    def distort_transform(self, piece, pts):
        x0, y0, _, _ = self._box(piece)
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2) - [x0, y0]

    def distort_backtransform(self, piece, pts):
        x0, y0, _, _ = self._box(piece)
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2) + [x0, y0]

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        # the region rule already moved the window; only edge rounding can differ
        x0, y0, _, _ = self._box(piece)
        s = roi_out.scale
        return window(inp, roi_in, roi_out.x + int(round(x0 * s)), roi_out.y + int(round(y0 * s)),
                      roi_out.width, roi_out.height)
