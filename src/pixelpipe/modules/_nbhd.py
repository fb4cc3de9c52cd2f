"""Shared pieces of the neighbourhood and geometry modules (sharpen, bilat,
toneequal, denoiseprofile, lens, ashift): input sanitising, the L* lightness
of the working space's luminance, edge-truncated box means, resampling
kernels and point-set helpers. Not a module (the registry skips ``_`` files).
"""
from __future__ import annotations

import math

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y

#: luminance weights of linear Rec.2020 (the pipe's working space after colorin)
Y_REC2020 = (0.2627002, 0.6779981, 0.0593017)
#: the largest magnitude a pixel value may have inside these modules
BIG = 1.0e6

EPS_L = 6.0 / 29.0  # CIE L* constants: f(t) switches to linear below EPS_L**3


# --------------------------------------------------------------------------- sanitising

def sane(e):
    """NaN -> 0, +-Inf and absurd magnitudes -> +-1e6 (so nothing non-finite travels on)."""
    return hl.select(hl.is_nan(e), hl.f32(0), hl.clamp(e, hl.f32(-BIG), hl.f32(BIG)))


def sane_np(a: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(a, np.float64), nan=0.0, posinf=BIG, neginf=-BIG), -BIG, BIG)


# --------------------------------------------------------------------------- lightness

def lightness(Y):
    """CIE L* (0..100 for Y in 0..1, white Y = 1) of a Halide luminance Expr."""
    t = hl.max(Y, hl.f32(0))
    f = hl.select(Y > hl.f32(EPS_L ** 3), hl.pow(t, hl.f32(1.0 / 3.0)),
                  Y * hl.f32(1.0 / (3 * EPS_L ** 2)) + hl.f32(4.0 / 29.0))
    return hl.f32(116.0) * f - hl.f32(16.0)


def luminance_of_lightness(L):
    fy = (L + hl.f32(16.0)) * hl.f32(1.0 / 116.0)
    return hl.select(fy > hl.f32(EPS_L), fy * fy * fy, hl.f32(3 * EPS_L ** 2) * (fy - hl.f32(4.0 / 29.0)))


def lightness_np(Y: np.ndarray) -> np.ndarray:
    Y = np.asarray(Y, np.float64)
    f = np.where(Y > EPS_L ** 3, np.cbrt(np.maximum(Y, 0)), Y / (3 * EPS_L ** 2) + 4.0 / 29.0)
    return 116.0 * f - 16.0


def luminance_of_lightness_np(L: np.ndarray) -> np.ndarray:
    fy = (np.asarray(L, np.float64) + 16.0) / 116.0
    return np.where(fy > EPS_L, fy ** 3, 3 * EPS_L ** 2 * (fy - 4.0 / 29.0))


def luminance(rgb, xx, yy):
    """Rec.2020 luminance of a planar RGB Func at (xx, yy)."""
    w = [hl.f32(v) for v in Y_REC2020]
    return w[0] * rgb[xx, yy, 0] + w[1] * rgb[xx, yy, 1] + w[2] * rgb[xx, yy, 2]


def with_luminance(v, Y, Y2):
    """Change a pixel's luminance from Y to Y2 keeping its chromaticity (RGB ratios).

    Near-black pixels (|Y| < 1e-6) get the luminance difference added to every
    channel instead, which stays finite.
    """
    return hl.select(hl.abs(Y) > hl.f32(1e-6), v * (Y2 / Y), v + (Y2 - Y))


def with_luminance_np(rgb: np.ndarray, Y: np.ndarray, Y2: np.ndarray) -> np.ndarray:
    safe = np.where(np.abs(Y) > 1e-6, Y, 1.0)
    return np.where(np.abs(Y) > 1e-6, rgb * (Y2 / safe), rgb + (Y2 - Y))


