"""temperature (white balance): multiply each CFA colour by its coefficient.

Algorithm: ``out = in * coeff[cfa(x, y)]``, coefficients normalised to green = 1.
The as-shot coefficients come from the file; a file without them gets the
daylight coefficients of its camera matrix, or 1/1/1 when it has none (with a
notice). Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import pattern_lut, x, y
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

PRESETS = ("as-shot", "daylight", "user")


@dataclass
class TemperatureParams(Params):
    """White balance.

    preset: "as-shot" (the file's), "daylight" (the camera matrix's D65 white)
            or "user" (the four coefficients below).
    red, green, blue, g2: user coefficients (multipliers), 0..8.
    """

    preset: str = param("as-shot", choices=PRESETS)
    red: float = param(1.0, min=0.0, max=8.0)
    green: float = param(1.0, min=0.0, max=8.0)
    blue: float = param(1.0, min=0.0, max=8.0)
    g2: float = param(1.0, min=0.0, max=8.0)


def coefficients(image, p: TemperatureParams) -> tuple[np.ndarray, str | None]:
    """(R, G, B, G2) multipliers for this image and the notice to show, if any."""
    notice = None
    if p.preset == "user":
        c = np.array([p.red, p.green, p.blue, p.g2], dtype=np.float64)
    elif p.preset == "as-shot" and image.wb_as_shot is not None:
        c = np.array(image.wb_as_shot, dtype=np.float64)
    elif image.wb_daylight is not None:
        c = np.array(image.wb_daylight, dtype=np.float64)
        if p.preset == "as-shot":
            notice = "the file has no as-shot white balance; using the camera's daylight (D65) coefficients"
    else:
        c = np.ones(4)
        notice = "the file has no white balance and no camera matrix; using neutral coefficients 1/1/1"
    if not np.isfinite(c).all() or c[1] <= 0:
        c = np.ones(4)
    if c[3] <= 0:
        c[3] = c[1]
    return c / c[1], notice


class Temperature(HalideModule):
    op = "temperature"
    name = "white balance"
    Params = TemperatureParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING
    default_enabled = True
    works_on = "raw"
    summary = "white balance coefficients"
    channels_in = channels_out = 1
    inputs = (HInput("coeff", "buf_f32", 2), HInput("ox", "i32"), HInput("oy", "i32"))

    # -- algorithm: one multiplier per CFA position
    def algorithm(self, mosaic, p, piece):
        n = p["coeff"].dim(0).extent()
        balanced = hl.Func("balanced")
        balanced[x, y] = mosaic[x, y] * p["coeff"][(x + p["ox"]) % n, (y + p["oy"]) % n]
        return balanced

    def commit(self, piece):
        c, notice = coefficients(piece.image, piece.params)
        piece.data["coeffs"] = c
        if notice:
            piece.notices.append(notice)

    def output_desc(self, piece, dsc_in):
        c = piece.data["coeffs"]
        return dsc_in.copy(processed_maximum=(float(c[0]), float(c[1]), float(c[2])))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        return {"coeff": pattern_lut(piece.dsc_in.cfa.pattern, piece.data["coeffs"]), "ox": roi_in.x, "oy": roi_in.y}
