"""colorout: output colour profile, linear Rec.2020 to the output RGB, encoded.

Algorithm: a 3x3 matrix (colour-science primaries, Bradford adaptation where
white points differ) then the profile's transfer curve (inverse of the ICC
parametric curve). The writer embeds the matching ICC profile.
Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl

from ..engine.halide_ops import c, x, y
from ..engine.kernels import f32
from . import colorspaces as cs
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param
from .channelmixerrgb import SmallImageSafe, finite


@dataclass
class ColoroutParams(Params):
    """Output profile.

    profile: one of srgb, display_p3, adobe_rgb, rec2020 and their linear_ variants.
    """

    profile: str = param("srgb", choices=tuple(cs.profiles()))


class Colorout(SmallImageSafe, HalideModule):
    op = "colorout"
    name = "output color profile"
    Params = ColoroutParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING
    default_enabled = True
    summary = "linear Rec.2020 to the output profile"
    inputs = (HInput("matrix", "buf_f32", 2),) + tuple(HInput(n) for n in ("inv_g", "a", "b", "cc", "cutoff"))

    # -- algorithm: 3x3 matrix, then the inverse of the profile's parametric curve
    def algorithm(self, rgb, p, piece):
        m = p["matrix"]
        linear = hl.Func("profile_linear")
        v = [finite(rgb[x, y, k]) for k in range(3)]  # nothing non-finite leaves the module
        linear[x, y, c] = hl.max(m[0, c] * v[0] + m[1, c] * v[1] + m[2, c] * v[2], 0.0)
        L = linear[x, y, c]
        encoded = hl.Func("encoded")
        encoded[x, y, c] = finite(hl.select(L >= p["cutoff"], (hl.pow(L, p["inv_g"]) - p["b"]) / p["a"],
                                            L * p["cc"]))
        return encoded

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    def commit(self, piece):
        p = piece.params
        piece.data["matrix"] = cs.working_to_profile(p.profile)
        piece.data["trc"] = cs.trc(p.profile)

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(space="display", output_profile=piece.params.profile)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        t = piece.data["trc"]
        return {"matrix": f32(piece.data["matrix"]), "inv_g": 1.0 / t["g"], "a": t["a"], "b": t["b"],
                "cc": 1.0 / t["c"] if t["c"] > 0 else 0.0, "cutoff": t["c"] * t["d"] if t["c"] > 0 else -1.0}
