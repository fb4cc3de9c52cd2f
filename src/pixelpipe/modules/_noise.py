"""Noise model helpers of denoiseprofile (not a module).

* :func:`estimate_poisson_gaussian`: the variance law ``var(x) = a x + b`` of a
  raw colour plane (normalised 0..1) measured from the picture itself, after
  Foi et al., "Practical Poissonian-Gaussian noise modeling and fitting for
  single-image raw-data" (IEEE TIP 2008): a diagonal Haar high-pass gives noise
  samples, 8x8 blocks give (level, variance) pairs, a low percentile per level
  bin (corrected by its value for pure noise) discards texture, a weighted
  least-squares line fits a and b.
* :func:`band_sigmas`: the standard deviation of each a-trous detail band for
  unit raw noise after the pipe's demosaic (spatially correlated) at the
  region's scale, by simulation with a fixed seed (cached).
"""
from __future__ import annotations

import functools
import math

import numpy as np

B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
#: orthonormal colour transform applied after the variance-stabilising transform
YUV = np.array([[1, 1, 1], [1, 0, -1], [1, -2, 1]], np.float64) / np.array([[math.sqrt(3)], [math.sqrt(2)], [math.sqrt(6)]])
BLOCK = 8
PCT = 10.0


# --------------------------------------------------------------------------- estimation

