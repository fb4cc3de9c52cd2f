"""gamma: the pipe's last module: clamp display-encoded values to [0, 1].

darktable's gamma turns the display-encoded float image into 8-bit for the
screen; pixelpipe's writers quantise, so this module only clamps (and maps
NaN to 0 so nothing undefined leaves the pipe). Region of interest: point op.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, schedule_point_rgb, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from .base import Flags, Module, Params, Piece, ROI


@dataclass
class GammaParams(Params):
    """No user parameters."""


def _build():
    rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
    v = rgb[x, y, c]
    display = hl.Func("display")
    display[x, y, c] = hl.select(hl.is_nan(v), hl.f32(0), hl.clamp(v, 0.0, 1.0))
    schedule_point_rgb(display)
    return display, [rgb]


class Gamma(Module):
    op = "gamma"
    name = "display encoding"
    Params = GammaParams
    flags = Flags.ONE_INSTANCE | Flags.HIDDEN | Flags.NO_HISTORY_STACK | Flags.ALLOW_TILING
    default_enabled = True
    summary = "final clamp to the display range"

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        k = get_kernel("gamma", _build, source_tag=source_tag_of(_build), device=piece.device)
        out = np.empty_like(inp)
        k(f32(inp), out)
        return out
