"""sharpen: unsharp mask on lightness, as darktable's sharpen.

Parameters (darktable's): ``radius`` (px at full resolution, 0..99, default 2),
``amount`` (0..2, default 0.5), ``threshold`` (L* units, 0..100, default 0.5).

Algorithm (darktable's formulas; our colour handling):
* the kernel radius is ``rad = min(12, ceil(2.5 * radius * scale))`` pixels of the
  buffer at the region's scale, the Gaussian's sigma is ``radius * scale``, and its
  ``2 rad + 1`` taps are normalised to sum 1;
* ``L`` is the CIE lightness L* of the pixel's Rec.2020 luminance Y (white Y = 1);
  ``blur = G * L`` (separable, edges repeated at the image border);
* ``d = L - blur``; ``detail = sign(d) * max(|d| - threshold, 0)``;
  ``L' = L + amount * detail``;
* darktable edits L in Lab and keeps a*, b*; here the pixel's RGB is scaled by
  ``Y(L') / Y`` (near-black pixels get ``Y(L') - Y`` added), which keeps its
  chromaticity. darktable leaves a ``rad``-pixel frame unsharpened; here the
  image border is repeated instead, so every pixel is sharpened.
Region of interest: the output region padded by ``rad`` (the kernel radius).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import VEC, GUARD, c, clamped, x, y
from ._nbhd import lightness, luminance, luminance_of_lightness, sane, tile_schedule, via_2x2, with_luminance
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

MAXR = 12  # darktable's largest kernel radius (pixels of the buffer)


@dataclass
class SharpenParams(Params):
    """Unsharp mask.

    radius: px at full resolution, 0..99 (the Gaussian's sigma; the kernel spans 2.5 sigma).
    amount: strength, 0..2.
    threshold: L* difference below which nothing is sharpened, 0..100.
    """

    radius: float = param(2.0, min=0.0, max=99.0, unit="px")
    amount: float = param(0.5, min=0.0, max=2.0)
    threshold: float = param(0.5, min=0.0, max=100.0, unit="L*")


def kernel_of(radius: float, scale: float) -> tuple[int, np.ndarray]:
    """(rad, normalised taps) at a region scale (darktable's rule)."""
    reff = 2.5 * radius * scale
    rad = min(MAXR, int(math.ceil(reff - 1e-9))) if reff > 0 else 0
    if rad == 0:
        return 0, np.ones(1, np.float32)
    sigma2 = (radius * scale) ** 2
    l = np.arange(-rad, rad + 1, dtype=np.float64)
    k = np.exp(-l * l / (2.0 * sigma2))
    return rad, (k / k.sum()).astype(np.float32)


class Sharpen(HalideModule):
    op = "sharpen"
    name = "sharpen"
    Params = SharpenParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    works_on = "rgb"
    pointwise = False
    summary = "unsharp mask on lightness"
    inputs = (HInput("kern", "buf_f32", 1), HInput("rad", "i32"), HInput("amount"), HInput("threshold"))

    # -- region rule (next to the algorithm): the kernel radius
    def _rad(self, piece, scale: float) -> int:
        return kernel_of(piece.params.radius, scale)[0]

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        return roi_out.padded(self._rad(piece, roi_out.scale))

    def algorithm(self, inp, p, piece):
        src = clamped(inp, p)
        v = hl.Func("sane_in")
        v[x, y, c] = sane(src[x, y, c])
        L = hl.Func("lightness")
        L[x, y] = lightness(luminance(v, x, y))
        kern, rad = p["kern"], p["rad"]
        r = hl.RDom([(0, kern.dim(0).extent())], "r")
        blur_y = hl.Func("blur_y")
        blur_y[x, y] = hl.sum(kern[r] * L[x, y + r - rad])
        blur = hl.Func("blur")
        blur[x, y] = hl.sum(kern[r] * blur_y[x + r - rad, y])
        X, Y = x + p["dx"], y + p["dy"]
        d = L[X, Y] - blur[X, Y]
        thr = p["threshold"]
        detail = hl.select(d > thr, d - thr, d < -thr, d + thr, hl.f32(0))  # sign(d) max(|d| - thr, 0)
        L2 = L[X, Y] + p["amount"] * detail
        lum = luminance(v, X, Y)
        out = hl.Func("sharpened")
        out[x, y, c] = with_luminance(v[X, Y, c], lum, luminance_of_lightness(L2))
        self._funcs = (L, blur_y, blur)
        return out

    def schedule(self, out, piece):
        L, blur_y, blur = self._funcs
        xo_, _ = tile_schedule(out, 128, 32)
        out.bound(c, 0, 3)
        for f in (L, blur_y, blur):
            f.compute_at(out, xo_).vectorize(x, VEC, GUARD)

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        return via_2x2(lambda i, ri, ro: super(Sharpen, self).process(piece, i, ri, ro), inp, roi_in, roi_out)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        rad, k = kernel_of(piece.params.radius, roi_out.scale)
        return {"kern": k, "rad": rad, "amount": piece.params.amount, "threshold": piece.params.threshold}
