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


def box_mean(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window, the window clipped at the borders (float64)."""
    h, w = img.shape
    c = np.zeros((h + 1, w + 1), np.float64)
    np.cumsum(np.cumsum(img, axis=0, dtype=np.float64), axis=1, out=c[1:, 1:])
    ys0 = np.clip(np.arange(h) - r, 0, h)
    ys1 = np.clip(np.arange(h) + r + 1, 0, h)
    xs0 = np.clip(np.arange(w) - r, 0, w)
    xs1 = np.clip(np.arange(w) + r + 1, 0, w)
    s = c[ys1][:, xs1] - c[ys0][:, xs1] - c[ys1][:, xs0] + c[ys0][:, xs0]
    n = (ys1 - ys0)[:, None] * (xs1 - xs0)[None, :]
    return s / n


def guided_filter(p: np.ndarray, guide: np.ndarray, r: int, eps: float = GUIDE_EPS) -> np.ndarray:
    """Edge-aware smoothing of ``p`` following the edges of ``guide`` (both (H, W))."""
    if r < 1:
        return p
    I = guide.astype(np.float64)
    P = p.astype(np.float64)
    mean_I, mean_p = box_mean(I, r), box_mean(P, r)
    cov = box_mean(I * P, r) - mean_I * mean_p
    var = box_mean(I * I, r) - mean_I * mean_I
    a = cov / (var + eps)
    b = mean_p - a * mean_I
    q = box_mean(a, r) * I + box_mean(b, r)
    return np.clip(q, 0.0, 1.0).astype(np.float32)


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
        m = run_blur(m, sigma)
    else:
        m = run_blur(m, sigma)
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
