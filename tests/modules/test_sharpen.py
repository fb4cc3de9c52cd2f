"""sharpen: unsharp mask on L*, against a NumPy reference of darktable's formulas.

Tolerance: float32 Halide against float64 NumPy, 3e-4 absolute on values in [0, 1]
(L* goes through a cube root and back).
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import rgb_image, run_at, smooth_test_image
from pixelpipe.modules._nbhd import Y_REC2020, lightness_np, luminance_of_lightness_np, with_luminance_np
from pixelpipe.modules.base import ROI
from pixelpipe.modules.sharpen import SharpenParams, kernel_of

rng = np.random.default_rng(7)


def reference(inp, p: SharpenParams, scale=1.0):
    v = inp.astype(np.float64)
    Y = np.tensordot(Y_REC2020, v, axes=1)
    L = lightness_np(Y)
    rad, k = kernel_of(p.radius, scale)
    P = np.pad(L, rad, mode="edge")
    h, w = L.shape
    by = sum(k[i] * P[i: i + h, :] for i in range(2 * rad + 1))
    blur = sum(k[i] * by[:, i: i + w] for i in range(2 * rad + 1))
    d = L - blur
    detail = np.where(np.abs(d) > p.threshold, np.sign(d) * (np.abs(d) - p.threshold), 0)
    L2 = L + p.amount * detail
    return with_luminance_np(v, Y, luminance_of_lightness_np(L2))


def test_darktable_kernel_rule():
    rad, k = kernel_of(2.0, 1.0)
    assert rad == 5 and len(k) == 11 and abs(k.sum() - 1) < 1e-6
    assert kernel_of(99.0, 1.0)[0] == 12  # darktable's MAXR
    assert kernel_of(2.0, 0.1)[0] == 1
    assert kernel_of(0.0, 1.0)[0] == 0


@pytest.mark.parametrize("params,scale", [(SharpenParams(), 1.0), (SharpenParams(3.0, 1.5, 2.0), 1.0),
                                          (SharpenParams(1.2, 0.7, 0.0), 0.5)])
def test_matches_numpy_reference(params, scale):
    inp = (smooth_test_image(48, 70) + 0.08 * rng.standard_normal((3, 48, 70))).astype(np.float32)
    inp[:, 10:20, 30:40] = 0.9  # an edge
    out, _ = run_at("sharpen", rgb_image(inp), params, inp, scale)
    np.testing.assert_allclose(out, reference(inp, params, scale), atol=3e-4)


def test_region_equals_whole_image_cut():
    inp = (smooth_test_image(80, 100) + 0.05 * rng.standard_normal((3, 80, 100))).astype(np.float32)
    p = SharpenParams(2.5, 1.0, 0.2)
    whole, _ = run_at("sharpen", rgb_image(inp), p, inp)
    for roi in (ROI(20, 15, 33, 27), ROI(0, 0, 25, 10), ROI(70, 60, 30, 20)):
        part, _ = run_at("sharpen", rgb_image(inp), p, inp, roi_out=roi)
        np.testing.assert_allclose(part, whole[:, roi.y: roi.y + roi.height, roi.x: roi.x + roi.width], atol=1e-6)


def test_identity_cases_and_flat_image():
    inp = rng.uniform(0, 1, (3, 20, 30)).astype(np.float32)
    for p in (SharpenParams(0.0, 1.0, 0.0), SharpenParams(2.0, 0.0, 0.0)):
        out, _ = run_at("sharpen", rgb_image(inp), p, inp)
        np.testing.assert_allclose(out, inp, atol=2e-6)
    flat = np.full((3, 16, 16), 0.4, np.float32)
    out, _ = run_at("sharpen", rgb_image(flat), SharpenParams(4, 2, 0), flat)
    np.testing.assert_allclose(out, flat, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 2), (3, 1, 100000), (3, 9, 7)])
@pytest.mark.parametrize("params", [SharpenParams(), SharpenParams(99.0, 2.0, 0.0)])
def test_never_non_finite(shape, params):
    for fill in ("black", "clipped", "wild"):
        if fill == "black":
            inp = np.zeros(shape, np.float32)
        elif fill == "clipped":
            inp = np.ones(shape, np.float32) * 4.0
        else:
            inp = rng.uniform(-2, 3, shape).astype(np.float32)
            inp.flat[:: 3] = np.nan
            inp.flat[1:: 5] = np.inf
            inp.flat[2:: 7] = -np.inf
        out, _ = run_at("sharpen", rgb_image(inp), params, inp)
        assert out.shape == shape and np.isfinite(out).all()
