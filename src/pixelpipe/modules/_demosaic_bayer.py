"""Halide algorithms of the Bayer demosaic methods (helpers of ``demosaic.py``).

Every builder returns ``(output Func, [raw ImageParam, pattern ImageParam])``:
``raw`` is the (W, H) mosaic (values after white balance, about [0, 1]),
``pattern`` the 2x2 colour table ``[i, j]`` (0 R, 1 G, 2 B) of the buffer's
(x % 2, y % 2); the output is planar RGB ``[x, y, c]`` of the buffer's size.
Beyond the buffer the mosaic is mirrored about its edge pixels
(``mirror_interior``), which keeps every sample's CFA colour, so borders need
no special case. Buffers are at least 16 pixels on each side (the module
handles smaller ones without these kernels).

Schedules: the output is cut into strips of rows processed in parallel; each
intermediate stage is computed per strip into a small cache-resident buffer
(``compute_at`` the strip) with ``x`` vectorised, so neighbourhood stages are
never written to main memory. The high-quality method's stages have long
chains of neighbourhood dependencies; its main stages are computed over the
whole buffer, each in parallel strips with its own helpers per strip.
"""
from __future__ import annotations

import halide as hl

from ..engine.halide_ops import GUARD, VEC, c, x, y

yo, yi = hl.Var("yo"), hl.Var("yi")

EPS = 1e-5     # RCD's division guard (data in [0, 1])
EPSSQ = 1e-10  # RCD's guard of the squared high-pass statistics


def bayer_io():
    raw = hl.ImageParam(hl.Float(32), 2, "raw")
    pat = hl.ImageParam(hl.Int(32), 2, "pattern")
    return raw, pat


def colour(pat, xx, yy):
    return pat[xx % 2, yy % 2]


def _sq(e):
    return e * e


