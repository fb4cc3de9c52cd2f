"""bilat (local contrast, bilateral grid) against a NumPy reference of the grid.

Tolerance: 2e-4 absolute on values in [0, 1] (float32 grid sums against float64).
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import hostile_inputs, rgb_image, run_at, smooth_test_image
from pixelpipe.modules._nbhd import Y_REC2020, lightness_np, luminance_of_lightness_np, with_luminance_np
from pixelpipe.modules.base import ROI
from pixelpipe.modules.bilat import BilatParams, grid_geometry

rng = np.random.default_rng(3)


def reference(inp, p: BilatParams, scale=1.0):
    v = inp.astype(np.float64)
    _, h, w = v.shape
    ss, sr, nz = grid_geometry(p, round(w / scale), round(h / scale), scale)
    Y = np.tensordot(Y_REC2020, v, axes=1)
    L = lightness_np(Y)
    gw, gh, m = -(-w // ss), -(-h // ss), 3  # cells, plus a margin for the blur
    grid = np.zeros((2, nz + 2 * m, gh + 2 * m, gw + 2 * m))
    yy, xx = np.mgrid[0:h, 0:w]
    zf = np.clip(L, 0, 100) / sr
    zi = np.clip(np.floor(zf).astype(int), 0, nz - 2)
    fz = zf - zi
    for dz, wz in ((0, 1 - fz), (1, fz)):
        for k, pay in ((0, L), (1, np.ones_like(L))):
            np.add.at(grid[k], (zi + dz + m, yy // ss + m, xx // ss + m), pay * wz)
    t = np.array([1, 4, 6, 4, 1]) / 16.0
    for axis in (1, 3, 2):  # z, x, y
        g = np.zeros_like(grid)
        for o, wt in zip(range(-2, 3), t):
            g += wt * np.roll(grid, -o, axis=axis)
        grid = g
    gx = (xx + 0.5) / ss - 0.5
    gy = (yy + 0.5) / ss - 0.5
    ix, iy = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = gx - ix, gy - iy
    sl = np.zeros((2, h, w))
    for dz, wz in ((0, 1 - fz), (1, fz)):
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                sl += wx * wy * wz * grid[:, zi + dz + m, iy + dy + m, ix + dx + m]
    base = np.where(sl[1] > 1e-6, sl[0] / np.maximum(sl[1], 1e-6), L)
    tone = p.shadows + (p.highlights - p.shadows) * np.clip(base / 100, 0, 1)
    L2 = L + p.detail * tone * (L - base)
    L2 = np.where(L > 0, np.maximum(L2, 0), L)
    return with_luminance_np(v, Y, luminance_of_lightness_np(L2))


def _image(h=64, w=90):
    img = smooth_test_image(h, w) * 0.6 + 0.04 * rng.standard_normal((3, h, w))
    img[:, 20:40, 30:60] += 0.3
    return img.astype(np.float32)


@pytest.mark.parametrize("p", [BilatParams(detail=0.8, sigma_s=7, sigma_r=15),
                               BilatParams(detail=-1.0, sigma_s=5, sigma_r=30),
                               BilatParams(detail=1.5, sigma_s=9, sigma_r=10, shadows=0.3, highlights=1.7)])
def test_matches_numpy_grid(p):
    inp = _image()
    out, _ = run_at("bilat", rgb_image(inp), p, inp)
    np.testing.assert_allclose(out, reference(inp, p), atol=2e-4)


def test_detail_zero_is_identity_and_sign_of_detail():
    inp = _image()
    out, _ = run_at("bilat", rgb_image(inp), BilatParams(detail=0.0, sigma_s=6), inp)
    np.testing.assert_allclose(out, inp, atol=1e-5)
    smooth, _ = run_at("bilat", rgb_image(inp), BilatParams(detail=-1.0, sigma_s=6, sigma_r=40), inp)
    boost, _ = run_at("bilat", rgb_image(inp), BilatParams(detail=1.0, sigma_s=6, sigma_r=40), inp)
    hf = lambda a: np.abs(np.diff(a[1], axis=1)).mean()  # noqa: E731
    assert hf(smooth) < 0.7 * hf(inp) and hf(boost) > 1.3 * hf(inp)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_region_equals_whole_image_cut(scale):
    inp = _image(96, 120)
    p = BilatParams(detail=1.0, sigma_s=8, sigma_r=12)
    whole, _ = run_at("bilat", rgb_image(inp), p, inp, scale)
    for roi in (ROI(37, 21, 40, 33, scale), ROI(0, 0, 30, 17, scale), ROI(80, 70, 40, 26, scale)):
        part, _ = run_at("bilat", rgb_image(inp), p, inp, scale, roi_out=roi)
        np.testing.assert_allclose(part, whole[:, roi.y: roi.y + roi.height, roi.x: roi.x + roi.width], atol=2e-5)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 2), (3, 1, 100000)])
@pytest.mark.parametrize("p", [BilatParams(), BilatParams(detail=4.0, sigma_s=1, sigma_r=1, shadows=2, highlights=0)])
def test_never_non_finite(shape, p):
    for inp in hostile_inputs(shape, rng):
        out, _ = run_at("bilat", rgb_image(inp), p, inp)
        assert out.shape == shape and np.isfinite(out).all()


def test_grid_is_bounded_for_huge_images():
    ss, sr, nz = grid_geometry(BilatParams(sigma_s=1, sigma_r=1), 8000, 6000, 1.0)
    assert nz == 51 and (8000 / ss) * (6000 / ss) * (nz + 4) * 2 <= (1 << 24) * 1.01
