"""NumPy helpers shared by the converters and the quality smoke checks.

CFA patterns, packing, mosaicking, the sRGB transfer functions and simple
interpolating demosaics used as baselines.  Images are float32, planar
``(3, H, W)`` unless said otherwise.
"""
from __future__ import annotations

import numpy as np

# Colour index per site: 0 R, 1 G, 2 B.
RGGB = np.array([[0, 1], [1, 2]])
GRBG = np.array([[1, 0], [2, 1]])

# demosaicnet's X-Trans training pattern (shared/models/SOURCES.md §3.3), row by row
# "GbGGrG / rGrbGb / GbGGrG / GrGGbG / bGbrGr / GrGGbG".  Pixelpipe's xtrans_v1
# contract feeds tiles whose (0, 0) site is this pattern's (0, 0).
_XT_ROWS = ("GBGGRG", "RGRBGB", "GBGGRG", "GRGGBG", "BGBRGR", "GRGGBG")
XTRANS = np.array([["RGB".index(c) for c in row] for row in _XT_ROWS])


def srgb_encode(x):
    """IEC 61966-2-1 OETF, extended: linear below 0, power law above 1."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.0031308, 12.92 * x,
                    1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(y):
    y = np.asarray(y, dtype=np.float32)
    return np.where(y <= 0.04045, y / 12.92,
                    np.power((np.maximum(y, 0.04045) + 0.055) / 1.055, 2.4)).astype(np.float32)


def cfa_masks(pattern: np.ndarray, h: int, w: int) -> np.ndarray:
    """(3, h, w) 0/1 masks of a periodic pattern whose (0, 0) site is ``pattern[0, 0]``."""
    ph, pw = pattern.shape
    idx = np.tile(pattern, (-(-h // ph), -(-w // pw)))[:h, :w]
    return np.stack([(idx == c) for c in range(3)]).astype(np.float32)


def mosaic(img: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """(3, H, W) image -> (H, W) CFA plane."""
    m = cfa_masks(pattern, img.shape[1], img.shape[2])
    return (img * m).sum(0).astype(np.float32)


def pack_rggb(cfa: np.ndarray) -> np.ndarray:
    """(2T, 2T) RGGB plane -> (4, T, T) packed R, G1, G2, B (darktable bayer_v1)."""
    return np.stack([cfa[0::2, 0::2], cfa[0::2, 1::2], cfa[1::2, 0::2], cfa[1::2, 1::2]])


def unpack_rggb(p: np.ndarray) -> np.ndarray:
    t_h, t_w = p.shape[1:]
    out = np.empty((2 * t_h, 2 * t_w), dtype=p.dtype)
    out[0::2, 0::2], out[0::2, 1::2], out[1::2, 0::2], out[1::2, 1::2] = p
    return out


def _conv2_same(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    r = k.shape[0] // 2
    xp = np.pad(x, r, mode="reflect")
    out = np.zeros_like(x, dtype=np.float64)
    for dy in range(k.shape[0]):
        for dx in range(k.shape[1]):
            if k[dy, dx]:
                out += k[dy, dx] * xp[dy:dy + x.shape[0], dx:dx + x.shape[1]]
    return out


def interpolate_demosaic(cfa: np.ndarray, pattern: np.ndarray, radius: int = 1) -> np.ndarray:
    """Normalised-convolution demosaic with a tent kernel; known samples kept.

    For a Bayer pattern and radius 1 this is exactly bilinear demosaicking.
    """
    t = np.array([radius + 1 - abs(i) for i in range(-radius, radius + 1)], dtype=np.float64)
    k = np.outer(t, t)
    m = cfa_masks(pattern, *cfa.shape)
    out = np.empty((3,) + cfa.shape, dtype=np.float32)
    for c in range(3):
        num = _conv2_same(cfa * m[c], k)
        den = _conv2_same(m[c], k)
        out[c] = np.where(m[c] > 0, cfa, num / np.maximum(den, 1e-12))
    return out


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0, peak: float = 1.0) -> float:
    if border:
        a = a[..., border:-border, border:-border]
        b = b[..., border:-border, border:-border]
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)