def via_2x2(run, inp: np.ndarray, roi_in, roi_out) -> np.ndarray:
    """Call ``run(inp, roi_in, roi_out)`` so that no kernel sees a 1x1 planar buffer.

    The engine's ahead-of-time Python glue refuses (3, 1, 1) arrays; a 1x1 input is
    repeated to 2x2 (the same as repeating its edges) and a 1x1 output is computed
    as 2x2 and cut, which leaves the result unchanged.
    """
    one_in = inp.shape[-2:] == (1, 1)
    one_out = roi_out.width == 1 and roi_out.height == 1
    if not (one_in or one_out):
        return run(inp, roi_in, roi_out)
    if one_in:
        inp = np.ascontiguousarray(np.repeat(np.repeat(inp, 2, axis=-1), 2, axis=-2))
        roi_in = roi_in.with_(width=2, height=2)
    ro = roi_out.with_(width=max(2, roi_out.width), height=max(2, roi_out.height))
    out = run(inp, roi_in, ro)
    return np.ascontiguousarray(out[..., : roi_out.height, : roi_out.width])


# --------------------------------------------------------------------------- box means (guided filter)

def integral_image(v, w, h, channels: int, name: str) -> hl.Func:
    """Summed-area table (float64) of ``v[x, y, k]`` over [0, w) x [0, h), k < channels.

    ``S[x, y, k]`` is the sum over [0, x] x [0, y]; it is 0 at x = -1 or y = -1.
    float64 keeps box differences exact enough that a region and the whole
    image give the same means to float32 precision.
    """
    k = hl.Var("k")
    rows_ = hl.Func(name + "_rows")
    rx = hl.RDom([(0, w)], name + "_rx")
    rows_[x, y, k] = hl.f64(0)
    rows_[rx, y, k] = rows_[rx - 1, y, k] + hl.f64(v[rx, y, k])
    sat = hl.Func(name + "_sat")
    ry = hl.RDom([(0, h)], name + "_ry")
    sat[x, y, k] = hl.f64(0)
    sat[x, ry, k] = sat[x, ry - 1, k] + rows_[x, ry, k]
    for f in (rows_, sat):
        f.bound(k, 0, channels).reorder_storage(k, x, y).compute_root()
    rows_.update(0).reorder(k, rx, y).unroll(k).parallel(y, 16, GUARD)
    xo_, xi_ = hl.Var(name + "_xo"), hl.Var(name + "_xi")
    sat.update(0).split(x, xo_, xi_, 64, GUARD).reorder(k, xi_, ry, xo_).unroll(k).parallel(xo_)
    return sat


def box_mean(sat: hl.Func, w, h, r, xx, yy, k):
    """Mean over the window [xx-r, xx+r] x [yy-r, yy+r] cut to [0, w) x [0, h)."""
    x0 = hl.clamp(xx - r, 0, w) - 1
    x1 = hl.clamp(xx + r, -1, w - 1)
    y0 = hl.clamp(yy - r, 0, h) - 1
    y1 = hl.clamp(yy + r, -1, h - 1)
    n = hl.f64(hl.max((x1 - x0) * (y1 - y0), 1))
    s = sat[x1, y1, k] - sat[x0, y1, k] - sat[x1, y0, k] + sat[x0, y0, k]
    return hl.f32(s / n)


def box_mean_np(a: np.ndarray, r: int) -> np.ndarray:
    """NumPy reference: window mean cut to the array (float64)."""
    a = np.asarray(a, np.float64)
    h, w = a.shape
    s = np.zeros((h + 1, w + 1))
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    yy, xx = np.mgrid[0:h, 0:w]
    x0, x1 = np.clip(xx - r, 0, w), np.clip(xx + r + 1, 0, w)
    y0, y1 = np.clip(yy - r, 0, h), np.clip(yy + r + 1, 0, h)
    tot = s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]
    return tot / np.maximum((x1 - x0) * (y1 - y0), 1)


# --------------------------------------------------------------------------- resampling

def cubic_weights(t):
    """Catmull-Rom weights for offsets -1, 0, 1, 2 at fraction t in [0, 1)."""
    t2 = t * t
    t3 = t2 * t
    return (
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    )


