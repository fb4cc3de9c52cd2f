"""demosaic: interpolate the two missing colours at every CFA site.

Methods for Bayer mosaics:
* "bilinear": normalised convolution of each colour's samples with a 3x3 tent;
* "mhc": Malvar-He-Cutler gradient-corrected bilinear (5x5 filters);
* the approximate half-size path (preview/thumbnail pipes at scale <= 0.5):
  each 2x2 CFA block becomes one RGB pixel.
Other CFA kinds (X-Trans, four-colour, non-CFA) are refused until their
methods exist.

Region of interest (darktable's rule): the input is requested at scale 1
covering the output region divided by its scale, padded by the filter
radius and aligned to the CFA period; demosaic then resamples to the output
scale, so a non-HQ export or darkroom pipe is downscaled right here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import VEC, c, resample, rows, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from ..errors import UnsupportedCFAError
from .base import Flags, Module, Params, Piece, ROI, cfa_at, param

METHODS = ("bilinear", "mhc")
PAD = 3  # filter radius 2, +1 for the resampler's partial pixels


@dataclass
class DemosaicParams(Params):
    """Demosaic.

    method: "bilinear" or "mhc" (Malvar-He-Cutler).
    """

    method: str = param("mhc", choices=METHODS)


# -- algorithm ---------------------------------------------------------------
def _bayer_inputs():
    raw = hl.ImageParam(hl.Float(32), 2, "raw")
    pat = hl.ImageParam(hl.Int(32), 2, "pattern")  # [i, j] -> 0 R, 1 G, 2 B (phase applied)
    return raw, pat


def _colour_at(pat, xx, yy):
    return pat[xx % 2, yy % 2]


def _build_bilinear():
    raw, pat = _bayer_inputs()
    m = hl.BoundaryConditions.mirror_interior(raw)
    here = hl.Func("here")
    here[x, y] = _colour_at(pat, x, y)
    # normalised convolution: sum(w * v * [colour == c]) / sum(w * [colour == c])
    w = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    num = 0
    den = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            mask = hl.select(here[x + dx, y + dy] == c, hl.f32(w[dy + 1][dx + 1]), hl.f32(0))
            num = num + mask * m[x + dx, y + dy]
            den = den + mask
    rgb = hl.Func("rgb")
    rgb[x, y, c] = num / den
    rows(rgb.reorder(c, x, y).bound(c, 0, 3).unroll(c))
    return rgb, [raw, pat]


def _build_mhc():
    raw, pat = _bayer_inputs()
    m = hl.BoundaryConditions.mirror_interior(raw)
    v = lambda dx, dy: m[x + dx, y + dy]  # noqa: E731
    # Malvar-He-Cutler filters (x8)
    g_at_rb = (4 * v(0, 0) + 2 * (v(-1, 0) + v(1, 0) + v(0, -1) + v(0, 1))
               - (v(-2, 0) + v(2, 0) + v(0, -2) + v(0, 2))) / 8
    along_row = (5 * v(0, 0) + 4 * (v(-1, 0) + v(1, 0)) - (v(-2, 0) + v(2, 0))
                 - (v(-1, -1) + v(1, -1) + v(-1, 1) + v(1, 1)) + 0.5 * (v(0, -2) + v(0, 2))) / 8
    along_col = (5 * v(0, 0) + 4 * (v(0, -1) + v(0, 1)) - (v(0, -2) + v(0, 2))
                 - (v(-1, -1) + v(1, -1) + v(-1, 1) + v(1, 1)) + 0.5 * (v(-2, 0) + v(2, 0))) / 8
    diagonal = (6 * v(0, 0) + 2 * (v(-1, -1) + v(1, -1) + v(-1, 1) + v(1, 1))
                - 1.5 * (v(-2, 0) + v(2, 0) + v(0, -2) + v(0, 2))) / 8
    filt = hl.Func("filters")  # the four estimates, computed once per pixel
    filt[x, y, c] = hl.select(c == 0, g_at_rb, c == 1, along_row, c == 2, along_col, diagonal)
    here = pat[x % 2, y % 2]
    # does this row carry colour k?  (Bayer: each row has G and one of R/B)
    row_has = lambda k: (pat[0, y % 2] == k) | (pat[1, y % 2] == k)  # noqa: E731
    def chroma(k):
        return hl.select(here == k, m[x, y],
                         here == 1, hl.select(row_has(k), filt[x, y, 1], filt[x, y, 2]),
                         filt[x, y, 3])
    rgb = hl.Func("rgb")
    rgb[x, y, c] = hl.select(c == 0, chroma(0),
                             c == 1, hl.select(here == 1, m[x, y], filt[x, y, 0]),
                             chroma(2))
    # -- schedule: rows in parallel strips, filters kept per strip in cache
    rgb.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    rgb.split(y, yo, yi, 32, hl.TailStrategy.GuardWithIf).parallel(yo).vectorize(x, VEC, hl.TailStrategy.GuardWithIf)
    filt.compute_at(rgb, yi).reorder(c, x, y).unroll(c).vectorize(x, VEC, hl.TailStrategy.GuardWithIf)
    return rgb, [raw, pat]


def _build_half():
    raw, pat = _bayer_inputs()
    # one output pixel per 2x2 block starting at an even buffer position
    half = hl.Func("half")
    block = lambda i, j: raw[2 * x + i, 2 * y + j]  # noqa: E731
    col = lambda i, j: pat[i, j]  # noqa: E731
    acc = {}
    for k in range(3):
        s, n = 0, 0
        for j in (0, 1):
            for i in (0, 1):
                s = s + hl.select(col(i, j) == k, block(i, j), hl.f32(0))
                n = n + hl.select(col(i, j) == k, hl.f32(1), hl.f32(0))
        acc[k] = s / hl.max(n, 1)
    half[x, y, c] = hl.select(c == 0, acc[0], c == 1, acc[1], acc[2])
    rows(half.reorder(c, x, y).bound(c, 0, 3).unroll(c))
    return half, [raw, pat]


yo, yi = hl.Var("yo"), hl.Var("yi")
_BUILDERS = {"bilinear": _build_bilinear, "mhc": _build_mhc, "half": _build_half}


def run_kernel(kind: str, mosaic: np.ndarray, pattern: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Demosaic a whole (H, W) mosaic whose (0, 0) has ``pattern`` (0 R, 1 G, 2 B)."""
    b = _BUILDERS[kind]
    k = get_kernel(f"demosaic_{kind}", b, source_tag=source_tag_of(b), device=device)
    h, w = mosaic.shape
    shape = (3, h // 2, w // 2) if kind == "half" else (3, h, w)
    out = np.empty(shape, np.float32)
    k(f32(mosaic), np.ascontiguousarray(pattern, dtype=np.int32), out)
    return out


class Demosaic(Module):
    op = "demosaic"
    name = "demosaic"
    Params = DemosaicParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING | Flags.ALLOW_FAST_PIPE
    default_enabled = True
    works_on = "raw"
    summary = "CFA mosaic to RGB"

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(channels=3, cfa=None, space="camera")

    def _check_cfa(self, piece):
        cfa = piece.image.cfa
        if cfa is None or cfa.kind != "bayer":
            kind = cfa.kind if cfa is not None else "unknown"
            raise UnsupportedCFAError(f"{kind} colour filter arrays are not supported yet "
                                      "(only Bayer mosaics can be demosaiced in this version)",
                                      path=piece.image.path)

    def _half_size(self, piece, roi_out: ROI) -> bool:
        return piece.pipe in ("preview", "preview2", "thumbnail") and roi_out.scale <= 0.5 or (
            piece.fast and roi_out.scale <= 0.5)

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        s = roi_out.scale
        w_in, h_in = piece.buf_in
        x0 = math.floor(roi_out.x / s) - PAD
        y0 = math.floor(roi_out.y / s) - PAD
        x1 = math.ceil((roi_out.x + roi_out.width) / s) + PAD
        y1 = math.ceil((roi_out.y + roi_out.height) / s) + PAD
        x0, y0 = max(0, x0 - x0 % 2), max(0, y0 - y0 % 2)  # keep the CFA phase even
        x1, y1 = min(w_in, x1), min(h_in, y1)
        return ROI(x0, y0, min(w_in - x0, max(8, x1 - x0)), min(h_in - y0, max(8, y1 - y0)), 1.0)

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        self._check_cfa(piece)
        pattern = cfa_at(piece.image.cfa, roi_in.x, roi_in.y).rgb_pattern()
        piece.data["path"] = "half" if self._half_size(piece, roi_out) else piece.params.method
        if self._half_size(piece, roi_out):
            h, w = inp.shape
            half = run_kernel("half", inp[: h - h % 2, : w - w % 2], pattern, piece.device)
            return resample(half, roi_in.x // 2, roi_in.y // 2, 0.5, roi_out.x, roi_out.y,
                            roi_out.width, roi_out.height, roi_out.scale, piece.device)
        full = run_kernel(piece.params.method, inp, pattern, piece.device)
        if roi_out.scale == 1.0:
            ox, oy = roi_out.x - roi_in.x, roi_out.y - roi_in.y
            return np.ascontiguousarray(full[:, oy: oy + roi_out.height, ox: ox + roi_out.width])
        return resample(full, roi_in.x, roi_in.y, 1.0, roi_out.x, roi_out.y,
                        roi_out.width, roi_out.height, roi_out.scale, piece.device)
