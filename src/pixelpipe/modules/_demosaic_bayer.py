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

import contextvars
import math

import halide as hl

from ..engine.halide_ops import GUARD, VEC, c, x, y

yo, yi = hl.Var("yo"), hl.Var("yi")

#: set while a kernel is built for a GPU: every stage becomes its own GPU kernel ("roots"),
#: or nothing is scheduled ("none": the caller applies an autoscheduler)
GPU = contextvars.ContextVar("demosaic_gpu", default="")

EPS = hl.f32(1e-5)     # RCD's division guard (data in [0, 1])
EPSSQ = hl.f32(1e-10)  # RCD's guard of the squared high-pass statistics


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
    if GPU.get():
        if GPU.get() == "roots":
            from ..engine.fusion import schedule_gpu

            schedule_gpu(out, [], [(f, []) for f in stages], root_channels=None)
        return
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

#: RCD's refinement (step 5, ours): window radius of the channel-correlation gate and its exponent
RCD_REFINE = dict(radius=2, power=2)


def build_rcd(refine: bool = True):
    """Ratio Corrected Demosaicing (Luis Sanz Rodríguez, release 2.2/2.3, darktable's default)
    followed by a correlation-gated colour-difference refinement of the green.

    1. Vertical/horizontal discrimination: the squared high-pass
       ``(c[-3]-c[-1]-c[+1]+c[+3]) - 3 (c[-2]+c[+2]) + 6 c[0]`` (blind to the CFA's
       colour modulation) summed over 3 pixels along each axis gives V and H;
       ``VH = V / (V + H)``; VH_disc is the centre's VH or the mean of its four
       diagonal neighbours', whichever is further from 0.5.
    2. A 3x3 binomial low-pass of the mosaic (a luminance estimate).
    3. Green at R/B: for each of N, S, W, E the neighbouring green times the
       low-pass ratio ``2 lpf(0) / (lpf(0) + lpf(2 px away))``; the two estimates of
       an axis are weighted by the inverse of their 4-term gradients, the axes
       blended as ``VH_disc * H + (1 - VH_disc) * V``.
    4. B/R at R/B from diagonal colour differences (the same scheme with P/Q
       diagonal statistics), then R and B at G from cardinal colour differences
       with the VH blend.
    5. Refinement (not in the published algorithm): RCD's ratio-corrected
       green is smooth across fine detail (the low-pass ratio damps the high
       frequencies that the centre sample carries). Green at R/B is re-estimated
       as the site's own sample plus its four neighbours' colour differences
       (G - C from steps 3-4), with step 3's gradient weights and VH blend. It
       replaces RCD's green in proportion ``max(rho, 0)^2``, ``rho`` the 5x5
       correlation of the Laplacians of the green and of the site's chroma
       (colour differences are only trusted where the channels move together),
       and step 4 is run again on the new green.
    Input is clipped at 0 (ratios), outputs are >= 0, as darktable does.
    Support radius 18 px (steps 1-4: 10, step 5: 3 + the second step 4).
    """
    raw, pat = bayer_io()
    m = hl.BoundaryConditions.mirror_interior(raw)
    cfa = hl.Func("rcd_cfa")
    cfa[x, y] = hl.max(m[x, y], 0.0)
    C = lambda dx, dy: hl.Expr(cfa[x + dx, y + dy])  # noqa: E731
    here = colour(pat, x, y)
    stages = [cfa]

    def func(name):
        f = hl.Func(name)
        stages.append(f)
        return f

    # step 1: vertical / horizontal discrimination
    hpv, hph = func("rcd_hpf_v"), func("rcd_hpf_h")
    hpv[x, y] = _sq((C(0, -3) - C(0, -1) - C(0, 1) + C(0, 3)) - 3 * (C(0, -2) + C(0, 2)) + 6 * C(0, 0))
    hph[x, y] = _sq((C(-3, 0) - C(-1, 0) - C(1, 0) + C(3, 0)) - 3 * (C(-2, 0) + C(2, 0)) + 6 * C(0, 0))
    vh = func("rcd_vh")
    vs = hl.max(EPSSQ, hpv[x, y - 1] + hpv[x, y] + hpv[x, y + 1])
    hs = hl.max(EPSSQ, hph[x - 1, y] + hph[x, y] + hph[x + 1, y])
    vh[x, y] = vs / (vs + hs)

    def disc(f):
        centre = f[x, y]
        nb = 0.25 * (f[x - 1, y - 1] + f[x + 1, y - 1] + f[x - 1, y + 1] + f[x + 1, y + 1])
        return hl.select(hl.abs(0.5 - centre) < hl.abs(0.5 - nb), nb, centre)

    vh_disc = func("rcd_vh_disc")
    vh_disc[x, y] = disc(vh)
    d = vh_disc[x, y]

    # step 2: low-pass
    lpf = func("rcd_lpf")
    lpf[x, y] = 0.25 * C(0, 0) + 0.125 * (C(0, -1) + C(0, 1) + C(-1, 0) + C(1, 0)) \
        + 0.0625 * (C(-1, -1) + C(1, -1) + C(-1, 1) + C(1, 1))
    L = lambda dx, dy: hl.Expr(lpf[x + dx, y + dy])  # noqa: E731

    # step 3: green at R/B; cardinal gradients (0 N, 1 S, 2 W, 3 E), shared with step 5
    grad = func("rcd_grad")
    n_g = EPS + hl.abs(C(0, -1) - C(0, 1)) + hl.abs(C(0, 0) - C(0, -2)) + hl.abs(C(0, -1) - C(0, -3)) + hl.abs(C(0, -2) - C(0, -4))
    s_g = EPS + hl.abs(C(0, 1) - C(0, -1)) + hl.abs(C(0, 0) - C(0, 2)) + hl.abs(C(0, 1) - C(0, 3)) + hl.abs(C(0, 2) - C(0, 4))
    w_g = EPS + hl.abs(C(-1, 0) - C(1, 0)) + hl.abs(C(0, 0) - C(-2, 0)) + hl.abs(C(-1, 0) - C(-3, 0)) + hl.abs(C(-2, 0) - C(-4, 0))
    e_g = EPS + hl.abs(C(1, 0) - C(-1, 0)) + hl.abs(C(0, 0) - C(2, 0)) + hl.abs(C(1, 0) - C(3, 0)) + hl.abs(C(2, 0) - C(4, 0))
    grad[x, y, c] = hl.select(c == 0, n_g, c == 1, s_g, c == 2, w_g, e_g)
    ng, sg, wg, eg = (grad[x, y, k] for k in range(4))

    def blend(n_est, s_est, w_est, e_est):
        """Inverse-gradient weighting within each axis, then the VH blend."""
        v_est = (sg * n_est + ng * s_est) / (ng + sg)
        h_est = (eg * w_est + wg * e_est) / (eg + wg)
        return d * h_est + (1 - d) * v_est

    l0 = L(0, 0)
    ratio = lambda dx, dy: C(dx, dy) * 2 * l0 / (EPS + l0 + L(2 * dx, 2 * dy))  # noqa: E731
    green = func("rcd_green")
    green[x, y] = hl.select(here == 1, C(0, 0),
                            hl.max(0.0, blend(ratio(0, -1), ratio(0, 1), ratio(-1, 0), ratio(1, 0))))

    # step 4 statistics: P/Q diagonal discrimination (independent of the green)
    hpp, hpq = func("rcd_hpf_p"), func("rcd_hpf_q")
    hpp[x, y] = _sq((C(-3, -3) - C(-1, -1) - C(1, 1) + C(3, 3)) - 3 * (C(-2, -2) + C(2, 2)) + 6 * C(0, 0))
    hpq[x, y] = _sq((C(3, -3) - C(1, -1) - C(-1, 1) + C(-3, 3)) - 3 * (C(2, -2) + C(-2, 2)) + 6 * C(0, 0))
    pq = func("rcd_pq")
    ps = hl.max(EPSSQ, hpp[x - 1, y - 1] + hpp[x, y] + hpp[x + 1, y + 1])
    qs = hl.max(EPSSQ, hpq[x + 1, y - 1] + hpq[x, y] + hpq[x - 1, y + 1])
    pq[x, y] = ps / (ps + qs)
    pq_disc = func("rcd_pq_disc")
    pq_disc[x, y] = disc(pq)

    def step4(gf: hl.Func, tag: str) -> hl.Func:
        """R and B everywhere (k = 0 R, 1 B) from the green ``gf``, >= 0."""
        G = lambda dx, dy: hl.Expr(gf[x + dx, y + dy])  # noqa: E731
        nw_g = EPS + hl.abs(C(-1, -1) - C(1, 1)) + hl.abs(C(-1, -1) - C(-3, -3)) + hl.abs(G(0, 0) - G(-2, -2))
        ne_g = EPS + hl.abs(C(1, -1) - C(-1, 1)) + hl.abs(C(1, -1) - C(3, -3)) + hl.abs(G(0, 0) - G(2, -2))
        sw_g = EPS + hl.abs(C(-1, 1) - C(1, -1)) + hl.abs(C(-1, 1) - C(-3, 3)) + hl.abs(G(0, 0) - G(-2, 2))
        se_g = EPS + hl.abs(C(1, 1) - C(-1, -1)) + hl.abs(C(1, 1) - C(3, 3)) + hl.abs(G(0, 0) - G(2, 2))
        p_est = (nw_g * (C(1, 1) - G(1, 1)) + se_g * (C(-1, -1) - G(-1, -1))) / (nw_g + se_g)
        q_est = (ne_g * (C(-1, 1) - G(-1, 1)) + sw_g * (C(1, -1) - G(1, -1))) / (ne_g + sw_g)
        pd = pq_disc[x, y]
        opp = func("rcd_opposite" + tag)
        opp[x, y] = G(0, 0) + pd * q_est + (1 - pd) * p_est

        def X(dx, dy, k):  # chroma k at non-green sites: own sample or the opposite estimate
            return hl.select(colour(pat, x + dx, y + dy) == k, C(dx, dy), hl.Expr(opp[x + dx, y + dy]))

        def at_green(k):
            n1 = EPS + hl.abs(G(0, 0) - G(0, -2))
            s1 = EPS + hl.abs(G(0, 0) - G(0, 2))
            w1 = EPS + hl.abs(G(0, 0) - G(-2, 0))
            e1 = EPS + hl.abs(G(0, 0) - G(2, 0))
            sn = hl.abs(X(0, -1, k) - X(0, 1, k))
            ew = hl.abs(X(-1, 0, k) - X(1, 0, k))
            n2 = n1 + sn + hl.abs(X(0, -1, k) - X(0, -3, k))
            s2 = s1 + sn + hl.abs(X(0, 1, k) - X(0, 3, k))
            w2 = w1 + ew + hl.abs(X(-1, 0, k) - X(-3, 0, k))
            e2 = e1 + ew + hl.abs(X(1, 0, k) - X(3, 0, k))
            ve = (n2 * (X(0, 1, k) - G(0, 1)) + s2 * (X(0, -1, k) - G(0, -1))) / (n2 + s2)
            he = (e2 * (X(-1, 0, k) - G(-1, 0)) + w2 * (X(1, 0, k) - G(1, 0))) / (e2 + w2)
            return G(0, 0) + d * he + (1 - d) * ve

        def plane(k):
            return hl.select(here == k, C(0, 0), here == 1, at_green(k), opp[x, y])
        rb = func("rcd_rb" + tag)
        rb[x, y, c] = hl.max(0.0, hl.select(c == 0, plane(0), plane(2)))
        return rb

    rb1 = step4(green, "1")
    if not refine:  # the published algorithm (darktable's output)
        rgb = hl.Func("rgb")
        rgb[x, y, c] = hl.select(c == 1, green[x, y], c == 0, rb1[x, y, 0], rb1[x, y, 1])
        grad.bound(c, 0, 4)
        rb1.bound(c, 0, 2)
        strips(rgb, 64, stages)
        return rgb, [raw, pat]

    # step 5: green at R/B from the neighbours' colour differences, gated by channel correlation
    P = RCD_REFINE
    G1 = lambda dx, dy: hl.Expr(green[x + dx, y + dy])  # noqa: E731
    cdiff = func("rcd_cdiff")  # G - R, G - B of steps 3-4
    cdiff[x, y, c] = green[x, y] - rb1[x, y, c]
    own = hl.select(here == 0, 0, 1)  # the chroma plane of an R/B site
    D = lambda dx, dy: hl.Expr(cdiff[x + dx, y + dy, own])  # noqa: E731
    g_ref = C(0, 0) + blend(D(0, -1), D(0, 1), D(-1, 0), D(1, 0))

    lap = func("rcd_lap")  # Laplacians of G, R, B
    pl = lambda dx, dy: hl.select(c == 0, G1(dx, dy), rb1[x + dx, y + dy, hl.max(c - 1, 0)])  # noqa: E731
    lap[x, y, c] = 4 * pl(0, 0) - pl(-1, 0) - pl(1, 0) - pl(0, -1) - pl(0, 1)
    Lp = lambda k: hl.Expr(lap[x, y, k])  # noqa: E731
    prod = func("rcd_prod")  # G.R, R.R, G.B, B.B, G.G
    prod[x, y, c] = hl.select(c == 0, Lp(0) * Lp(1), c == 1, Lp(1) * Lp(1), c == 2, Lp(0) * Lp(2),
                              c == 3, Lp(2) * Lp(2), Lp(0) * Lp(0))
    r = P["radius"]
    box_h = func("rcd_box_h")
    box_h[x, y, c] = sum((hl.Expr(prod[x + i, y, c]) for i in range(-r, r + 1)), hl.f32(0))
    box = func("rcd_box")
    box[x, y, c] = sum((hl.Expr(box_h[x, y + j, c]) for j in range(-r, r + 1)), hl.f32(0))
    S = lambda k: hl.Expr(box[x, y, k])  # noqa: E731
    gg = S(4)
    gc = hl.select(here == 0, S(0), S(2))
    cc = hl.select(here == 0, S(1), S(3))
    rho = gc / (hl.sqrt(hl.max(gg, 0.0)) * hl.sqrt(hl.max(cc, 0.0)) + hl.f32(1e-8))
    alpha = hl.clamp(rho, 0.0, 1.0)
    for _ in range(P["power"] - 1):
        alpha = alpha * hl.clamp(rho, 0.0, 1.0)
    green2 = func("rcd_green2")
    green2[x, y] = hl.select(here == 1, C(0, 0), alpha * hl.max(0.0, g_ref) + (1 - alpha) * G1(0, 0))

    rb2 = step4(green2, "2")
    rgb = hl.Func("rgb")
    rgb[x, y, c] = hl.select(c == 1, green2[x, y], c == 0, rb2[x, y, 0], rb2[x, y, 1])
    for f, n in ((grad, 4), (rb1, 2), (rb2, 2), (cdiff, 2), (lap, 3), (prod, 5), (box_h, 5), (box, 5)):
        f.bound(c, 0, n)
    strips(rgb, 64, stages)
    return rgb, [raw, pat]


