"""rawprepare: subtract the sensor's black levels and scale to the white level.

Algorithm: ``out = (in - black[cfa(x, y)]) / (white - black[cfa(x, y)])``,
black per CFA position, so [0, 1] spans black to sensor saturation.
Region of interest: a point operation (roi_in = roi_out).
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import pattern_lut, schedule_point_2d, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from .base import BufferDesc, Flags, Module, Params, Piece, ROI, cfa_at, param


@dataclass
class RawprepareParams(Params):
    """Sensor levels.

    black_level: per CFA colour (R, G, B, G2 in the file's colour order), sensor units, 0..65535.
    white_point: sensor saturation level, sensor units, 1..4294967295.
    """

    black_level: list = param([0.0, 0.0, 0.0, 0.0], min=0.0, max=65535.0, unit="DN")
    white_point: float = param(65535.0, min=1.0, max=4294967295.0, unit="DN")


# -- algorithm ---------------------------------------------------------------
def _build():
    raw = hl.ImageParam(hl.Float(32), 2, "raw")
    black = hl.ImageParam(hl.Float(32), 2, "black")  # [i, j] per CFA position
    inv_range = hl.ImageParam(hl.Float(32), 2, "inv_range")
    ox = hl.Param(hl.Int(32), "ox")  # CFA phase of the buffer's (0, 0)
    oy = hl.Param(hl.Int(32), "oy")
    n = black.dim(0).extent()
    i, j = (x + ox) % n, (y + oy) % n
    prepared = hl.Func("prepared")
    prepared[x, y] = (raw[x, y] - black[i, j]) * inv_range[i, j]
    # -- schedule
    schedule_point_2d(prepared)
    return prepared, [raw, black, inv_range, ox, oy]


class Rawprepare(Module):
    op = "rawprepare"
    name = "raw black/white point"
    Params = RawprepareParams
    flags = Flags.ONE_INSTANCE | Flags.HIDDEN | Flags.ALLOW_TILING
    default_enabled = True
    works_on = "raw"
    summary = "per-channel black/white levels"

    def default_params(self, image):
        return RawprepareParams(black_level=[float(b) for b in image.black], white_point=float(image.white))

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(processed_maximum=(1.0, 1.0, 1.0))

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        p: RawprepareParams = piece.params
        cfa = piece.dsc_in.cfa
        black = np.asarray(p.black_level, dtype=np.float64)
        # pattern relative to the full buffer's origin; the kernel adds the phase
        black_lut = pattern_lut(cfa.pattern, black)
        inv = f32(1.0 / np.maximum(p.white_point - black_lut.astype(np.float64), 1e-6))
        k = get_kernel("rawprepare", _build, source_tag=source_tag_of(_build), device=piece.device)
        out = np.empty_like(inp)
        k(f32(inp), black_lut, inv, roi_in.x, roi_in.y, out)
        return out
