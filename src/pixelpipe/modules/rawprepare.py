"""rawprepare: subtract the sensor's black levels and scale to the white level.

Algorithm: ``out = (in - black[cfa(x, y)]) / (white - black[cfa(x, y)])``,
black per CFA position, so [0, 1] spans black to sensor saturation.
Region of interest: a point operation (roi_in = roi_out).
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import pattern_lut, x, y
from ..engine.kernels import f32
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param


@dataclass
class RawprepareParams(Params):
    """Sensor levels.

    black_level: per CFA colour (R, G, B, G2 in the file's colour order), sensor units, 0..65535.
    white_point: sensor saturation level, sensor units, 1..4294967295.
    """

    black_level: list = param([0.0, 0.0, 0.0, 0.0], min=0.0, max=65535.0, unit="DN")
    white_point: float = param(65535.0, min=1.0, max=4294967295.0, unit="DN")


class Rawprepare(HalideModule):
    op = "rawprepare"
    name = "raw black/white point"
    Params = RawprepareParams
    flags = Flags.ONE_INSTANCE | Flags.HIDDEN | Flags.ALLOW_TILING
    default_enabled = True
    works_on = "raw"
    summary = "per-channel black/white levels"
    channels_in = channels_out = 1
    inputs = (HInput("black", "buf_f32", 2), HInput("inv_range", "buf_f32", 2),
              HInput("ox", "i32"), HInput("oy", "i32"))

    # -- algorithm: black and range per CFA position (phase ox, oy of the buffer)
    def algorithm(self, raw, p, piece):
        n = p["black"].dim(0).extent()
        i, j = (x + p["ox"]) % n, (y + p["oy"]) % n
        prepared = hl.Func("prepared")
        prepared[x, y] = (raw[x, y] - p["black"][i, j]) * p["inv_range"][i, j]
        return prepared

    def default_params(self, image):
        return RawprepareParams(black_level=[float(b) for b in image.black], white_point=float(image.white))

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(processed_maximum=(1.0, 1.0, 1.0))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        p: RawprepareParams = piece.params
        black = pattern_lut(piece.dsc_in.cfa.pattern, np.asarray(p.black_level, dtype=np.float64))
        inv = 1.0 / np.maximum(p.white_point - black.astype(np.float64), 1e-6)
        return {"black": black, "inv_range": f32(inv), "ox": roi_in.x, "oy": roi_in.y}
