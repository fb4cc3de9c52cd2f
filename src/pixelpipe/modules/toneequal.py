"""toneequal: tone equalizer, exposure gains by luminance band with a smoothed mask.

Parameters (darktable's ``dt_iop_toneequalizer_params_t``): nine gains in EV,
-2..2, for the bands centred at -8, -7, ... 0 EV (``noise`` .. ``speculars``);
``blending`` (smoothing diameter, % of the largest image side, default 5);
``smoothing`` (sigma of the Gaussian radial basis of the curve, default sqrt 2);
``feathering`` (guided-filter edge refinement, default 1; the filter's
regulariser is ``1 / feathering``); ``quantization`` (EV step of the
posterised guide, 0 = off); ``contrast_boost`` and ``exposure_boost`` (mask
contrast and exposure compensation, EV); ``details`` (the mask filter: "none",
"averaged guided", "guided"; darktable's default EIGF filter is not
implemented, "guided" is the default here); ``method`` (luminance estimator);
``iterations`` (filter diffusion, 1..20).

Algorithm (darktable's documented design):
1. mask: ``m = max((exposure_boost * norm(RGB) - f) * contrast_boost + f, 2^-16)``
   with ``f = 2^-4`` (contrast fulcrum) for "guided", and ``f = 0``, no contrast
   change for "none" and "averaged guided";
2. surface blur (fast guided filter, He & Sun 2015, guide = image = m): the mask
   is averaged over 4x4 blocks aligned to the absolute pixel grid of the
   region's scale, so a region gives the same result as the whole image;
   on that grid, with window radius ``r = max(1, radius // 4)`` (``radius =
   (diameter - 1) / 2`` pixels, ``diameter = blending % * max(W, H) * scale``)
   and edge-truncated box means: ``a = cov(G, I) / (var(G) + 1/feathering)``,
   ``b = mean(I) - a mean(G)`` (G the guide, posterised in log2 steps of
   ``quantization`` EV when > 0), then the box means of a and b; iterations
   repeat this on ``max(a I + b, 2^-16)``; the last (a, b) are bilinearly
   upsampled and applied to the full-resolution mask: ``max(a m + b, 2^-16)``
   ("guided") or its geometric mean with m ("averaged guided");
3. gain: the nine EV gains are fitted by least squares with eight Gaussians
   centred at -8 + 8k/7 EV (sigma = smoothing) through ``2^gain`` at -8..0 EV;
   ``correction = clamp(sum_k w_k exp(-(e - c_k)^2 / (2 sigma^2)), 0.25, 4)`` with
   ``e = clamp(log2(mask), -8, 0)``; every channel is multiplied by it.
Region of interest: the output region padded by ``4 (2 iterations r + 3)``
pixels (the filter's reach on the 4x grid plus block alignment); none for
``details = "none"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from ._nbhd import box_mean, integral_image, sane, via_2x2
from .base import Flags, Module, Params, Piece, ROI, param

BANDS = ("noise", "ultra_deep_blacks", "deep_blacks", "blacks", "shadows", "midtones", "highlights",
         "whites", "speculars")
CENTERS_PARAMS = np.arange(-8.0, 0.5, 1.0)        # the nine user bands, EV
CENTERS_OPS = np.arange(8) * 8.0 / 7.0 - 8.0       # the eight Gaussians of the fit, EV
METHODS = ("mean", "lightness", "value", "norm_1", "norm_2", "norm_power", "geomean")
DETAILS = ("none", "averaged guided", "guided")
MIN_FLOAT = 2.0 ** -16
CONTRAST_FULCRUM = 2.0 ** -4
DS = 4  # block size of the guided filter's grid (darktable's downscaling factor)


@dataclass
class ToneequalParams(Params):
    """Tone equalizer.

    noise .. speculars: EV gains, -2..2, of the bands at -8, -7, ..., 0 EV.
    blending: smoothing diameter, % of the largest image side, 0.01..100.
    smoothing: curve smoothing (Gaussian sigma, EV), 0.5..4.
    feathering: edge refinement, 0.01..10000 (regulariser 1/feathering).
    quantization: mask posterisation step, EV, 0..2 (0 = off).
    contrast_boost, exposure_boost: mask compensation, EV, -16..16.
    details: mask filter, one of "none", "averaged guided", "guided".
    method: luminance estimator, one of mean, lightness, value, norm_1, norm_2, norm_power, geomean.
    iterations: filter diffusion, 1..20.
    """

    noise: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    ultra_deep_blacks: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    deep_blacks: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    blacks: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    shadows: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    midtones: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    highlights: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    whites: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    speculars: float = param(0.0, min=-2.0, max=2.0, unit="EV")
    blending: float = param(5.0, min=0.01, max=100.0, unit="%")
    smoothing: float = param(math.sqrt(2.0), min=0.5, max=4.0, unit="EV")
    feathering: float = param(1.0, min=0.01, max=10000.0)
    quantization: float = param(0.0, min=0.0, max=2.0, unit="EV")
    contrast_boost: float = param(0.0, min=-16.0, max=16.0, unit="EV")
    exposure_boost: float = param(0.0, min=-16.0, max=16.0, unit="EV")
    details: str = param("guided", choices=DETAILS)
    method: str = param("norm_2", choices=METHODS)
    iterations: int = param(1, min=1, max=20)


def gains_of(p: ToneequalParams) -> np.ndarray:
    return np.array([getattr(p, b) for b in BANDS], np.float64)


def rbf_factors(gains_ev: np.ndarray, sigma: float) -> np.ndarray:
    """Least-squares weights of the eight Gaussians through 2^gain at the nine bands."""
    A = np.exp(-((CENTERS_PARAMS[:, None] - CENTERS_OPS[None, :]) ** 2) / (2.0 * sigma * sigma))
    w, *_ = np.linalg.lstsq(A, 2.0 ** np.asarray(gains_ev, np.float64), rcond=None)
    return w


def correction_np(exposure_ev: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    e = np.clip(exposure_ev, -8.0, 0.0)[..., None]
    return np.clip((w * np.exp(-((e - CENTERS_OPS) ** 2) / (2 * sigma * sigma))).sum(-1), 0.25, 4.0)


def filter_radius(p: ToneequalParams, full_w: int, full_h: int, scale: float) -> tuple[int, int]:
    """(radius in px at ``scale``, window radius on the 4x grid)."""
    diameter = p.blending / 100.0 * max(full_w, full_h) * scale
    radius = max(0, int((diameter - 1.0) / 2.0))
    return radius, (1 if radius < 4 else radius // DS)


def mask_constants(p: ToneequalParams) -> tuple[float, float, float]:
    """(exposure boost, fulcrum, contrast boost) of the luminance mask, linear."""
    eb = 2.0 ** p.exposure_boost
    if p.details == "guided":
        return eb, CONTRAST_FULCRUM, 2.0 ** p.contrast_boost
    return eb, 0.0, 1.0


def norm_np(rgb: np.ndarray, method: str) -> np.ndarray:
    r, g, b = (np.asarray(ch, np.float64) for ch in rgb)
    if method == "mean":
        return (r + g + b) / 3
    if method == "lightness":
        return (np.maximum(np.maximum(r, g), b) + np.minimum(np.minimum(r, g), b)) / 2
    if method == "value":
        return np.maximum(np.maximum(r, g), b)
    if method == "norm_1":
        return np.abs(r) + np.abs(g) + np.abs(b)
    if method == "norm_2":
        return np.sqrt(r * r + g * g + b * b)
    if method == "norm_power":
        den = r * r + g * g + b * b
        return np.where(den > 0, (np.abs(r) ** 3 + np.abs(g) ** 3 + np.abs(b) ** 3) / np.where(den > 0, den, 1), 0)
    return np.cbrt(np.abs(r * g * b))


# --------------------------------------------------------------------------- Halide kernels

def _norm(v, xx, yy, method):
    r, g, b = v[xx, yy, 0], v[xx, yy, 1], v[xx, yy, 2]
    ar, ag, ab = hl.abs(r), hl.abs(g), hl.abs(b)
    den = r * r + g * g + b * b
    power = hl.select(den > 0, (ar * ar * ar + ag * ag * ag + ab * ab * ab) / hl.max(den, hl.f32(1e-30)), hl.f32(0))
    return hl.select(
        method == 0, (r + g + b) * hl.f32(1 / 3),
        method == 1, (hl.max(hl.max(r, g), b) + hl.min(hl.min(r, g), b)) * hl.f32(0.5),
        method == 2, hl.max(hl.max(r, g), b),
        method == 3, ar + ag + ab,
        method == 4, hl.sqrt(den),
        method == 5, power,
        hl.pow(ar * ag * ab, hl.f32(1 / 3)))


def _mask(v, xx, yy, P):
    n = _norm(v, xx, yy, P["method"])
    return hl.max((P["eb"] * n - P["fulcrum"]) * P["cb"] + P["fulcrum"], hl.f32(MIN_FLOAT))


def _mask_params():
    return {"method": hl.Param(hl.Int(32), "method"), "eb": hl.Param(hl.Float(32), "eb"),
            "fulcrum": hl.Param(hl.Float(32), "fulcrum"), "cb": hl.Param(hl.Float(32), "cb")}


def _build_down():
    """4x4 block means of the mask, blocks aligned to absolute coordinates."""
    rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
    P = _mask_params()
    ox, oy = hl.Param(hl.Int(32), "ox"), hl.Param(hl.Int(32), "oy")
    bx0, by0 = hl.Param(hl.Int(32), "bx0"), hl.Param(hl.Int(32), "by0")
    w, h = rgb.dim(0).extent(), rgb.dim(1).extent()
    v = hl.Func("v")
    v[x, y, c] = sane(rgb[hl.clamp(x, 0, w - 1), hl.clamp(y, 0, h - 1), c])
    m = hl.Func("mask")
    m[x, y] = _mask(v, x, y, P)
    r = hl.RDom([(0, DS), (0, DS)], "blk")
    ds = hl.Func("ds")
    ds[x, y] = hl.sum(m[(bx0 + x) * DS + r.x - ox, (by0 + y) * DS + r.y - oy]) * hl.f32(1.0 / (DS * DS))
    ds.parallel(y, 8, GUARD).vectorize(x, 8, GUARD)
    return ds, [rgb, P["method"], P["eb"], P["fulcrum"], P["cb"], ox, oy, bx0, by0]


def _build_gf():
    """One guided-filter pass on the block grid: (mean a, mean b, max(a I + b, 2^-16))."""
    img = hl.ImageParam(hl.Float(32), 2, "img")
    rad = hl.Param(hl.Int(32), "rad")
    eps = hl.Param(hl.Float(32), "eps")
    q = hl.Param(hl.Float(32), "quant")
    w, h = img.dim(0).extent(), img.dim(1).extent()
    k = hl.Var("k")
    I = hl.Func("I")
    I[x, y] = img[hl.clamp(x, 0, w - 1), hl.clamp(y, 0, h - 1)]
    lg = hl.log(hl.max(I[x, y], hl.f32(1e-30))) * hl.f32(1 / math.log(2))
    quant = hl.clamp(hl.exp(hl.floor(lg / hl.max(q, hl.f32(1e-6))) * q * hl.f32(math.log(2))), hl.f32(2.0 ** -14), hl.f32(4.0))
    G = hl.Func("guide")
    G[x, y] = hl.select(q > 0, quant, I[x, y])
    stats = hl.Func("stats")
    stats[x, y, k] = hl.select(k == 0, G[x, y], k == 1, I[x, y], k == 2, G[x, y] * I[x, y], G[x, y] * G[x, y])
    s1 = integral_image(stats, w, h, 4, "s1")
    mG, mI = box_mean(s1, w, h, rad, x, y, 0), box_mean(s1, w, h, rad, x, y, 1)
    mGI, mGG = box_mean(s1, w, h, rad, x, y, 2), box_mean(s1, w, h, rad, x, y, 3)
    a = (mGI - mG * mI) / hl.max(mGG - mG * mG + eps, hl.f32(1e-15))
    ab = hl.Func("ab")
    ab[x, y, k] = hl.select(k == 0, a, mI - a * mG)
    s2 = integral_image(ab, w, h, 2, "s2")
    ma, mb = box_mean(s2, w, h, rad, x, y, 0), box_mean(s2, w, h, rad, x, y, 1)
    out = hl.Func("gf")
    out[x, y, k] = hl.select(k == 0, ma, k == 1, mb, hl.max(ma * I[x, y] + mb, hl.f32(MIN_FLOAT)))
    for f in (stats, ab):
        f.compute_root().bound(k, 0, 4 if f is stats else 2).reorder(k, x, y).unroll(k) \
            .parallel(y, 8, GUARD).vectorize(x, 8, GUARD)
    out.bound(k, 0, 3).reorder(k, x, y).unroll(k).parallel(y, 8, GUARD).vectorize(x, 8, GUARD)
    return out, [img, rad, eps, q]


def _build_apply():
    rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
    ab = hl.ImageParam(hl.Float(32), 3, "ab")  # grid (gw, gh, 3): mean a, mean b, -
    P = _mask_params()
    mode = hl.Param(hl.Int(32), "mode")  # 0 none, 1 guided (linear), 2 averaged (geometric mean)
    wts = hl.ImageParam(hl.Float(32), 1, "weights")
    sigma = hl.Param(hl.Float(32), "sigma")
    ox, oy = hl.Param(hl.Int(32), "ox"), hl.Param(hl.Int(32), "oy")
    bx0, by0 = hl.Param(hl.Int(32), "bx0"), hl.Param(hl.Int(32), "by0")
    dx, dy = hl.Param(hl.Int(32), "dx"), hl.Param(hl.Int(32), "dy")
    w, h = rgb.dim(0).extent(), rgb.dim(1).extent()
    gw, gh = ab.dim(0).extent(), ab.dim(1).extent()
    v = hl.Func("v")
    v[x, y, c] = sane(rgb[hl.clamp(x, 0, w - 1), hl.clamp(y, 0, h - 1), c])
    X, Y = x + dx, y + dy
    m = _mask(v, X, Y, P)
    # bilinear a, b between block centres (absolute coordinates)
    tx = (hl.f32(X + ox) + 0.5) * hl.f32(1.0 / DS) - 0.5 - hl.f32(bx0)
    ty = (hl.f32(Y + oy) + 0.5) * hl.f32(1.0 / DS) - 0.5 - hl.f32(by0)
    ix, iy = hl.i32(hl.floor(tx)), hl.i32(hl.floor(ty))
    fx, fy = tx - hl.f32(ix), ty - hl.f32(iy)

    def grid(k):
        def at(i, j):
            return ab[hl.clamp(i, 0, gw - 1), hl.clamp(j, 0, gh - 1), k]
        return ((1 - fy) * ((1 - fx) * at(ix, iy) + fx * at(ix + 1, iy))
                + fy * ((1 - fx) * at(ix, iy + 1) + fx * at(ix + 1, iy + 1)))

    lum = hl.Func("lum")
    blended = hl.max(grid(0) * m + grid(1), hl.f32(MIN_FLOAT))
    lum[x, y] = hl.select(mode == 0, m, mode == 1, blended, hl.sqrt(m * blended))
    e = hl.clamp(hl.log(lum[x, y]) * hl.f32(1 / math.log(2)), hl.f32(-8), hl.f32(0))
    denom = hl.f32(-1) / (2 * sigma * sigma)
    acc = 0
    for j, cj in enumerate(CENTERS_OPS):
        acc = acc + wts[j] * hl.exp((e - hl.f32(cj)) * (e - hl.f32(cj)) * denom)
    gain = hl.Func("gain")
    gain[x, y] = hl.clamp(acc, hl.f32(0.25), hl.f32(4.0))
    out = hl.Func("equalized")
    out[x, y, c] = v[X, Y, c] * gain[x, y]
    xo_, yo_, xi_, yi_ = hl.Var("xo"), hl.Var("yo"), hl.Var("xi"), hl.Var("yi")
    out.bound(c, 0, 3).tile(x, y, xo_, yo_, xi_, yi_, 128, 16, GUARD).reorder(xi_, yi_, c, xo_, yo_) \
        .parallel(yo_).vectorize(xi_, VEC, GUARD)
    gain.compute_at(out, xo_).vectorize(x, VEC, GUARD)
    return out, [rgb, ab, P["method"], P["eb"], P["fulcrum"], P["cb"], mode, wts, sigma, ox, oy, bx0, by0, dx, dy]


def _kernel(name, builder, device):
    return get_kernel(f"toneequal_{name}", builder, device=device, source_tag=source_tag_of(builder))


class Toneequal(Module):
    op = "toneequal"
    name = "tone equalizer"
    Params = ToneequalParams
    flags = Flags.INCLUDE_IN_STYLES | Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING
    works_on = "rgb"
    summary = "exposure gains by luminance band (smoothed mask)"

    def commit(self, piece: Piece) -> None:
        p = piece.params
        piece.data["weights"] = rbf_factors(gains_of(p), p.smoothing)

    # -- region rule (next to the algorithm): the guided filter's reach on the 4x grid
    def padding(self, piece: Piece, scale: float) -> int:
        p = piece.params
        if p.details == "none":
            return 0
        _, r = filter_radius(p, *piece.buf_in, scale)
        return DS * (2 * p.iterations * r + 3)

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        return roi_out.padded(self.padding(piece, roi_out.scale))

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        return via_2x2(lambda i, ri, ro: self._run(piece, i, ri, ro), inp, roi_in, roi_out)

    def _run(self, piece, inp, roi_in, roi_out):
        p = piece.params
        dev = piece.device
        eb, fulcrum, cb = mask_constants(p)
        method = METHODS.index(p.method)
        mode = DETAILS.index(p.details)
        mode = {0: 0, 1: 2, 2: 1}[mode]
        rgb = f32(inp)
        h, w = rgb.shape[-2:]
        bx0, by0 = roi_in.x // DS, roi_in.y // DS
        if mode == 0:
            ab = np.zeros((3, 2, 2), np.float32)
        else:
            gw = max(2, (roi_in.x + w - 1) // DS - bx0 + 1)
            gh = max(2, (roi_in.y + h - 1) // DS - by0 + 1)
            ds = np.empty((gh, gw), np.float32)
            _kernel("down", _build_down, dev)(rgb, method, eb, fulcrum, cb, roi_in.x, roi_in.y, bx0, by0, ds)
            _, r = filter_radius(p, *piece.buf_in, roi_out.scale)
            gf = _kernel("gf", _build_gf, dev)
            img = ds
            for _ in range(p.iterations):
                ab = np.empty((3, gh, gw), np.float32)
                gf(img, r, 1.0 / p.feathering, p.quantization, ab)
                img = np.ascontiguousarray(ab[2])
        out = np.empty((3, roi_out.height, roi_out.width), np.float32)
        sx = roi_out.x - roi_in.x
        sy = roi_out.y - roi_in.y
        _kernel("apply", _build_apply, dev)(rgb, ab, method, eb, fulcrum, cb, mode, f32(piece.data["weights"]),
                                            p.smoothing, roi_in.x, roi_in.y, bx0, by0, sx, sy, out)
        return out
