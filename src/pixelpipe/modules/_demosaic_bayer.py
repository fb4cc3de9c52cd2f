"""Halide algorithms of the Bayer demosaic methods (helpers of ``demosaic.py``).

Every builder returns ``(output Func, [raw ImageParam, pattern ImageParam])``:
``raw`` is the (W, H) mosaic (values after white balance, about [0, 1]),
``pattern`` the 2x2 colour table ``[i, j]`` (0 R, 1 G, 2 B) of the buffer's
(x % 2, y % 2); the output is planar RGB ``[x, y, c]`` of the buffer's size.
Beyond the buffer the mosaic is mirrored about its edge pixels
(``mirror_interior``), which keeps every sample's CFA colour, so borders need
no special case. Buffers can be as small as 2 x 2, of odd sizes (``run_kernel``
widens thinner ones).

Schedules: the output is cut into strips of rows processed in parallel; each
intermediate stage is computed per strip into a small cache-resident buffer
(``compute_at`` the strip) with ``x`` vectorised, so neighbourhood stages are
never written to main memory. RCD computes its stages on the 2x2 quads of the
mosaic (every site of a quad has a known colour, so no stage tests a pixel's
colour and each is computed only at the sites that read it) and per output
tile rather than strip (``RCD_TILE``: its deep chain of stencils makes a strip's
halo rows costly, and a tile's buffers stay in cache). The high-quality
method's stages have long chains of neighbourhood dependencies; its main
stages are computed over the whole buffer, each in parallel strips with its
own helpers per strip.
"""
from __future__ import annotations

import contextvars
import math

import halide as hl

from ..engine.halide_ops import GUARD, VEC, c, x, xi, xo, y

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

# RCD runs on the quad grid: quad (x, y) holds the photosites (2 x + i + ox, 2 y + j) of its
# four sites (i, j); the column offset ox (0 or 1) puts the greens at (1, 0) and (0, 1), so
# (0, 0) and (1, 1) hold red and blue, in either order. RCD treats red and blue alike, so
# every stage is written per site, with no colour test, and only at the sites that read it.
SITE_C0, SITE_G0, SITE_G1, SITE_C1 = (0, 0), (1, 0), (0, 1), (1, 1)
ALL_SITES = (SITE_C0, SITE_G0, SITE_G1, SITE_C1)
CHROMA_SITES = (SITE_C0, SITE_C1)
GREEN_SITES = (SITE_G0, SITE_G1)

#: CPU schedule of RCD: output tiles (pixels, x by y), every stage computed per tile
RCD_TILE = (512, 128)


def _site(s, dx, dy):
    """The site of the photosite (dx, dy) away from site ``s``, and the offset of its quad."""
    i, j = s[0] + dx, s[1] + dy
    return (i % 2, j % 2), i // 2, j // 2


def _near(field, s, *ch):
    """``field`` around site ``s``: (dx, dy) -> value."""
    return lambda dx=0, dy=0: field(s, dx, dy, *ch)


class _Quads:
    """The stages of a quad-grid algorithm. A field is an accessor ``f(s, dx, dy, ch, at)``:
    its value (channel ``ch``) at the photosite (dx, dy) away from site ``s`` of the quad
    ``at`` (default (x, y))."""

    def __init__(self):
        self.stages: list[hl.Func] = []
        self.joint: set[str] = set()  # stages whose sites are computed in one loop

    def plane(self, name: str, sites, expr_of, channels=None, joint: bool = False):
        """A stored field: one Func ``[x, y, c]``, ``c`` enumerating its (site, channel)
        pairs; ``channels``: one list for every site or a dict of each site's."""
        per_site = channels if isinstance(channels, dict) else {s: channels or [None] for s in sites}
        keys = [(s, ch) for s in sites for ch in per_site[s]]
        of = (lambda s, ch: expr_of(s, ch)) if channels else (lambda s, ch: expr_of(s))
        e = of(*keys[-1])
        for k in reversed(range(len(keys) - 1)):
            e = hl.select(c == k, of(*keys[k]), e)
        f = hl.Func(name)
        f[x, y, c] = e
        f.bound(c, 0, len(keys))
        self.stages.append(f)
        if joint:
            self.joint.add(f.name())

        def field(s, dx=0, dy=0, ch=None, at=(x, y)):
            t, qx, qy = _site(s, dx, dy)
            return hl.Expr(f[at[0] + qx, at[1] + qy, keys.index((t, ch))])
        return field

    @staticmethod
    def inline(expr_of):
        """A field computed where it is read (only ever read at its own site)."""
        def field(s, dx=0, dy=0, ch=None, at=(x, y)):
            assert (dx, dy) == (0, 0) and at == (x, y)
            return expr_of(s)
        return field


