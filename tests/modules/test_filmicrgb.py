"""filmicrgb against an independent NumPy reference written from darktable's documented algorithm.

The reference below re-derives the v6/v7 colour path in float64: Ych in Kirk's
Yrg space, the "extreme luminance saturation" rule, the Yrg gamut clip and
the output-gamut chroma limit, which here is found by **bisection** on the
sRGB cube (the module solves it in closed form). Tolerance: 2e-4 relative +
2e-5 absolute (float32 Halide vs float64 NumPy). The spline itself is checked
by its defining properties (nodes, targets, slopes, monotonicity).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import rgb_image, run_module
from pixelpipe.modules import filmicrgb as F
from pixelpipe.modules.filmicrgb import FilmicrgbParams, compute_spline, eval_spline, scene_referred_defaults

rng = np.random.default_rng(7)


# ---------------------------------------------------------------- reference
def _ych(rgb, M):
    lms = rgb @ M.T
    Y = F.LMS_Y[0] * lms[..., 0] + F.LMS_Y[1] * lms[..., 1]
    a = lms.sum(-1, keepdims=True)
    n = np.where(a != 0, lms / np.where(a != 0, a, 1), 0)
    fl = n @ F.LMS_TO_FILMLIGHT.T
    r, g = fl[..., 0] - F.WHITE_R, fl[..., 1] - F.WHITE_G
    c = np.hypot(r, g)
    safe = np.where(c != 0, c, 1)
    return Y, c, np.where(c != 0, r / safe, 1.0), np.where(c != 0, g / safe, 0.0)


def _ych_to_rgb(Y, c, cos, sin, M):
    r, g = c * cos + F.WHITE_R, c * sin + F.WHITE_G
    lms = np.stack([r, g, 1 - r - g], -1) @ F.FILMLIGHT_TO_LMS.T
    den = F.LMS_Y[0] * lms[..., 0] + F.LMS_Y[1] * lms[..., 1]
    return (lms * np.where(den != 0, Y / np.where(den != 0, den, 1), 0)[..., None]) @ M.T


def _max_chroma_bisect(M, white, Y, cos, sin):
    lo, hi = np.zeros_like(Y), np.full_like(Y, 2.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        rgb = _ych_to_rgb(Y, mid, cos, sin, M)
        ok = np.all((rgb >= -1e-9) & (rgb <= white * (1 + 1e-9)), -1)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return lo


def filmic_reference(px, p: FilmicrgbParams, power: float) -> np.ndarray:
    s = compute_spline(p, power)
    grey, b_ev, dr = F.MIDDLE_GREY, p.black_point_source, p.white_point_source - p.black_point_source
    wd, bd = s.y[4] ** power, s.y[0] ** power
    px = np.nan_to_num(px.astype(np.float64), nan=0.0, posinf=1e6, neginf=-1e6).clip(-1e6, 1e6)

    def enc(v):
        return np.clip((np.log2(np.maximum(v / grey, 1e-30)) - b_ev) / dr, 0, 1)

    split = np.clip(eval_spline(s, enc(px)), 0, wd) ** power
    norms = {"max_rgb": px.max(-1), "luminance": px @ F.luminance_coefficients(),
             "power_norm": (np.abs(px) ** 3).sum(-1) / np.maximum((px ** 2).sum(-1), 1e-12),
             "euclidean_norm": np.sqrt((px ** 2).sum(-1)) / math.sqrt(3)}

    def by_norm(kind):
        n = np.clip(norms[kind], grey * 2 ** b_ev, grey * 2 ** p.white_point_source)
        return px * ((np.clip(eval_spline(s, enc(n)), bd, wd) ** power) / n)[..., None]

    sat = p.saturation / 100
    if p.version == "v7":
        out, cap, sat_gm = (0.5 - sat) * split + (0.5 + sat) * by_norm("max_rgb"), True, 0.0
    elif p.preserve_color == "none":
        out, cap, sat_gm = split, True, sat
    else:
        out, cap, sat_gm = by_norm(p.preserve_color), False, sat
    m_in = F.rgb_to_lms("linear_rec2020")
    e_in = F.rgb_to_lms("linear_srgb")
    e_out = np.linalg.inv(e_in)
    Yo, co, cos, sin = _ych(px, m_in)
    Yf, cf, _, _ = _ych(out, m_in)
    if cap:
        cf = np.minimum(co, cf)
    lo, hi = F.Y_1931_TO_2006 * bd, F.Y_1931_TO_2006 * wd
    Yf = np.clip(Yf, lo, hi)
    cho, chf = co * Yo, cf * Yf
    new = np.where((Yf > Yo) & (cho < chf), (cho + chf) / 2,
                   np.where(((sat_gm > 0) & (cho > chf)) | (sat_gm < 0), chf + sat_gm * (cho - chf), chf))
    cf = np.maximum(new / Yf, 0)
    rr, gg = cf * cos + F.WHITE_R, cf * sin + F.WHITE_G
    with np.errstate(divide="ignore", invalid="ignore"):
        cf = np.where(rr < 0, np.minimum(cf, -F.WHITE_R / cos), cf)
        cf = np.where(gg < 0, np.minimum(cf, -F.WHITE_G / sin), cf)
        cf = np.where(rr + gg > 1, np.minimum(cf, (1 - F.WHITE_R - F.WHITE_G) / (cos + sin)), cf)
    rgbb = _ych_to_rgb(Yf, cf, cos, sin, e_out)
    Yb = _ych(rgbb + np.maximum(-rgbb.min(-1), 0)[..., None], e_in)[0]
    Yn = np.clip((Yf + Yb) / 2, lo, hi)
    cn = np.minimum(cf, _max_chroma_bisect(e_out, wd, Yn, cos, sin))
    o = np.clip(_ych_to_rgb(Yn, cn, cos, sin, e_out), 0, wd)
    return o @ e_in.T @ np.linalg.inv(m_in).T


def _test_image():
    img = rng.uniform(-0.02, 3.0, size=(3, 24, 30)).astype(np.float32)
    img[:, 0, 0] = F.MIDDLE_GREY
    img[:, 1, :] = (np.exp(rng.uniform(-9, 4, size=30)) * np.array([[0.2], [1.0], [0.05]])).astype(np.float32)
    img[:, 2, :] = (np.exp(rng.uniform(-9, 4, size=30)) * np.array([[0.02], [0.1], [1.0]])).astype(np.float32)
    return img


CONFIGS = [
    {},
    {"preserve_color": "none"},
    {"preserve_color": "max_rgb", "shadows": "safe", "highlights": "soft"},
    {"preserve_color": "luminance", "saturation": 30.0, "latitude": 20.0, "balance": 10.0},
    {"preserve_color": "euclidean_norm", "saturation": -40.0, "contrast": 1.6, "shadows": "soft",
     "highlights": "safe"},
    {"version": "v7"},
    {"version": "v7", "saturation": 20.0, "balance": -20.0},
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_matches_numpy_reference(kw):
    p = scene_referred_defaults(0.0)
    for k, v in kw.items():
        setattr(p, k, v)
    inp = _test_image()
    out, piece = run_module("filmicrgb", rgb_image(inp), inp, params=p)
    ref = filmic_reference(inp.transpose(1, 2, 0), p, piece.data["power"]).transpose(2, 0, 1)
    np.testing.assert_allclose(out, ref, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(out[:, 0, 0], F.MIDDLE_GREY, atol=2e-5)  # grey stays grey


# ---------------------------------------------------------------- the curve
@pytest.mark.parametrize("shadows", ["hard", "soft", "safe"])
@pytest.mark.parametrize("highlights", ["hard", "soft", "safe"])
@pytest.mark.parametrize("extra", [{}, {"latitude": 30.0, "balance": 20.0}, {"contrast": 1.8, "balance": -30.0},
                                   {"white_point_source": 8.0, "black_point_source": -12.0}])
def test_spline_nodes_targets_and_monotony(shadows, highlights, extra):
    p = FilmicrgbParams(shadows=shadows, highlights=highlights, **extra)
    power = F.auto_hardness(p.white_point_source, p.black_point_source)
    s = compute_spline(p, power)
    xs = np.linspace(0, 1, 20001)
    ys = eval_spline(s, xs)
    # rational ("safe") toe/shoulder never overshoot; darktable's polynomial ones may (its GUI warns),
    # the module clamps their output to the display range
    lo_part, hi_part = xs < s.latitude_min, xs > s.latitude_max
    if shadows == "safe":
        assert np.all(np.diff(ys[lo_part]) >= -1e-9)
    if highlights == "safe":
        assert np.all(np.diff(ys[hi_part]) >= -1e-9)
    assert np.all(np.diff(ys[~lo_part & ~hi_part]) > 0)
    # targets: black at 0, grey node, white at 1, after the output power
    assert abs(eval_spline(s, [0.0])[0] ** power - p.black_point_target / 100) < 1e-6
    assert abs(eval_spline(s, [1.0])[0] ** power - 1.0) < 1e-6
    grey_log = -p.black_point_source / (p.white_point_source - p.black_point_source)
    assert abs(eval_spline(s, [grey_log])[0] ** power - 0.1845) < 1e-6
    # continuous value and slope at the toe and shoulder joins
    for j in (s.latitude_min, s.latitude_max):
        d = 1e-6
        lo, hi = eval_spline(s, [j - d, j + d])
        assert abs(hi - lo) < 1e-4
        sl = (eval_spline(s, [j - 2 * d])[0] - eval_spline(s, [j - 3 * d])[0]) / d
        sr = (eval_spline(s, [j + 3 * d])[0] - eval_spline(s, [j + 2 * d])[0]) / d
        assert abs(sl - s.contrast) < 1e-3 * s.contrast and abs(sr - s.contrast) < 1e-3 * s.contrast


def test_contrast_at_grey_depends_on_contrast_only():
    """Spline v3: after the output power, the slope at grey per EV of scene exposure is contrast / 8."""
    for w, b, contrast in ((4.56, -7.65, 1.0), (6.0, -10.0, 1.0), (4.56, -7.65, 1.4)):
        p = FilmicrgbParams(white_point_source=w, black_point_source=b, latitude=10.0, contrast=contrast)
        power = F.auto_hardness(w, b)
        s = compute_spline(p, power)
        assert not s.clamped
        g, d = -b / (w - b), 1e-5
        y1, y0 = eval_spline(s, [g + d, g - d]) ** power
        assert (y1 - y0) / (2 * d) / (w - b) == pytest.approx(contrast / 8.0, rel=1e-4)


def test_darktable_42_defaults_for_a_raw():
    """The values darktable 4.2 writes into its XMP for a raw without exposure bias."""
    p = scene_referred_defaults(0.0)
    assert p.black_point_source == pytest.approx(-7.65)
    assert p.white_point_source == pytest.approx(4.56)
    assert p.output_power == pytest.approx(3.614816, rel=1e-5)
    assert (p.version, p.preserve_color, p.shadows, p.highlights) == ("v6", "power_norm", "hard", "hard")
    assert (p.contrast, p.latitude, p.black_point_target) == (1.0, 0.01, 0.01517634)
    q = scene_referred_defaults(-1.0)  # -1 EV bias: 1.7 EV of boost
    assert q.white_point_source == pytest.approx(4.0 + 0.8 * 1.7)


# ---------------------------------------------------------------- robustness
def test_display_gamut_and_no_nan():
    inp = rng.uniform(-1, 50, size=(3, 16, 16)).astype(np.float32)
    inp[:, 0, :4] = np.array([np.nan, np.inf, -np.inf, 1e30], np.float32)
    inp[:, 1, :3] = 0.0
    for kw in CONFIGS:
        p = scene_referred_defaults(0.0)
        for k, v in kw.items():
            setattr(p, k, v)
        out, _ = run_module("filmicrgb", rgb_image(inp), inp, params=p)
        assert np.isfinite(out).all()
        srgb = np.einsum("ij,jhw->ihw", np.linalg.inv(F.rgb_to_lms("linear_srgb")) @ F.rgb_to_lms("linear_rec2020"),
                         out.astype(np.float64))
        assert srgb.min() > -1e-4 and srgb.max() < 1 + 1e-4


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000)])
def test_tiny_and_long_images(shape):
    inp = np.full((3,) + shape, 0.3, np.float32)
    out, _ = run_module("filmicrgb", rgb_image(inp), inp)
    assert out.shape == inp.shape and np.isfinite(out).all()


def test_reconstruction_is_not_implemented_and_says_so():
    inp = np.full((3, 4, 4), 0.2, np.float32)
    p = FilmicrgbParams(enable_highlight_reconstruction=True)
    _, piece = run_module("filmicrgb", rgb_image(inp), inp, params=p)
    assert any("highlight reconstruction is not implemented" in n for n in piece.notices)
