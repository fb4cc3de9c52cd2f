"""rgbcurve against NumPy references of darktable's rgb curve.

The monotone curve is checked against an independent Fritsch-Carlson
implementation, the cubic spline against its defining properties (through the
nodes, C2, natural ends); the kernel (table read with linear interpolation,
power-law extension, colour-preserving norms) against NumPy with
``atol=2e-5, rtol=2e-5`` (float32 and a 65537-entry table).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import raw_file
from helpers import rgb_image, run_module
from pixelpipe.errors import ParamsError
from pixelpipe.io.icc import colour_module
from pixelpipe.modules.rgbcurve import RgbcurveParams, curve_values, extrapolation

colour = colour_module()
Y_ROW = np.asarray(colour.RGB_COLOURSPACES["ITU-R BT.2020"].matrix_RGB_to_XYZ)[1]
rng = np.random.default_rng(3)
TOL = dict(atol=2e-5, rtol=2e-5)
S_CURVE = ((0.0, 0.0), (0.25, 0.15), (0.5, 0.5), (0.75, 0.85), (1.0, 1.0))
GAMMA2 = tuple((t, t * t) for t in (0.0, 0.08, 0.17, 0.5, 0.83, 0.92, 1.0))


def _fritsch_carlson(xs, ys, t):
    """Monotone cubic Hermite interpolation (Fritsch & Carlson 1980), written independently."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    h = np.diff(xs)
    delta = np.diff(ys) / h
    m = np.concatenate([[delta[0]], (delta[:-1] + delta[1:]) / 2, [delta[-1]]])
    m[1:-1][delta[:-1] * delta[1:] <= 0] = 0
    for k in range(len(delta)):
        if delta[k] == 0:
            m[k] = m[k + 1] = 0
        else:
            a, b = m[k] / delta[k], m[k + 1] / delta[k]
            if a * a + b * b > 9:
                tau = 3 / math.hypot(a, b)
                m[k], m[k + 1] = tau * a * delta[k], tau * b * delta[k]
    out = np.empty_like(t)
    for i, tt in enumerate(t):
        k = min(max(np.searchsorted(xs, tt, side="right") - 1, 0), len(xs) - 2)
        s = (tt - xs[k]) / h[k]
        out[i] = ((2 * s ** 3 - 3 * s ** 2 + 1) * ys[k] + (s ** 3 - 2 * s ** 2 + s) * h[k] * m[k]
                  + (-2 * s ** 3 + 3 * s ** 2) * ys[k + 1] + (s ** 3 - s ** 2) * h[k] * m[k + 1])
    return out


def _curve_ref(nodes, method, v):
    """The module's documented curve: nodes' curve below the last x, power law above."""
    v = np.asarray(v, dtype=np.float64)
    x0, y0, g = extrapolation(nodes, method)
    inside = curve_values(nodes, method, np.clip(v, 0, 1))
    return np.where(v < x0, inside, y0 * np.maximum(v / x0, 0) ** g)


def _norm(px, method):
    return {"luminance": np.tensordot(Y_ROW, px, 1), "max": np.max(px, 0), "average": px.mean(0), "sum": px.sum(0),
            "norm": np.sqrt((px ** 2).sum(0)),
            "power": (px ** 3).sum(0) / np.where((px ** 2).sum(0) > 0, (px ** 2).sum(0), 1)}[method]


def _run(inp, p):
    return run_module("rgbcurve", rgb_image(inp), inp, params=p)[0]


# ---------------------------------------------------------------- the curves themselves
def test_monotone_curve_matches_fritsch_carlson_and_stays_monotone():
    nodes = ((0.0, 0.0), (0.1, 0.3), (0.15, 0.32), (0.6, 0.35), (0.7, 0.9), (1.0, 1.0))
    t = np.linspace(0, 1, 2001)
    xs, ys = zip(*nodes)
    np.testing.assert_allclose(curve_values(nodes, "monotone", t), np.clip(_fritsch_carlson(xs, ys, t), 0, 1),
                               atol=1e-12)
    assert np.all(np.diff(curve_values(nodes, "monotone", t)) >= -1e-12)
    # the cubic spline overshoots on the same nodes (why darktable offers both)
    assert np.any(np.diff(curve_values(nodes, "cubic", t)) < 0)


