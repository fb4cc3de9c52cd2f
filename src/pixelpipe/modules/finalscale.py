"""finalscale: late downscaling for exports and the darkroom's high-quality mode.

Region of interest: requests its input at scale 1 (the output region divided
by its scale, padded by one pixel), so everything upstream runs at full
resolution; then resamples (area average) to the output scale. The pipe
enables it only for high-quality exports and the darkroom's HQ mode, as
darktable does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..engine.halide_ops import resample
from .base import Flags, Module, Params, Piece, ROI


@dataclass
class FinalscaleParams(Params):
    """No user parameters."""


def _scaled(n: int, s: float) -> int:
    return max(1, int(round(n * s)))


class Finalscale(Module):
    op = "finalscale"
    name = "scale into final size"
    Params = FinalscaleParams
    flags = Flags.HIDDEN | Flags.ONE_INSTANCE | Flags.NO_HISTORY_STACK
    summary = "late downscale (high-quality mode)"

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        s = roi_out.scale
        w_in, h_in = piece.buf_in
        x0 = max(0, math.floor(roi_out.x / s) - 1)
        y0 = max(0, math.floor(roi_out.y / s) - 1)
        x1 = min(w_in, math.ceil((roi_out.x + roi_out.width) / s) + 1)
        y1 = min(h_in, math.ceil((roi_out.y + roi_out.height) / s) + 1)
        return ROI(x0, y0, x1 - x0, y1 - y0, 1.0)

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        if roi_in.scale == roi_out.scale and roi_in == roi_out:
            return inp
        return resample(inp, roi_in.x, roi_in.y, roi_in.scale, roi_out.x, roi_out.y,
                        roi_out.width, roi_out.height, roi_out.scale, piece.device)
