"""Parametric masks on synthetic gradients, and how masks combine (darktable manual:
"parametric masks", "combining drawn & parametric masks"). Tolerance 5e-3 (float32
JzAzBz/Lab/HSL in the kernel against colour-science in float64, times trapezoid slopes)."""
from __future__ import annotations

import colour
import numpy as np
import pytest

import blendref as R
from pixelpipe.blend import BlendParams
from pixelpipe.blend.kernels import run_combine
from pixelpipe.blend.pipe_hooks import _channel_table

H, W = 16, 64


class _Notices:
    def __init__(self):
        self.notices = []


def mask_of(bp: BlendParams, space, a, b, drawn=None):
    prm, on, polar = _channel_table(bp, space, _Notices(), "test")
    return run_combine(space, a, b, drawn, prm, use_drawn=drawn is not None, drawn_inv=bp.drawn_inverted,
                       use_param=on, needs_polar=polar, incl=bp.combine == "inclusive", invert=bp.invert)


def gray_ramp(lo=0.0, hi=1.0):
    v = np.linspace(lo, hi, W)[None, None, :].repeat(H, 1)
    return np.repeat(v, 3, axis=0).astype(np.float32).astype(np.float64)


def hue_wheel(sat=0.8, light=0.5):
    h = np.linspace(0, 1, W, endpoint=False)[None, :].repeat(H, 0)
    s = np.linspace(0.1, sat, H)[:, None].repeat(W, 1)
    hsl = np.stack([h, s, np.full_like(h, light)], -1)
    return R.planar(colour.HSL_to_RGB(hsl)).astype(np.float32).astype(np.float64)


def trap(v, x0, x1, x2, x3):
    up = (v - x0) / (x1 - x0) if x1 > x0 else (v >= x0).astype(float)
    down = (x3 - v) / (x3 - x2) if x3 > x2 else (v <= x3).astype(float)
    return np.clip(np.minimum(up, down), 0, 1)


RANGE = (0.2, 0.35, 0.6, 0.8)


@pytest.mark.parametrize("space,chan", [("rgb_display", "gray"), ("rgb_display", "R"), ("rgb_display", "G"),
                                        ("rgb_display", "B"), ("rgb_display", "H"), ("rgb_display", "S"),
                                        ("rgb_display", "l"), ("rgb_scene", "gray"), ("rgb_scene", "R"),
                                        ("rgb_scene", "Jz"), ("rgb_scene", "Cz"), ("rgb_scene", "hz"),
                                        ("lab", "L"), ("lab", "a"), ("lab", "b"), ("lab", "C"), ("lab", "h")])
def test_channel_trapezoid_on_gradients(space, chan):
    a = hue_wheel() if chan in ("H", "S", "hz", "C", "h", "a", "b", "Cz") else gray_ramp()
    if chan == "Cz" or chan == "Jz":
        a = a * 0.05  # keep JzCzhz values inside the 0..1 slider range
    b = np.clip(a * 0.5 + 0.1, 0, 1)
    if space == "lab":
        L = R.to_lab(a)
        C, h = R.lab_polar(L)
        v = {"L": np.clip(L[0], 0, 1), "a": np.clip((L[1] + 1) / 2, 0, 1), "b": np.clip((L[2] + 1) / 2, 0, 1),
             "C": np.clip(C / np.sqrt(2), 0, 1), "h": h}[chan]
    elif space == "rgb_display":
        hsl = colour.RGB_to_HSL(R.hw3(np.clip(a, 0, 1)))
        v = {"gray": np.clip(np.tensordot(R.LUMA, a, 1), 0, 1), "R": np.clip(a[0], 0, 1), "G": np.clip(a[1], 0, 1),
             "B": np.clip(a[2], 0, 1), "H": hsl[..., 0], "S": hsl[..., 1], "l": hsl[..., 2]}[chan]
    else:
        J, Cz, hz = R.jzczhz(a)
        v = {"gray": np.tensordot(R.LUMA, a, 1), "R": a[0], "Jz": J, "Cz": Cz, "hz": hz}[chan]
    rng = (0.0, 0.02, 0.05, 0.1) if chan == "Cz" else ((0.0, 0.05, 0.15, 0.25) if chan == "Jz" else RANGE)
    bp = BlendParams(mask_mode="parametric").channel(f"{chan}_in", *rng)
    got = mask_of(bp, space, a, b)
    ref = trap(v, *rng)
    keep = np.ones_like(ref, bool)
    if chan in ("H", "hz", "h"):
        keep = np.minimum(v, 1 - v) > 2e-3
    assert np.abs(got - ref)[keep].max() < 5e-3, (space, chan)
    assert 0.05 < ref.mean() < 0.95  # the gradient crosses the soft edges


def test_output_channels_inversion_and_boost():
    a = gray_ramp(0, 4.0)  # scene-referred: up to +2 EV over 1.0
    b = gray_ramp(0, 1.0)
    g_in, g_out = np.tensordot(R.LUMA, a, 1), np.tensordot(R.LUMA, b, 1)
    bp = BlendParams(mask_mode="parametric").channel("gray_in", *RANGE, boost=2.0).channel("gray_out", *RANGE,
                                                                                             invert=True)
    got = mask_of(bp, "rgb_scene", a, b)
    ref = trap(g_in / 4.0, *RANGE) * (1 - trap(g_out, *RANGE))
    assert np.abs(got - ref).max() < 1e-5


def test_exclusive_inclusive_inverted_and_drawn_polarity():
    a, b = gray_ramp(), gray_ramp()[:, ::-1].copy()
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, (H, W)).astype(np.float32)
    f1 = trap(np.tensordot(R.LUMA, a, 1), *RANGE)
    f2 = 1 - trap(np.tensordot(R.LUMA, b, 1), 0.0, 0.1, 0.3, 0.5)
    for combine in ("exclusive", "inclusive"):
        for invert in (False, True):
            for dinv in (False, True):
                bp = BlendParams(mask_mode="drawn+parametric", combine=combine, invert=invert, drawn_inverted=dinv)
                bp.channel("gray_in", *RANGE).channel("gray_out", 0.0, 0.1, 0.3, 0.5, invert=True)
                dd = 1 - d if dinv else d
                ref = dd * f1 * f2 if combine == "exclusive" else 1 - (1 - dd) * (1 - f1) * (1 - f2)
                ref = 1 - ref if invert else ref
                got = mask_of(bp, "rgb_display", a, b, drawn=d)
                assert np.abs(got - ref).max() < 1e-5, (combine, invert, dinv)


def test_no_active_channel_selects_all_when_exclusive_nothing_when_inclusive():
    a = gray_ramp()
    assert mask_of(BlendParams(mask_mode="parametric"), "rgb_scene", a, a).min() == 1
    assert mask_of(BlendParams(mask_mode="parametric", combine="inclusive"), "rgb_scene", a, a).max() == 0


def test_range_validation():
    from pixelpipe.errors import ParamsError

    for bad in ((0.5, 0.4, 0.6, 0.7), (0, 0, 1, 1.5), (float("nan"), 0, 1, 1)):
        with pytest.raises(ParamsError):
            BlendParams().channel("gray_in", *bad)
    with pytest.raises(ParamsError, match="unknown parametric channel"):
        BlendParams().channel("Q_in", 0, 0, 1, 1)