def strips(out: hl.Func, rows: int, stages, planar: bool = True, sliding: bool = False) -> None:
    """Parallel strips of ``rows`` rows; ``stages`` computed per strip, x vectorised.

    ``sliding``: each stage is computed row by row as the output advances and kept
    in a circular buffer of the rows still needed (Halide's sliding window), so a
    strip's halo is the only recomputation.
    """
    import os
    sliding = sliding or os.environ.get("DM_SLIDE") == "1"
    rows = int(os.environ.get("DM_ROWS", rows))
    if planar:
        out.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    out.split(y, yo, yi, rows, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    for f in stages:
        if sliding:
            f.store_at(out, yo).compute_at(out, yi)
        else:
            f.compute_at(out, yo)
        f.vectorize(x, VEC, GUARD)
        if f.dimensions() == 3:
            f.reorder(c, x, y).unroll(c)


# --------------------------------------------------------------------------- bilinear, MHC, half

def build_bilinear():
    raw, pat = bayer_io()
    m = hl.BoundaryConditions.mirror_interior(raw)
    here = hl.Func("here")
    here[x, y] = colour(pat, x, y)
    # normalised convolution: sum(w * v * [colour == c]) / sum(w * [colour == c])
    w = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    num = 0
    den = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            mask = hl.select(here[x + dx, y + dy] == c, hl.f32(w[dy + 1][dx + 1]), hl.f32(0))
            num = num + mask * m[x + dx, y + dy]
            den = den + mask
    rgb = hl.Func("rgb")
    rgb[x, y, c] = num / den
    strips(rgb, 32, [])
    return rgb, [raw, pat]


def build_mhc():
    raw, pat = bayer_io()
    m = hl.BoundaryConditions.mirror_interior(raw)
    v = lambda dx, dy: hl.Expr(m[x + dx, y + dy])  # noqa: E731
    # Malvar-He-Cutler filters (x8)
    g_at_rb = (4 * v(0, 0) + 2 * (v(-1, 0) + v(1, 0) + v(0, -1) + v(0, 1))
               - (v(-2, 0) + v(2, 0) + v(0, -2) + v(0, 2))) / 8
    along_row = (5 * v(0, 0) + 4 * (v(-1, 0) + v(1, 0)) - (v(-2, 0) + v(2, 0))
                 - (v(-1, -1) + v(1, -1) + v(-1, 1) + v(1, 1)) + 0.5 * (v(0, -2) + v(0, 2))) / 8
    along_col = (5 * v(0, 0) + 4 * (v(0, -1) + v(0, 1)) - (v(0, -2) + v(0, 2))
                 - (v(-1, -1) + v(1, -1) + v(-1, 1) + v(1, 1)) + 0.5 * (v(-2, 0) + v(2, 0))) / 8
    diagonal = (6 * v(0, 0) + 2 * (v(-1, -1) + v(1, -1) + v(-1, 1) + v(1, 1))
                - 1.5 * (v(-2, 0) + v(2, 0) + v(0, -2) + v(0, 2))) / 8
    filt = hl.Func("filters")  # the four estimates, computed once per pixel
    filt[x, y, c] = hl.select(c == 0, g_at_rb, c == 1, along_row, c == 2, along_col, diagonal)
    here = colour(pat, x, y)
    # does this row carry colour k?  (Bayer: each row has G and one of R/B)
    row_has = lambda k: (pat[0, y % 2] == k) | (pat[1, y % 2] == k)  # noqa: E731

    def chroma(k):
        return hl.select(here == k, m[x, y],
                         here == 1, hl.select(row_has(k), filt[x, y, 1], filt[x, y, 2]),
                         filt[x, y, 3])
    rgb = hl.Func("rgb")
    rgb[x, y, c] = hl.select(c == 0, chroma(0), c == 1, hl.select(here == 1, m[x, y], filt[x, y, 0]), chroma(2))
    strips(rgb, 32, [filt])
    filt.bound(c, 0, 4)
    return rgb, [raw, pat]


def build_half():
    """One RGB pixel per 2x2 block (blocks start at even buffer positions); output is half size."""
    raw, pat = bayer_io()
    half = hl.Func("half")
    acc = {}
    for k in range(3):
        s, n = 0, 0
        for j in (0, 1):
            for i in (0, 1):
                hit = pat[i, j] == k
                s = s + hl.select(hit, raw[2 * x + i, 2 * y + j], hl.f32(0))
                n = n + hl.select(hit, hl.f32(1), hl.f32(0))
        acc[k] = s / hl.max(n, 1)
    half[x, y, c] = hl.select(c == 0, acc[0], c == 1, acc[1], acc[2])
    strips(half, 16, [])
    return half, [raw, pat]


# --------------------------------------------------------------------------- PPG

def build_ppg():
    """Patterned Pixel Grouping (Chuan-kai Lin), as darktable's "PPG" (without its median prefilter).

    1. Green at R/B: Hamilton-Adams style estimates along the row and the column
       (neighbour average plus half the second difference of the centre colour),
       the one across the weaker gradient (3x first/second differences over 3 px,
       2x the outer differences) is taken and clamped to its two green neighbours.
    2. R/B at G: the neighbours' colour differences (C - G) averaged along the
       row (for the row's colour) or the column, added to the green.
    3. B/R at R/B: along the diagonal with the smaller colour-difference gradient
       (both when equal), colour-difference ("hue transit") interpolation.
    """
    raw, pat = bayer_io()
    m = hl.BoundaryConditions.mirror_interior(raw)
    v = lambda dx, dy: hl.Expr(m[x + dx, y + dy])  # noqa: E731
    here = colour(pat, x, y)
    gx = (v(-1, 0) + v(0, 0) + v(1, 0)) * 2 - v(2, 0) - v(-2, 0)
    dxs = (hl.abs(v(-2, 0) - v(0, 0)) + hl.abs(v(2, 0) - v(0, 0)) + hl.abs(v(-1, 0) - v(1, 0))) * 3 \
        + (hl.abs(v(3, 0) - v(1, 0)) + hl.abs(v(-3, 0) - v(-1, 0))) * 2
    gy = (v(0, -1) + v(0, 0) + v(0, 1)) * 2 - v(0, 2) - v(0, -2)
    dys = (hl.abs(v(0, -2) - v(0, 0)) + hl.abs(v(0, 2) - v(0, 0)) + hl.abs(v(0, -1) - v(0, 1))) * 3 \
        + (hl.abs(v(0, 3) - v(0, 1)) + hl.abs(v(0, -3) - v(0, -1))) * 2
    use_y = hl.clamp(gy * 0.25, hl.min(v(0, -1), v(0, 1)), hl.max(v(0, -1), v(0, 1)))
    use_x = hl.clamp(gx * 0.25, hl.min(v(-1, 0), v(1, 0)), hl.max(v(-1, 0), v(1, 0)))
    green = hl.Func("ppg_green")
    green[x, y] = hl.select(here == 1, v(0, 0), dxs > dys, use_y, use_x)
    g = lambda dx, dy: hl.Expr(green[x + dx, y + dy])  # noqa: E731
    # colour differences C - G of the neighbours
    row_k = hl.select(colour(pat, x + 1, y) == 1, colour(pat, x, y), colour(pat, x + 1, y))  # this row's chroma
    along_row = g(0, 0) + (v(-1, 0) - g(-1, 0) + v(1, 0) - g(1, 0)) * 0.5
    along_col = g(0, 0) + (v(0, -1) - g(0, -1) + v(0, 1) - g(0, 1)) * 0.5
    d1 = hl.abs(v(-1, -1) - v(1, 1)) + hl.abs(g(-1, -1) - g(0, 0)) + hl.abs(g(1, 1) - g(0, 0))
    q1 = v(-1, -1) + v(1, 1) + 2 * g(0, 0) - g(-1, -1) - g(1, 1)
    d2 = hl.abs(v(1, -1) - v(-1, 1)) + hl.abs(g(1, -1) - g(0, 0)) + hl.abs(g(-1, 1) - g(0, 0))
    q2 = v(1, -1) + v(-1, 1) + 2 * g(0, 0) - g(1, -1) - g(-1, 1)
    diag = hl.select(d1 > d2, q2 * 0.5, d1 < d2, q1 * 0.5, (q1 + q2) * 0.25)
    rgb = hl.Func("rgb")
    rgb[x, y, c] = hl.select(c == 1, g(0, 0),
                             here == c, v(0, 0),
                             here == 1, hl.select(row_k == c, along_row, along_col),
                             diag)
    strips(rgb, 32, [green])
    return rgb, [raw, pat]


# --------------------------------------------------------------------------- RCD

def build_rcd():
    """Ratio Corrected Demosaicing (Luis Sanz Rodríguez, release 2.2/2.3), darktable's default.

    1. Vertical/horizontal discrimination: the squared high-pass
       ``(c[-3]-c[-1]-c[+1]+c[+3]) - 3 (c[-2]+c[+2]) + 6 c[0]`` (blind to the CFA's
       colour modulation) summed over 3 pixels along each axis gives V and H;
       ``VH = V / (V + H)``.
    2. A 3x3 binomial low-pass of the mosaic (a luminance estimate).
    3. Green at R/B: for each of N, S, W, E the neighbouring green times the
       low-pass ratio ``2 lpf(0) / (lpf(0) + lpf(2 px away))``, weighted by the
       inverse of 4-term directional gradients, then blended as
       ``VH_disc * H + (1 - VH_disc) * V``, where VH_disc is the centre's VH or the
       mean of its four diagonal neighbours', whichever is further from 0.5.
    4. B/R at R/B from diagonal colour differences (the same scheme with P/Q
       diagonal statistics), then R and B at G from cardinal colour differences
       with the VH blend.
    Input is clipped at 0 (ratios), outputs are >= 0, as darktable does.
    """
    raw, pat = bayer_io()
    m = hl.BoundaryConditions.mirror_interior(raw)
    cfa = hl.Func("rcd_cfa")
    cfa[x, y] = hl.max(m[x, y], 0.0)
    C = lambda dx, dy: hl.Expr(cfa[x + dx, y + dy])  # noqa: E731
    here = colour(pat, x, y)

    hpv, hph = hl.Func("rcd_hpf_v"), hl.Func("rcd_hpf_h")
    hpv[x, y] = _sq((C(0, -3) - C(0, -1) - C(0, 1) + C(0, 3)) - 3 * (C(0, -2) + C(0, 2)) + 6 * C(0, 0))
    hph[x, y] = _sq((C(-3, 0) - C(-1, 0) - C(1, 0) + C(3, 0)) - 3 * (C(-2, 0) + C(2, 0)) + 6 * C(0, 0))
    vh = hl.Func("rcd_vh")
    vs = hl.max(EPSSQ, hpv[x, y - 1] + hpv[x, y] + hpv[x, y + 1])
    hs = hl.max(EPSSQ, hph[x - 1, y] + hph[x, y] + hph[x + 1, y])
    vh[x, y] = vs / (vs + hs)

    lpf = hl.Func("rcd_lpf")
    lpf[x, y] = 0.25 * C(0, 0) + 0.125 * (C(0, -1) + C(0, 1) + C(-1, 0) + C(1, 0)) \
        + 0.0625 * (C(-1, -1) + C(1, -1) + C(-1, 1) + C(1, 1))
    L = lambda dx, dy: hl.Expr(lpf[x + dx, y + dy])  # noqa: E731

    def disc(f):
        centre = f[x, y]
        nb = 0.25 * (f[x - 1, y - 1] + f[x + 1, y - 1] + f[x - 1, y + 1] + f[x + 1, y + 1])
        return hl.select(hl.abs(0.5 - centre) < hl.abs(0.5 - nb), nb, centre)

    vh_disc = hl.Func("rcd_vh_disc")
    vh_disc[x, y] = disc(vh)

    n_g = EPS + hl.abs(C(0, -1) - C(0, 1)) + hl.abs(C(0, 0) - C(0, -2)) + hl.abs(C(0, -1) - C(0, -3)) + hl.abs(C(0, -2) - C(0, -4))
    s_g = EPS + hl.abs(C(0, 1) - C(0, -1)) + hl.abs(C(0, 0) - C(0, 2)) + hl.abs(C(0, 1) - C(0, 3)) + hl.abs(C(0, 2) - C(0, 4))
    w_g = EPS + hl.abs(C(-1, 0) - C(1, 0)) + hl.abs(C(0, 0) - C(-2, 0)) + hl.abs(C(-1, 0) - C(-3, 0)) + hl.abs(C(-2, 0) - C(-4, 0))
    e_g = EPS + hl.abs(C(1, 0) - C(-1, 0)) + hl.abs(C(0, 0) - C(2, 0)) + hl.abs(C(1, 0) - C(3, 0)) + hl.abs(C(2, 0) - C(4, 0))
    l0 = L(0, 0)
    n_e = C(0, -1) * 2 * l0 / (EPS + l0 + L(0, -2))
    s_e = C(0, 1) * 2 * l0 / (EPS + l0 + L(0, 2))
    w_e = C(-1, 0) * 2 * l0 / (EPS + l0 + L(-2, 0))
    e_e = C(1, 0) * 2 * l0 / (EPS + l0 + L(2, 0))
    v_est = (s_g * n_e + n_g * s_e) / (n_g + s_g)
    h_est = (e_g * w_e + w_g * e_e) / (e_g + w_g)
    d = vh_disc[x, y]
    green = hl.Func("rcd_green")
    green[x, y] = hl.select(here == 1, C(0, 0), hl.max(0.0, d * h_est + (1 - d) * v_est))
    G = lambda dx, dy: hl.Expr(green[x + dx, y + dy])  # noqa: E731

    hpp, hpq = hl.Func("rcd_hpf_p"), hl.Func("rcd_hpf_q")
    hpp[x, y] = _sq((C(-3, -3) - C(-1, -1) - C(1, 1) + C(3, 3)) - 3 * (C(-2, -2) + C(2, 2)) + 6 * C(0, 0))
    hpq[x, y] = _sq((C(3, -3) - C(1, -1) - C(-1, 1) + C(-3, 3)) - 3 * (C(2, -2) + C(-2, 2)) + 6 * C(0, 0))
    pq = hl.Func("rcd_pq")
    ps = hl.max(EPSSQ, hpp[x - 1, y - 1] + hpp[x, y] + hpp[x + 1, y + 1])
    qs = hl.max(EPSSQ, hpq[x + 1, y - 1] + hpq[x, y] + hpq[x - 1, y + 1])
    pq[x, y] = ps / (ps + qs)

    # the opposite chroma at R/B sites from the diagonal neighbours (original samples)
    nw_g = EPS + hl.abs(C(-1, -1) - C(1, 1)) + hl.abs(C(-1, -1) - C(-3, -3)) + hl.abs(G(0, 0) - G(-2, -2))
    ne_g = EPS + hl.abs(C(1, -1) - C(-1, 1)) + hl.abs(C(1, -1) - C(3, -3)) + hl.abs(G(0, 0) - G(2, -2))
    sw_g = EPS + hl.abs(C(-1, 1) - C(1, -1)) + hl.abs(C(-1, 1) - C(-3, 3)) + hl.abs(G(0, 0) - G(-2, 2))
    se_g = EPS + hl.abs(C(1, 1) - C(-1, -1)) + hl.abs(C(1, 1) - C(3, 3)) + hl.abs(G(0, 0) - G(2, 2))
    p_est = (nw_g * (C(1, 1) - G(1, 1)) + se_g * (C(-1, -1) - G(-1, -1))) / (nw_g + se_g)
    q_est = (ne_g * (C(-1, 1) - G(-1, 1)) + sw_g * (C(1, -1) - G(1, -1))) / (ne_g + sw_g)
    pd = disc(pq)
    opp = hl.Func("rcd_opposite")
    opp[x, y] = G(0, 0) + pd * q_est + (1 - pd) * p_est

    # chroma plane k at non-green sites (own sample or the opposite estimate)
    def X(dx, dy, k):
        return hl.select(colour(pat, x + dx, y + dy) == k, C(dx, dy), hl.Expr(opp[x + dx, y + dy]))

    def at_green(k):
        n1 = EPS + hl.abs(G(0, 0) - G(0, -2))
        s1 = EPS + hl.abs(G(0, 0) - G(0, 2))
        w1 = EPS + hl.abs(G(0, 0) - G(-2, 0))
        e1 = EPS + hl.abs(G(0, 0) - G(2, 0))
        sn = hl.abs(X(0, -1, k) - X(0, 1, k))
        ew = hl.abs(X(-1, 0, k) - X(1, 0, k))
        ng = n1 + sn + hl.abs(X(0, -1, k) - X(0, -3, k))
        sg = s1 + sn + hl.abs(X(0, 1, k) - X(0, 3, k))
        wg = w1 + ew + hl.abs(X(-1, 0, k) - X(-3, 0, k))
        eg = e1 + ew + hl.abs(X(1, 0, k) - X(3, 0, k))
        ne = X(0, -1, k) - G(0, -1)
        se = X(0, 1, k) - G(0, 1)
        we = X(-1, 0, k) - G(-1, 0)
        ee = X(1, 0, k) - G(1, 0)
        ve = (ng * se + sg * ne) / (ng + sg)
        he = (eg * we + wg * ee) / (eg + wg)
        dd = vh_disc[x, y]
        return G(0, 0) + dd * he + (1 - dd) * ve

    rgb = hl.Func("rgb")
    rgb[x, y, c] = hl.max(0.0, hl.select(c == 1, G(0, 0),
                                         here == c, C(0, 0),
                                         here == 1, hl.select(c == 0, at_green(0), at_green(2)),
                                         opp[x, y]))
    strips(rgb, 32, [cfa, hpv, hph, vh, vh_disc, lpf, green, hpp, hpq, pq, opp])
    return rgb, [raw, pat]