@pytest.mark.parametrize("method", ["monotone", "cubic", "catmull_rom"])
def test_curves_pass_through_nodes_and_are_exact_on_lines(method):
    xs, ys = zip(*S_CURVE)
    np.testing.assert_allclose(curve_values(S_CURVE, method, xs), ys, atol=1e-12)
    line = ((0.0, 0.1), (0.3, 0.34), (0.6, 0.58), (1.0, 0.9))
    t = np.linspace(0, 1, 101)
    np.testing.assert_allclose(curve_values(line, method, t), 0.1 + 0.8 * t, atol=1e-12)
    # flat outside the nodes
    inner = ((0.2, 0.3), (0.5, 0.6), (0.8, 0.7))
    np.testing.assert_allclose(curve_values(inner, method, [0.0, 0.1]), 0.3, atol=1e-12)


def test_cubic_spline_is_c2_with_natural_ends():
    t = np.linspace(0, 1, 100001)
    v = curve_values(S_CURVE, "cubic", t)
    d2 = np.diff(v, 2) / (t[1] - t[0]) ** 2
    assert abs(d2[0]) < 1e-3 and abs(d2[-1]) < 1e-3          # natural ends
    assert np.max(np.abs(np.diff(d2))) < 1e-2                 # continuous second derivative


def test_power_law_extension_beyond_the_last_node():
    x0, y0, g = extrapolation(GAMMA2, "monotone")
    assert (x0, y0) == (1.0, 1.0) and abs(g - 2.0) < 0.02
    inp = np.array([[[1.0, 1.5, 2.0, 8.0]]] * 3, np.float32)
    out = _run(inp, RgbcurveParams(mode="independent", curve_r=GAMMA2, curve_g=GAMMA2, curve_b=GAMMA2))
    np.testing.assert_allclose(out[0, 0], [1, 1.5 ** g, 2 ** g, 8 ** g], rtol=2e-5)


# ---------------------------------------------------------------- the kernel
def test_defaults_are_identity():
    inp = rng.uniform(0, 4, size=(3, 7, 9)).astype(np.float32)
    inp[:, 0, 0] = 0
    np.testing.assert_allclose(_run(inp, RgbcurveParams()), inp, **TOL)
    for preserve in ("none", "max", "power"):
        np.testing.assert_allclose(_run(inp, RgbcurveParams(preserve_colors=preserve)), inp, **TOL)


@pytest.mark.parametrize("method", ["monotone", "cubic", "catmull_rom"])
def test_independent_channels_match_numpy(method):
    inp = rng.uniform(-0.1, 2.0, size=(3, 8, 10)).astype(np.float32)
    p = RgbcurveParams(mode="independent", interpolation=method, curve_r=S_CURVE, curve_g=GAMMA2,
                       curve_b=((0.0, 0.2), (0.4, 0.3), (0.9, 0.95)))
    out = _run(inp, p)
    ref = np.stack([_curve_ref(n, method, inp[k]) for k, n in enumerate((p.curve_r, p.curve_g, p.curve_b))])
    np.testing.assert_allclose(out, ref, **TOL)


@pytest.mark.parametrize("preserve", ["none", "luminance", "max", "average", "sum", "norm", "power"])
def test_linked_curve_with_colour_preservation(preserve):
    inp = rng.uniform(0.0, 1.5, size=(3, 6, 8)).astype(np.float32)
    p = RgbcurveParams(preserve_colors=preserve, curve_r=S_CURVE, curve_g=GAMMA2)  # curve_g unused when linked
    out = _run(inp, p)
    px = inp.astype(np.float64)
    if preserve == "none":
        ref = _curve_ref(S_CURVE, "monotone", px)
    else:
        n = _norm(px, preserve)
        ratio = np.where(n > 0, _curve_ref(S_CURVE, "monotone", n) / np.where(n > 0, n, 1), 1)
        ref = px * ratio
        # hue kept: channel ratios unchanged
        np.testing.assert_allclose(out[0] * inp[1], out[1] * inp[0], atol=1e-5)
    np.testing.assert_allclose(out, ref, **TOL)


