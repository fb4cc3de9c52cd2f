"""highlights: keep clipped sensor values from turning magenta.

Method "clip": every CFA sample is limited to ``clip * min(processed_maximum)``,
so a saturated pixel stays neutral after white balance (darktable's clip mode).
Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import schedule_point_2d, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from .base import Flags, Module, Params, Piece, ROI, param


@dataclass
class HighlightsParams(Params):
    """Highlight handling.

    mode: "clip".
    clip: clipping threshold relative to sensor saturation, 0..2.
    """

    mode: str = param("clip", choices=("clip",))
    clip: float = param(1.0, min=0.0, max=2.0)


def _build():
    mosaic = hl.ImageParam(hl.Float(32), 2, "mosaic")
    limit = hl.Param(hl.Float(32), "limit")
    clipped = hl.Func("clipped")
    clipped[x, y] = hl.min(mosaic[x, y], limit)
    schedule_point_2d(clipped)
    return clipped, [mosaic, limit]


class Highlights(Module):
    op = "highlights"
    name = "highlight reconstruction"
    Params = HighlightsParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING | Flags.ALLOW_FAST_PIPE
    default_enabled = True
    works_on = "raw"
    summary = "clip highlights to keep them neutral"

    def output_desc(self, piece, dsc_in):
        m = min(dsc_in.processed_maximum) * piece.params.clip
        return dsc_in.copy(processed_maximum=(m, m, m))

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        limit = float(piece.params.clip * min(piece.dsc_in.processed_maximum))
        k = get_kernel("highlights_clip", _build, source_tag=source_tag_of(_build), device=piece.device)
        out = np.empty_like(inp)
        k(f32(inp), limit, out)
        return out