def build_rcd_classic():
    """RCD steps 1-4 only: release 2.2/2.3 as published and as darktable runs it."""
    return build_rcd(refine=False)


# --------------------------------------------------------------------------- high quality: MLRI

#: parameters of the high-quality method (tuned on Kodak24 + McMaster, QUALITY.md)
MLRI = dict(g_radius=6, rb_radius=3, eps=1e-4, refine=3, g_tau=0.2, r_tau=0.3)
NARROW = (0.56, 0.35, 0.08, 0.01)                       # GBTF's one-sided colour-difference filter
_W = [math.exp(-k * k / 8.0) for k in range(5)]
WIDE = tuple(w / sum(_W) for w in _W)                    # one-sided Gaussian, sigma 2 px, normalised


class _Stages:
    """Funcs of one root stage: the stage is computed over the whole buffer in
    parallel strips, its helpers per strip."""

    def __init__(self):
        self.groups: list[tuple[hl.Func, list[hl.Func]]] = []
        self.current: list[hl.Func] = []

    def helper(self, name: str) -> hl.Func:
        f = hl.Func(name)
        self.current.append(f)
        return f

    def root(self, f: hl.Func) -> hl.Func:
        self.groups.append((f, self.current))
        self.current = []
        return f

    def schedule(self, rows: int = 32) -> None:
        for f, helpers in self.groups:
            f.compute_root()
            f.split(y, yo, yi, rows, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
            for h in helpers:
                h.compute_at(f, yo).vectorize(x, VEC, GUARD)


def _E(f, dx=0, dy=0, *rest):
    return hl.Expr(f[(x + dx, y + dy) + rest])


def _box(st: _Stages, name: str, expr_of, rx: int, ry: int) -> hl.Func:
    """Separable window sum of ``expr_of(dx, dy)`` over (2 rx + 1) x (2 ry + 1)."""
    src = st.helper(name + "_src")
    src[x, y] = expr_of(0, 0)
    hs = st.helper(name + "_h")
    hs[x, y] = sum((_E(src, i, 0) for i in range(-rx, rx + 1)), hl.f32(0)) if rx else _E(src)
    vs = st.helper(name)
    vs[x, y] = sum((_E(hs, 0, j) for j in range(-ry, ry + 1)), hl.f32(0)) if ry else _E(hs)
    return vs


def build_mlri():
    """High-quality Bayer method: minimised-Laplacian residual interpolation (MLRI,
    Kiku, Monno, Tanaka, Okutomi 2014) with gradient-weighted directional fusion
    (GBTF, Pekkucuksen and Altunbasak 2010) and an adaptive colour-difference
    refinement.

    Green: along each row (and each column) the green and the row's chroma are
    linearly interpolated; each is then estimated from the other as a local linear
    model ``a * guide + b`` fitted in a 13-pixel window, ``a`` minimising the
    energy of the Laplacian (step 2) of the residual and ``b`` matching the means;
    the residual at the samples is linearly interpolated back (residual
    interpolation). The horizontal and vertical colour differences G - C are
    fused over the four half-directions with weights 1 / (5x5 sum of their
    gradients)^2, each filtered one-sided; where the colour difference is smooth
    relative to the green detail (ratio of 5x5 gradient sums, scale-free) a wider
    one-sided Gaussian is blended in.
    Red and blue: MLRI in 7x7 windows with the full green as guide, blended with
    plain colour-difference interpolation by their local residual energy.
    Refinement (3 rounds): green at R/B is re-estimated from the neighbours'
    colour differences against the new R/B (directionally weighted), blended in
    only where colour differences are smooth (the same scale-free ratio), and
    R/B are interpolated again.
    """
    raw, pat = bayer_io()
    P = MLRI
    m = hl.BoundaryConditions.mirror_interior(raw)
    cfa = hl.Func("mlri_cfa")
    cfa[x, y] = m[x, y]
    C = lambda dx, dy: _E(cfa, dx, dy)  # noqa: E731
    col = lambda dx=0, dy=0: colour(pat, x + dx, y + dy)  # noqa: E731
    isg = lambda dx=0, dy=0: col(dx, dy) == 1  # noqa: E731
    eps = hl.f32(P["eps"])
    st = _Stages()

    def onedim(target_is_green: bool, guide: hl.Func, ax: int, name: str) -> hl.Func:
        """Residual-interpolated estimate of the target colour along axis ``ax``."""
        ux, uy = (1, 0) if ax == 0 else (0, 1)
        mask = (lambda dx, dy: isg(dx, dy)) if target_is_green else (lambda dx, dy: ~isg(dx, dy))
        fm = lambda dx, dy: hl.select(mask(dx, dy), hl.f32(1), hl.f32(0))  # noqa: E731
        lapt = lambda dx, dy: (2 * C(dx, dy) - C(dx - 2 * ux, dy - 2 * uy) - C(dx + 2 * ux, dy + 2 * uy))  # noqa: E731
        lapg = lambda dx, dy: (2 * _E(guide, dx, dy) - _E(guide, dx - 2 * ux, dy - 2 * uy)  # noqa: E731
                               - _E(guide, dx + 2 * ux, dy + 2 * uy))
        r = P["g_radius"]
        rx, ry = (r, 0) if ax == 0 else (0, r)
        stats = st.helper(name + "_stats")  # per pixel: mask, lapT*lapG, lapG^2, T, guide at samples
        stats[x, y, c] = hl.select(c == 0, fm(0, 0),
                                   c == 1, fm(0, 0) * lapt(0, 0) * lapg(0, 0),
                                   c == 2, fm(0, 0) * lapg(0, 0) * lapg(0, 0),
                                   c == 3, fm(0, 0) * C(0, 0),
                                   fm(0, 0) * _E(guide))
        sums = st.helper(name + "_sums")
        sums[x, y, c] = sum((_E(stats, i * ux, i * uy, c) for i in range(-r, r + 1)), hl.f32(0))
        n = _E(sums, 0, 0, 0)
        a = (_E(sums, 0, 0, 1) + eps) / (_E(sums, 0, 0, 2) + eps)
        ab = st.helper(name + "_ab")
        ab[x, y, c] = hl.select(c == 0, a, (_E(sums, 0, 0, 3) - a * _E(sums, 0, 0, 4)) / n)
        mab = st.helper(name + "_mab")
        mab[x, y, c] = sum((_E(ab, i * ux, i * uy, c) for i in range(-r, r + 1)), hl.f32(0)) / (2 * r + 1)
        est = st.helper(name + "_est")
        est[x, y] = _E(mab, 0, 0, 0) * _E(guide) + _E(mab, 0, 0, 1)
        res = lambda dx, dy: C(dx, dy) - _E(est, dx, dy)  # noqa: E731
        out = st.helper(name)
        out[x, y] = _E(est) + hl.select(mask(0, 0), res(0, 0), (res(-ux, -uy) + res(ux, uy)) * 0.5)
        return out

    d = {}
    for ax in (0, 1):
        ux, uy = (1, 0) if ax == 0 else (0, 1)
        lin = (C(-ux, -uy) + C(ux, uy)) * 0.5
        gl = st.helper(f"mlri_gl{ax}")
        gl[x, y] = hl.select(isg(), C(0, 0), lin)
        cl = st.helper(f"mlri_cl{ax}")
        cl[x, y] = hl.select(isg(), lin, C(0, 0))
        g_d = onedim(True, cl, ax, f"mlri_g{ax}")
        c_d = onedim(False, gl, ax, f"mlri_c{ax}")
        dd = hl.Func(f"mlri_diff{ax}")
        dd[x, y] = _E(g_d) - _E(c_d)
        d[ax] = st.root(dd)

    # fusion of the directional colour differences
    dh, dv = d[0], d[1]
    grad_h = lambda dx, dy: hl.abs(_E(dh, dx + 1, dy) - _E(dh, dx - 1, dy))  # noqa: E731
    grad_v = lambda dx, dy: hl.abs(_E(dv, dx, dy + 1) - _E(dv, dx, dy - 1))  # noqa: E731
    bh = _box(st, "mlri_bh", grad_h, 2, 2)
    bv = _box(st, "mlri_bv", grad_v, 2, 2)
    w = lambda s: 1.0 / (s * s + hl.f32(1e-10))  # noqa: E731
    wn, ws, ww, we = w(_E(bv, 0, -2)), w(_E(bv, 0, 2)), w(_E(bh, -2, 0)), w(_E(bh, 2, 0))

    def fuse(f):
        fn = sum((hl.f32(f[k]) * _E(dv, 0, -k) for k in range(len(f))), hl.f32(0))
        fs = sum((hl.f32(f[k]) * _E(dv, 0, k) for k in range(len(f))), hl.f32(0))
        fw = sum((hl.f32(f[k]) * _E(dh, -k, 0) for k in range(len(f))), hl.f32(0))
        fe = sum((hl.f32(f[k]) * _E(dh, k, 0) for k in range(len(f))), hl.f32(0))
        return (wn * fn + ws * fs + ww * fw + we * fe) / (wn + ws + ww + we)

    narrow = st.helper("mlri_dnarrow")
    narrow[x, y] = fuse(NARROW)
    g0 = st.helper("mlri_g0")
    g0[x, y] = hl.select(isg(), C(0, 0), C(0, 0) + _E(narrow))
    gx = lambda f: lambda dx, dy: (hl.abs(_E(f, dx + 1, dy) - _E(f, dx - 1, dy))  # noqa: E731
                                   + hl.abs(_E(f, dx, dy + 1) - _E(f, dx, dy - 1)))
    s_d = _box(st, "mlri_sd", gx(narrow), 2, 2)
    s_g = _box(st, "mlri_sg", gx(g0), 2, 2)
    ratio = _E(s_d) / (_E(s_g) + hl.f32(1e-4)) / hl.f32(P["g_tau"])
    alpha = hl.exp(-ratio * ratio)
    green = hl.Func("mlri_green")
    green[x, y] = hl.select(isg(), C(0, 0), C(0, 0) + alpha * fuse(WIDE) + (1 - alpha) * _E(narrow))
    st.root(green)

    def chroma(G: hl.Func, k: int, name: str) -> hl.Func:
        """R (k = 0) or B (k = 2) everywhere, guided by the full green G."""
        r = P["rb_radius"]
        mk = lambda dx, dy: col(dx, dy) == k  # noqa: E731
        fm = lambda dx, dy: hl.select(mk(dx, dy), hl.f32(1), hl.f32(0))  # noqa: E731
        lap = lambda f: lambda dx, dy: (4 * f(dx, dy) - f(dx - 2, dy) - f(dx + 2, dy)  # noqa: E731
                                        - f(dx, dy - 2) - f(dx, dy + 2))
        g = lambda dx, dy: _E(G, dx, dy)  # noqa: E731
        lt, lg = lap(C), lap(g)
        stats = st.helper(name + "_stats")
        stats[x, y, c] = fm(0, 0) * hl.select(c == 0, hl.f32(1), c == 1, lt(0, 0) * lg(0, 0),
                                              c == 2, lg(0, 0) * lg(0, 0), c == 3, C(0, 0), g(0, 0))
        sh_ = st.helper(name + "_sh")
        sh_[x, y, c] = sum((_E(stats, i, 0, c) for i in range(-r, r + 1)), hl.f32(0))
        sums = st.helper(name + "_sums")
        sums[x, y, c] = sum((_E(sh_, 0, j, c) for j in range(-r, r + 1)), hl.f32(0))
        S = lambda i: _E(sums, 0, 0, i)  # noqa: E731
        a = (S(1) + eps) / (S(2) + eps)
        ab = st.helper(name + "_ab")
        ab[x, y, c] = hl.select(c == 0, a, (S(3) - a * S(4)) / S(0))
        abh = st.helper(name + "_abh")
        abh[x, y, c] = sum((_E(ab, i, 0, c) for i in range(-r, r + 1)), hl.f32(0))
        mab = st.helper(name + "_mab")
        mab[x, y, c] = sum((_E(abh, 0, j, c) for j in range(-r, r + 1)), hl.f32(0)) / ((2 * r + 1) ** 2)
        # residuals at the samples of k of the two models (MLRI, plain colour difference)
        resid = st.helper(name + "_res")
        resid[x, y, c] = fm(0, 0) * (C(0, 0) - hl.select(c == 0, _E(mab, 0, 0, 0) * g(0, 0) + _E(mab, 0, 0, 1),
                                                          g(0, 0)))
        R = lambda dx, dy, i: _E(resid, dx, dy, i)  # noqa: E731
        bil = lambda i: (R(0, 0, i) + 0.5 * (R(-1, 0, i) + R(1, 0, i) + R(0, -1, i) + R(0, 1, i))  # noqa: E731
                         + 0.25 * (R(-1, -1, i) + R(1, -1, i) + R(-1, 1, i) + R(1, 1, i)))
        crit_src = lambda dx, dy: (hl.abs(lap(lambda ex, ey: R(ex, ey, 0))(dx, dy)) * fm(dx, dy))  # noqa: E731
        crit_src0 = lambda dx, dy: (hl.abs(lap(lambda ex, ey: R(ex, ey, 1))(dx, dy)) * fm(dx, dy))  # noqa: E731
        c1 = _box(st, name + "_c1", crit_src, 2, 2)
        c0 = _box(st, name + "_c0", crit_src0, 2, 2)
        v1 = _E(mab, 0, 0, 0) * g(0, 0) + _E(mab, 0, 0, 1) + bil(0)
        v0 = g(0, 0) + bil(1)
        w1 = 1.0 / ((_E(c1) + hl.f32(1e-6)) * (_E(c1) + hl.f32(1e-6)))
        w0 = 1.0 / ((_E(c0) + hl.f32(1e-6)) * (_E(c0) + hl.f32(1e-6)))
        out = hl.Func(name)
        out[x, y] = (w0 * v0 + w1 * v1) / (w0 + w1)
        return st.root(out)

    G = green
    R = chroma(G, 0, "mlri_r0")
    B = chroma(G, 2, "mlri_b0")
    for it in range(P["refine"]):
        gref = st.helper(f"mlri_gref{it}")
        e = lambda f, dx=0, dy=0: _E(f, dx, dy)  # noqa: E731

        def renew(X):
            dD = lambda dx, dy: e(G, dx, dy) - e(X, dx, dy)  # noqa: E731
            dh_ = hl.abs(e(X, 1, 0) - e(X, -1, 0)) + hl.abs(2 * e(X) - e(X, 2, 0) - e(X, -2, 0)) + hl.f32(1e-6)
            dv_ = hl.abs(e(X, 0, 1) - e(X, 0, -1)) + hl.abs(2 * e(X) - e(X, 0, 2) - e(X, 0, -2)) + hl.f32(1e-6)
            wh, wv = 1.0 / (dh_ * dh_), 1.0 / (dv_ * dv_)
            return e(X) + (wh * (dD(1, 0) + dD(-1, 0)) + wv * (dD(0, 1) + dD(0, -1))) / (2 * (wh + wv))
        gref[x, y] = hl.select(col() == 0, renew(R), col() == 2, renew(B), e(G))
        grad = lambda f: (hl.abs(f(1, 0) - f(-1, 0)) + hl.abs(f(0, 1) - f(0, -1)))  # noqa: E731
        sd = _box(st, f"mlri_rsd{it}", lambda dx, dy: (
            grad(lambda ex, ey: e(G, dx + ex, dy + ey) - e(R, dx + ex, dy + ey))
            + grad(lambda ex, ey: e(G, dx + ex, dy + ey) - e(B, dx + ex, dy + ey))), 2, 2)
        sg = _box(st, f"mlri_rsg{it}", lambda dx, dy: grad(lambda ex, ey: e(G, dx + ex, dy + ey)), 2, 2)
        ratio = e(sd) / (2 * e(sg) + hl.f32(1e-4)) / hl.f32(P["r_tau"])
        al = hl.exp(-ratio * ratio)
        g_new = hl.Func(f"mlri_green{it + 1}")
        g_new[x, y] = al * e(gref) + (1 - al) * e(G)
        G = st.root(g_new)
        R = chroma(G, 0, f"mlri_r{it + 1}")
        B = chroma(G, 2, f"mlri_b{it + 1}")

    rgb = hl.Func("rgb")
    rgb[x, y, c] = hl.max(0.0, hl.select(c == 0, _E(R), c == 1, _E(G), _E(B)))
    st.schedule(32)
    rgb.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    rgb.split(y, yo, yi, 32, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    return rgb, [raw, pat]
