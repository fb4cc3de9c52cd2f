"""Mask refinement: Gaussian blur, brightness/contrast curve with opacity, guided feathering."""
from __future__ import annotations

import numpy as np

from pixelpipe.blend import BlendParams
from pixelpipe.blend.kernels import curve_exponents, run_blur, run_finish
from pixelpipe.blend.refine import box_mean, guided_filter, refine, show_mask


def test_blur_matches_a_numpy_gaussian_with_repeated_edges():
    rng = np.random.default_rng(0)
    m = (rng.uniform(0, 1, (30, 41)) > 0.7).astype(np.float32)
    sigma = 2.5
    r = int(np.ceil(3 * sigma))
    t = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    p = np.pad(m.astype(np.float64), r, mode="edge")
    h = sum(k[i] * p[:, i: i + m.shape[1]] for i in range(2 * r + 1))
    ref = sum(k[i] * h[i: i + m.shape[0], :] for i in range(2 * r + 1))
    np.testing.assert_allclose(run_blur(m, sigma), ref, atol=1e-5)
    assert run_blur(m, 0.0) is m


def test_finish_curve_keeps_0_and_1_and_applies_opacity():
    m = np.linspace(0, 1, 101, dtype=np.float32)[None].repeat(2, 0)
    for b, c in ((0, 0), (0.5, 0), (-0.5, 0), (0, 0.6), (0.3, -0.4), (1.0, 1.0)):
        eb, ec = curve_exponents(b, c)
        v = np.where(m <= 0, 0, np.where(m >= 1, 1, m.astype(np.float64) ** eb))
        d = 2 * v - 1
        ref = 0.8 * np.clip(0.5 + 0.5 * np.sign(d) * np.abs(d) ** ec, 0, 1)
        got = run_finish(m, 0.8, b, c)
        np.testing.assert_allclose(got, ref, atol=2e-5)
        assert got[0, 0] == 0 and abs(got[0, -1] - 0.8) < 1e-6
    assert run_finish(m, 1.0, 0.5, 0)[0, 50] > 0.5 > run_finish(m, 1.0, -0.5, 0)[0, 50]


def test_box_mean_and_guided_filter_follow_the_image_edge():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, (20, 30))
    r = 3
    p = np.pad(img, r, mode="constant", constant_values=np.nan)
    windows = np.stack([p[i: i + 20, j: j + 30] for i in range(2 * r + 1) for j in range(2 * r + 1)])
    np.testing.assert_allclose(box_mean(img, r), np.nanmean(windows, axis=0), atol=1e-12)
    # an image edge at x = 30; a rough mask edge at x = 24: feathering pulls the mask to the image edge
    guide = np.zeros((40, 60))
    guide[:, 30:] = 1.0
    rough = np.zeros((40, 60), np.float32)
    rough[:, 24:] = 1.0
    out = guided_filter(rough, guide, 8)
    jumps = np.abs(np.diff(out.mean(axis=0)))
    assert jumps.argmax() == 29 and jumps[29] > 0.2  # the mask is sharp at the image edge, soft elsewhere
    assert out[:, 30:].min() > 0.9 and out[:, :9].max() < 0.05 and jumps[:29].max() < 0.1
    assert 0 <= out.min() and out.max() <= 1


def test_refine_order_and_scale():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, (3, 24, 32)).astype(np.float32)
    m0 = (rng.uniform(0, 1, (24, 32)) > 0.5).astype(np.float32)
    bp = BlendParams(mask_mode="drawn", blur_radius=4.0)
    np.testing.assert_allclose(refine(m0, bp, 0.5, a, a), run_blur(m0, 2.0))
    bp.feather_radius = 6.0
    for guide in ("input_before_blur", "output_after_blur"):
        bp.feather_guide = guide
        out = refine(m0, bp, 0.5, a, a)
        assert out.shape == m0.shape and np.isfinite(out).all()
    assert refine(m0, BlendParams(), 1.0, a, a) is m0


def test_show_mask_overlay():
    disp = np.full((3, 2, 2), 0.4, np.float32)
    m = np.array([[0, 1], [0.5, 0]], np.float32)
    out = show_mask(disp, m)
    np.testing.assert_allclose(out[:, 0, 1], [1, 1, 0])
    np.testing.assert_allclose(out[:, 0, 0], [0.4, 0.4, 0.4])
    np.testing.assert_allclose(out[:, 1, 0], [0.7, 0.7, 0.2])
