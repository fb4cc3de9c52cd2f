"""Object-mask post-processing (darktable's masks/object.c), pure NumPy.

:func:`refine` turns a probability map into the final binary mask:

1. **edge-aware threshold**: ``thr = t + edge_refine * (1 - t) * 0.5 * G``, where ``G``
   is the Scharr gradient magnitude of the stored image's luminance, normalised by
   its 99th percentile and clipped to [0, 1]: near strong image edges a pixel needs
   more confidence to join the mask, so the mask does not bleed across edges;
2. keep the connected component(s) (4-connected) under the positive clicks, else
   the largest one;
3. morphological **open** then **close** with a disk of ``morph_radius`` px;
4. clean-up: holes and islands under ``cleanup`` px (scaled to a 1024 px image:
   ``cleanup * (max(h, w) / 1024)^2``) are filled / removed.

Helpers: :func:`label` (run-length union-find connected components),
:func:`edt_sq` (exact squared Euclidean distance transform), :func:`erode` /
:func:`dilate` (exact disks through the distance transform), :func:`scharr`,
:func:`resize_bilinear`.
"""
from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- resampling

def _axis_weights(n_in: int, n_out: int):
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    t = (pos - i0).astype(np.float32)
    return i0, i1, t


def resize_bilinear(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of the last two axes (half-pixel centres, edges clamped), float32."""
    a = np.asarray(img, np.float32)
    H, W = a.shape[-2:]
    if (H, W) == (h, w):
        return a.copy()
    i0, i1, ty = _axis_weights(H, h)
    a = a[..., i0, :] * (1 - ty)[:, None] + a[..., i1, :] * ty[:, None]
    j0, j1, tx = _axis_weights(W, w)
    return (a[..., j0] * (1 - tx) + a[..., j1] * tx).astype(np.float32)


def resize_area(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Downscale by box averaging where the factor is large, then bilinear (anti-aliased)."""
    a = np.asarray(img, np.float32)
    H, W = a.shape[-2:]
    k = int(min(H // max(h, 1), W // max(w, 1)))
    if k >= 2:
        hh, ww = H // k, W // k
        a = a[..., :hh * k, :ww * k].reshape(a.shape[:-2] + (hh, k, ww, k)).mean(axis=(-3, -1))
    return resize_bilinear(a, h, w)


# --------------------------------------------------------------------------- gradients

def scharr(lum: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude (3x3, edges replicated)."""
    p = np.pad(np.asarray(lum, np.float32), 1, mode="edge")
    H, W = lum.shape

    def s(dy, dx):
        return p[1 + dy:1 + dy + H, 1 + dx:1 + dx + W]

    gx = 3 * (s(-1, 1) - s(-1, -1)) + 10 * (s(0, 1) - s(0, -1)) + 3 * (s(1, 1) - s(1, -1))
    gy = 3 * (s(1, -1) - s(-1, -1)) + 10 * (s(1, 0) - s(-1, 0)) + 3 * (s(1, 1) - s(-1, 1))
    return (np.hypot(gx, gy) / 32.0).astype(np.float32)


def edge_strength(rgb_u8: np.ndarray) -> np.ndarray:
    """Scharr magnitude of the luminance of an (H, W, 3) uint8/float image, in [0, 1]."""
    a = np.asarray(rgb_u8, np.float32)
    if a.dtype != np.float32 or a.max() > 1.5:
        a = a / 255.0
    lum = 0.2126 * a[..., 0] + 0.7152 * a[..., 1] + 0.0722 * a[..., 2]
    g = scharr(lum)
    hi = float(np.percentile(g, 99)) if g.size else 0.0
    return np.clip(g / hi, 0, 1) if hi > 1e-6 else np.zeros_like(g)


# --------------------------------------------------------------------------- components

def _runs(mask: np.ndarray):
    H, W = mask.shape
    m = np.zeros((H, W + 2), np.int8)
    m[:, 1:-1] = mask
    d = np.diff(m, axis=1)
    rs, cs = np.nonzero(d == 1)
    re, ce = np.nonzero(d == -1)
    return rs, cs, ce  # row, start column, end column (exclusive); sorted by row then column


def label(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-connected components: (labels int32 (0 = background, 1..n), sizes (n+1,))."""
    mask = np.asarray(mask, bool)
    H, W = mask.shape
    rows, starts, ends = _runs(mask)
    n = rows.size
    labels = np.zeros((H, W), np.int32)
    if n == 0:
        return labels, np.zeros(1, np.int64)
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    row_first = np.searchsorted(rows, np.arange(H + 1))
    for r in range(1, H):
        a0, a1 = row_first[r - 1], row_first[r]
        b0, b1 = row_first[r], row_first[r + 1]
        if a0 == a1 or b0 == b1:
            continue
        pe, ps = ends[a0:a1], starts[a0:a1]
        lo = np.searchsorted(pe, starts[b0:b1], side="right")
        hi = np.searchsorted(ps, ends[b0:b1], side="left")
        for k in np.nonzero(hi > lo)[0]:
            rb = find(b0 + int(k))
            for j in range(int(lo[k]), int(hi[k])):
                ra = find(a0 + j)
                if ra != rb:
                    parent[ra] = rb
                    rb = find(rb)
    roots = np.array([find(i) for i in range(n)])
    uniq, lab = np.unique(roots, return_inverse=True)
    lab = lab.astype(np.int32) + 1
    flat = labels.ravel()
    lengths = ends - starts
    base = rows * W + starts
    idx = np.repeat(base, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    flat[idx] = np.repeat(lab, lengths)
    sizes = np.bincount(lab, weights=lengths, minlength=uniq.size + 1).astype(np.int64)
    return labels, sizes


def keep_clicked(mask: np.ndarray, seeds) -> np.ndarray:
    """The components containing a positive seed (x, y) (else the largest)."""
    labels, sizes = label(mask)
    if sizes.size <= 1:
        return np.zeros_like(mask, bool)
    H, W = mask.shape
    keep = set()
    for x, y in seeds:
        xi, yi = int(np.clip(np.floor(x), 0, W - 1)), int(np.clip(np.floor(y), 0, H - 1))
        if labels[yi, xi] > 0:
            keep.add(int(labels[yi, xi]))
    if not keep:
        keep = {int(np.argmax(sizes[1:]) + 1)}
    return np.isin(labels, list(keep))


def remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Remove islands and fill holes smaller than ``min_area`` pixels."""
    if min_area <= 0:
        return mask
    m = np.asarray(mask, bool)
    labels, sizes = label(m)
    small = np.nonzero(sizes < min_area)[0]
    small = small[small > 0]
    if small.size and small.size < sizes.size - 1:  # never remove everything
        m = m & ~np.isin(labels, small)
    bl, bs = label(~m)
    border = set(np.unique(np.concatenate([bl[0], bl[-1], bl[:, 0], bl[:, -1]]))) - {0}
    holes = [k for k in range(1, bs.size) if bs[k] < min_area and k not in border]
    if holes:
        m = m | np.isin(bl, holes)
    return m


# --------------------------------------------------------------------------- distances and morphology

def edt_sq(mask: np.ndarray, cap: float | None = None) -> np.ndarray:
    """Exact squared Euclidean distance from each True pixel to the nearest False pixel
    (0 on False pixels; outside the image does not count as False; ``inf`` where there
    is no False pixel). With ``cap`` the search stops at that distance (results above
    ``cap**2`` are only known to be larger)."""
    m = np.asarray(mask, bool)
    H, W = m.shape
    big = np.float64(np.inf)
    ys = np.arange(H, dtype=np.float64)[:, None]
    z = np.where(~m, ys, -big)
    down = ys - np.maximum.accumulate(z, axis=0)
    z2 = np.where(~m, ys, big)
    up = np.minimum.accumulate(z2[::-1], axis=0)[::-1] - ys
    g = np.minimum(down, up) ** 2  # squared vertical distance per column
    d = g.copy()
    limit = np.inf if cap is None else float(cap) ** 2
    k = 1
    while True:
        kk = float(k * k)
        finite = d[np.isfinite(d)]
        worst = finite.max() if finite.size else 0.0
        if not np.isinf(d).any() and kk > worst:
            break
        if kk > limit or k >= W:
            break
        cand = g[:, k:] + kk
        np.minimum(d[:, :-k], cand, out=d[:, :-k])
        cand = g[:, :-k] + kk
        np.minimum(d[:, k:], cand, out=d[:, k:])
        k += 1
    return d


def erode(mask: np.ndarray, r: float) -> np.ndarray:
    if r <= 0:
        return np.asarray(mask, bool)
    return edt_sq(mask, cap=r + 1) > r * r


def dilate(mask: np.ndarray, r: float) -> np.ndarray:
    if r <= 0:
        return np.asarray(mask, bool)
    return ~(edt_sq(~np.asarray(mask, bool), cap=r + 1) > r * r)


def open_close(mask: np.ndarray, r: float) -> np.ndarray:
    if r <= 0:
        return np.asarray(mask, bool)
    m = dilate(erode(mask, r), r)
    return erode(dilate(m, r), r)


# --------------------------------------------------------------------------- the whole chain

def refine(prob: np.ndarray, rgb: np.ndarray | None, positive_seeds, *, threshold: float = 0.5,
           edge_refine: float = 0.5, morph_radius: int = 1, cleanup: int = 10) -> np.ndarray:
    """Probability (h, w) in [0, 1] -> binary mask (see the module docstring)."""
    p = np.nan_to_num(np.asarray(prob, np.float32))
    thr = np.float32(threshold)
    if edge_refine > 0 and rgb is not None:
        thr = np.minimum(thr + np.float32(edge_refine * (1 - threshold) * 0.5) * edge_strength(rgb),
                         np.float32(0.99))
    m = p > thr
    if not m.any():
        return m
    m = keep_clicked(m, positive_seeds)
    m = open_close(m, morph_radius)
    h, w = m.shape
    area = int(round(cleanup * (max(h, w) / 1024.0) ** 2))
    m = remove_small(m, area)
    if m.any():
        m = keep_clicked(m, positive_seeds) if positive_seeds else m
    return m