def sample_cubic(src: hl.Func, fx, fy, ch, w, h):
    """Catmull-Rom sample of a planar Func at continuous buffer coordinates.

    ``fx, fy`` are pixel-centre coordinates (pixel i at i); indices are clamped
    to [0, w) x [0, h) (edges repeated).
    """
    ix = hl.i32(hl.floor(fx))
    iy = hl.i32(hl.floor(fy))
    tx = fx - hl.floor(fx)
    ty = fy - hl.floor(fy)
    wx = cubic_weights(tx)
    wy = cubic_weights(ty)
    acc = 0
    for j in range(4):
        row = 0
        yy = hl.clamp(iy + (j - 1), 0, h - 1)
        for i in range(4):
            xx = hl.clamp(ix + (i - 1), 0, w - 1)
            row = row + wx[i] * src[xx, yy, ch]
        acc = acc + wy[j] * row
    return acc


def cubic_np(img: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """NumPy Catmull-Rom sampling of planar (C, H, W) at pixel-centre coordinates."""
    C, H, W = img.shape
    ix, iy = np.floor(fx).astype(int), np.floor(fy).astype(int)
    tx, ty = fx - ix, fy - iy

    def wts(t):
        t2, t3 = t * t, t * t * t
        return [-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2]

    wx, wy = wts(tx), wts(ty)
    out = np.zeros((C,) + fx.shape)
    for j in range(4):
        yy = np.clip(iy + j - 1, 0, H - 1)
        for i in range(4):
            xx = np.clip(ix + i - 1, 0, W - 1)
            out += (wx[i] * wy[j])[None] * img[:, yy, xx]
    return out


# --------------------------------------------------------------------------- regions

def border_points(x0: float, y0: float, w: float, h: float, step: float = 4.0) -> np.ndarray:
    """Points along the border of a rectangle (continuous coordinates), corners included."""
    nx = max(2, int(math.ceil(w / step)) + 1)
    ny = max(2, int(math.ceil(h / step)) + 1)
    xs = np.linspace(x0, x0 + w, nx)
    ys = np.linspace(y0, y0 + h, ny)
    top = np.stack([xs, np.full_like(xs, y0)], 1)
    bot = np.stack([xs, np.full_like(xs, y0 + h)], 1)
    lef = np.stack([np.full_like(ys, x0), ys], 1)
    rig = np.stack([np.full_like(ys, x0 + w), ys], 1)
    return np.concatenate([top, bot, lef, rig])


def bbox_roi(pts_full: np.ndarray, scale: float, pad: int, roi_cls, bounds: tuple[int, int] | None = None):
    """The region at ``scale`` covering full-resolution points (pixel-edge coordinates), padded.

    With ``bounds`` (the input buffer's size at ``scale``) the region is kept
    overlapping the buffer by at least one pixel, so it is never empty once clamped.
    """
    p = np.asarray(pts_full, np.float64)
    p = p[np.isfinite(p).all(axis=1)]
    if p.size == 0:
        return roi_cls(0, 0, 1, 1, scale)
    x0 = int(math.floor(p[:, 0].min() * scale)) - pad
    y0 = int(math.floor(p[:, 1].min() * scale)) - pad
    x1 = int(math.ceil(p[:, 0].max() * scale)) + pad
    y1 = int(math.ceil(p[:, 1].max() * scale)) + pad
    big = 1 << 28  # keep absurd points from making absurd regions (the pipe clamps anyway)
    x0, y0, x1, y1 = (max(-big, min(big, v)) for v in (x0, y0, x1, y1))
    if bounds is not None:
        bw, bh = bounds
        x0, y0 = min(x0, bw - 1), min(y0, bh - 1)
        x1, y1 = max(x1, 1), max(y1, 1)
    return roi_cls(x0, y0, max(1, x1 - x0), max(1, y1 - y0), scale)


def tile_schedule(out: hl.Func, tx: int = 64, ty: int = 32) -> tuple[hl.Var, hl.Var]:
    """Tiles of an (x, y[, c]) output in parallel rows of tiles, x vectorised, channels
    inside the tile; returns (tile-column var, tile-row var) for compute_at."""
    xo_, yo_, xi_, yi_ = hl.Var("txo"), hl.Var("tyo"), hl.Var("txi"), hl.Var("tyi")
    out.tile(x, y, xo_, yo_, xi_, yi_, tx, ty, GUARD)
    if out.dimensions() == 3:
        out.reorder(xi_, yi_, c, xo_, yo_)
    out.parallel(yo_).vectorize(xi_, VEC, GUARD)
    return xo_, yo_
