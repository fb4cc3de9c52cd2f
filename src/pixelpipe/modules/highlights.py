"""highlights: keep clipped sensor values from turning magenta.

Method "clip": every CFA sample is limited to ``clip * min(processed_maximum)``,
so a saturated pixel stays neutral after white balance (darktable's clip mode).
Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl

from ..engine.halide_ops import x, y
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param


@dataclass
class HighlightsParams(Params):
    """Highlight handling.

    mode: "clip".
    clip: clipping threshold relative to sensor saturation, 0..2.
    """

    mode: str = param("clip", choices=("clip",))
    clip: float = param(1.0, min=0.0, max=2.0)


class Highlights(HalideModule):
    op = "highlights"
    name = "highlight reconstruction"
    Params = HighlightsParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING | Flags.ALLOW_FAST_PIPE
    default_enabled = True
    works_on = "raw"
    summary = "clip highlights to keep them neutral"
    channels_in = channels_out = 1
    inputs = (HInput("limit"),)

    # -- algorithm
    def algorithm(self, mosaic, p, piece):
        clipped = hl.Func("clipped")
        clipped[x, y] = hl.min(mosaic[x, y], p["limit"])
        return clipped

    def output_desc(self, piece, dsc_in):
        m = min(dsc_in.processed_maximum) * piece.params.clip
        return dsc_in.copy(processed_maximum=(m, m, m))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        return {"limit": piece.params.clip * min(piece.dsc_in.processed_maximum)}
