"""Halide kernels of blending: the blend operators of each space, the parametric mask and
mask combination, the mask's tone curve and opacity, and a Gaussian blur of the mask.

One kernel per blend space; the blend mode is a runtime value and every mode is a
Halide *specialisation*, so a pixel computes only its mode's formula and changing the
mode never recompiles. The formulas are documented in :mod:`pixelpipe.blend.modes`.
The working space is linear Rec.2020 (D65); the Lab and JzAzBz conversions are built in.
Kernels are built for the CPU target.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..engine import halide_ops as ho
from ..engine.kernels import f32, get_kernel, source_tag_of
from . import modes as M

hl = ho.hl
x, y, c = ho.x, ho.y, ho.c
GUARD = ho.GUARD
VEC = ho.VEC

#: Rec.2020 luminance weights (Y row of the RGB -> XYZ matrix)
LUMA = (0.2627002120112671, 0.6779980715188708, 0.05930171646986196)
D50 = (0.9642956764295677, 1.0, 0.8251046025104602)
JZ = dict(b=1.15, g=0.66, c1=3424 / 4096, c2=2413 / 128, c3=2392 / 128, n=2610 / 16384,
          p=1.7 * 2523 / 32, d=-0.56, d0=1.6295499532821566e-11)
JZ_M1 = ((0.41478972, 0.579999, 0.0146480), (-0.2015100, 1.120649, 0.0531008), (-0.0166008, 0.264800, 0.6684799))
JZ_M2 = ((0.5, 0.5, 0.0), (3.524000, -4.066708, 0.542708), (0.199076, 1.096799, -1.295875))


@functools.lru_cache(maxsize=None)
def matrices() -> dict:
    """Rec.2020 -> XYZ (D65) and -> XYZ (D50, Bradford) and their inverses (float64)."""
    import colour

    from ..modules.colorspaces import WORKING, rgb_to_xyz

    to_d65 = rgb_to_xyz(WORKING)
    w65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    w50 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D50"]
    cat = colour.adaptation.matrix_chromatic_adaptation_VonKries(
        colour.xy_to_XYZ(w65), colour.xy_to_XYZ(w50), transform="Bradford")
    to_d50 = np.asarray(cat) @ to_d65
    return {"rgb_xyz65": to_d65, "rgb_xyz50": to_d50, "xyz50_rgb": np.linalg.inv(to_d50)}


def F(v):
    return hl.f32(v)


def frac(v):
    """v - floor(v), in [0, 1) (Halide's fract keeps the sign of v)."""
    return v - hl.floor(v)


def atan2(yv, xv):
    """atan2 that vectorises (libm's does not): a minimax polynomial for atan on [0, 1]
    (error below 1e-5 rad) with the octant folded back by selects; atan2(0, 0) = 0."""
    ax, ay = hl.abs(xv), hl.abs(yv)
    mx, mn = hl.max(ax, ay), hl.min(ax, ay)
    z = mn / hl.max(mx, F(1e-30))
    z2 = z * z
    r = z * (F(0.9998660) + z2 * (F(-0.3302995) + z2 * (F(0.1801410) + z2 * (F(-0.0851330) + z2 * F(0.0208351)))))
    r = hl.select(ay > ax, F(math.pi / 2) - r, r)
    r = hl.select(xv < 0, F(math.pi) - r, r)
    return hl.select(yv < 0, -r, r)


def clamp01(v):
    return hl.clamp(v, F(0.0), F(1.0))


def _mat(m, v):
    return tuple(F(float(m[i][0])) * v[0] + F(float(m[i][1])) * v[1] + F(float(m[i][2])) * v[2] for i in range(3))


def _finite(v):
    return hl.select(hl.is_finite(v), v, F(0.0))


def _run(kernel, images, extra, out_shape) -> np.ndarray:
    """Call ``kernel(*images, *extra, out)``. Images narrower or shorter than 2 pixels are
    padded (edges repeated) and the result cropped: the AOT Python glue reads an array
    that is both C- and Fortran-contiguous (one row, or one pixel) as Fortran-ordered,
    which would swap its axes."""
    h, w = out_shape[-2:]
    ph, pw = max(h, 2), max(w, 2)
    if (ph, pw) != (h, w):
        images = [np.pad(im, [(0, 0)] * (im.ndim - 2) + [(0, ph - im.shape[-2]), (0, pw - im.shape[-1])],
                         mode="edge") for im in images]
    out = np.empty(tuple(out_shape[:-2]) + (ph, pw), np.float32)
    kernel(*[f32(im) for im in images], *extra, out)
    return out if (ph, pw) == (h, w) else np.ascontiguousarray(out[..., :h, :w])


def _chain(mode, exprs):
    """select(mode == 0, e0, mode == 1, e1, ...)."""
    out = exprs[-1]
    for k in range(len(exprs) - 2, -1, -1):
        out = hl.select(mode == k, exprs[k], out)
    return out


# --------------------------------------------------------------------------- colour conversions

def lab_f(t):
    e, k = 216.0 / 24389.0, 24389.0 / 27.0
    return hl.select(t > e, hl.pow(hl.max(t, F(e)), F(1.0 / 3.0)), (F(k) * t + 16.0) / 116.0)


def lab_finv(u):
    k = 24389.0 / 27.0
    return hl.select(u > F(6.0 / 29.0), u * u * u, (F(116.0) * u - 16.0) / F(k))


def rgb_to_lab(rgb):
    """Working RGB -> Lab scaled (L/100, a/128, b/128)."""
    X, Y, Z = _mat(matrices()["rgb_xyz50"], rgb)
    fx, fy, fz = lab_f(X / F(D50[0])), lab_f(Y), lab_f(Z / F(D50[2]))
    return ((F(116.0) * fy - 16.0) / 100.0, F(500.0 / 128.0) * (fx - fy), F(200.0 / 128.0) * (fy - fz))


def lab_to_rgb(lab):
    L, a, b = lab[0] * 100.0, lab[1] * 128.0, lab[2] * 128.0
    fy = (L + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0
    xyz = (lab_finv(fx) * F(D50[0]), lab_finv(fy), lab_finv(fz) * F(D50[2]))
    return _mat(matrices()["xyz50_rgb"], xyz)


def rgb_to_jzczhz(rgb):
    """Working RGB -> (Jz, Cz, hz/2pi in [0, 1)); relative XYZ 1.0 = 10000 cd/m^2."""
    X, Y, Z = _mat(matrices()["rgb_xyz65"], rgb)
    Xp = F(JZ["b"]) * X - F(JZ["b"] - 1) * Z
    Yp = F(JZ["g"]) * Y - F(JZ["g"] - 1) * X
    lms = _mat(JZ_M1, (Xp, Yp, Z))
    pq = []
    for v in lms:
        t = hl.pow(hl.max(v, F(0.0)), F(JZ["n"]))
        pq.append(hl.pow((F(JZ["c1"]) + F(JZ["c2"]) * t) / (F(1.0) + F(JZ["c3"]) * t), F(JZ["p"])))
    iz, az, bz = _mat(JZ_M2, pq)
    jz = (F(1 + JZ["d"]) * iz) / (F(1.0) + F(JZ["d"]) * iz) - F(JZ["d0"])
    cz = hl.sqrt(az * az + bz * bz)
    hz = frac(atan2(bz, az) / F(2 * math.pi))
    return jz, cz, hz


def _hue(r, g, b, mx, d):
    safe = hl.max(d, F(1e-12))
    h = hl.select(mx == r, (g - b) / safe, hl.select(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return hl.select(d > F(1e-9), frac(h / 6.0), F(0.0))


def rgb_to_hsl(rgb):
    r, g, b = rgb
    mx, mn = hl.max(r, hl.max(g, b)), hl.min(r, hl.min(g, b))
    d = mx - mn
    L = (mx + mn) * 0.5
    den = hl.select(L < 0.5, mx + mn, F(2.0) - mx - mn)
    S = hl.select(d > F(1e-9), d / hl.max(den, F(1e-12)), F(0.0))
    return _hue(r, g, b, mx, d), S, L


def hsl_to_rgb(hsl):
    H, S, L = hsl
    q = hl.select(L < 0.5, L * (F(1.0) + S), L + S - L * S)
    p = F(2.0) * L - q

    def h2c(t):
        t = frac(t)
        return hl.select(t < F(1 / 6), p + (q - p) * 6.0 * t,
                         hl.select(t < F(0.5), q,
                                   hl.select(t < F(2 / 3), p + (q - p) * (F(2 / 3) - t) * 6.0, p)))

    return h2c(H + F(1 / 3)), h2c(H), h2c(H - F(1 / 3))


def rgb_to_hsv(rgb):
    r, g, b = rgb
    mx, mn = hl.max(r, hl.max(g, b)), hl.min(r, hl.min(g, b))
    d = mx - mn
    ok = (hl.abs(mx) > F(1e-6)) & (d > F(1e-6))
    S = hl.select(ok, d / hl.select(ok, mx, F(1.0)), F(0.0))
    return hl.select(ok, _hue(r, g, b, mx, d), F(0.0)), S, mx


def hsv_to_rgb(hsv):
    H, S, V = hsv
    h6 = frac(H) * 6.0
    i = hl.clamp(hl.i32(hl.floor(h6)), 0, 5)
    f = h6 - hl.floor(h6)
    p, q, t = V * (F(1.0) - S), V * (F(1.0) - S * f), V * (F(1.0) - S * (F(1.0) - f))
    r = hl.mux(i, [V, q, p, p, t, V])
    g = hl.mux(i, [t, V, V, q, p, p])
    b = hl.mux(i, [p, p, t, V, V, q])
    return r, g, b


def mix_hue(ha, hb, m):
    d = hb - ha
    d = d - hl.floor(d + 0.5)  # shorter way round, in [-0.5, 0.5)
    return frac(ha + m * d)


# --------------------------------------------------------------------------- per-channel formulas

def arith(name, a, b, p=None):
    """f(a, b) of the arithmetic modes; ``p`` (fulcrum factor) in RGB scene."""
    pb = b if p is None else p * b
    return {
        "lighten": lambda: hl.max(a, b),
        "darken": lambda: hl.min(a, b),
        "multiply": lambda: a * pb,
        "average": lambda: (a + b) * 0.5,
        "add": lambda: a + pb,
        "subtract": lambda: hl.max(a - pb, F(0.0)),
        "difference": lambda: hl.abs(a - b),
        "divide": lambda: a / hl.max(pb, F(1e-6)),
        "geometric_mean": lambda: hl.sqrt(hl.max(a * b, F(0.0))),
        "harmonic_mean": lambda: F(2.0) * a * b / (hl.max(a, F(5e-7)) + hl.max(b, F(5e-7))),
    }[name]()


def contrast(name, A, B):
    half = F(0.5)
    return {
        "screen": lambda: F(1.0) - (F(1.0) - A) * (F(1.0) - B),
        "overlay": lambda: hl.select(A > half, F(1.0) - F(2.0) * (F(1.0) - A) * (F(1.0) - B), F(2.0) * A * B),
        "softlight": lambda: hl.select(B > half, F(1.0) - (F(1.0) - A) * (F(1.5) - B), A * (B + half)),
        "hardlight": lambda: hl.select(B > half, F(1.0) - F(2.0) * (F(1.0) - A) * (F(1.0) - B), F(2.0) * A * B),
        "vividlight": lambda: hl.select(
            B > half, hl.select(B >= F(1.0), F(1.0), A / (F(2.0) * hl.max(F(1.0) - B, F(1e-6)))),
            hl.select(B <= F(0.0), F(0.0), F(1.0) - (F(1.0) - A) / (F(2.0) * hl.max(B, F(1e-6))))),
        "linearlight": lambda: A + F(2.0) * B - F(1.0),
        "pinlight": lambda: hl.select(B > half, hl.max(A, F(2.0) * B - F(1.0)), hl.min(A, F(2.0) * B)),
    }[name]()


def per_channel(name, a, b, m):
    """A per-channel mode with display-referred bounds (rgb_display, raw, Lab's L)."""
    if name == "normal":
        return a * (F(1.0) - m) + b * m
    if name == "bounded":
        return clamp01(a * (F(1.0) - m) + b * m)
    if name in M.ARITH:
        return clamp01(a * (F(1.0) - m) + arith(name, a, b) * m)
    A, B = clamp01(a), clamp01(b)
    return clamp01(A * (F(1.0) - m) + contrast(name, A, B) * m)


# --------------------------------------------------------------------------- blend kernels

class _Helpers:
    """Per-pixel tuple Funcs computed once per vector of output pixels (keeps expression
    trees small: a conversion used by several formulas is a call, not a copied tree)."""

    def __init__(self):
        self.funcs: list = []

    def __call__(self, name: str, exprs) -> tuple:
        f = hl.Func(name)
        f[x, y] = tuple(exprs)
        self.funcs.append(f)
        n = len(exprs)
        return tuple(f[x, y][i] for i in range(n)) if n > 1 else (f[x, y],)


def _display_mode(name, A3, B3, m, H):
    one = F(1.0)
    if name in M.PER_CHANNEL:
        return tuple(per_channel(name, A3[k], B3[k], m) for k in range(3))
    if name in ("rgb_r", "rgb_g", "rgb_b"):
        j = ("rgb_r", "rgb_g", "rgb_b").index(name)
        return tuple(A3[k] * (one - m) + B3[k] * m if k == j else A3[k] for k in range(3))
    if name in ("hsv_value", "hsv_color"):
        ha, sa, va = H.get("hsvA") or H.setdefault("hsvA", H["new"]("hsvA", rgb_to_hsv(A3)))
        hb, sb, vb = H.get("hsvB") or H.setdefault("hsvB", H["new"]("hsvB", rgb_to_hsv(B3)))
        if name == "hsv_value":
            mixed = (ha, sa, va * (one - m) + vb * m)
        else:
            tau = F(2 * math.pi)
            xa, ya = sa * hl.fast_cos(tau * ha), sa * hl.fast_sin(tau * ha)
            xb, yb = sb * hl.fast_cos(tau * hb), sb * hl.fast_sin(tau * hb)
            xc, yc = xa * (one - m) + xb * m, ya * (one - m) + yb * m
            mixed = (frac(atan2(yc, xc) / tau), hl.sqrt(xc * xc + yc * yc), va)
        mixed = H["new"](f"hsv_{name}", mixed)
        return H["new"](f"rgb_{name}", hsv_to_rgb(mixed))
    ha, sa, la = H.get("hslA") or H.setdefault("hslA", H["new"]("hslA", rgb_to_hsl(tuple(clamp01(v) for v in A3))))
    hb, sb, lb = H.get("hslB") or H.setdefault("hslB", H["new"]("hslB", rgb_to_hsl(tuple(clamp01(v) for v in B3))))
    mixs = sa * (one - m) + sb * m
    hsl = {
        "lightness": lambda: (ha, sa, la * (one - m) + lb * m),
        "chromaticity": lambda: (ha, mixs, la),
        "hue": lambda: (mix_hue(ha, hb, m), sa, la),
        "color": lambda: (mix_hue(ha, hb, m), mixs, la),
        "coloradjust": lambda: (mix_hue(ha, hb, m), mixs, lb),
    }[name]()
    hsl = H["new"](f"hsl_{name}", hsl)
    return tuple(clamp01(v) for v in H["new"](f"rgb_{name}", hsl_to_rgb(hsl)))


def _scene_mode(name, A3, B3, m, p, H):
    one = F(1.0)
    if name == "normal":
        return tuple(A3[k] * (one - m) + B3[k] * m for k in range(3))
    if name in ("lightness", "chromaticity"):
        if "norms" not in H:
            na = hl.max(hl.sqrt(A3[0] * A3[0] + A3[1] * A3[1] + A3[2] * A3[2]), F(1e-6))
            nb = hl.max(hl.sqrt(B3[0] * B3[0] + B3[1] * B3[1] + B3[2] * B3[2]), F(1e-6))
            H["norms"] = H["new"]("norms", (na, nb))
        na, nb = H["norms"]
        f = [A3[k] * nb / na if name == "lightness" else B3[k] * na / nb for k in range(3)]
        return tuple(A3[k] * (one - m) + f[k] * m for k in range(3))
    if name in ("rgb_r", "rgb_g", "rgb_b"):
        j = ("rgb_r", "rgb_g", "rgb_b").index(name)
        return tuple(A3[k] * (one - m) + p * B3[k] * m if k == j else A3[k] for k in range(3))
    return tuple(A3[k] * (one - m) + arith(name, A3[k], B3[k], p) * m for k in range(3))


def _lab_mode(name, La, Lb, m):
    one = F(1.0)

    def mix(u, v):
        return u * (one - m) + v * m

    def bound(t):
        return (clamp01(t[0]), hl.clamp(t[1], F(-1.0), one), hl.clamp(t[2], F(-1.0), one))

    if name == "normal":
        return tuple(mix(u, v) for u, v in zip(La, Lb))
    if name == "bounded":
        return bound(tuple(mix(u, v) for u, v in zip(La, Lb)))
    if name in M.ARITH or name in M.CONTRAST:
        A, B = clamp01(La[0]), clamp01(Lb[0])
        f = arith(name, A, B) if name in M.ARITH else contrast(name, A, B)
        return bound((mix(A, f), mix(La[1], Lb[1]), mix(La[2], Lb[2])))
    if name == "lab_lightness":
        return (mix(La[0], Lb[0]), La[1], La[2])
    if name == "lab_a":
        return (La[0], mix(La[1], Lb[1]), La[2])
    if name == "lab_b":
        return (La[0], La[1], mix(La[2], Lb[2]))
    if name == "lab_color":
        return (La[0], mix(La[1], Lb[1]), mix(La[2], Lb[2]))
    if name == "lightness":
        return bound((mix(La[0], Lb[0]), La[1], La[2]))
    tau = F(2 * math.pi)
    Ca, Cb = hl.sqrt(La[1] * La[1] + La[2] * La[2]), hl.sqrt(Lb[1] * Lb[1] + Lb[2] * Lb[2])
    ha, hb = frac(atan2(La[2], La[1]) / tau), frac(atan2(Lb[2], Lb[1]) / tau)
    C, h, L = {
        "chromaticity": lambda: (mix(Ca, Cb), ha, La[0]),
        "hue": lambda: (Ca, mix_hue(ha, hb, m), La[0]),
        "color": lambda: (mix(Ca, Cb), mix_hue(ha, hb, m), La[0]),
        "coloradjust": lambda: (mix(Ca, Cb), mix_hue(ha, hb, m), Lb[0]),
    }[name]()
    return bound((L, C * hl.fast_cos(tau * h), C * hl.fast_sin(tau * h)))


def _build_blend(space: str):
    names = M.MODES_BY_SPACE[space]
    dims = 2 if space == "raw" else 3
    a = hl.ImageParam(hl.Float(32), dims, "a")
    b = hl.ImageParam(hl.Float(32), dims, "b")
    msk = hl.ImageParam(hl.Float(32), 2, "m")
    mode = hl.Param(hl.Int(32), "mode")
    p = hl.Param(hl.Float(32), "p")
    m = msk[x, y]
    out = hl.Func(f"blend_{space}")
    if space == "raw":
        out[x, y] = _finite(_chain(mode, [per_channel(n, a[x, y], b[x, y], m) for n in names]))
        out.vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    else:
        helpers = _Helpers()
        H = {"new": helpers}
        A3 = tuple(a[x, y, k] for k in range(3))
        B3 = tuple(b[x, y, k] for k in range(3))
        if space == "lab":
            La = helpers("labA", rgb_to_lab(A3))
            Lb = helpers("labB", rgb_to_lab(B3))
            opts = [helpers(f"rgb_{n}", lab_to_rgb(helpers(f"lab_{n}", _lab_mode(n, La, Lb, m)))) for n in names]
        elif space == "rgb_display":
            opts = [_display_mode(n, A3, B3, m, H) for n in names]
        else:
            opts = [_scene_mode(n, A3, B3, m, p, H) for n in names]
        out[x, y, c] = _finite(hl.mux(c, [_chain(mode, [o[k] for o in opts]) for k in range(3)]))
        out.bound(c, 0, 3).reorder(c, x, y).unroll(c).vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
        for f in helpers.funcs:
            f.compute_at(out, x).vectorize(x)
    for k in range(len(names)):
        out.specialize(mode == k)
    return out, [a, b, msk, mode, p]


def blend_kernel(space: str):
    return get_kernel(f"blend_{space}", functools.partial(_build_blend, space), variant=space, device="cpu",
                      source_tag=source_tag_of(_build_blend, M))


def run_blend(space: str, mode: str, a: np.ndarray, b: np.ndarray, mask: np.ndarray, p: float = 1.0) -> np.ndarray:
    """Blend input ``a`` and output ``b`` (planar, or 2D mosaics for raw) with ``mask``."""
    idx = M.MODES_BY_SPACE[space].index(mode)
    return _run(blend_kernel(space), [a, b, mask], [idx, float(p)], b.shape)


# --------------------------------------------------------------------------- mask combination

def channel_values(space: str, rgb, helpers: _Helpers, side: str):
    """The parametric channel values of ``space`` for one pixel (scaled as the sliders):
    (basic, polar) lists in the order of ``modes.CHANNELS_BY_SPACE``."""
    if space == "rgb_display":
        cl = tuple(clamp01(v) for v in rgb)
        gray = clamp01(F(LUMA[0]) * rgb[0] + F(LUMA[1]) * rgb[1] + F(LUMA[2]) * rgb[2])
        return [gray, cl[0], cl[1], cl[2]], list(helpers(f"hsl_{side}", rgb_to_hsl(cl)))
    if space == "rgb_scene":
        gray = F(LUMA[0]) * rgb[0] + F(LUMA[1]) * rgb[1] + F(LUMA[2]) * rgb[2]
        return [gray, rgb[0], rgb[1], rgb[2]], list(helpers(f"jz_{side}", rgb_to_jzczhz(rgb)))
    L, a, b = helpers(f"lab_{side}", rgb_to_lab(rgb))
    C = hl.sqrt(a * a + b * b) / F(math.sqrt(2.0))
    h = frac(atan2(b, a) / F(2 * math.pi))
    return [clamp01(L), clamp01((a + 1.0) * 0.5), clamp01((b + 1.0) * 0.5)], [clamp01(C), h]


def _build_combine(space: str):
    a = hl.ImageParam(hl.Float(32), 3, "a")
    b = hl.ImageParam(hl.Float(32), 3, "b")
    drawn = hl.ImageParam(hl.Float(32), 2, "drawn")
    prm = hl.ImageParam(hl.Float(32), 2, "prm")  # [8 values, 16 channels]
    flags = {n: hl.Param(hl.Int(32), n) for n in ("use_drawn", "drawn_inv", "use_param", "needs_polar", "incl",
                                                   "invert")}
    names = M.CHANNELS_BY_SPACE[space]
    helpers = _Helpers()
    one, zero = F(1.0), F(0.0)
    incl = flags["incl"] != 0
    terms = []
    for side, img in ((0, a), (8, b)):
        rgb = tuple(img[x, y, k] for k in range(3))
        basic, polar = channel_values(space, rgb, helpers, "in" if side == 0 else "out")
        for i, (name, v) in enumerate(zip(names, basic + polar)):
            k = side + i
            x0, x3 = prm[0, k], prm[3, k]
            up = hl.select(prm[4, k] > 0, (v - x0) * prm[4, k], hl.select(v >= x0, one, zero))
            down = hl.select(prm[5, k] > 0, (x3 - v) * prm[5, k], hl.select(v <= x3, one, zero))
            f = hl.clamp(hl.min(up, down), zero, one)
            f = hl.select(prm[6, k] > 0.5, one - f, f)
            t = hl.select(incl, one - f, f)
            on = (flags["use_param"] != 0) & (prm[7, k] > 0.5)
            if name in M.POLAR:
                on = on & (flags["needs_polar"] != 0)
            terms.append(hl.select(on, t, one))
    d = drawn[x, y]
    d = hl.select(flags["drawn_inv"] != 0, one - d, d)
    T = hl.select(flags["use_drawn"] != 0, hl.select(incl, one - d, d), one)
    for t in terms:
        T = T * t
    m0 = hl.select(incl, one - T, T)
    out = hl.Func(f"mask_{space}")
    out[x, y] = _finite(hl.select(flags["invert"] != 0, one - m0, m0))
    out.vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    for f in helpers.funcs:
        f.compute_at(out, x).vectorize(x)
    out.specialize(flags["use_param"] == 0)
    out.specialize(flags["needs_polar"] == 0)
    return out, [a, b, drawn, prm] + list(flags.values())


def combine_kernel(space: str):
    return get_kernel(f"mask_{space}", functools.partial(_build_combine, space), variant=space, device="cpu",
                      source_tag=source_tag_of(_build_combine, M))


def run_combine(space: str, a, b, drawn, prm, *, use_drawn, drawn_inv, use_param, needs_polar, incl, invert):
    """The combined (unrefined) mask: drawn mask and parametric channels (see params.py)."""
    h, w = b.shape[-2:]
    if drawn is None:
        drawn, use_drawn = np.ones((h, w), np.float32), False
    return _run(combine_kernel(space), [a, b, drawn], [f32(prm), int(use_drawn), int(drawn_inv), int(use_param),
                                                       int(needs_polar), int(incl), int(invert)], (h, w))


# --------------------------------------------------------------------------- mask tone curve and opacity

def _build_finish():
    m0 = hl.ImageParam(hl.Float(32), 2, "m0")
    opacity = hl.Param(hl.Float(32), "opacity")
    eb = hl.Param(hl.Float(32), "eb")  # brightness exponent
    ec = hl.Param(hl.Float(32), "ec")  # contrast exponent
    one, zero = F(1.0), F(0.0)
    v = clamp01(m0[x, y])
    v = hl.select(v <= zero, zero, hl.select(v >= one, one, hl.pow(hl.max(v, F(1e-30)), eb)))
    d = F(2.0) * v - one
    mag = hl.select(hl.abs(d) > F(0.0), hl.pow(hl.max(hl.abs(d), F(1e-30)), ec), zero)
    v = F(0.5) + F(0.5) * hl.select(d < zero, -mag, mag)
    out = hl.Func("mask_finish")
    out[x, y] = _finite(clamp01(v) * opacity)
    out.vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    out.specialize((eb == 1.0) & (ec == 1.0))
    return out, [m0, opacity, eb, ec]


def curve_exponents(brightness: float, contrast_: float) -> tuple[float, float]:
    """Exponents of the mask's brightness (power curve) and contrast (S-curve about 0.5)."""
    b = float(np.clip(brightness, -0.99, 0.99))
    cc = float(np.clip(contrast_, -0.99, 0.99))
    return (1 - b) / (1 + b), (1 - cc) / (1 + cc)


def run_finish(m0: np.ndarray, opacity: float, brightness: float, contrast_: float) -> np.ndarray:
    eb, ec = curve_exponents(brightness, contrast_)
    k = get_kernel("mask_finish", _build_finish, device="cpu", source_tag=source_tag_of(_build_finish))
    return _run(k, [m0], [float(opacity), float(eb), float(ec)], m0.shape)


# --------------------------------------------------------------------------- Gaussian blur of a mask

def _build_blur():
    m = hl.ImageParam(hl.Float(32), 2, "m")
    wts = hl.ImageParam(hl.Float(32), 1, "wts")
    radius = hl.Param(hl.Int(32), "radius")
    src = hl.BoundaryConditions.repeat_edge(m)
    k = hl.RDom([(0, wts.dim(0).extent())], "k")
    hor = hl.Func("hor")
    hor[x, y] = F(0.0)
    hor[x, y] += wts[k] * src[x + k - radius, y]
    out = hl.Func("blurred")
    out[x, y] = F(0.0)
    out[x, y] += wts[k] * hor[x, y + k - radius]
    hor.compute_root().vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    hor.update(0).reorder(x, k, y).vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    out.compute_root().vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    out.update(0).reorder(x, k, y).vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)
    return out, [m, wts, radius]


def gaussian_weights(sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return f32(w / w.sum())


def run_blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return mask
    wts = gaussian_weights(sigma)
    k = get_kernel("mask_blur", _build_blur, device="cpu", source_tag=source_tag_of(_build_blur))
    return _run(k, [mask], [wts, (len(wts) - 1) // 2], mask.shape)
