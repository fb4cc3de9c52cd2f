"""Mask refinement: feathering guided by the image, blur, tone curve and opacity.

The guided filter (He, Sun, Tang: "Guided image filtering") is written with
NumPy box means computed from cumulative sums (O(1) per pixel whatever the
radius); it is a neighbourhood filter, not a per-pixel stage. The Gaussian
blur and the per-pixel tone curve/opacity are Halide kernels (kernels.py).
Radii are in full-resolution pixels and scaled to the region's scale; near the
region's border the filters see only the region (repeated edges).
"""
from __future__ import annotations

import numpy as np

from .kernels import LUMA, run_blur, run_finish

GUIDE_EPS = 1e-3  # guided filter regularisation on the 0..1 perceptual guide


def _box_sum_axis(img: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Sum over a window of 2r+1 along ``axis``, zeros outside (prefix sums and slices only)."""
    n = img.shape[axis]
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(img, pad), axis=axis)
    hi = [slice(None)] * img.ndim
    lo = [slice(None)] * img.ndim
    hi[axis], lo[axis] = slice(2 * r + 1, 2 * r + 1 + n), slice(0, n)
    return c[tuple(hi)] - c[tuple(lo)]


def box_mean(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window, the window clipped at the borders (float64)."""
    h, w = img.shape
    s = _box_sum_axis(_box_sum_axis(np.asarray(img, dtype=np.float64), r, 0), r, 1)
    ny = _box_sum_axis(np.ones(h), r, 0)
    nx = _box_sum_axis(np.ones(w), r, 0)
    return s / (ny[:, None] * nx[None, :])


def _shrink(img: np.ndarray, f: int) -> np.ndarray:
    """Mean of f x f blocks (the last partial blocks averaged over what they hold)."""
    h, w = img.shape
    H, W = -(-h // f), -(-w // f)
    p = np.pad(img.astype(np.float64), ((0, H * f - h), (0, W * f - w)), mode="edge")
    return p.reshape(H, f, W, f).mean(axis=(1, 3))


def guided_filter(p: np.ndarray, guide: np.ndarray, r: int, eps: float = GUIDE_EPS) -> np.ndarray:
    """Edge-aware smoothing of ``p`` following the edges of ``guide`` (both (H, W)).

    Radii above 8 px run on a grid subsampled by r/4 (He & Sun's "fast guided filter"):
    the linear coefficients are smooth, so only they are computed coarsely; the output
    ``a * guide + b`` keeps the guide's full-resolution edges.
    """
    if r < 1:
        return p
    f = max(1, r // 4) if r > 8 else 1
    I = guide.astype(np.float64)
    Il, Pl = (_shrink(I, f), _shrink(p, f)) if f > 1 else (I, p.astype(np.float64))
    rl = max(1, int(round(r / f)))
    mean_I, mean_p = box_mean(Il, rl), box_mean(Pl, rl)
    cov = box_mean(Il * Pl, rl) - mean_I * mean_p
    var = box_mean(Il * Il, rl) - mean_I * mean_I
    a = cov / (np.maximum(var, 0) + eps)
    b = mean_p - a * mean_I
    A, B = box_mean(a, rl), box_mean(b, rl)
    if f > 1:
        from .geometry import sample_separable

        h, w = p.shape
        u = (np.arange(w) + 0.5) / f - 0.5
        v = (np.arange(h) + 0.5) / f - 0.5
        A, B = sample_separable(A.astype(np.float32), u, v), sample_separable(B.astype(np.float32), u, v)
    return np.clip(A * I + B, 0.0, 1.0).astype(np.float32)


def blur(m: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a mask: exact taps (Halide) up to sigma 4 px, beyond that three box
    passes of matching variance (prefix sums, cost independent of the radius)."""
    if sigma <= 4.0:
        return run_blur(m, sigma)
    # three boxes whose summed variance is sigma^2 (Kovesi's widths)
    n = 3
    wl = int(np.floor(np.sqrt(12 * sigma * sigma / n + 1)))
    wl -= 1 - wl % 2
    wu = wl + 2
    mm = int(round((12 * sigma * sigma - n * wl * wl - 4 * n * wl - 3 * n) / (-4 * wl - 4)))
    out = m.astype(np.float64)
    for k in range(n):
        out = box_mean(out, ((wl if k < mm else wu) - 1) // 2)
    return out.astype(np.float32)


def guide_of(img: np.ndarray) -> np.ndarray:
    """A 0..1 perceptual grey guide from planar RGB (or a mosaic)."""
    g = img if img.ndim == 2 else (LUMA[0] * img[0] + LUMA[1] * img[1] + LUMA[2] * img[2])
    return np.clip(g, 0.0, 1.0) ** (1 / 2.2)


def refine(m0: np.ndarray, bp, scale: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Feather (guided filter) and blur ``m0`` as ``bp`` asks, in the guide's order."""
    fr = int(round(bp.feather_radius * scale))
    sigma = bp.blur_radius * scale
    if fr < 1 and sigma <= 0.05:
        return m0
    guide = guide_of(a if bp.feather_guide.startswith("input") else b) if fr >= 1 else None
    m = m0
    if bp.feather_guide.endswith("before_blur"):
        if guide is not None:
            m = guided_filter(m, guide, fr)
        m = blur(m, sigma)
    else:
        m = blur(m, sigma)
        if guide is not None:
            m = guided_filter(m, guide, fr)
    return m


def finish(m: np.ndarray, bp) -> np.ndarray:
    """Brightness/contrast curve (0 and 1 kept) and the global opacity."""
    return run_finish(m, bp.opacity / 100.0, bp.brightness, bp.contrast)


def show_mask(display: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """darktable's "display mask": a yellow overlay on a grey version of the image."""
    g = display.mean(axis=0)
    yellow = np.array([1.0, 1.0, 0.0], np.float32)[:, None, None]
    m = np.clip(mask, 0, 1)[None]
    return (g[None] * (1 - m) + yellow * m).astype(np.float32)
