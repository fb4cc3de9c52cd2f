"""Halide algorithms for X-Trans (6x6) mosaics and generic block/normalised-convolution
paths (helpers of ``demosaic.py``).

X-Trans, "markesteijn" (one pass), in the spirit of Frank Markesteijn's method
as darktable and dcraw run it: directional estimates in four directions,
then, per pixel, the average of the directions whose result is most
homogeneous.

1. Green, per direction (horizontal, vertical, both diagonals): at a red or
   blue photosite the greens on the line through it (the two nearest on each
   side, or the nearest one where the second is further than 4 px) are
   interpolated by the Lagrange polynomial through them, evaluated at the
   photosite, and limited to the range of the greens among its 8 neighbours
   (which stops overshoot, as Markesteijn limits to the green hexagon).
   Which photosites to use depends on the photosite's phase in the 6x6 period:
   tables computed once per pattern in Python.
2. Red and blue, per direction: the green estimate plus the Gaussian-weighted
   (sigma 1 px, 5x5) mean of the colour differences (C - G) at that colour's
   photosites (normalised convolution), so colour edges follow the green.
3. Homogeneity: each direction's result as luma/chroma (Rec.2020 luma,
   B - Y, R - Y); its squared differences to the two neighbours along the same
   direction; a direction is homogeneous at a pixel where that value is within
   8x the smallest of the four; counted over 3x3 and then 5x5 windows; the
   directions within 7/8 of the best count are averaged.

Within 6 pixels of the buffer's edge (where the mirrored mosaic breaks the
6x6 period the tables assume) the result is the normalised convolution of
each colour's samples (Gaussian, sigma 1 px), which follows the real colours
of the mirrored neighbourhood.

Inputs are the (W, H) mosaic, the 6x6 pattern ``[i, j]`` of the buffer's
(x % 6, y % 6) (0 R, 1 G, 2 B) and the tables; buffers are at least 16
pixels on each side.
"""
from __future__ import annotations

import functools

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y

yo, yi = hl.Var("yo"), hl.Var("yi")
d = hl.Var("d")

DIRS = ((1, 0), (0, 1), (1, 1), (1, -1))
REACH = 4   # furthest green used along a direction
BORDER = 6  # pixels from the edge that use the plain normalised convolution


def _lagrange_at_zero(ts):
    w = []
    for a in ts:
        p = 1.0
        for b in ts:
            if b != a:
                p *= (0.0 - b) / (a - b)
        w.append(p)
    return w


@functools.lru_cache(maxsize=64)
def _tables_cached(key: bytes, n: int):
    pat = np.frombuffer(key, dtype=np.int64).reshape(n, n)
    # NumPy [j, i, direction, tap] = Halide [tap, direction, i, j]
    off = np.zeros((n, n, 4, 4), np.int32)
    wts = np.zeros((n, n, 4, 4), np.float32)
    for j in range(n):
        for i in range(n):
            if pat[j, i] == 1:
                continue
            for k, (ux, uy) in enumerate(DIRS):
                pos = [t for t in range(1, REACH + 1) if pat[(j + t * uy) % n, (i + t * ux) % n] == 1][:2]
                neg = [t for t in range(1, REACH + 1) if pat[(j - t * uy) % n, (i - t * ux) % n] == 1][:2]
                if not pos or not neg:  # no green on a side: use what there is, nearest only
                    ts = (pos[:1] + [-t for t in neg[:1]]) or [0]
                elif len(pos) == 2 and len(neg) == 2:
                    ts = [pos[0], pos[1], -neg[0], -neg[1]]
                else:
                    ts = [pos[0], -neg[0]]
                for tap, (t, wt) in enumerate(zip(ts, _lagrange_at_zero(ts))):
                    off[j, i, k, tap] = t
                    wts[j, i, k, tap] = wt
    return off, wts


