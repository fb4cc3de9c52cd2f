"""ashift: rotation and keystone by a homography.

Checks: identity and 90-degree rotation exact, pixels against a NumPy cubic
resampling reference (2e-4 absolute), round trips < 0.1 px (in fact ~1e-9),
keystone direction, the automatic crop holding only valid pixels, region
equals whole, and finite output for degenerate inputs and parameters.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import hostile_inputs, rgb_image, smooth_test_image
import helpers
from pixelpipe.modules import registry
from pixelpipe.modules._nbhd import cubic_np
from pixelpipe.modules.ashift import AshiftParams, apply_h, homography
from pixelpipe.modules.base import ROI

rng = np.random.default_rng(4)


def run_at(*args, **kw):
    return helpers.run_at(*args, space="camera", **kw)  # this module's tests feed camera RGB


def test_identity_and_quarter_turn_are_exact():
    data = rng.uniform(0, 1, (3, 40, 40)).astype(np.float32)
    out, _ = run_at("ashift", rgb_image(data), AshiftParams(), data)
    np.testing.assert_allclose(out, data, atol=1e-5)
    out, _ = run_at("ashift", rgb_image(data), AshiftParams(rotation=90, cropmode="off"), data)
    np.testing.assert_allclose(out, np.rot90(data, 1, axes=(1, 2)), atol=1e-4)


@pytest.mark.parametrize("p", [AshiftParams(rotation=7.5, cropmode="off"),
                               AshiftParams(rotation=-3, lensshift_v=0.4, lensshift_h=-0.2, shear=0.05,
                                            aspect=1.2, cropmode="aspect"),
                               AshiftParams(lensshift_v=-0.6, f_length=50, cropmode="largest")])
def test_pixels_match_numpy_reference(p):
    h, w = 90, 120
    data = smooth_test_image(h, w)
    data[:, 30:50, 40:80] = 0.9
    out, piece = run_at("ashift", rgb_image(data), p, data)
    mod = registry()["ashift"]()
    ho, wo = out.shape[1:]
    yy, xx = np.mgrid[0:ho, 0:wo]
    src = mod.distort_backtransform(piece, np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1))
    val = cubic_np(data.astype(np.float64), src[:, 0] - 0.5, src[:, 1] - 0.5)
    inside = (src[:, 0] >= 0) & (src[:, 0] <= w) & (src[:, 1] >= 0) & (src[:, 1] <= h)
    ref = np.where(inside[None], val, 0).reshape(3, ho, wo)
    np.testing.assert_allclose(out, ref, atol=2e-4)


@pytest.mark.parametrize("p", [AshiftParams(rotation=12), AshiftParams(lensshift_v=0.8, lensshift_h=0.3, shear=0.1),
                               AshiftParams(rotation=-170, aspect=0.7, cropmode="off")])
def test_round_trip(p):
    _, piece = run_at("ashift", rgb_image(np.zeros((3, 8, 8), np.float32)), p,
                      np.zeros((3, 300, 400), np.float32))
    mod = registry()["ashift"]()
    pts = rng.uniform([-50, -50], [450, 350], (1000, 2))
    assert np.abs(mod.distort_backtransform(piece, mod.distort_transform(piece, pts)) - pts).max() < 0.1
    assert np.abs(mod.distort_transform(piece, mod.distort_backtransform(piece, pts)) - pts).max() < 0.1


def test_keystone_direction_and_centre():
    w, h = 600, 400
    M = homography(AshiftParams(lensshift_v=0.3), w, h)
    q = apply_h(M, np.array([[0, 0], [w, 0], [w, h], [0, h], [w / 2, h / 2]], np.float64))
    assert q[1, 0] - q[0, 0] > q[2, 0] - q[3, 0]  # top wider than bottom
    np.testing.assert_allclose(q[4], [w / 2, h / 2], atol=1e-6)
    M = homography(AshiftParams(lensshift_h=0.3), w, h)
    q = apply_h(M, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64))
    assert q[2, 1] - q[1, 1] > q[3, 1] - q[0, 1]  # right side taller


@pytest.mark.parametrize("mode", ["aspect", "largest"])
def test_automatic_crop_keeps_only_valid_pixels(mode):
    data = np.ones((3, 120, 180), np.float32)
    out, piece = run_at("ashift", rgb_image(data), AshiftParams(rotation=8, lensshift_v=0.3, cropmode=mode), data)
    assert out.min() > 0.999 and out.shape[1] < 120
    if mode == "aspect":
        assert abs(out.shape[2] / out.shape[1] - 1.5) < 0.02
    # while focused in the darkroom the whole (uncropped) frame shows
    full, _ = run_at("ashift", rgb_image(data), AshiftParams(rotation=8, lensshift_v=0.3, cropmode=mode), data,
                     focused=True)
    assert full.shape[1:] == (120, 180) and full.min() == 0.0


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_region_equals_whole_image_cut(scale):
    h, w = 160, 240
    data = smooth_test_image(h, w) + 0.05 * rng.standard_normal((3, h, w)).astype(np.float32)
    buf = data if scale == 1.0 else data.reshape(3, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    p = AshiftParams(rotation=5, lensshift_v=0.2)
    whole, _ = run_at("ashift", rgb_image(data), p, buf, scale)
    H, W = whole.shape[1:]
    for roi in (ROI(40, 30, 50, 33, scale), ROI(0, 0, 31, 20, scale), ROI(W - 40, H - 25, 40, 25, scale)):
        part, _ = run_at("ashift", rgb_image(data), p, buf, scale, roi_out=roi)
        np.testing.assert_allclose(part, whole[:, roi.y: roi.y + roi.height, roi.x: roi.x + roi.width], atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 2), (3, 1, 100000)])
@pytest.mark.parametrize("p", [AshiftParams(rotation=33), AshiftParams(rotation=180, lensshift_v=2, lensshift_h=-2,
                                                                       shear=0.5, aspect=2.0, f_length=1,
                                                                       crop_factor=0.5, cropmode="largest")])
def test_never_non_finite(shape, p):
    for inp in hostile_inputs(shape, rng):
        out, piece = run_at("ashift", rgb_image(inp), p, inp)
        assert np.isfinite(out).all() and out.shape[0] == 3
