"""basecurve against a NumPy reference, its per-maker presets, and the display-referred workflow.

The reference evaluates the monotone cubic Hermite curve (Fritsch-Carlson
tangents, written out here independently of the module) directly at each
value instead of through the module's 65536-entry table, so the tolerance is
the table's quantisation: 2e-4 absolute. Values above 1 follow the power
function through the last node.
"""
from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest

from helpers import raw_file
from helpers import rgb_image, run_module
from pixelpipe.errors import ParamsError
from pixelpipe.modules.basecurve import BasecurveParams, curve_table

rng = np.random.default_rng(5)
PRESETS = json.loads(resources.files("pixelpipe").joinpath("data/presets/basecurve.json").read_text())
CANON = next(p for p in PRESETS["presets"] if p["name"] == "canon eos like")["params"]["nodes"]


def hermite(nodes, v):
    xs = [n[0] for n in nodes]
    ys = [n[1] for n in nodes]
    n = len(xs)
    d = [(ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k]) for k in range(n - 1)]
    m = [d[0]] + [(d[k - 1] + d[k]) / 2 for k in range(1, n - 1)] + [d[-1]]
    for k in range(n - 1):
        if d[k] == 0:
            m[k] = m[k + 1] = 0.0
        else:
            a, b = m[k] / d[k], m[k + 1] / d[k]
            if a * a + b * b > 9:
                t = 3 / math.sqrt(a * a + b * b)
                m[k], m[k + 1] = t * a * d[k], t * b * d[k]
    out = np.empty_like(v, dtype=np.float64)
    for i, val in np.ndenumerate(v):
        val = min(max(val, xs[0]), xs[-1])
        k = max(j for j in range(n - 1) if xs[j] <= val) if val < xs[-1] else n - 2
        h = xs[k + 1] - xs[k]
        t = (val - xs[k]) / h
        out[i] = ((2 * t ** 3 - 3 * t ** 2 + 1) * ys[k] + (t ** 3 - 2 * t ** 2 + t) * h * m[k]
                  + (-2 * t ** 3 + 3 * t ** 2) * ys[k + 1] + (t ** 3 - t ** 2) * h * m[k + 1])
    return out


def reference(rgb, nodes, preserve):
    xm, ym = nodes[-1]
    samples = np.array([0.7, 0.8, 0.9]) * xm
    g = np.mean([math.log(y / ym) / math.log(x / xm) for x, y in zip(samples, hermite(nodes, samples))])

    def f(v):
        return np.where(v < 1, hermite(nodes, np.clip(v, 0, 1)), ym * np.maximum(v / xm, 0) ** g)

    rgb = rgb.astype(np.float64)
    if preserve == "none":
        return np.maximum(f(rgb), 0)
    from pixelpipe.modules.filmicrgb import luminance_coefficients

    r, gg, b = rgb
    norms = {"luminance": np.tensordot(luminance_coefficients(), rgb, 1), "max": rgb.max(0), "average": rgb.mean(0),
             "sum": rgb.sum(0), "norm": np.sqrt((rgb ** 2).sum(0)),
             "power": (rgb ** 3).sum(0) / np.maximum((rgb ** 2).sum(0), 1e-30)}
    n = norms[preserve]
    ratio = np.where(n > 0, f(n) / np.where(n > 0, n, 1), 1.0)
    return np.maximum(rgb * ratio, 0)


@pytest.mark.parametrize("preserve", ["none", "luminance", "max", "average", "sum", "norm", "power"])
def test_matches_numpy_reference(preserve):
    inp = rng.uniform(0, 1.6, size=(3, 12, 15)).astype(np.float32)
    inp[:, 0, 0] = 0.0
    p = BasecurveParams(nodes=CANON, preserve_colors=preserve).validate("basecurve")
    out, _ = run_module("basecurve", rgb_image(inp), inp, params=p)
    np.testing.assert_allclose(out, reference(inp, CANON, preserve), atol=2e-4, rtol=1e-4)


def test_curve_through_nodes_monotone_and_identity_default():
    for preset in PRESETS["presets"]:
        p = BasecurveParams.from_dict("basecurve", preset["params"])
        table, (inv_xm, y_end, g) = curve_table(p)
        ys = [n[1] for n in p.nodes]
        if all(b >= a for a, b in zip(ys, ys[1:])):  # (the measured Canon EOS 6D curve dips at its start)
            assert np.all(np.diff(table) >= -1e-9), preset["name"]
        for x, y in p.nodes:
            assert table[int(round(x * 65535))] == pytest.approx(y, abs=2e-4), preset["name"]
        assert g > 0 and y_end == pytest.approx(p.nodes[-1][1], abs=1e-3)
    inp = rng.uniform(0, 1, size=(3, 5, 5)).astype(np.float32)
    out, _ = run_module("basecurve", rgb_image(inp), inp)  # default: identity
    np.testing.assert_allclose(out, inp, atol=1e-4)


def test_natural_cubic_spline_option():
    nodes = [[0, 0], [0.25, 0.4], [0.7, 0.85], [1, 1]]
    p = BasecurveParams(nodes=nodes, curve_type="cubic_spline", preserve_colors="none").validate("basecurve")
    table, _ = curve_table(p)
    for x, y in nodes:
        assert table[int(round(x * 65535))] == pytest.approx(y, abs=1e-4)


@pytest.mark.parametrize("nodes,msg", [([[0, 0]], "2..20"), ([[0, 0], [0.5, 0.5], [0.4, 0.9]], "increase"),
                                       ([[0, 0], [1, 1.5]], "outside"), ([[0, 0], ["a", 1]], "finite")])
def test_bad_nodes_are_refused_clearly(nodes, msg):
    with pytest.raises(ParamsError, match=msg):
        BasecurveParams.from_dict("basecurve", {"nodes": nodes})


def test_params_round_trip():
    p = BasecurveParams.from_dict("basecurve", {"nodes": CANON, "preserve_colors": "max"})
    assert BasecurveParams.from_dict("basecurve", json.loads(json.dumps(p.to_dict()))) == p


def test_non_finite_and_long_input():
    inp = np.full((3, 1, 100000), 0.4, np.float32)
    inp[:, 0, 0] = [np.nan, np.inf, -np.inf]
    out, _ = run_module("basecurve", rgb_image(inp), inp, params=BasecurveParams(nodes=CANON))
    assert np.isfinite(out).all()


@pytest.mark.realdata
def test_display_referred_canon_gets_its_maker_curve():
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    edit = Edit.default_for(img, "display-referred")
    assert edit.order.kind() == "legacy"
    bc = edit.get("basecurve")
    assert bc.enabled and bc.params.nodes == CANON
    assert edit.find("exposure") is None or not edit.find("exposure").enabled
    out = Pipe(img, edit).render(width=400)
    assert np.isfinite(out).all() and (out > 0.999).mean() < 0.01