def tables(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, weights) (Halide ``[tap, direction, x % 6, y % 6]``) of the directional green estimates
    for ``pattern`` (rows x columns, phase of the buffer's (0, 0))."""
    p = np.ascontiguousarray(np.asarray(pattern, dtype=np.int64))
    return _tables_cached(p.tobytes(), p.shape[0])


def _mirror(v, n):
    """Reflect ``v`` into [0, n) about the edge samples (n >= 2)."""
    p = 2 * n - 2
    t = v % p
    return hl.clamp(hl.select(t < n, t, p - t), 0, n - 1)  # the clamp only informs bounds inference


def _gauss5():
    return [hl.f32(float(np.exp(-k * k / 2.0))) for k in (-2, -1, 0, 1, 2)]


def build_markesteijn():
    raw = hl.ImageParam(hl.Float(32), 2, "raw")
    pat = hl.ImageParam(hl.Int(32), 2, "pattern")
    off = hl.ImageParam(hl.Int(32), 4, "offsets")
    wts = hl.ImageParam(hl.Float(32), 4, "weights")
    W, H = raw.dim(0).extent(), raw.dim(1).extent()
    n = pat.dim(0).extent()

    cfa = hl.Func("xt_cfa")
    cfa[x, y] = raw[_mirror(x, W), _mirror(y, H)]
    col = hl.Func("xt_col")
    col[x, y] = pat[_mirror(x, W) % n, _mirror(y, H) % n]
    C = lambda dx, dy: hl.Expr(cfa[x + dx, y + dy])  # noqa: E731
    K = lambda dx, dy: hl.Expr(col[x + dx, y + dy])  # noqa: E731

    # range of the 8 neighbouring greens
    big = hl.f32(3.0e38)
    lo, hi = big, -big
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                g = K(dx, dy) == 1
                lo = hl.select(g, hl.min(lo, C(dx, dy)), lo)
                hi = hl.select(g, hl.max(hi, C(dx, dy)), hi)
    rng = hl.Func("xt_range")
    rng[x, y, c] = hl.select(c == 0, lo, hi)

    ux = hl.select(d == 1, 0, 1)
    uy = hl.select(d == 0, 0, d == 3, -1, 1)
    i6, j6 = x % n, y % n  # phase in the periodic pattern (interior)
    est = 0
    for tap in range(4):
        t = hl.clamp(off[tap, d, i6, j6], -REACH, REACH)
        est = est + wts[tap, d, i6, j6] * cfa[x + t * ux, y + t * uy]
    green = hl.Func("xt_green")
    green[x, y, d] = hl.select(K(0, 0) == 1, C(0, 0), hl.clamp(est, rng[x, y, 0], hl.max(rng[x, y, 0], rng[x, y, 1])))

    # colour differences at the red and blue photosites, per direction
    g5 = _gauss5()
    diff = hl.Func("xt_diff")  # [x, y, d, k]: k 0 red, 1 blue
    k = hl.Var("k")
    kc = 2 * k
    diff[x, y, d, k] = hl.select(K(0, 0) == kc, C(0, 0) - green[x, y, d], hl.f32(0))
    diff_h = hl.Func("xt_diff_h")
    diff_h[x, y, d, k] = sum((g5[a + 2] * diff[x + a, y, d, k] for a in range(-2, 3)), hl.f32(0))
    dsum = hl.Func("xt_dsum")
    dsum[x, y, d, k] = sum((g5[b + 2] * diff_h[x, y + b, d, k] for b in range(-2, 3)), hl.f32(0))
    mask_h = hl.Func("xt_mask_h")
    mask_h[x, y, k] = sum((g5[a + 2] * hl.select(K(a, 0) == kc, hl.f32(1), hl.f32(0)) for a in range(-2, 3)),
                          hl.f32(0))
    msum = hl.Func("xt_msum")
    msum[x, y, k] = sum((g5[b + 2] * mask_h[x, y + b, k] for b in range(-2, 3)), hl.f32(0))

    rgbd = hl.Func("xt_rgb_dir")  # [x, y, c, d]
    chroma = lambda kk: hl.select(K(0, 0) == 2 * kk, C(0, 0),  # noqa: E731
                                  green[x, y, d] + dsum[x, y, d, kk] / hl.max(msum[x, y, kk], hl.f32(1e-6)))
    rgbd[x, y, c, d] = hl.select(c == 0, chroma(0), c == 1, green[x, y, d], chroma(1))

    # homogeneity
    ycc = hl.Func("xt_ycc")  # [x, y, c, d]
    Y = hl.f32(0.2627) * rgbd[x, y, 0, d] + hl.f32(0.678) * rgbd[x, y, 1, d] + hl.f32(0.0593) * rgbd[x, y, 2, d]
    ycc[x, y, c, d] = hl.select(c == 0, Y, c == 1, rgbd[x, y, 2, d] - Y, rgbd[x, y, 0, d] - Y)
    drv = hl.Func("xt_drv")
    dv = 0
    for dd_, (vx, vy) in enumerate(DIRS):
        s = 0
        for ch in range(3):
            ctr = hl.Expr(ycc[x, y, ch, dd_])
            a = ctr - ycc[x + vx, y + vy, ch, dd_]
            b = ctr - ycc[x - vx, y - vy, ch, dd_]
            s = s + a * a + b * b
        dv = hl.select(d == dd_, s, dv) if dd_ else s
    drv[x, y, d] = dv
    lowest = hl.min(hl.min(drv[x, y, 0], drv[x, y, 1]), hl.min(drv[x, y, 2], drv[x, y, 3]))
    hom = hl.Func("xt_hom")
    hom[x, y, d] = hl.select(drv[x, y, d] <= 8 * lowest, hl.f32(1), hl.f32(0))
    h3h = hl.Func("xt_h3h")
    h3h[x, y, d] = hom[x - 1, y, d] + hom[x, y, d] + hom[x + 1, y, d]
    h3 = hl.Func("xt_h3")
    h3[x, y, d] = h3h[x, y - 1, d] + h3h[x, y, d] + h3h[x, y + 1, d]
    h5h = hl.Func("xt_h5h")
    h5h[x, y, d] = sum((h3[x + a, y, d] for a in range(-2, 3)), hl.f32(0))
    hm = hl.Func("xt_hm")
    hm[x, y, d] = sum((h5h[x, y + b, d] for b in range(-2, 3)), hl.f32(0))
    best = hl.max(hl.max(hm[x, y, 0], hm[x, y, 1]), hl.max(hm[x, y, 2], hm[x, y, 3])) * (7.0 / 8.0)
    num, den = 0, 0
    for dd_ in range(4):
        s = hl.select(hm[x, y, dd_] >= best, hl.f32(1), hl.f32(0))
        num = num + s * rgbd[x, y, c, dd_]
        den = den + s

    # plain normalised convolution (borders)
    plain_h = hl.Func("xt_plain_h")
    plain_h[x, y, c] = sum((g5[a + 2] * hl.select(K(a, 0) == c, C(a, 0), hl.f32(0)) for a in range(-2, 3)),
                           hl.f32(0))
    plain_mh = hl.Func("xt_plain_mh")
    plain_mh[x, y, c] = sum((g5[a + 2] * hl.select(K(a, 0) == c, hl.f32(1), hl.f32(0)) for a in range(-2, 3)),
                            hl.f32(0))
    pn = sum((g5[b + 2] * plain_h[x, y + b, c] for b in range(-2, 3)), hl.f32(0))
    pd = sum((g5[b + 2] * plain_mh[x, y + b, c] for b in range(-2, 3)), hl.f32(0))
    plain = hl.select(K(0, 0) == c, C(0, 0), pn / hl.max(pd, hl.f32(1e-6)))

    inside = (x >= BORDER) & (y >= BORDER) & (x < W - BORDER) & (y < H - BORDER)
    out = hl.Func("rgb")
    out[x, y, c] = hl.max(0.0, hl.select(inside, num / hl.max(den, 1.0), plain))

    # schedule: strips of rows; every stage per strip, directions and channels unrolled
    out.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    out.split(y, yo, yi, 16, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    for f in (cfa, col, rng, green, diff, diff_h, dsum, mask_h, msum, rgbd, ycc, drv, hom, h3h, h3, h5h, hm,
              plain_h, plain_mh):
        f.compute_at(out, yo).vectorize(x, VEC, GUARD)
    for f in (rng, plain_h, plain_mh):
        f.bound(c, 0, 3)
    green.bound(d, 0, 4)
    for f in (rgbd, ycc):
        f.bound(c, 0, 3).bound(d, 0, 4)
    for f in (diff, diff_h, dsum):
        f.bound(d, 0, 4).bound(k, 0, 2)
    for f in (mask_h, msum):
        f.bound(k, 0, 2)
    for f in (drv, hom, h3h, h3, h5h, hm):
        f.bound(d, 0, 4)
    return out, [raw, pat, off, wts]


# --------------------------------------------------------------------------- generic paths

def build_blocks(n: int, ncol: int):
    """Approximate (reduced-size) demosaic: one pixel per n x n block (blocks start at the
    buffer's origin); each colour's samples in the block are averaged and the ``ncol``
    colour means are mapped to RGB by ``matrix`` ``[k, c]`` (identity for RGB mosaics)."""
    raw = hl.ImageParam(hl.Float(32), 2, "raw")
    pat = hl.ImageParam(hl.Int(32), 2, "pattern")
    mat = hl.ImageParam(hl.Float(32), 2, "matrix")
    pw, ph = pat.dim(0).extent(), pat.dim(1).extent()
    means = hl.Func("block_means")
    kk = hl.Var("k")
    s, cnt = 0, 0
    for j in range(n):
        for i in range(n):
            hit = pat[(n * x + i) % pw, (n * y + j) % ph] == kk
            s = s + hl.select(hit, raw[n * x + i, n * y + j], hl.f32(0))
            cnt = cnt + hl.select(hit, hl.f32(1), hl.f32(0))
    means[x, y, kk] = s / hl.max(cnt, 1)
    out = hl.Func("blocks")
    out[x, y, c] = sum((mat[k_, c] * means[x, y, k_] for k_ in range(ncol)), hl.f32(0))
    out.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    out.split(y, yo, yi, 8, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    means.compute_at(out, x).bound(kk, 0, ncol).unroll(kk)
    return out, [raw, pat, mat]


def build_nconv(ncol: int):
    """Bilinear interpolation of every colour of a 2x2 mosaic (3x3 tent, normalised
    convolution over that colour's samples), then ``matrix`` ``[k, c]`` to RGB.
    The four-colour (CYGM) path: darktable also interpolates the four channels before
    converting them to RGB (with VNG)."""
    raw = hl.ImageParam(hl.Float(32), 2, "raw")
    pat = hl.ImageParam(hl.Int(32), 2, "pattern")
    mat = hl.ImageParam(hl.Float(32), 2, "matrix")
    m = hl.BoundaryConditions.mirror_interior(raw)
    kk = hl.Var("k")
    w = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    num, den = 0, 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            hit = pat[(x + dx) % 2, (y + dy) % 2] == kk
            num = num + hl.select(hit, w[dy + 1][dx + 1] * m[x + dx, y + dy], hl.f32(0))
            den = den + hl.select(hit, hl.f32(w[dy + 1][dx + 1]), hl.f32(0))
    chan = hl.Func("nconv_channels")
    chan[x, y, kk] = num / hl.max(den, hl.f32(1e-6))
    out = hl.Func("nconv")
    out[x, y, c] = sum((mat[k_, c] * chan[x, y, k_] for k_ in range(ncol)), hl.f32(0))
    out.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    out.split(y, yo, yi, 16, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    chan.compute_at(out, yo).bound(kk, 0, ncol).reorder(kk, x, y).unroll(kk).vectorize(x, VEC, GUARD)
    return out, [raw, pat, mat]
