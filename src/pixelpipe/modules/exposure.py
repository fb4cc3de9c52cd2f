"""exposure: scale linear light by 2^EV, with a black-level offset.

Algorithm (darktable's): ``white = 2^-EV``; ``out = (in - black) / (white - black)``.
With ``compensate_exposure_bias`` the camera's exposure-bias EXIF value is
subtracted from EV. Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl

from ..engine.halide_ops import c, x, y
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param


@dataclass
class ExposureParams(Params):
    """Exposure.

    exposure: EV, -18..18.
    black: black level correction, relative to white, -1..1.
    compensate_exposure_bias: subtract the camera's exposure bias (EXIF) from EV.
    """

    exposure: float = param(0.0, min=-18.0, max=18.0, unit="EV")
    black: float = param(0.0, min=-1.0, max=1.0)
    compensate_exposure_bias: bool = param(False)


def effective_ev(image, p: ExposureParams) -> float:
    ev = p.exposure
    if p.compensate_exposure_bias:
        bias = image.exif.get("exposure_bias") or 0.0
        try:
            ev -= float(bias)
        except (TypeError, ValueError):
            pass
    return ev


class Exposure(HalideModule):
    op = "exposure"
    name = "exposure"
    Params = ExposureParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    works_on = "rgb"
    summary = "exposure in EV and black level"
    inputs = (HInput("black"), HInput("scale"))

    # -- algorithm
    def algorithm(self, rgb, p, piece):
        exposed = hl.Func("exposed")
        exposed[x, y, c] = (rgb[x, y, c] - p["black"]) * p["scale"]
        return exposed

    def commit(self, piece):
        white = 2.0 ** (-effective_ev(piece.image, piece.params))
        denom = white - piece.params.black
        piece.data["scale"] = 1.0 / denom if abs(denom) > 1e-9 else 1e9
        piece.data["black"] = piece.params.black

    def output_desc(self, piece, dsc_in):
        s, b = piece.data["scale"], piece.data["black"]
        return dsc_in.copy(processed_maximum=tuple((m - b) * s for m in dsc_in.processed_maximum))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        return {"black": piece.data["black"], "scale": piece.data["scale"]}