def _interleaved(field, ch, ox) -> hl.Expr:
    """A field at pixel (x, y): its four sites interleaved."""
    xx = x - ox
    at = (xx // 2, y // 2)
    v = {s: field(s, 0, 0, ch, at=at) for s in ALL_SITES}
    even_x = xx % 2 == 0
    return hl.select(y % 2 == 0, hl.select(even_x, v[SITE_C0], v[SITE_G0]),
                     hl.select(even_x, v[SITE_G1], v[SITE_C1]))


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

    Every stage is computed on the 2x2 quads of the mosaic (``_Quads``), only at
    the sites that read it (green at R/B, R and B at G, ...), with no per-pixel
    colour test; the output interleaves the quads. The pattern must be a Bayer
    one (greens on a diagonal); its phase is a runtime offset of the quads.
    The sums behind the VH/PQ decisions (their ties) are evaluated in a fixed
    order (``strict_float``), not as LLVM reassociates a loop body.
    """
    raw, pat = bayer_io()
    m = hl.BoundaryConditions.mirror_interior(raw)
    ox = hl.select(pat[0, 0] == 1, 1, 0)
    c0_is_red = pat[ox, 0] == 0
    q = _Quads()
    # the mosaic's four sites in one loop: they share its loads
    cfa = q.plane("rcd_cfa", ALL_SITES, lambda s: hl.max(m[2 * x + s[0] + ox, 2 * y + s[1]], 0.0), joint=True)

    # step 1: vertical / horizontal discrimination
    def hpf(s, ux, uy):
        C = _near(cfa, s)
        return _sq((C(-3 * ux, -3 * uy) - C(-ux, -uy) - C(ux, uy) + C(3 * ux, 3 * uy))
                   - 3 * (C(-2 * ux, -2 * uy) + C(2 * ux, 2 * uy)) + 6 * C(0, 0))
    hpv = q.plane("rcd_hpf_v", ALL_SITES, lambda s: hpf(s, 0, 1))
    hph = q.plane("rcd_hpf_h", ALL_SITES, lambda s: hpf(s, 1, 0))

    def vh_of(s):
        vs = hl.max(EPSSQ, (hpv(s, 0, -1) + hpv(s, 0, 1)) + hpv(s))
        hs = hl.max(EPSSQ, (hph(s, -1, 0) + hph(s, 1, 0)) + hph(s))
        return hl.strict_float(vs / (vs + hs))
    vh = q.plane("rcd_vh", ALL_SITES, vh_of, joint=True)

    def disc(f, s):
        centre = f(s)
        nb = 0.25 * (((f(s, -1, 1) + f(s, 1, 1)) + f(s, -1, -1)) + f(s, 1, -1))
        return hl.strict_float(hl.select(hl.abs(0.5 - centre) < hl.abs(0.5 - nb), nb, centre))
    vh_disc = q.plane("rcd_vh_disc", ALL_SITES, lambda s: disc(vh, s), joint=True)

    # step 2: low-pass (read at R/B only)
    def lpf_of(s):
        C = _near(cfa, s)
        return 0.25 * C(0, 0) + 0.125 * (C(0, -1) + C(0, 1) + C(-1, 0) + C(1, 0)) \
            + 0.0625 * (C(-1, -1) + C(1, -1) + C(-1, 1) + C(1, 1))
    lpf = q.plane("rcd_lpf", CHROMA_SITES, lpf_of)

    # step 3: green at R/B; cardinal gradients (0 N, 1 S, 2 W, 3 E), shared with step 5
    def grad(s, dx, dy, k):  # read at its own site only: computed where read
        assert (dx, dy) == (0, 0)
        C = _near(cfa, s)
        ux, uy = ((0, -1), (0, 1), (-1, 0), (1, 0))[k]
        return EPS + hl.abs(C(ux, uy) - C(-ux, -uy)) + hl.abs(C(0, 0) - C(2 * ux, 2 * uy)) \
            + hl.abs(C(ux, uy) - C(3 * ux, 3 * uy)) + hl.abs(C(2 * ux, 2 * uy) - C(4 * ux, 4 * uy))

    def blend(s, n_est, s_est, w_est, e_est):
        """Inverse-gradient weighting within each axis, then the VH blend."""
        ng, sg, wg, eg = (grad(s, 0, 0, k) for k in range(4))
        d = vh_disc(s)
        v_est = (sg * n_est + ng * s_est) / (ng + sg)
        h_est = (eg * w_est + wg * e_est) / (eg + wg)
        return d * h_est + (1 - d) * v_est

    def green_of(s):
        C, L = _near(cfa, s), _near(lpf, s)
        l0 = L(0, 0)
        ratio = lambda dx, dy: C(dx, dy) * 2 * l0 / (EPS + l0 + L(2 * dx, 2 * dy))  # noqa: E731
        return hl.max(0.0, blend(s, ratio(0, -1), ratio(0, 1), ratio(-1, 0), ratio(1, 0)))

    def with_samples(at_chroma):
        """A green field: the samples at G sites, ``at_chroma`` at R/B."""
        def field(s, dx=0, dy=0, ch=None, at=(x, y)):
            f = at_chroma if _site(s, dx, dy)[0] in CHROMA_SITES else cfa
            return f(s, dx, dy, at=at)
        return field
    green = with_samples(q.plane("rcd_green", CHROMA_SITES, green_of))

    # step 4 statistics: P/Q diagonal discrimination (independent of the green; read at R/B)
    def hpf_diag(s, ux):
        C = _near(cfa, s)
        return _sq((C(-3 * ux, -3) - C(-ux, -1) - C(ux, 1) + C(3 * ux, 3)) - 3 * (C(-2 * ux, -2) + C(2 * ux, 2))
                   + 6 * C(0, 0))
    hpp = q.plane("rcd_hpf_p", CHROMA_SITES, lambda s: hpf_diag(s, 1))
    hpq = q.plane("rcd_hpf_q", CHROMA_SITES, lambda s: hpf_diag(s, -1))

    def pq_of(s):
        ps = hl.max(EPSSQ, (hpp(s, -1, -1) + hpp(s, 1, 1)) + hpp(s))
        qs = hl.max(EPSSQ, (hpq(s, 1, -1) + hpq(s, -1, 1)) + hpq(s))
        return hl.strict_float(ps / (ps + qs))
    pq = q.plane("rcd_pq", CHROMA_SITES, pq_of, joint=True)
    pq_disc = q.inline(lambda s: disc(pq, s))  # read at its own site only

    def step4(gf, tag: str):
        """R and B everywhere from the green field ``gf``: the field ``rb(s, dx, dy, k)``
        (k = 0 the colour of C0 sites, 1 that of C1 sites), >= 0."""
        def opp_of(s):
            C, G = _near(cfa, s), _near(gf, s)
            nw_g = EPS + hl.abs(C(-1, -1) - C(1, 1)) + hl.abs(C(-1, -1) - C(-3, -3)) + hl.abs(G(0, 0) - G(-2, -2))
            ne_g = EPS + hl.abs(C(1, -1) - C(-1, 1)) + hl.abs(C(1, -1) - C(3, -3)) + hl.abs(G(0, 0) - G(2, -2))
            sw_g = EPS + hl.abs(C(-1, 1) - C(1, -1)) + hl.abs(C(-1, 1) - C(-3, 3)) + hl.abs(G(0, 0) - G(-2, 2))
            se_g = EPS + hl.abs(C(1, 1) - C(-1, -1)) + hl.abs(C(1, 1) - C(3, 3)) + hl.abs(G(0, 0) - G(2, 2))
            p_est = (nw_g * (C(1, 1) - G(1, 1)) + se_g * (C(-1, -1) - G(-1, -1))) / (nw_g + se_g)
            q_est = (ne_g * (C(-1, 1) - G(-1, 1)) + sw_g * (C(1, -1) - G(1, -1))) / (ne_g + sw_g)
            pd = pq_disc(s)
            return G(0, 0) + pd * q_est + (1 - pd) * p_est
        opp = q.plane("rcd_opposite" + tag, CHROMA_SITES, opp_of)  # the other chroma at R/B

        def chroma(k):
            """Colour k at R/B sites: the sample or the opposite estimate."""
            def field(s, dx=0, dy=0, ch=None, at=(x, y)):
                f = cfa if _site(s, dx, dy)[0] == CHROMA_SITES[k] else opp
                return f(s, dx, dy, at=at)
            return field

        def at_green(s, k):
            G, X = _near(gf, s), _near(chroma(k), s)
            d = vh_disc(s)
            n1 = EPS + hl.abs(G(0, 0) - G(0, -2))
            s1 = EPS + hl.abs(G(0, 0) - G(0, 2))
            w1 = EPS + hl.abs(G(0, 0) - G(-2, 0))
            e1 = EPS + hl.abs(G(0, 0) - G(2, 0))
            sn = hl.abs(X(0, -1) - X(0, 1))
            ew = hl.abs(X(-1, 0) - X(1, 0))
            n2 = n1 + sn + hl.abs(X(0, -1) - X(0, -3))
            s2 = s1 + sn + hl.abs(X(0, 1) - X(0, 3))
            w2 = w1 + ew + hl.abs(X(-1, 0) - X(-3, 0))
            e2 = e1 + ew + hl.abs(X(1, 0) - X(3, 0))
            ve = (n2 * (X(0, 1) - G(0, 1)) + s2 * (X(0, -1) - G(0, -1))) / (n2 + s2)
            he = (e2 * (X(-1, 0) - G(-1, 0)) + w2 * (X(1, 0) - G(1, 0))) / (e2 + w2)
            return hl.max(0.0, G(0, 0) + d * he + (1 - d) * ve)
        rb_g = q.plane("rcd_rb" + tag, GREEN_SITES, at_green, channels=(0, 1))

        def rb(s, dx=0, dy=0, k=0, at=(x, y)):
            if _site(s, dx, dy)[0] in GREEN_SITES:
                return rb_g(s, dx, dy, k, at=at)
            return hl.max(0.0, chroma(k)(s, dx, dy, at=at))
        return rb

    def output(gf, rb):
        rgb = hl.Func("rgb")
        k0, k1 = _interleaved(rb, 0, ox), _interleaved(rb, 1, ox)
        rgb[x, y, c] = hl.select(c == 1, _interleaved(gf, None, ox), c == 0, hl.select(c0_is_red, k0, k1),
                                 hl.select(c0_is_red, k1, k0))
        _schedule_rcd(rgb, q)
        return rgb, [raw, pat]

    rb1 = step4(green, "1")
    if not refine:  # the published algorithm (darktable's output)
        return output(green, rb1)

    # step 5: green at R/B from the neighbours' colour differences, gated by channel correlation
    P = RCD_REFINE

    def g_ref(s):  # G - C at the G neighbours of an R/B site, C its colour
        k = CHROMA_SITES.index(s)
        D = lambda dx, dy: green(s, dx, dy) - rb1(s, dx, dy, k)  # noqa: E731
        return cfa(s) + blend(s, D(0, -1), D(0, 1), D(-1, 0), D(1, 0))

    planes = (green, lambda s, dx=0, dy=0: rb1(s, dx, dy, 0), lambda s, dx=0, dy=0: rb1(s, dx, dy, 1))

    def lap_of(s, k):  # Laplacians of G and of the colours of C0 and C1 sites
        pl = _near(planes[k], s)
        return 4 * pl(0, 0) - pl(-1, 0) - pl(1, 0) - pl(0, -1) - pl(0, 1)
    lap = q.plane("rcd_lap", ALL_SITES, lap_of, channels=range(3))

    def prod(s, dx, dy, k):  # G.C0, C0.C0, G.C1, C1.C1, G.G (C0, C1: the colours of those sites)
        a, b = ((0, 1), (1, 1), (0, 2), (2, 2), (0, 0))[k]
        return lap(s, dx, dy, a) * lap(s, dx, dy, b)
    r = P["radius"]
    # the window sums are read at R/B only: G.C0, C0.C0, G.G at C0; G.C1, C1.C1, G.G at C1;
    # the row sums of a column of C0 (C1) sites carry C0's (C1's)
    col_sums = {SITE_C0: (0, 1, 4), SITE_G1: (0, 1, 4), SITE_G0: (2, 3, 4), SITE_C1: (2, 3, 4)}
    box_h = q.plane("rcd_box_h", ALL_SITES,
                    lambda s, k: sum((prod(s, i, 0, k) for i in range(-r, r + 1)), hl.f32(0)), channels=col_sums)
    box = q.plane("rcd_box", CHROMA_SITES,
                  lambda s, k: sum((box_h(s, 0, j, k) for j in range(-r, r + 1)), hl.f32(0)),
                  channels={s: col_sums[s] for s in CHROMA_SITES})

    def green2_of(s):
        S = lambda k: box(s, 0, 0, k)  # noqa: E731
        own = 0 if s == SITE_C0 else 2
        gg, gc, cc = S(4), S(own), S(own + 1)
        rho = gc / (hl.sqrt(hl.max(gg, 0.0)) * hl.sqrt(hl.max(cc, 0.0)) + hl.f32(1e-8))
        alpha = hl.clamp(rho, 0.0, 1.0)
        for _ in range(P["power"] - 1):
            alpha = alpha * hl.clamp(rho, 0.0, 1.0)
        return alpha * hl.max(0.0, g_ref(s)) + (1 - alpha) * green(s)
    green2 = with_samples(q.plane("rcd_green2", CHROMA_SITES, green2_of))
    return output(green2, step4(green2, "2"))


def build_rcd_classic():
    """RCD steps 1-4 only: release 2.2/2.3 as published and as darktable runs it."""
    return build_rcd(refine=False)


def _schedule_rcd(rgb: hl.Func, q: _Quads) -> None:
    """Output tiles in parallel rows of tiles; every stage per tile (cache-resident), x
    vectorised. A stage's sites are computed in separate loops (one body per site, as in
    a per-pixel loop), except the ``joint`` ones, whose sites share loads."""
    if GPU.get():
        strips(rgb, RCD_TILE[1], q.stages)
        if GPU.get() == "roots":
            for f in q.stages:  # a thread computes its quad's sites
                f.unroll(c)
        return
    rgb.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    rgb.tile(x, y, xo, yo, xi, yi, *RCD_TILE, GUARD).parallel(yo).vectorize(xi, VEC, GUARD)
    for f in q.stages:
        f.compute_at(rgb, xo).vectorize(x, VEC, GUARD).unroll(c)
        if f.name() in q.joint:
            f.reorder(c, x, y)


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