def _block_stats(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 8x8 block: mean level, mean squared residual, max value.

    The residual is the diagonal (HH) Haar difference of 2x2 neighbours,
    ``(p00 - p01 - p10 + p11) / 2``: unit gain for white noise, blind to
    horizontal and vertical edges and gradients.
    """
    P = np.asarray(plane, np.float64)
    res = (P[:-1, :-1] - P[:-1, 1:] - P[1:, :-1] + P[1:, 1:]) / 2.0
    core = (P[:-1, :-1] + P[:-1, 1:] + P[1:, :-1] + P[1:, 1:]) / 4.0
    h, w = res.shape
    h, w = h - h % BLOCK, w - w % BLOCK
    if h == 0 or w == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)

    def blocks(a, f):
        return f(a[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK), axis=(1, 3)).ravel()

    return blocks(core, np.mean), blocks(res * res, np.mean), blocks(core, np.max)


@functools.lru_cache(maxsize=None)
def _percentile_bias() -> float:
    """Ratio of the PCT-th percentile of block variances to the true variance for pure noise."""
    g = np.random.default_rng(12345).standard_normal((1026, 1026))
    _, v, _ = _block_stats(g)
    return float(np.percentile(v, PCT))


def estimate_poisson_gaussian(plane: np.ndarray, clip: float = 0.97, max_side: int = 1536) -> tuple[float, float] | None:
    """(a, b) of ``var = a x + b`` for a normalised colour plane, or None if it cannot be measured."""
    P = np.asarray(plane, np.float64)
    h, w = P.shape
    if h > max_side or w > max_side:  # the centre is enough, and keeps this cheap
        y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        P = P[y0: y0 + max_side, x0: x0 + max_side]
    level, var, top = _block_stats(P)
    ok = (top < clip) & np.isfinite(var) & (level > -0.01)
    level, var = level[ok], var[ok]
    if level.size < 16:
        return None
    nbins = int(min(24, max(4, level.size // 40)))
    edges = np.quantile(level, np.linspace(0, 1, nbins + 1))
    xs, ys, ns = [], [], []
    kappa = _percentile_bias()
    for i in range(nbins):
        sel = (level >= edges[i]) & (level <= edges[i + 1])
        if sel.sum() < 8:
            continue
        xs.append(level[sel].mean())
        ys.append(np.percentile(var[sel], PCT) / kappa)
        ns.append(sel.sum())
    if len(xs) < 2:
        return None
    x, yv, n = np.array(xs), np.array(ys), np.array(ns, np.float64)
    wts = n / np.maximum(yv, 1e-12) ** 2
    A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(wts)[:, None]
    (a, b), *_ = np.linalg.lstsq(A, yv * np.sqrt(wts), rcond=None)
    if not (np.isfinite(a) and np.isfinite(b)):
        return None
    if a <= 1e-9:  # no measurable signal dependence: Gaussian noise only
        a = 1e-9
        b = float(np.average(yv, weights=n))
    return float(a), float(b)


# --------------------------------------------------------------------------- band noise

def _area_matrix(n_in: int, scale: float) -> np.ndarray:
    n_out = max(1, int(round(n_in * scale)))
    M = np.zeros((n_out, n_in))
    for o in range(n_out):
        lo, hi = o / scale, (o + 1) / scale
        for i in range(int(math.floor(lo)), min(n_in, int(math.ceil(hi)))):
            M[o, i] = max(0.0, min(i + 1, hi) - max(i, lo))
    return M / np.maximum(M.sum(1, keepdims=True), 1e-12)


def _bilinear_demosaic(m: np.ndarray) -> np.ndarray:
    h, w = m.shape
    yy, xx = np.mgrid[0:h, 0:w]
    col = np.array([[0, 1], [1, 2]])[yy % 2, xx % 2]
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], float)
    out = np.zeros((3, h, w))
    for ch in range(3):
        msk = (col == ch).astype(float)
        pv, pm = np.pad(m * msk, 1, mode="reflect"), np.pad(msk, 1, mode="reflect")
        num = sum(k[j, i] * pv[j: j + h, i: i + w] for j in range(3) for i in range(3))
        den = sum(k[j, i] * pm[j: j + h, i: i + w] for j in range(3) for i in range(3))
        out[ch] = num / den
    return out


def atrous_np(img: np.ndarray, nscales: int, inv: list[float] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """A-trous B3-spline decomposition of planar (C, H, W), edges repeated: (details, coarse).

    With ``inv`` (one value per level) the smoothing is edge-avoiding: each tap's
    B3 weight is multiplied by ``exp(-inv[j] * D)``, D the squared colour
    distance to the centre pixel, then the taps are renormalised (first along x,
    then along y on the x-smoothed plane).
    """
    cur = np.asarray(img, np.float64)

    def smooth(a, d, axis, k):
        pad = 2 * d
        n = a.shape[axis]
        widths = [(0, 0)] * 3
        widths[axis] = (pad, pad)
        P = np.pad(a, widths, mode="edge")
        taps = [np.take(P, np.arange(i * d, i * d + n), axis=axis) for i in range(5)]
        if k is None or k == 0:
            return sum(B3[i] * taps[i] for i in range(5))
        ws = [B3[i] * np.exp(-k * ((taps[i] - a) ** 2).sum(0, keepdims=True)) for i in range(5)]
        return sum(ws[i] * taps[i] for i in range(5)) / sum(ws)

    details = []
    for j in range(nscales):
        d = 1 << j
        k = inv[j] if inv is not None else None
        nxt = smooth(smooth(cur, d, 2, k), d, 1, k)
        details.append(cur - nxt)
        cur = nxt
    return details, cur


def _pipe_demosaic(m: np.ndarray, scale: float, pipe: str) -> np.ndarray | None:
    """The pipe's own demosaic module (default parameters) on an RGGB noise mosaic, at ``scale``."""
    try:
        from ..io.source import CFA, SourceImage
        from . import registry
        from .base import BufferDesc, Piece, ROI

        h, w = m.shape
        img = SourceImage(path="noise-simulation", kind="raw", data=m.astype(np.float32),
                          cfa=CFA("bayer", np.array([[0, 1], [3, 2]]), "RGBG"), white=1.0)
        mod = registry()["demosaic"]()
        piece = Piece("demosaic", 0, mod.default_params(img), img, pipe=pipe)
        piece.buf_in = piece.buf_out = (w, h)
        piece.dsc_in = BufferDesc(1, img.cfa, "raw")
        mod.commit(piece)
        piece.dsc_out = mod.output_desc(piece, piece.dsc_in)
        roi = ROI(0, 0, max(1, int(round(w * scale))), max(1, int(round(h * scale))), scale)
        r = mod.modify_roi_in(piece, roi)
        out = mod.process(piece, np.ascontiguousarray(m[r.y: r.y + r.height, r.x: r.x + r.width], np.float32), r, roi)
        out = np.asarray(out, np.float64)
        return out if out.shape == (3, roi.height, roi.width) and np.isfinite(out).all() else None
    except Exception:  # noqa: BLE001 - any failure falls back to the bilinear model
        return None


@functools.lru_cache(maxsize=64)
def band_sigmas(scale_key: float, nscales: int, mosaic: bool, pipe: str = "export") -> np.ndarray:
    """(nscales, 4) for unit raw noise: the std of each detail band in the Y, U, V
    planes (columns 0..2) and the mean std of the smoothed level it came from (column 3).

    Raw images: a unit-variance noise mosaic goes through the pipe's own demosaic
    module (its default method, at the region's scale, as the given pipe kind
    runs it), so the spatial correlation and gain of the interpolation are the
    real ones; where that fails, a bilinear demosaic and an area downscale
    stand in. Non-raw images: independent unit noise per channel, downscaled.
    """
    scale = min(1.0, float(scale_key))
    size = int(min(2048, max(192, math.ceil(96.0 / scale))))
    size += size % 2
    g = np.random.default_rng(2024)
    rgb = None
    if mosaic:
        m = g.standard_normal((size, size))
        rgb = _pipe_demosaic(m, scale, pipe)
        if rgb is None:
            rgb = _bilinear_demosaic(m)
            if scale < 0.999:
                M = _area_matrix(size, scale)
                rgb = np.einsum("oi,cij,pj->cop", M, rgb, M)
    else:
        rgb = g.standard_normal((3, size, size))
        if scale < 0.999:
            M = _area_matrix(size, scale)
            rgb = np.einsum("oi,cij,pj->cop", M, rgb, M)
    yuv = np.einsum("ij,jhw->ihw", YUV, rgb)
    details, _ = atrous_np(yuv, nscales)
    m_ = 2 * ((1 << nscales) - 1) + 2
    out = np.zeros((nscales, 4))
    level = yuv
    for j, d in enumerate(details):
        crop = (lambda a: a[:, m_:-m_, m_:-m_]) if min(d.shape[1:]) > 2 * m_ + 8 else (lambda a: a)
        out[j, :3] = crop(d).reshape(3, -1).std(axis=1)
        out[j, 3] = crop(level).reshape(3, -1).std(axis=1).mean()
        level = level - d
    return out
