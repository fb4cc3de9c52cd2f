"""A raw file's noise model: variance = a * x + b in normalised sensor units.

``x`` is (raw - black) / (white - black), the scale rawprepare hands on. Measured
on the mosaic itself (the DNG ``NoiseProfile``, in the same units, is the fallback
where the image is too small to measure):

* each CFA sub-lattice (period 2 for Bayer, 6 for X-Trans, 1 for monochrome)
  is a plane of one colour; its residual ``r = x - mean(4 neighbours)`` has
  variance ``1.25 * var`` where the signal is locally flat;
* the residual's robust variance (1.4826 MAD, squared) and the mean level are
  taken over 8x8 blocks of every plane; blocks near saturation are dropped;
* the blocks are binned by level (equal counts); in each bin the 20th
  percentile of the variances stands for the texture-free blocks;
* ``var = a x + b`` is fitted to the bins by least squares (a, b >= 0).

Pure NumPy; about a second for 24 MP.
"""
from __future__ import annotations

import numpy as np

BLOCK = 8


def _planes(image) -> tuple[list[np.ndarray], int]:
    data = image.data
    cfa = image.cfa
    if data.ndim == 3:  # planar non-CFA raw
        return [data[c] for c in range(data.shape[0])], 1
    period = 1
    if cfa is not None and cfa.kind in ("bayer", "4color"):
        period = 2
    elif cfa is not None and cfa.kind == "xtrans":
        period = 6
    return [data[i::period, j::period] for i in range(period) for j in range(period)], period


def _normalise(image, plane: np.ndarray, i: int, j: int, period: int) -> np.ndarray:
    cfa = image.cfa
    black = np.asarray(image.black, np.float64)
    if cfa is not None and cfa.pattern.ndim == 2 and period > 1:
        col = int(cfa.pattern[i % cfa.pattern.shape[0], j % cfa.pattern.shape[1]])
        b = float(black[col]) if col < len(black) else float(black.mean())
    else:
        b = float(black.mean())
    rng = max(float(image.white) - b, 1e-6)
    return (plane.astype(np.float32) - np.float32(b)) / np.float32(rng)


def estimate(image, max_pixels: int = 6_000_000) -> tuple[float, float]:
    """(a, b): the noise model estimated from the mosaic (see the module docstring)."""
    planes, period = _planes(image)
    levels, variances = [], []
    stride = 1
    total = sum(p.size for p in planes)
    if total > max_pixels:
        stride = int(np.ceil(np.sqrt(total / max_pixels)))
    for k, raw_plane in enumerate(planes):
        i, j = divmod(k, period) if period > 1 else (0, 0)
        x = _normalise(image, raw_plane, i, j, period)
        if stride > 1:  # whole blocks, every stride-th block row/column
            hb, wb = x.shape[0] // BLOCK, x.shape[1] // BLOCK
            x = x[:hb * BLOCK, :wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK)[::stride, :, ::stride, :]
            x = x.reshape(x.shape[0] * BLOCK, x.shape[2] * BLOCK)
        if x.shape[0] < 3 * BLOCK or x.shape[1] < 3 * BLOCK:
            continue
        r = x[1:-1, 1:-1] - 0.25 * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:])
        m = x[1:-1, 1:-1]
        hb, wb = r.shape[0] // BLOCK, r.shape[1] // BLOCK
        rb = r[:hb * BLOCK, :wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK * BLOCK)
        mb = m[:hb * BLOCK, :wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK * BLOCK)
        med = np.median(rb, axis=1, keepdims=True)
        mad = np.median(np.abs(rb - med), axis=1)
        levels.append(mb.mean(axis=1))
        variances.append((1.4826 * mad) ** 2 / 1.25)
    if not levels:
        return 0.0, 1e-6
    lv = np.concatenate(levels)
    vv = np.concatenate(variances)
    ok = (lv > -0.01) & (lv < 0.85) & np.isfinite(vv)
    lv, vv = lv[ok], vv[ok]
    if lv.size < 20:
        return 0.0, float(np.median(vv)) if vv.size else 1e-6
    order = np.argsort(lv)
    nb = int(min(24, max(4, lv.size // 50)))
    xs, ys, ws = [], [], []
    for chunk in np.array_split(order, nb):
        xs.append(float(np.mean(lv[chunk])))
        ys.append(float(np.percentile(vv[chunk], 20)))
        ws.append(np.sqrt(len(chunk)))
    xs, ys, ws = np.array(xs), np.array(ys), np.array(ws)
    A = np.stack([xs, np.ones_like(xs)], axis=1) * ws[:, None]
    a, b = np.linalg.lstsq(A, ys * ws, rcond=None)[0]
    if a < 0:
        a, b = 0.0, float(np.average(ys, weights=ws))
    if b < 0:
        b = 0.0
        a = float(np.sum(ws * xs * ys) / max(np.sum(ws * xs * xs), 1e-12))
    return float(max(a, 0.0)), float(max(b, 1e-10))


def from_profile(image) -> tuple[float, float] | None:
    npf = getattr(image, "noise_profile", None)
    if not npf:
        return None
    s = float(np.mean([p[0] for p in npf]))
    o = float(np.mean([p[1] for p in npf]))
    if not (np.isfinite(s) and np.isfinite(o)) or s < 0 or o < 0 or s + o <= 0:
        return None
    return s, o


_CACHE: dict[tuple, tuple[float, float]] = {}


def raw_noise_model(image) -> tuple[float, float]:
    """(a, b) for a raw image, cached per file: measured on the mosaic (what the pixels
    actually carry: a lossy-compressed raw such as GoPro's VC-5 has far less fine noise
    than its NoiseProfile states), the NoiseProfile only where too little data can be measured."""
    try:
        ident = image.identity()
    except OSError:
        ident = f"mem:{id(image)}"
    key = (ident, tuple(image.data.shape), id(image.data))
    if key not in _CACHE:
        if len(_CACHE) > 16:
            _CACHE.clear()
        a, b = estimate(image)
        if a == 0.0 and b <= 1e-6:  # too little data to measure
            a, b = from_profile(image) or (a, b)
        _CACHE[key] = (a, b)
    return _CACHE[key]
