"""gamma: the pipe's last module: clamp display-encoded values to [0, 1].

darktable's gamma turns the display-encoded float image into 8-bit for the
screen; pixelpipe's writers quantise, so this module only clamps (and maps
NaN to 0 so nothing undefined leaves the pipe). Region of interest: point op.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl

from ..engine.halide_ops import c, x, y
from .base import Flags, HalideModule, Params


@dataclass
class GammaParams(Params):
    """No user parameters."""


class Gamma(HalideModule):
    op = "gamma"
    name = "display encoding"
    Params = GammaParams
    flags = Flags.ONE_INSTANCE | Flags.HIDDEN | Flags.NO_HISTORY_STACK | Flags.ALLOW_TILING
    default_enabled = True
    summary = "final clamp to the display range"

    # -- algorithm: NaN -> 0, clamp to [0, 1]
    def algorithm(self, rgb, p, piece):
        v = rgb[x, y, c]
        display = hl.Func("display")
        display[x, y, c] = hl.select(hl.is_nan(v), hl.f32(0), hl.clamp(v, 0.0, 1.0))
        return display
