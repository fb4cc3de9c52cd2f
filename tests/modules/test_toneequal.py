"""toneequal against a NumPy reference of darktable's documented tone equalizer.

Reference: luminance mask with exposure/contrast compensation, 4x4 block means
aligned to absolute coordinates, guided filter with edge-truncated box means,
bilinear upsampling of (a, b), eight-Gaussian curve fitted through the nine
band gains. Tolerance: 3e-4 relative (float32 box means and exp/log in Halide).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import hostile_inputs, rgb_image, run_at, smooth_test_image
from pixelpipe.modules import registry
from pixelpipe.modules._nbhd import box_mean_np, sane_np
from pixelpipe.modules.base import Piece, ROI
from pixelpipe.modules.toneequal import (DS, MIN_FLOAT, ToneequalParams, correction_np, filter_radius, gains_of,
                                         mask_constants, norm_np, rbf_factors)

rng = np.random.default_rng(11)


def reference(inp, p: ToneequalParams):
    v = sane_np(inp)
    _, h, w = v.shape
    eb, fulcrum, cb = mask_constants(p)
    m = np.maximum((eb * norm_np(v, p.method) - fulcrum) * cb + fulcrum, MIN_FLOAT)
    if p.details == "none":
        lum = m
    else:
        gw, gh = max(2, -(-w // DS)), max(2, -(-h // DS))
        xs = np.clip(np.arange(gw * DS), 0, w - 1)
        ys = np.clip(np.arange(gh * DS), 0, h - 1)
        I = m[np.ix_(ys, xs)].reshape(gh, DS, gw, DS).mean(axis=(1, 3))
        _, r = filter_radius(p, w, h, 1.0)
        for _ in range(p.iterations):
            if p.quantization > 0:
                G = np.clip(2.0 ** (np.floor(np.log2(I) / p.quantization) * p.quantization), 2.0 ** -14, 4.0)
            else:
                G = I
            mG, mI = box_mean_np(G, r), box_mean_np(I, r)
            var = box_mean_np(G * G, r) - mG * mG
            a = (box_mean_np(G * I, r) - mG * mI) / np.maximum(var + 1.0 / p.feathering, 1e-15)
            b = mI - a * mG
            ma, mb = box_mean_np(a, r), box_mean_np(b, r)
            I = np.maximum(ma * I + mb, MIN_FLOAT)
        tx = (np.arange(w) + 0.5) / DS - 0.5
        ty = (np.arange(h) + 0.5) / DS - 0.5
        ix, iy = np.floor(tx).astype(int), np.floor(ty).astype(int)
        fx, fy = (tx - ix)[None, :], (ty - iy)[:, None]

        def up(g):
            at = lambda i, j: g[np.clip(j, 0, gh - 1)[:, None], np.clip(i, 0, gw - 1)[None, :]]  # noqa: E731
            return (1 - fy) * ((1 - fx) * at(ix, iy) + fx * at(ix + 1, iy)) + fy * (
                (1 - fx) * at(ix, iy + 1) + fx * at(ix + 1, iy + 1))

        blended = np.maximum(up(ma) * m + up(mb), MIN_FLOAT)
        lum = blended if p.details == "guided" else np.sqrt(m * blended)
    corr = correction_np(np.log2(lum), rbf_factors(gains_of(p), p.smoothing), p.smoothing)
    return v * corr


def _scene(h=72, w=96):
    """A scene-linear image spanning about -7..0 EV with edges."""
    img = smooth_test_image(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    ev = -7 + 7 * xx / w
    img = img * 2.0 ** ev
    img[:, 10:30, 50:80] *= 8
    return (img * (1 + 0.03 * rng.standard_normal((3, h, w)))).astype(np.float32)


CASES = [
    ToneequalParams(details="none", shadows=0.8, blacks=0.5, midtones=0.3, highlights=-0.4, whites=-0.6),
    ToneequalParams(details="guided", shadows=0.8, blacks=0.5, midtones=0.3, highlights=-0.4, whites=-0.6,
                    blending=20, feathering=20, contrast_boost=1.0, exposure_boost=-0.5),
    ToneequalParams(details="averaged guided", deep_blacks=1.0, shadows=1.0, blacks=1.0, blending=10,
                    feathering=5, iterations=3, quantization=0.5, method="norm_power"),
    ToneequalParams(details="guided", method="geomean", speculars=-1.0, whites=-1.0, blending=8, iterations=2),
]


@pytest.mark.parametrize("p", CASES)
def test_matches_numpy_reference(p):
    inp = _scene()
    out, _ = run_at("toneequal", rgb_image(inp), p, inp)
    ref = reference(inp, p)
    np.testing.assert_allclose(out, ref, rtol=3e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["mean", "lightness", "value", "norm_1", "norm_2"])
def test_estimators_match(method):
    inp = _scene(20, 24)
    p = ToneequalParams(details="none", method=method, shadows=1, midtones=0.7, blacks=1.2)
    out, _ = run_at("toneequal", rgb_image(inp), p, inp)
    np.testing.assert_allclose(out, reference(inp, p), rtol=3e-4, atol=1e-7)


def test_uniform_gain_is_that_gain():
    inp = _scene()
    out, _ = run_at("toneequal", rgb_image(inp), ToneequalParams(**{b: 1.0 for b in (
        "noise", "ultra_deep_blacks", "deep_blacks", "blacks", "shadows", "midtones", "highlights", "whites",
        "speculars")}), inp)
    ratio = out / inp
    assert abs(np.median(ratio) - 2.0) < 0.03


def test_curve_fit_reproduces_the_band_gains():
    p = ToneequalParams(blacks=0.5, shadows=0.6, midtones=0.4, highlights=0.0, whites=-0.3, smoothing=math.sqrt(2))
    w = rbf_factors(gains_of(p), p.smoothing)
    got = np.log2(correction_np(np.arange(-8.0, 0.5), w, p.smoothing))
    assert np.abs(got - gains_of(p)).max() < 0.15


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_region_equals_whole_image_cut(scale):
    inp = _scene(120, 160)
    p = ToneequalParams(details="guided", shadows=0.8, midtones=0.4, whites=-0.5, blending=6, feathering=10,
                        iterations=2)
    whole, _ = run_at("toneequal", rgb_image(inp), p, inp, scale)
    for roi in (ROI(50, 30, 45, 37, scale), ROI(0, 0, 33, 21, scale), ROI(100, 80, 60, 40, scale)):
        part, _ = run_at("toneequal", rgb_image(inp), p, inp, scale, roi_out=roi)
        np.testing.assert_allclose(part, whole[:, roi.y: roi.y + roi.height, roi.x: roi.x + roi.width],
                                   rtol=2e-5, atol=1e-8)


def test_padding_is_stated_next_to_the_algorithm():
    mod = registry()["toneequal"]()
    piece = Piece("toneequal", 0, ToneequalParams(blending=5, iterations=2), rgb_image(np.zeros((3, 2, 2))))
    piece.buf_in = (4000, 3000)
    roi = mod.modify_roi_in(piece, ROI(1000, 800, 200, 100, 0.5))
    _, r = filter_radius(piece.params, 4000, 3000, 0.5)
    assert roi.x == 1000 - DS * (4 * r + 3) and roi.width == 200 + 2 * DS * (4 * r + 3)
    piece.params = ToneequalParams(details="none")
    assert mod.modify_roi_in(piece, ROI(1, 2, 3, 4, 0.5)) == ROI(1, 2, 3, 4, 0.5)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 2), (3, 1, 100000)])
@pytest.mark.parametrize("p", [ToneequalParams(shadows=2, whites=-2),
                               ToneequalParams(details="averaged guided", method="norm_power", quantization=2,
                                               feathering=0.01, iterations=20, blending=100, exposure_boost=16,
                                               contrast_boost=-16, smoothing=4.0, noise=2, speculars=-2)])
def test_never_non_finite(shape, p):
    for inp in hostile_inputs(shape, rng):
        out, _ = run_at("toneequal", rgb_image(inp), p, inp)
        assert out.shape == shape and np.isfinite(out).all()
