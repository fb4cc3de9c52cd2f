"""agx against a NumPy reference written from darktable 5.x's AgX description.

The reference re-implements the per-pixel path in float64 (gamut compression
with opponent-luminance compensation, inset matrix, log2 encoding, the curve,
the look, linearisation, optional HSV hue restoration via colorsys, outset
matrix). Matrices come from :func:`primaries_matrices`, which is checked on
its own (white point kept, identity without adjustments, insets move the
primaries towards white). Tolerance: 3e-4 relative + 3e-5 absolute.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest

from helpers import rgb_image, run_module
from pixelpipe.modules.agx import (GAMUT_LUMINANCE, AgxParams, curve_parameters, eval_curve, primaries_matrices,
                                   scene_referred_defaults)

rng = np.random.default_rng(11)


def agx_reference(px: np.ndarray, p: AgxParams) -> np.ndarray:
    k = curve_parameters(p)
    m = primaries_matrices(p)
    px = np.nan_to_num(px.astype(np.float64), nan=0.0).clip(-1e6, 1e6)
    base = px @ m["pipe_to_base"].T
    lw = np.array(GAMUT_LUMINANCE)
    mx = base.max(-1, keepdims=True)
    opp = mx - base
    y_neg = opp.max(-1) - opp @ lw + base @ lw
    shifted = base + np.maximum(-base.min(-1), 0)[..., None]
    opp2 = shifted.max(-1, keepdims=True) - shifted
    y_new = opp2.max(-1) - opp2 @ lw + shifted @ lw
    ratio = np.where((y_new > y_neg) & (y_new > 1e-6), y_neg / np.where(y_new != 0, y_new, 1), 1.0)
    rend = (shifted * ratio[..., None]) @ m["base_to_rendering"].T
    enc = np.clip((np.log2(np.maximum(rend / 0.18, 1e-6)) - k.black_ev) / k.range_ev, 0, 1)
    y = eval_curve(k, enc)
    # look
    lm = p.look_slope / (1 + p.look_lift)
    w = lm * y + p.look_lift * lm
    b = p.look_brightness
    power = 1 / math.sqrt(max(b, 1e-6)) if b < 1 else 1 / b
    w = np.where(w > 0, np.maximum(w, 1e-30) ** power, w)
    luma = w @ m["rendering_y"]
    w = luma[..., None] + p.look_saturation * (w - luma[..., None])
    lin = np.maximum(w, 0) ** k.gamma
    if p.look_original_hue_mix_ratio:
        out = np.empty_like(lin)
        for idx in np.ndindex(lin.shape[:-1]):
            h0 = colorsys.rgb_to_hsv(*rend[idx])[0]
            h1, s1, v1 = colorsys.rgb_to_hsv(*lin[idx])
            d = math.remainder(h1 - h0, 1.0)
            h = (1 - p.look_original_hue_mix_ratio) * d + h0
            out[idx] = colorsys.hsv_to_rgb(h - math.floor(h), s1, v1)
        lin = out
    return lin @ m["rendering_to_pipe"].T


def _image():
    img = rng.uniform(-0.05, 4.0, size=(3, 20, 24)).astype(np.float32)
    img[:, 0, 0] = 0.18
    img[:, 0, 1] = 0.0
    img[:, 1, :] = (np.exp(rng.uniform(-12, 6, size=24)) * np.array([[1.0], [0.1], [0.02]])).astype(np.float32)
    img[:, 2, :4] = np.array([[-0.2, 0.5, 0.1], [0.3, -0.1, 0.6], [1.0, 1.0, -0.5], [0.0, 0.0, 0.0]]).T
    return img


CONFIGS = [
    {},
    {"curve_contrast_around_pivot": 1.6, "curve_linear_ratio_below_pivot": 0.3,
     "curve_linear_ratio_above_pivot": 0.4, "curve_toe_power": 3.0, "curve_shoulder_power": 0.8},
    {"look_lift": 0.05, "look_slope": 1.2, "look_brightness": 0.6, "look_saturation": 1.4},
    {"look_brightness": 1.8, "curve_pivot_x_relative_ev": 1.0, "curve_pivot_y_linear_output": 0.3,
     "auto_gamma": True},
    {"look_original_hue_mix_ratio": 0.6},
    {"base_primaries": "srgb", "completely_reverse_primaries": True},
    {"disable_primaries_adjustments": True, "curve_target_display_black_ratio": 0.01,
     "curve_target_display_white_ratio": 0.9},
    # a slope that cannot reach black/white with the sigmoid: the power fallbacks take over
    {"curve_contrast_around_pivot": 0.5, "curve_linear_ratio_below_pivot": 0.9, "curve_linear_ratio_above_pivot": 0.9},
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda k: ",".join(k) or "default")
def test_matches_numpy_reference(kw):
    p = scene_referred_defaults(0.7)
    for k, v in kw.items():
        setattr(p, k, v)
    inp = _image()
    out, _ = run_module("agx", rgb_image(inp), inp, params=p)
    ref = agx_reference(inp.transpose(1, 2, 0), p).transpose(2, 0, 1)
    np.testing.assert_allclose(out, ref, rtol=3e-4, atol=3e-5)
    assert np.isfinite(out).all()


def test_grey_maps_to_pivot_target_and_stays_neutral():
    inp = np.full((3, 2, 2), 0.18, np.float32)
    for p in (AgxParams(), scene_referred_defaults(0.7), AgxParams(base_primaries="srgb")):
        out, _ = run_module("agx", rgb_image(inp), inp, params=p)
        np.testing.assert_allclose(out, 0.18, atol=2e-5)


def test_primaries_matrices():
    ident = primaries_matrices(AgxParams(disable_primaries_adjustments=True))
    np.testing.assert_allclose(ident["base_to_rendering"], np.eye(3), atol=1e-9)
    np.testing.assert_allclose(ident["rendering_to_pipe"], np.eye(3), atol=1e-9)
    m = primaries_matrices(AgxParams())
    # white (1, 1, 1) stays white through the inset and the outset
    np.testing.assert_allclose(m["base_to_rendering"] @ np.ones(3), np.ones(3), atol=1e-9)
    np.testing.assert_allclose(m["rendering_to_pipe"] @ np.ones(3), np.ones(3), atol=1e-9)
    # the inset pulls a pure primary towards grey: every channel gets a share
    red = m["base_to_rendering"] @ np.array([1.0, 0, 0])
    assert red.min() > 0.02 and red[0] == red.max()


def test_curve_properties():
    for kw in CONFIGS:
        p = scene_referred_defaults(0.7)
        for k, v in kw.items():
            setattr(p, k, v)
        c = curve_parameters(p)
        xs = np.linspace(0, 1, 4001)
        ys = eval_curve(c, xs)
        assert np.all(np.diff(ys) >= -1e-9)
        assert ys[0] == pytest.approx(c.target_black, abs=1e-6)
        assert ys[-1] == pytest.approx(c.target_white, abs=1e-6)
        assert eval_curve(c, [c.pivot_x])[0] == pytest.approx(c.pivot_y, abs=1e-9)


def test_defaults_follow_exposure():
    p = scene_referred_defaults(0.7)
    assert (p.range_black_relative_ev, p.range_white_relative_ev) == (pytest.approx(-7.65), pytest.approx(4.56))
    assert AgxParams().curve_contrast_around_pivot == 2.8 and AgxParams().curve_gamma == 2.2


@pytest.mark.parametrize("shape", [(2, 2), (1, 100000)])
def test_small_and_long_images_and_non_finite_input(shape):
    inp = np.full((3,) + shape, 0.3, np.float32)
    inp[:, 0, 0] = [np.nan, np.inf, -np.inf]
    out, _ = run_module("agx", rgb_image(inp), inp)
    assert out.shape == inp.shape and np.isfinite(out).all()
