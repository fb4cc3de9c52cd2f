"""rgblevels: black, grey and white points on RGB, linked (optionally on a norm) or per channel.

Algorithm (darktable's rgb levels): with black ``b``, grey ``m`` and white
``w`` (0 <= b < m < w <= 1), ``gamma = 10^((m - (b + w) / 2) / ((w - b) / 2))``
and ``out = ((v - b) / (w - b))^gamma`` for ``v > b``, 0 otherwise (values
above white continue the power function: scene-referred input is not
clipped). A grey point half-way between black and white is a straight line.

* mode "linked": one set of levels; with ``preserve_colors`` the levels are
  applied to a norm of the pixel (as in rgbcurve: luminance, max, average,
  sum, norm, power) and the channels scaled by ``levels(norm) / norm``
  (norm <= black: black); "none" applies them per channel;
* mode "independent": ``red``, ``green``, ``blue`` levels per channel.

darktable evaluates below white through a 65536-entry table; the exact
power function is used here. Defaults (0, 0.5, 1) are an identity for
non-negative input (negatives become 0, as in darktable).
Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..errors import ParamsError
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param
from .channelmixerrgb import SmallImageSafe, finite, planar
from .rgbcurve import PRESERVE_COLORS, luminance_coefficients, norm_index, rgb_norm


@dataclass
class RgblevelsParams(Params):
    """RGB levels.

    mode: "linked" (``black``, ``grey``, ``white``) or "independent" (``red``, ``green``, ``blue``).
    preserve_colors: linked mode's norm: none, luminance (default), max, average, sum, norm, power.
    black, grey, white: linked levels, 0..1, black < grey < white.
    red, green, blue: [black, grey, white] per channel, 0..1, increasing.
    """

    mode: str = param("linked", choices=("linked", "independent"))
    preserve_colors: str = param("luminance", choices=PRESERVE_COLORS)
    black: float = param(0.0, min=0.0, max=1.0)
    grey: float = param(0.5, min=0.0, max=1.0)
    white: float = param(1.0, min=0.0, max=1.0)
    red: list = param([0.0, 0.5, 1.0], min=0.0, max=1.0)
    green: list = param([0.0, 0.5, 1.0], min=0.0, max=1.0)
    blue: list = param([0.0, 0.5, 1.0], min=0.0, max=1.0)

    def validate(self, op: str) -> "RgblevelsParams":
        super().validate(op)
        if not self.black < self.grey < self.white:
            raise ParamsError(f"module {op}: parameters 'black' < 'grey' < 'white' must hold "
                              f"(got {self.black}, {self.grey}, {self.white})")
        for name in ("red", "green", "blue"):
            v = getattr(self, name)
            if len(v) != 3 or not v[0] < v[1] < v[2]:
                raise ParamsError(f"module {op}: parameter {name!r} must be [black, grey, white] with "
                                  f"black < grey < white, got {list(v)}")
        return self


def level_table(p: RgblevelsParams) -> np.ndarray:
    """(3 channels, [black, 1 / (white - black), gamma])."""
    sets = [(p.black, p.grey, p.white)] * 3 if p.mode == "linked" else [tuple(p.red), tuple(p.green),
                                                                      tuple(p.blue)]
    rows = []
    for b, m, w in sets:
        half = (w - b) / 2.0
        rows.append([b, 1.0 / (w - b), 10.0 ** ((m - (b + half)) / half)])
    return np.array(rows, dtype=np.float64)


def apply_levels(v, ch, lv):
    b, scale, gamma = lv[0, ch], lv[1, ch], lv[2, ch]
    return hl.select(v > b, hl.pow(hl.max((v - b) * scale, 0.0), gamma), 0.0)


class Rgblevels(SmallImageSafe, HalideModule):
    op = "rgblevels"
    name = "rgb levels"
    Params = RgblevelsParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    summary = "black, grey and white points on RGB"
    helper_modules = ("pixelpipe.modules.rgbcurve",)
    inputs = (HInput("levels", "buf_f32", 2), HInput("norm", "i32"), HInput("lum_r"), HInput("lum_g"),
              HInput("lum_b"))

    # -- algorithm
    def algorithm(self, rgb, p, piece):
        lv, method = p["levels"], p["norm"]
        v = [finite(rgb[x, y, k]) for k in range(3)]
        per_channel = [apply_levels(v[k], k, lv) for k in range(3)]
        n = rgb_norm(v[0], v[1], v[2], method, (p["lum_r"], p["lum_g"], p["lum_b"]))
        ratio = hl.select(n > lv[0, 0], apply_levels(n, 0, lv) / hl.select(n > 0, n, 1.0), 0.0)
        preserved = [ratio * e for e in v]
        levelled = hl.Func("levelled")
        levelled[x, y, c] = finite(hl.select(method < 0, planar(*per_channel), planar(*preserved)))
        return levelled

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    def commit(self, piece):
        p = piece.params
        piece.data["levels"] = level_table(p)
        piece.data["norm"] = -1 if p.mode == "independent" else norm_index(p.preserve_colors)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        lum = luminance_coefficients()
        d = piece.data
        return {"levels": d["levels"], "norm": d["norm"], "lum_r": lum[0], "lum_g": lum[1], "lum_b": lum[2]}
