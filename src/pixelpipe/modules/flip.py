"""flip: orientation (mirror, rotate by multiples of 90 degrees, transpose).

``orientation`` bits as darktable's: FLIP_Y = 1, FLIP_X = 2, SWAP_XY = 4; -1
means "from the file's EXIF orientation". A point (x, y) of the W x H input
goes to the output by: x -> W - x if FLIP_X; y -> H - y if FLIP_Y; then
(x, y) -> (y, x) if SWAP_XY. Coordinates are continuous (pixel edges), so the
transform is its own exact inverse on pixel grids.
Region of interest: the output region's corners transformed back.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, Tags, param

FLIP_Y, FLIP_X, SWAP_XY = 1, 2, 4
# EXIF orientation 1..8 -> flip bits (see the module docstring for the geometry)
EXIF_TO_BITS = {1: 0, 2: FLIP_X, 3: FLIP_X | FLIP_Y, 4: FLIP_Y, 5: SWAP_XY,
                6: FLIP_Y | SWAP_XY, 7: FLIP_X | FLIP_Y | SWAP_XY, 8: FLIP_X | SWAP_XY}


@dataclass
class FlipParams(Params):
    """Orientation.

    orientation: -1 = the file's EXIF orientation; else bits FLIP_Y=1, FLIP_X=2, SWAP_XY=4 (0..7).
    """

    orientation: int = param(-1, min=-1, max=7)


def _scaled(n: int, s: float) -> int:
    return max(1, int(round(n * s)))


class Flip(HalideModule):
    op = "flip"
    name = "orientation"
    Params = FlipParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    tags = Tags.DISTORT
    default_enabled = True
    summary = "orientation from EXIF or chosen"
    pointwise = False
    inputs = tuple(HInput(n, "i32") for n in ("fx", "fy", "swap", "x0", "y0", "ix0", "iy0", "w_full", "h_full"))

    # -- algorithm: each output pixel fetches the input pixel it came from
    def algorithm(self, img, p, piece):
        X, Y = x + p["x0"], y + p["y0"]  # output pixel in the oriented full buffer
        sx, sy = X, Y
        if self.bits(piece) != 0:  # the identity is its own (point-wise, fusable) kernel
            sx = hl.select(p["swap"] == 1, Y, X)  # undo the swap, then the mirrors
            sy = hl.select(p["swap"] == 1, X, Y)
            sx = hl.select(p["fx"] == 1, p["w_full"] - 1 - sx, sx)
            sy = hl.select(p["fy"] == 1, p["h_full"] - 1 - sy, sy)
        oriented = hl.Func("oriented")
        oriented[x, y, c] = img[hl.clamp(sx - p["ix0"], 0, p["in_w"] - 1), hl.clamp(sy - p["iy0"], 0, p["in_h"] - 1), c]
        return oriented

    def variant(self, piece) -> str:
        return "identity" if self.bits(piece) == 0 else ""

    def process(self, piece, inp, roi_in: ROI, roi_out: ROI):
        if self.bits(piece) == 0 and roi_in == roi_out and inp.shape[-2:] == (roi_out.height, roi_out.width):
            return inp  # nothing to do: the buffer passes through (no copy)
        return super().process(piece, inp, roi_in, roi_out)

    def pointwise_for(self, piece) -> bool:
        return self.bits(piece) == 0

    def gathers_for(self, piece) -> bool:
        # a mirror reads whole rows (fused, each output row from one input row); a swap would
        # read a column per output row, so it stays its own kernel
        return not self.bits(piece) & SWAP_XY

    def bits(self, piece) -> int:
        o = piece.params.orientation
        return EXIF_TO_BITS.get(int(piece.image.orientation or 1), 0) if o < 0 else o

    def modify_roi_out(self, piece, roi_in: ROI) -> ROI:
        if self.bits(piece) & SWAP_XY:
            return ROI(roi_in.y, roi_in.x, roi_in.height, roi_in.width, roi_in.scale)
        return roi_in

    def modify_roi_in(self, piece, roi_out: ROI) -> ROI:
        b = self.bits(piece)
        s = roi_out.scale
        w_in, h_in = _scaled(piece.buf_in[0], s), _scaled(piece.buf_in[1], s)
        x0, y0, x1, y1 = roi_out.x, roi_out.y, roi_out.x + roi_out.width, roi_out.y + roi_out.height
        if b & SWAP_XY:
            x0, y0, x1, y1 = y0, x0, y1, x1
        if b & FLIP_X:
            x0, x1 = w_in - x1, w_in - x0
        if b & FLIP_Y:
            y0, y1 = h_in - y1, h_in - y0
        return ROI(x0, y0, x1 - x0, y1 - y0, s)

    def distort_transform(self, piece, pts):
        p = np.array(pts, dtype=np.float64, copy=True).reshape(-1, 2)
        b = self.bits(piece)
        w, h = piece.buf_in
        if b & FLIP_X:
            p[:, 0] = w - p[:, 0]
        if b & FLIP_Y:
            p[:, 1] = h - p[:, 1]
        if b & SWAP_XY:
            p = p[:, ::-1].copy()
        return p

    def distort_backtransform(self, piece, pts):
        p = np.array(pts, dtype=np.float64, copy=True).reshape(-1, 2)
        b = self.bits(piece)
        w, h = piece.buf_in
        if b & SWAP_XY:
            p = p[:, ::-1].copy()
        if b & FLIP_X:
            p[:, 0] = w - p[:, 0]
        if b & FLIP_Y:
            p[:, 1] = h - p[:, 1]
        return p

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        b = self.bits(piece)
        s = roi_out.scale
        return {"fx": int(bool(b & FLIP_X)), "fy": int(bool(b & FLIP_Y)), "swap": int(bool(b & SWAP_XY)),
                "x0": roi_out.x, "y0": roi_out.y, "ix0": roi_in.x, "iy0": roi_in.y,
                "w_full": _scaled(piece.buf_in[0], s), "h_full": _scaled(piece.buf_in[1], s)}
