"""denoiseprofile: profiled wavelet denoising with a variance-stabilising transform.

darktable's "denoise (profiled)" works after demosaic on white-balanced camera
RGB with a Poisson-Gaussian noise model ``var(x) = a x + b`` per colour. Here:

Noise model, per colour in the raw's normalised units (0..1 after black and
white levels): the DNG ``NoiseProfile`` tag where the file has one
(``SourceImage.noise_profile``), else measured from the raw mosaic itself
(``_noise.estimate_poisson_gaussian``: Laplacian residuals of 8x8 blocks,
low percentile per level, weighted line fit). White balance multiplies colour c
by ``k_c``, so the module's input has ``var(y) = alpha y + beta`` with
``alpha = k_c a_c`` and ``beta = k_c^2 b_c`` (darktable's white-balance-adaptive
profile does the same).

Algorithm (method "wavelets"):
1. generalised Anscombe transform per channel (``p`` = ``shadows``, 1 = Anscombe):
   ``z = 2 (max(y + beta/alpha, 0))^(1 - p/2) / ((2 - p) sqrt(alpha))`` (the
   integral of 1/sqrt(alpha (y + beta/alpha)^p); unit noise for p = 1);
2. an orthonormal colour transform Y = (R+G+B)/sqrt 3, U = (R-B)/sqrt 2,
   V = (R-2G+B)/sqrt 6 (noise stays unit, luma and chroma separate, as darktable's
   Y0U0V0 mode);
3. an undecimated, edge-avoiding a-trous B3-spline decomposition ([1 4 6 4 1]/16
   dilated by 2^j, separable: along x, then along y) into ``n`` detail bands,
   ``n = clamp(round(5 + log2 scale), 1, 5)``; each tap's weight is multiplied by
   ``exp(-D / (EDGE_K sigma_l^2))``, D the squared YUV distance to the centre
   pixel and sigma_l the noise of that smoothed level, then renormalised (as
   darktable's edge-aware wavelets, so edges stay out of the detail bands and
   colours do not bleed); each
   detail coefficient is shrunk with the non-negative garrote
   ``d -> d - t^2/d`` for ``|d| > t``, else 0, with
   ``t = 2.5 * strength * sigma_j,c`` (``chroma`` multiplies the U, V strength),
   where ``sigma_j,c`` is the noise of that band for unit raw noise after the
   pipe's own demosaic at the region's scale (``_noise.band_sigmas``, simulated
   once per scale and pipe kind);
4. the inverse colour transform, then the inverse of (1) applied to
   ``t = (z + sqrt(z^2 + 4 c)) / 2`` with ``c = bias_correction * p / (2 (2 - p))``,
   which removes the first-order bias of the transform (E[T(y)] ~ T(E y) - c / T).
Flags EXPENSIVE: the cut-down (fast) pipe takes ``process_fast``, which passes
the image through untouched (and asks for no padding).
Region of interest: the output region padded by ``2 (2^n - 1)`` pixels (the
reach of n a-trous levels). Numba is not used: everything is Halide.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from . import _noise
from ._nbhd import sane, via_2x2
from .base import Flags, Module, Params, Piece, ROI, param, window

THRESHOLD_K = 2.5
#: edge-avoiding weights: a colour distance of EDGE_K times the level's noise variance gives exp(-1)
EDGE_K = 48.0
MAX_SCALES = 5
_ESTIMATES: dict = {}


@dataclass
class DenoiseprofileParams(Params):
    """Profiled denoise.

    mode: "wavelets" (a-trous with a variance-stabilising transform).
    strength: threshold multiplier, 0..10 (0 = no change).
    chroma: extra multiplier for the colour (U, V) bands, 0..10.
    shadows: exponent p of the stabilising transform ("preserve shadows"), 0.3..1.8; 1 = Anscombe.
    bias_correction: 0..2, weight of the transform's first-order bias correction.
    profile: "auto" (the file's NoiseProfile, else measured), "estimate" (always measure the raw).
    """

    mode: str = param("wavelets", choices=("wavelets",))
    strength: float = param(1.0, min=0.0, max=10.0)
    chroma: float = param(1.5, min=0.0, max=10.0)
    shadows: float = param(1.0, min=0.3, max=1.8)
    bias_correction: float = param(1.0, min=0.0, max=2.0)
    profile: str = param("auto", choices=("auto", "estimate"))


def nscales_for(scale: float) -> int:
    return int(min(MAX_SCALES, max(1, round(MAX_SCALES + math.log2(max(scale, 1e-6))))))


def padding_for(scale: float) -> int:
    return 2 * ((1 << nscales_for(scale)) - 1)


# --------------------------------------------------------------------------- noise model

def _rgb_of(image) -> list[int]:
    """Per CFA colour index (image.cfa.colors): 0 R, 1 G, 2 B."""
    return ["RGB".index(ch) if ch in "RGB" else 1 for ch in image.cfa.colors]


def _estimate_raw(image) -> list[tuple[float, float]] | None:
    key = (id(image), image.data.__array_interface__["data"][0], image.data.shape, tuple(image.black), image.white)
    if key in _ESTIMATES:
        return _ESTIMATES[key]
    data = np.asarray(image.data)
    per: dict[int, list] = {0: [], 1: [], 2: []}
    if image.is_raw and data.ndim == 2 and image.cfa is not None and image.cfa.pattern.shape == (2, 2):
        rgbi = _rgb_of(image)
        for i in range(2):
            for j in range(2):
                ci = int(image.cfa.pattern[i, j])
                blk = float(image.black[ci]) if ci < len(image.black) else 0.0
                plane = (data[i::2, j::2].astype(np.float64) - blk) / max(float(image.white) - blk, 1e-9)
                est = _noise.estimate_poisson_gaussian(plane)
                if est is not None:
                    per[rgbi[ci]].append(est)
    elif data.ndim == 3 and data.shape[0] >= 3:
        for ch in range(3):
            est = _noise.estimate_poisson_gaussian(data[ch])
            if est is not None:
                per[ch].append(est)
    if not all(per[k] for k in range(3)):
        res = None
    else:
        res = [tuple(np.mean(per[k], axis=0)) for k in range(3)]
    if len(_ESTIMATES) > 16:
        _ESTIMATES.clear()
    _ESTIMATES[key] = res
    return res


def _from_file(image) -> list[tuple[float, float]] | None:
    npf = image.noise_profile
    if not npf:
        return None
    pairs = [(float(a), float(b)) for a, b in npf]
    if any(not (math.isfinite(a) and math.isfinite(b)) or a <= 0 for a, b in pairs):
        return None
    if len(pairs) == 1:
        return pairs * 3
    if len(pairs) >= 3:
        return pairs[:3]
    return None


def noise_model(image, profile: str = "auto") -> tuple[list[tuple[float, float]], str]:
    """Per colour (R, G, B) ``(a, b)`` in normalised raw units, and where it came from."""
    if profile == "auto":
        pf = _from_file(image)
        if pf is not None:
            return pf, "file"
    est = _estimate_raw(image)
    if est is not None:
        return est, "estimated"
    return [(1e-4, 1e-6)] * 3, "default"


def white_balance(image) -> np.ndarray:
    if not image.is_raw:
        return np.ones(3)
    wb = image.wb_as_shot or image.wb_daylight or (1.0, 1.0, 1.0, 1.0)
    return np.array([wb[0], wb[1], wb[2]], np.float64)


# --------------------------------------------------------------------------- the kernel

def _build(nscales: int):
    def build():
        rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
        prm = hl.ImageParam(hl.Float(32), 1, "model")      # alpha R G B, beta R G B
        thr = hl.ImageParam(hl.Float(32), 2, "thresholds")  # [c, level]
        inv = hl.ImageParam(hl.Float(32), 1, "edge")  # per level: 1 / (EDGE_K sigma_level^2)
        pexp = hl.Param(hl.Float(32), "p")
        cbias = hl.Param(hl.Float(32), "cbias")
        dx, dy = hl.Param(hl.Int(32), "dx"), hl.Param(hl.Int(32), "dy")
        w, h = rgb.dim(0).extent(), rgb.dim(1).extent()
        v = hl.Func("v")
        v[x, y, c] = sane(rgb[hl.clamp(x, 0, w - 1), hl.clamp(y, 0, h - 1), c])
        alpha = hl.max(prm[c], hl.f32(1e-12))
        off = prm[c + 3] / alpha
        q = 1 - pexp * 0.5
        k1 = 2 / ((2 - pexp) * hl.sqrt(alpha))
        vst = hl.Func("vst")
        vst[x, y, c] = k1 * hl.pow(hl.max(v[x, y, c] + off, hl.f32(0)), q)
        M = _noise.YUV
        yuv = hl.Func("yuv")
        yuv[x, y, c] = hl.select(
            c == 0, hl.f32(M[0, 0]) * vst[x, y, 0] + hl.f32(M[0, 1]) * vst[x, y, 1] + hl.f32(M[0, 2]) * vst[x, y, 2],
            c == 1, hl.f32(M[1, 0]) * vst[x, y, 0] + hl.f32(M[1, 2]) * vst[x, y, 2],
            hl.f32(M[2, 0]) * vst[x, y, 0] + hl.f32(M[2, 1]) * vst[x, y, 1] + hl.f32(M[2, 2]) * vst[x, y, 2])
        levels = [yuv]
        blurs = []
        kk = hl.Var("kk")

        def eaw(src, d, axis, j, name):
            """Edge-avoiding B3 smoothing of ``src`` along one axis at dilation d."""
            def at(f, o, ch):
                return f[x + o, y, ch] if axis == 0 else f[x, y + o, ch]
            wts = hl.Func(name + "_w")
            ws = []
            for i, o in enumerate((-2, -1, 0, 1, 2)):
                dist = sum((at(src, o * d, ch) - src[x, y, ch]) ** 2 for ch in range(3))
                ws.append(hl.f32(_noise.B3[i]) * hl.exp(-inv[j] * dist))
            wts[x, y, kk] = hl.select(kk == 0, ws[0], kk == 1, ws[1], kk == 2, ws[2], kk == 3, ws[3], ws[4])
            out_ = hl.Func(name)
            num = sum(wts[x, y, i] * at(src, o * d, c) for i, o in enumerate((-2, -1, 0, 1, 2)))
            den = sum(wts[x, y, i] for i in range(5))
            out_[x, y, c] = num / den
            blurs.append(wts)
            return out_

        for j in range(nscales):
            d = 1 << j
            hx = eaw(levels[-1], d, 0, j, f"hx{j}")
            nxt = eaw(hx, d, 1, j, f"c{j + 1}")
            blurs.append(hx)
            levels.append(nxt)
        acc = levels[-1][x, y, c]
        for j in range(nscales):
            dd = levels[j][x, y, c] - levels[j + 1][x, y, c]
            t = thr[c, j]
            acc = acc + hl.select(hl.abs(dd) > t, dd - t * t / hl.select(dd == 0, hl.f32(1), dd), hl.f32(0))
        den = hl.Func("denoised_yuv")
        den[x, y, c] = acc
        back = hl.Func("back")
        back[x, y, c] = (hl.f32(M[0, 0]) * den[x, y, 0] + hl.select(c == 0, hl.f32(M[1, 0]), c == 1, hl.f32(0),
                                                                   hl.f32(M[1, 2])) * den[x, y, 1]
                         + hl.select(c == 1, hl.f32(M[2, 1]), hl.f32(M[2, 0])) * den[x, y, 2])
        X, Y = x + dx, y + dy
        z = back[X, Y, c]
        tt = (z + hl.sqrt(z * z + 4 * cbias)) * hl.f32(0.5)
        out = hl.Func("denoised")
        out[x, y, c] = hl.pow(hl.max(tt, hl.f32(0)) / k1, 1 / q) - off
        # schedule: tiles whose every level stays in cache; x vectorised
        xo_, yo_, xi_, yi_ = hl.Var("xo"), hl.Var("yo"), hl.Var("xi"), hl.Var("yi")
        out.bound(c, 0, 3).tile(x, y, xo_, yo_, xi_, yi_, 192, 96, GUARD).reorder(xi_, yi_, c, xo_, yo_) \
            .parallel(yo_).vectorize(xi_, VEC, GUARD)
        for f in [yuv] + levels[1:] + [den] + [b for b in blurs if b.name().startswith("hx") and "_w" not in b.name()]:
            f.compute_at(out, xo_).bound(c, 0, 3).vectorize(x, VEC, GUARD)
        for f in blurs:
            if f.name().endswith("_w"):
                f.compute_at(out, xo_).bound(kk, 0, 5).reorder(kk, x, y).unroll(kk).vectorize(x, VEC, GUARD)
        vst.compute_at(out, xo_).bound(c, 0, 3).vectorize(x, VEC, GUARD)
        return out, [rgb, prm, thr, inv, pexp, cbias, dx, dy]
    return build


class Denoiseprofile(Module):
    op = "denoiseprofile"
    name = "denoise (profiled)"
    Params = DenoiseprofileParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES | Flags.EXPENSIVE
    works_on = "rgb"
    summary = "profiled wavelet denoise (Poisson-Gaussian model)"

    def commit(self, piece: Piece) -> None:
        model, source = noise_model(piece.image, piece.params.profile)
        k = white_balance(piece.image)
        a = np.array([m[0] for m in model])
        b = np.array([m[1] for m in model])
        piece.data["alpha"] = k * a
        piece.data["beta"] = k * k * b
        piece.data["source"] = source
        if source == "estimated":
            note = ("denoiseprofile: no noise profile in the file; noise measured from the image "
                    f"(a = {np.mean(a):.3g}, b = {np.mean(b):.3g})")
        elif source == "default":
            note = "denoiseprofile: the noise could not be measured; a generic model is used"
        else:
            note = ""
        if note and note not in piece.notices:
            piece.notices.append(note)

    # -- region rule (next to the algorithm): the reach of the a-trous levels
    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        if piece.fast:
            return roi_out
        return roi_out.padded(padding_for(roi_out.scale))

    def thresholds(self, piece: Piece, scale: float) -> np.ndarray:
        n = nscales_for(scale)
        sig = _noise.band_sigmas(round(min(scale, 1.0), 3), n, bool(piece.image.is_raw), piece.pipe)
        p = piece.params
        mult = np.array([p.strength, p.strength * p.chroma, p.strength * p.chroma])
        return f32((THRESHOLD_K * sig[:, :3] * mult[None, :]))  # (n, 3): Halide sees [c, level]

    def edge_weights(self, piece: Piece, scale: float) -> np.ndarray:
        """Per level ``1 / (EDGE_K sigma^2)``, sigma the noise of that smoothed level (unit raw noise)."""
        n = nscales_for(scale)
        sig = _noise.band_sigmas(round(min(scale, 1.0), 3), n, bool(piece.image.is_raw), piece.pipe)[:, 3]
        return f32(1.0 / (EDGE_K * np.maximum(sig, 1e-3) ** 2))

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        return via_2x2(lambda i, ri, ro: self._run(piece, i, ri, ro), inp, roi_in, roi_out)

    def _run(self, piece, inp, roi_in, roi_out):
        p = piece.params
        n = nscales_for(roi_out.scale)
        k = get_kernel(f"denoiseprofile_wavelets{n}", _build(n), variant=str(n), device=piece.device,
                       source_tag=source_tag_of(_build))
        prm = f32(np.concatenate([piece.data["alpha"], piece.data["beta"]]))
        cb = p.bias_correction * p.shadows / (2.0 * (2.0 - p.shadows))
        out = np.empty((3, roi_out.height, roi_out.width), np.float32)
        k(f32(inp), prm, self.thresholds(piece, roi_out.scale), self.edge_weights(piece, roi_out.scale), p.shadows, cb,
          roi_out.x - roi_in.x, roi_out.y - roi_in.y, out)
        return out

    def process_fast(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        """The cut-down pipe: pass the image through (darktable's fast path is similar in spirit)."""
        piece.data["path"] = "fast"
        return np.ascontiguousarray(window(inp, roi_in, roi_out.x, roi_out.y, roi_out.width, roi_out.height))
