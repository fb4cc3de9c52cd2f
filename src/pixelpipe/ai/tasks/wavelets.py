"""Undecimated ("à trous") wavelet bands with the B3-spline kernel, as darktable's dwt.c.

``bands(img, n)`` splits a 2-D image into ``n`` detail bands (finest first) and a
coarse residual, ``img == sum(bands) + residual`` exactly. Band ``i`` is the
difference of two B3-spline smoothings whose taps are ``2**i`` pixels apart; the
borders are mirrored. Pure NumPy, separable, float32.
"""
from __future__ import annotations

import numpy as np

B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def _mirror_index(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m >= n, period - m, m)


def smooth(img: np.ndarray, step: int) -> np.ndarray:
    """One B3-spline smoothing with taps ``step`` pixels apart (mirrored borders)."""
    h, w = img.shape
    out = np.zeros_like(img, dtype=np.float32)
    rows = np.arange(h)
    for k, c in zip(range(-2, 3), B3):
        out += c * img[_mirror_index(rows + k * step, h)]
    res = np.zeros_like(out)
    cols = np.arange(w)
    for k, c in zip(range(-2, 3), B3):
        res += c * out[:, _mirror_index(cols + k * step, w)]
    return res


def bands(img: np.ndarray, n: int = 5) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` detail bands (finest first) and the coarse residual of a 2-D image."""
    cur = np.asarray(img, dtype=np.float32)
    out = []
    for i in range(n):
        nxt = smooth(cur, 1 << i)
        out.append(cur - nxt)
        cur = nxt
    return out, cur


def soft_threshold(x: np.ndarray, t: float) -> np.ndarray:
    return np.sign(x) * np.maximum(np.abs(x) - np.float32(t), 0).astype(np.float32)