def test_compensate_middle_grey_nodes_are_lightness():
    y50 = colour.colorimetry.luminance_CIE1976(50.0) / 100
    y60 = colour.colorimetry.luminance_CIE1976(60.0) / 100
    inp = np.full((3, 1, 2), y50, np.float32)
    out = _run(inp, RgbcurveParams(compensate_middle_grey=True, curve_r=((0, 0), (0.5, 0.6), (1, 1))))
    np.testing.assert_allclose(out, y60, rtol=1e-4)


# ---------------------------------------------------------------- robustness and parameters
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_sizes_and_non_finite_values(shape):
    inp = rng.uniform(-1, 3, size=(3,) + shape).astype(np.float32)
    flat = inp.reshape(3, -1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30])
    flat[:, : min(flat.shape[1], 6)] = specials[: flat.shape[1]]
    for p in (RgbcurveParams(), RgbcurveParams(curve_r=((0, 1), (1e-3, 0), (1, 1)), interpolation="cubic"),
              RgbcurveParams(mode="independent", curve_g=((0.0, 0.0), (0.001, 1.0))),
              RgbcurveParams(preserve_colors="power", curve_r=((0, 1), (1, 0)))):
        out = _run(inp, p)
        assert out.shape == inp.shape and np.isfinite(out).all()


def test_black_and_clipped():
    inp = np.zeros((3, 2, 2), np.float32)
    inp[:, 1] = 1.0
    out = _run(inp, RgbcurveParams(curve_r=S_CURVE))
    np.testing.assert_allclose(out[:, 0], 0)
    np.testing.assert_allclose(out[:, 1], 1, atol=1e-6)


@pytest.mark.parametrize("field,value,match", [
    ("curve_r", [[0, 0]], "2..20"), ("curve_r", [[0, 0], [1.2, 1]], "outside"),
    ("curve_g", [[0.5, 0], [0.5, 1]], "increase"), ("curve_b", [[0, 0], [1, float("nan")]], "finite"),
    ("curve_r", [[i / 30, i / 30] for i in range(31)], "2..20"), ("preserve_colors", "lab", "not one of"),
    ("interpolation", "linear", "not one of"), ("mode", "yes", "not one of"),
])
def test_bad_parameters_name_module_and_field(field, value, match):
    d = RgbcurveParams().to_dict()
    d[field] = value
    with pytest.raises(ParamsError, match=match) as e:
        RgbcurveParams.from_dict("rgbcurve", d)
    assert "rgbcurve" in str(e.value) and field in str(e.value)


def test_nodes_round_trip_through_json():
    p = RgbcurveParams(mode="independent", curve_g=S_CURVE)
    q = RgbcurveParams.from_dict("rgbcurve", json.loads(json.dumps(p.to_dict())))
    assert q == p and q.digest() == p.digest()


def test_real_raw_default_is_identity_and_a_curve_applies():
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    edit = Edit.default_for(img)
    base = Pipe(img, edit).render(width=400)
    edit.set_params("rgbcurve", img)
    same = Pipe(img, edit).render(width=400)
    np.testing.assert_allclose(same, base, atol=1e-4)
    edit.set_params("rgbcurve", img, curve_r=[list(n) for n in S_CURVE])
    contrast = Pipe(img, edit).render(width=400)
    # (rgbcurve runs on scene-referred data before the tone mapper: this S curve darkens the image)
    assert np.isfinite(contrast).all() and contrast.mean() < base.mean() - 0.02
