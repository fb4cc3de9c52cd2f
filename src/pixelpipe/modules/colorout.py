"""colorout: output colour profile, linear Rec.2020 to the output RGB, encoded.

Algorithm: a 3x3 matrix (colour-science primaries, Bradford adaptation where
white points differ) then the profile's transfer curve (inverse of the ICC
parametric curve). The writer embeds the matching ICC profile.
Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, rows, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from . import colorspaces as cs
from .base import Flags, Module, Params, Piece, ROI, param


@dataclass
class ColoroutParams(Params):
    """Output profile.

    profile: one of srgb, display_p3, adobe_rgb, rec2020 and their linear_ variants.
    """

    profile: str = param("srgb", choices=tuple(cs.profiles()))


def _build():
    rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
    m = hl.ImageParam(hl.Float(32), 2, "matrix")
    inv_g, a, b, cc, cutoff = (hl.Param(hl.Float(32), n) for n in ("inv_g", "a", "b", "cc", "cutoff"))
    linear = hl.Func("profile_linear")
    linear[x, y, c] = hl.max(m[0, c] * rgb[x, y, 0] + m[1, c] * rgb[x, y, 1] + m[2, c] * rgb[x, y, 2], 0.0)
    L = linear[x, y, c]
    encoded = hl.Func("encoded")
    encoded[x, y, c] = hl.select(L >= cutoff, (hl.pow(L, inv_g) - b) / a, L * cc)
    encoded.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    rows(encoded)
    return encoded, [rgb, m, inv_g, a, b, cc, cutoff]


class Colorout(Module):
    op = "colorout"
    name = "output color profile"
    Params = ColoroutParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING
    default_enabled = True
    summary = "linear Rec.2020 to the output profile"

    def commit(self, piece):
        p = piece.params
        piece.data["matrix"] = cs.working_to_profile(p.profile)
        piece.data["trc"] = cs.trc(p.profile)

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(space="display", output_profile=piece.params.profile)

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        t = piece.data["trc"]
        cc = 1.0 / t["c"] if t["c"] > 0 else 0.0
        cutoff = t["c"] * t["d"] if t["c"] > 0 else -1.0
        k = get_kernel("colorout", _build, source_tag=source_tag_of(_build), device=piece.device)
        out = np.empty_like(inp)
        k(f32(inp), f32(piece.data["matrix"]), 1.0 / t["g"], t["a"], t["b"], cc, cutoff, out)
        return out
