"""Every blend mode in every blend space against its NumPy reference (blendref.py).

Tolerances: 2e-5 for the per-channel modes (float32 arithmetic), 2e-4 for the HSL/HSV
modes, 2e-3 (in RGB) for Lab, where the kernel's float32 cube roots and matrix round
trip differ from colour-science's float64 path. Pixels whose two hues are almost
opposite (the "shorter way round" is ambiguous) are left out of the hue-mixing modes.
"""
from __future__ import annotations

import numpy as np
import pytest

import blendref as R
from pixelpipe.blend import modes as M
from pixelpipe.blend.kernels import run_blend

H, W = 24, 40


def data(space, seed=1):
    rng = np.random.default_rng(seed)
    if space == "raw":
        a = rng.uniform(-0.2, 1.3, (H, W))
        b = rng.uniform(-0.2, 1.3, (H, W))
    elif space == "lab":
        a = rng.uniform(0.02, 1.0, (3, H, W))
        b = rng.uniform(0.02, 1.0, (3, H, W))
    else:
        a = rng.uniform(-0.1, 1.2, (3, H, W))
        b = rng.uniform(-0.1, 1.2, (3, H, W))
    m = rng.uniform(0, 1, (H, W))
    m[0, :4] = (0.0, 1.0, 0.0, 1.0)
    a, b, m = (v.astype(np.float32).astype(np.float64) for v in (a, b, m))
    return a, b, m


CASES = [(s, mode) for s in M.SPACES for mode in M.MODES_BY_SPACE[s]]


@pytest.mark.parametrize("space,mode", CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_mode_matches_reference(space, mode):
    a, b, m = data(space)
    if space in ("rgb_display",) and mode.startswith("hsv_"):
        a, b = np.clip(a, 0, 1), np.clip(b, 0, 1)  # colour-science's HSV is defined on 0..1
    p = 2.0 ** -0.5  # fulcrum +0.5 EV (RGB scene)
    got = run_blend(space, mode, a, b, m, p=p if space == "rgb_scene" else 1.0).astype(np.float64)
    if space == "raw":
        ref, tol = R.per_channel(mode, a, b, m), 2e-5
    elif space == "rgb_display":
        ref = R.display(mode, a, b, m)
        tol = 2e-4 if mode in ("lightness", "chromaticity", "hue", "color", "coloradjust", "hsv_value",
                               "hsv_color") else 2e-5
    elif space == "rgb_scene":
        ref, tol = R.scene(mode, a, b, m, p), 2e-5 * 4
    else:
        ref, tol = R.lab(mode, a, b, m), 2e-3
    assert got.shape == ref.shape and np.isfinite(got).all()
    keep = np.ones(got.shape[-2:], bool)
    if mode in ("hue", "color", "coloradjust"):
        if space == "lab":
            ha, hb = R.lab_polar(R.to_lab(a))[1], R.lab_polar(R.to_lab(b))[1]
        else:
            ha, hb = R.hsl_hue(a), R.hsl_hue(b)
        keep &= ~R.hue_ambiguous(ha, hb)
    if mode == "hsv_color":
        import colour

        keep &= ~R.hue_ambiguous(colour.RGB_to_HSV(R.hw3(a))[..., 0], colour.RGB_to_HSV(R.hw3(b))[..., 0])
    err = np.abs(got - ref)[..., keep] if got.ndim == 3 else np.abs(got - ref)[keep]
    scale = np.maximum(1.0, np.abs(ref)[..., keep] if got.ndim == 3 else np.abs(ref)[keep])
    assert (err / scale).max() <= tol, (space, mode, float(err.max()))


@pytest.mark.parametrize("space", M.SPACES)
def test_zero_mask_keeps_input_and_full_normal_gives_output(space):
    a, b, m = data(space, seed=3)
    tol = 2e-3 if space == "lab" else 1e-6
    np.testing.assert_allclose(run_blend(space, "normal", a, b, np.zeros_like(m)), a, atol=tol)
    np.testing.assert_allclose(run_blend(space, "normal", a, b, np.ones_like(m)), b, atol=tol)


def test_every_listed_mode_has_a_darktable_code_and_the_tables_agree():
    assert set(M.MODES) == {m for ms in M.MODES_BY_SPACE.values() for m in ms}
    required = {"normal", "multiply", "screen", "overlay", "softlight", "lighten", "darken", "difference", "add",
                "subtract", "divide", "lightness", "chromaticity", "hue", "color", "rgb_r", "rgb_g", "rgb_b"}
    assert required <= set(M.MODES)
    assert all(m in M.CODES for m in M.MODES)
    # darktable's manual: these are not offered in RGB (scene)
    display_only = {"screen", "overlay", "lighten", "darken", "hue", "color", "bounded"}
    assert not display_only & set(M.MODES_BY_SPACE["rgb_scene"])


def test_blend_outputs_are_finite_on_extreme_values():
    a = np.array([[[0.0, 1e30, -1e30, np.float32(1e-38)]]] * 3, np.float32).reshape(3, 1, 4)
    b = np.array([[[0.0, -1e30, 1e30, 0.0]]] * 3, np.float32).reshape(3, 1, 4)
    m = np.full((1, 4), 0.5, np.float32)
    for space in ("rgb_display", "rgb_scene", "lab"):
        for mode in M.MODES_BY_SPACE[space]:
            assert np.isfinite(run_blend(space, mode, a, b, m)).all(), (space, mode)
