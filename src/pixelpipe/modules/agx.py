"""agx: darktable 5.x's AgX view transform (Blender-like per-channel tone mapping).

Algorithm (darktable 5.x ``agx``, after Troy Sobotka's AgX and the curve of
https://www.desmos.com/calculator/yrysofmx8h), per pixel of linear working RGB:

1. **primaries in**: the pixel goes to the *base* primaries (Rec.2020 by
   default), negative components are removed by adding the smallest amount of
   white that does so, then the luminance is restored
   (``compress_into_gamut``: luminance from the opponent colour, Rec.2020-like
   weights 0.2658, 0.5985, 0.1357); then the **inset** matrix: each base
   primary is moved towards the white point by ``inset`` (fraction of its
   distance to the gamut edge along its hue direction) and rotated by
   ``rotation`` radians about the white point; the pixel is re-expressed as
   if it were in those desaturated, rotated primaries. The Blender-like
   defaults: insets 0.2946 / 0.2586 / 0.1464, rotations 0.0354 / -0.0211 /
   -0.0631 rad.
2. **log2 encoding** per channel: ``x = clamp((log2(max(v / 0.18, 1e-6)) -
   black_ev) / (white_ev - black_ev), 0, 1)``.
3. **the curve** (per channel, y in gamma-encoded display units): a straight
   segment through the pivot ``(x_p, y_p)`` with ``x_p`` = the pivot exposure
   in the encoded range and ``y_p = pivot_y_linear^(1 / gamma)``, slope
   ``contrast * (range / 16.5)`` compensated so the contrast after
   linearisation is that of gamma 2.2; optional linear stretches below/above
   the pivot (``linear_ratio_below/above_pivot`` of the remaining y range);
   toe and shoulder are scaled power sigmoids ``s * f(m (x - x_t) / s) + y_t``
   with ``f(u) = u / (1 + u^p)^(1/p)`` (``p`` = toe/shoulder power) whose
   scale ``s`` makes them reach the target black at x = 0 and target white at
   x = 1 with the segment's slope at the joins; when that is impossible a
   power-law fallback joins the targets. The result is clamped to the targets.
4. **look** (ASC-CDL-like): ``v' = (slope / (1 + lift)) (v + lift)``, then
   ``v'^(1/brightness)`` (``1/sqrt(brightness)`` below 1) for positive values,
   then saturation around the luminance of the rendering primaries.
5. **linearise**: ``max(v, 0)^gamma``; optionally move the HSV hue back
   towards the pre-curve hue by ``look_original_hue_mix_ratio``.
6. **primaries out**: the inverse of the "outset" matrix (primaries scaled
   by ``1 - master_outset_ratio * outset``, rotated by
   ``master_unrotation_ratio * unrotation``) takes the result back to base
   RGB (restoring purity), then to the working space.

Parameter defaults are darktable's "scene-referred default" preset
(Blender-like primaries, contrast 2.8, toe/shoulder power 1.55, gamma 2.2,
pivot at grey -> 0.18, black/white relative exposure -10/+6.5 EV); for a raw
the relative exposures follow the exposure boost E (0.7 EV minus the camera's
exposure bias) as darktable does: black = -8 + 0.5 E, white = 4 + 0.8 E.

Differences: base primaries "export profile" is not offered (a module cannot
see the output profile chosen later); the pickers' "dynamic range scaling" is
not a parameter here (it only scales picked values in darktable's GUI).
Output: display-referred linear RGB in the working space. Region of interest:
a point operation.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..engine.kernels import f32
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

EPS = 1e-6
DEFAULT_GAMMA = 2.2
GAMUT_LUMINANCE = (0.2658180370250449, 0.59846986045365, 0.1357121025213052)
BASES = {"working": "linear_rec2020", "rec2020": "linear_rec2020", "display_p3": "linear_display_p3",
         "adobe_rgb": "linear_adobe_rgb", "srgb": "linear_srgb"}
ROT = 0.5236  # +/- 30 degrees


@dataclass
class AgxParams(Params):
    """AgX.

    look_lift: -1..1; look_slope: 0..10; look_brightness: 0..100; look_saturation: 0..10;
    look_original_hue_mix_ratio: 0..1 (1 = keep the input hue).
    range_black_relative_ev: EV below grey mapped to 0, -20..-0.1.
    range_white_relative_ev: EV above grey mapped to 1, 0.1..20.
    curve_pivot_x_relative_ev: pivot exposure relative to grey, EV, -20..20.
    curve_pivot_y_linear_output: pivot's linear display value, 0..1.
    curve_contrast_around_pivot: slope at the pivot, 0.1..10.
    curve_linear_ratio_below_pivot / _above_pivot: linear stretch, 0..1.
    curve_toe_power / curve_shoulder_power: sigmoid powers, 0..10.
    curve_gamma: y encoding of the curve, 0.01..100; auto_gamma keeps the pivot on the diagonal.
    curve_target_display_black_ratio: 0..0.15; curve_target_display_white_ratio: 0.2..1 (linear).
    base_primaries: "rec2020", "working", "display_p3", "adobe_rgb", "srgb".
    disable_primaries_adjustments: no inset/outset.
    red/green/blue_inset: 0..0.99; red/green/blue_rotation: radians, -0.5236..0.5236.
    master_outset_ratio, master_unrotation_ratio: 0..2.
    red/green/blue_outset: 0..0.99; red/green/blue_unrotation: radians.
    completely_reverse_primaries: outset = inset, unrotation = rotation, masters 1.
    """

    VERSION = 1

    look_lift: float = param(0.0, min=-1.0, max=1.0)
    look_slope: float = param(1.0, min=0.0, max=10.0)
    look_brightness: float = param(1.0, min=0.0, max=100.0)
    look_saturation: float = param(1.0, min=0.0, max=10.0)
    look_original_hue_mix_ratio: float = param(0.0, min=0.0, max=1.0)
    range_black_relative_ev: float = param(-10.0, min=-20.0, max=-0.1, unit="EV")
    range_white_relative_ev: float = param(6.5, min=0.1, max=20.0, unit="EV")
    curve_pivot_x_relative_ev: float = param(0.0, min=-20.0, max=20.0, unit="EV")
    curve_pivot_y_linear_output: float = param(0.18, min=0.0, max=1.0)
    curve_contrast_around_pivot: float = param(2.8, min=0.1, max=10.0)
    curve_linear_ratio_below_pivot: float = param(0.0, min=0.0, max=1.0)
    curve_linear_ratio_above_pivot: float = param(0.0, min=0.0, max=1.0)
    curve_toe_power: float = param(1.55, min=0.0, max=10.0)
    curve_shoulder_power: float = param(1.55, min=0.0, max=10.0)
    curve_gamma: float = param(2.2, min=0.01, max=100.0)
    auto_gamma: bool = param(False)
    curve_target_display_black_ratio: float = param(0.0, min=0.0, max=0.15)
    curve_target_display_white_ratio: float = param(1.0, min=0.2, max=1.0)
    base_primaries: str = param("rec2020", choices=tuple(BASES))
    disable_primaries_adjustments: bool = param(False)
    red_inset: float = param(0.29462451, min=0.0, max=0.99)
    red_rotation: float = param(0.03540329, min=-ROT, max=ROT)
    green_inset: float = param(0.25861925, min=0.0, max=0.99)
    green_rotation: float = param(-0.02108586, min=-ROT, max=ROT)
    blue_inset: float = param(0.14641371, min=0.0, max=0.99)
    blue_rotation: float = param(-0.06305724, min=-ROT, max=ROT)
    master_outset_ratio: float = param(1.0, min=0.0, max=2.0)
    master_unrotation_ratio: float = param(0.0, min=0.0, max=2.0)
    red_outset: float = param(0.290776401758, min=0.0, max=0.99)
    red_unrotation: float = param(0.03540329, min=-ROT, max=ROT)
    green_outset: float = param(0.263155400753, min=0.0, max=0.99)
    green_unrotation: float = param(-0.02108586, min=-ROT, max=ROT)
    blue_outset: float = param(0.045810721815, min=0.0, max=0.99)
    blue_unrotation: float = param(-0.06305724, min=-ROT, max=ROT)
    completely_reverse_primaries: bool = param(False)


# --------------------------------------------------------------------------- the curve
@dataclass
class Curve:
    black_ev: float
    range_ev: float
    gamma: float
    pivot_x: float
    pivot_y: float
    slope: float
    intercept: float
    target_black: float
    target_white: float
    toe_power: float
    toe_x: float
    toe_y: float
    toe_scale: float
    convex_toe: bool
    toe_fb_coef: float
    toe_fb_power: float
    shoulder_power: float
    shoulder_x: float
    shoulder_y: float
    shoulder_scale: float
    concave_shoulder: bool
    shoulder_fb_coef: float
    shoulder_fb_power: float


def _scale(limit_x, limit_y, tx, ty, slope, power):
    projected = slope * max(EPS, limit_x - tx)
    actual = max(EPS, limit_y - ty)
    base = max(EPS, actual ** -power - projected ** -power)
    return min(1e9, base ** (-1.0 / power))


def _pivot_y_at(p: AgxParams, gamma: float) -> float:
    v = min(max(p.curve_pivot_y_linear_output, p.curve_target_display_black_ratio),
            p.curve_target_display_white_ratio)
    return v ** (1.0 / gamma)


def curve_parameters(p: AgxParams) -> Curve:
    """The curve's constants from the user parameters (see module docstring)."""
    black, white = p.range_black_relative_ev, p.range_white_relative_ev
    rng = white - black
    pivot_x = min(max((p.curve_pivot_x_relative_ev - black) / rng, EPS), 1.0 - EPS)
    if p.auto_gamma and pivot_x > 0 and p.curve_pivot_y_linear_output > 0:
        gamma = math.log2(p.curve_pivot_y_linear_output) / math.log2(pivot_x)
    else:
        gamma = p.curve_gamma
    pivot_y = _pivot_y_at(p, gamma)
    range_slope = p.curve_contrast_around_pivot * (rng / 16.5)
    py_default = _pivot_y_at(p, DEFAULT_GAMMA)
    comp = (gamma * max(EPS, pivot_y) ** (gamma - 1.0)) \
        / (DEFAULT_GAMMA * max(EPS, py_default) ** (DEFAULT_GAMMA - 1.0))
    slope = range_slope / comp

    tb = p.curve_target_display_black_ratio ** (1.0 / gamma)
    toe_power = max(0.01, p.curve_toe_power)
    dx = (pivot_y - tb) * p.curve_linear_ratio_below_pivot / slope
    toe_x = max(EPS, pivot_x - dx)
    toe_y = pivot_y - slope * (pivot_x - toe_x)
    toe_scale = -_scale(1.0, 1.0 - tb, 1.0 - toe_x, 1.0 - toe_y, slope, toe_power)
    toe_dy = max(EPS, toe_y - tb)
    convex = toe_dy / toe_x > slope
    toe_fb_power = slope * toe_x / toe_dy
    toe_fb_coef = toe_dy / toe_x ** toe_fb_power
    intercept = toe_y - slope * toe_x

    tw = p.curve_target_display_white_ratio ** (1.0 / gamma)
    dx = (tw - pivot_y) * p.curve_linear_ratio_above_pivot / slope
    sh_x = min(1.0 - EPS, pivot_x + dx)
    sh_y = pivot_y + slope * (sh_x - pivot_x)
    sh_power = max(0.01, p.curve_shoulder_power)
    sh_scale = _scale(1.0, tw, sh_x, sh_y, slope, sh_power)
    sh_len = 1.0 - sh_x
    sh_dy = max(EPS, tw - sh_y)
    concave = sh_dy / sh_len > slope
    sh_fb_power = slope * sh_len / sh_dy
    sh_fb_coef = sh_dy / sh_len ** sh_fb_power
    return Curve(black, rng, gamma, pivot_x, pivot_y, slope, intercept, tb, tw, toe_power, toe_x, toe_y,
                 toe_scale, convex, toe_fb_coef, toe_fb_power, sh_power, sh_x, sh_y, sh_scale, concave,
                 sh_fb_coef, sh_fb_power)


def eval_curve(k: Curve, xs) -> np.ndarray:
    """The curve at encoded ``xs`` (NumPy, float64), gamma-encoded output."""
    xs = np.asarray(xs, dtype=np.float64)

    def sig(u, pw):
        return u / (1.0 + np.abs(u) ** pw) ** (1.0 / pw)

    with np.errstate(all="ignore"):
        if k.convex_toe:
            toe = np.where(xs < 0, k.target_black,
                           k.target_black + np.maximum(0.0, k.toe_fb_coef * np.maximum(xs, 0) ** k.toe_fb_power))
        else:
            toe = k.toe_scale * sig(k.slope * (xs - k.toe_x) / k.toe_scale, k.toe_power) + k.toe_y
        if k.concave_shoulder:
            sh = np.where(xs >= 1, k.target_white,
                          k.target_white - np.maximum(0.0, k.shoulder_fb_coef * np.maximum(1 - xs, 0)
                                                      ** k.shoulder_fb_power))
        else:
            sh = k.shoulder_scale * sig(k.slope * (xs - k.shoulder_x) / k.shoulder_scale, k.shoulder_power) \
                + k.shoulder_y
    lin = k.slope * xs + k.intercept
    y_ = np.where(xs < k.toe_x, toe, np.where(xs <= k.shoulder_x, lin, sh))
    return np.clip(y_, k.target_black, k.target_white)


# --------------------------------------------------------------------------- primaries
def _xy(XYZ):
    s = XYZ.sum()
    return np.array([XYZ[0] / s, XYZ[1] / s])


@functools.lru_cache(maxsize=None)
def _profile(profile: str):
    from ..io import icc

    m = icc.colourspace(profile).matrix_rgb_to_xyz_d50
    prim = np.array([_xy(m[:, i]) for i in range(3)])
    white = _xy(m @ np.ones(3))
    return m, prim, white


def _matrix_from_primaries(prim: np.ndarray, white: np.ndarray) -> np.ndarray:
    """RGB -> XYZ for primaries (3, 2) xy and white xy (white Y = 1)."""
    P = np.array([[px / py, 1.0, (1 - px - py) / py] for px, py in prim]).T
    W = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return P * np.linalg.solve(P, W)[None, :]


def _edge_distance(prim, white, cos_a, sin_a):
    best = math.inf
    x1, y1 = white
    x2, y2 = x1 + cos_a, y1 + sin_a
    for i in range(3):
        x3, y3 = prim[i]
        x4, y4 = prim[(i + 1) % 3]
        den = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
        if den == 0:
            continue
        t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / den
        u = -((x1 - x2) * (y1 - y3) - (y1 - y2) * (x1 - x3)) / den
        if t >= 0 and -1e-9 <= u <= 1 + 1e-9:
            best = min(best, t)
    return best


def rotate_and_scale(prim, white, scaling, rotation, i):
    """Primary ``i`` rotated about the white point and scaled towards it (distance to the gamut edge)."""
    d = prim[i] - white
    a = math.atan2(d[1], d[0]) + rotation
    dist = _edge_distance(prim, white, math.cos(a), math.sin(a))
    return white + scaling * dist * np.array([math.cos(a), math.sin(a)])


def primaries_matrices(p: AgxParams, working: str = "linear_rec2020") -> dict:
    """pipe -> base, base -> rendering, rendering -> pipe, and the rendering luminance row."""
    m_work = _profile(working)[0]
    m_base, prim, white = _profile(BASES[p.base_primaries] if p.base_primaries != "working" else working)
    inset = np.array([p.red_inset, p.green_inset, p.blue_inset])
    rot = np.array([p.red_rotation, p.green_rotation, p.blue_rotation])
    outset = np.array([p.red_outset, p.green_outset, p.blue_outset])
    unrot = np.array([p.red_unrotation, p.green_unrotation, p.blue_unrotation])
    m_out, m_unrot = p.master_outset_ratio, p.master_unrotation_ratio
    if p.disable_primaries_adjustments:
        inset = rot = outset = unrot = np.zeros(3)
    elif p.completely_reverse_primaries:
        outset, unrot, m_out, m_unrot = inset.copy(), rot.copy(), 1.0, 1.0
    base_from_xyz = np.linalg.inv(m_base)
    pipe_to_base = base_from_xyz @ m_work
    ins = np.array([rotate_and_scale(prim, white, 1.0 - inset[i], rot[i], i) for i in range(3)])
    rendering_to_xyz = _matrix_from_primaries(ins, white)
    base_to_rendering = base_from_xyz @ rendering_to_xyz
    outs = np.array([rotate_and_scale(prim, white, 1.0 - m_out * outset[i], m_unrot * unrot[i], i)
                     for i in range(3)])
    rendering_to_base = np.linalg.inv(base_from_xyz @ _matrix_from_primaries(outs, white))
    rendering_to_pipe = np.linalg.inv(pipe_to_base) @ rendering_to_base
    return {"pipe_to_base": pipe_to_base, "base_to_rendering": base_to_rendering,
            "rendering_to_pipe": rendering_to_pipe, "rendering_y": rendering_to_xyz[1].copy()}


def scene_referred_defaults(exposure: float = 0.7) -> AgxParams:
    """darktable's scene-referred default with the relative exposures following ``exposure`` (EV)."""
    p = AgxParams()
    p.range_black_relative_ev = min(-0.1, max(-20.0, -8.0 + 0.5 * exposure))
    p.range_white_relative_ev = min(20.0, max(0.1, 4.0 + 0.8 * exposure))
    return p


# --------------------------------------------------------------------------- Halide helpers
def _mat(buf, v):
    return tuple(buf[0, i] * v[0] + buf[1, i] * v[1] + buf[2, i] * v[2] for i in range(3))


def _rgb_to_hsv(r, g, b):
    mx = hl.max(hl.max(r, g), b)
    mn = hl.min(hl.min(r, g), b)
    d = mx - mn
    dd = hl.select(d != 0, d, hl.f32(1))
    h = hl.select(d == 0, hl.f32(0), r == mx, (g - b) / dd, g == mx, 2.0 + (b - r) / dd, 4.0 + (r - g) / dd) / 6.0
    h = hl.select(h < 0, h + 1.0, h)
    s = hl.select(mx != 0, d / hl.select(mx != 0, mx, hl.f32(1)), hl.f32(0))
    return h, s, mx


def _hsv_to_rgb(h, s, v):
    hh = (h - hl.floor(h)) * 6.0
    i = hl.i32(hl.floor(hh))
    f = hh - hl.floor(hh)
    p_ = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    r = hl.select(i == 0, v, i == 1, q, i == 2, p_, i == 3, p_, i == 4, t, v)
    g = hl.select(i == 0, t, i == 1, v, i == 2, v, i == 3, q, i == 4, p_, p_)
    b = hl.select(i == 0, p_, i == 1, p_, i == 2, t, i == 3, v, i == 4, v, q)
    return r, g, b


_CURVE_NAMES = ("black_ev", "range_ev", "gamma", "slope", "intercept", "target_black", "target_white",
                "toe_power", "toe_x", "toe_y", "toe_scale", "toe_fb_coef", "toe_fb_power",
                "shoulder_power", "shoulder_x", "shoulder_y", "shoulder_scale", "shoulder_fb_coef",
                "shoulder_fb_power")


class Agx(HalideModule):
    op = "agx"
    name = "AgX"
    Params = AgxParams
    flags = Flags.SUPPORTS_BLENDING | Flags.INCLUDE_IN_STYLES | Flags.ALLOW_TILING
    summary = "scene-to-display tone mapping (AgX: inset primaries, log2, sigmoid curve)"
    inputs = (HInput("pipe_to_base", "buf_f32", 2), HInput("base_to_rendering", "buf_f32", 2),
              HInput("rendering_to_pipe", "buf_f32", 2), HInput("rendering_y", "buf_f32", 1),
              *(HInput(n) for n in _CURVE_NAMES),
              *(HInput(n) for n in ("look_m", "look_b", "look_power", "look_sat", "hue_mix")),
              HInput("convex_toe", "i32"), HInput("concave_shoulder", "i32"))

    def variant(self, piece):
        return "hue" if piece.params.look_original_hue_mix_ratio != 0 else ""

    def default_params(self, image):
        if image.is_raw:
            return scene_referred_defaults(0.7 - float(image.exif.get("exposure_bias") or 0.0))
        return scene_referred_defaults(0.0)

    # -- algorithm
    def algorithm(self, rgb, p, piece):
        def sane(v):
            return hl.select(hl.is_nan(v), hl.f32(0), hl.clamp(v, -1e6, 1e6))

        px = tuple(sane(rgb[x, y, k]) for k in range(3))
        base = _mat(p["pipe_to_base"], px)
        # compress into gamut: remove negatives with white light, keep the (opponent-compensated) luminance
        lw = GAMUT_LUMINANCE

        def lum(v):
            return lw[0] * v[0] + lw[1] * v[1] + lw[2] * v[2]

        mx = hl.max(hl.max(base[0], base[1]), base[2])
        opp = tuple(mx - v for v in base)
        y_neg = hl.max(hl.max(opp[0], opp[1]), opp[2]) - lum(opp) + lum(base)
        off = hl.max(-hl.min(hl.min(base[0], base[1]), base[2]), 0.0)
        shifted = tuple(v + off for v in base)
        mx2 = hl.max(hl.max(shifted[0], shifted[1]), shifted[2])
        opp2 = tuple(mx2 - v for v in shifted)
        y_new = hl.max(hl.max(opp2[0], opp2[1]), opp2[2]) - lum(opp2) + lum(shifted)
        ratio = hl.select((y_new > y_neg) & (y_new > EPS), y_neg / hl.select(y_new != 0, y_new, hl.f32(1)),
                          hl.f32(1))
        compressed = tuple(ratio * v for v in shifted)
        rend = _mat(p["base_to_rendering"], compressed)

        slope, tx, ty = p["slope"], p["toe_x"], p["toe_y"]
        sx, sy = p["shoulder_x"], p["shoulder_y"]
        tb, tw = p["target_black"], p["target_white"]

        def sig(u, pw):
            return u / hl.pow(1.0 + hl.pow(hl.abs(u), pw), 1.0 / pw)

        def curve(v):
            xr = hl.max(v / 0.18, hl.f32(EPS))
            xe = hl.clamp((hl.log(xr) * (1.0 / math.log(2.0)) - p["black_ev"]) / p["range_ev"], 0.0, 1.0)
            toe_s = p["toe_scale"] * sig(slope * (xe - tx) / p["toe_scale"], p["toe_power"]) + ty
            toe_f = hl.select(xe < 0, tb, tb + hl.max(0.0, p["toe_fb_coef"] * hl.pow(hl.max(xe, 0.0),
                                                                                     p["toe_fb_power"])))
            sh_s = p["shoulder_scale"] * sig(slope * (xe - sx) / p["shoulder_scale"], p["shoulder_power"]) + sy
            sh_f = hl.select(xe >= 1, tw, tw - hl.max(0.0, p["shoulder_fb_coef"]
                                                      * hl.pow(hl.max(1.0 - xe, 0.0), p["shoulder_fb_power"])))
            toe = hl.select(p["convex_toe"] != 0, toe_f, toe_s)
            sh = hl.select(p["concave_shoulder"] != 0, sh_f, sh_s)
            res = hl.select(xe < tx, toe, xe <= sx, slope * xe + p["intercept"], sh)
            return hl.clamp(res, tb, tw)

        curved = tuple(curve(v) for v in rend)
        # look: slope/lift, brightness power, saturation around the rendering luminance
        lm, lb = p["look_m"], p["look_b"]
        looked = []
        for v in curved:
            w = lm * v + lb
            looked.append(hl.select(w > 0, hl.pow(hl.max(w, hl.f32(1e-30)), p["look_power"]), w))
        ry = p["rendering_y"]
        luma = ry[0] * looked[0] + ry[1] * looked[1] + ry[2] * looked[2]
        looked = tuple(luma + p["look_sat"] * (v - luma) for v in looked)
        lin = tuple(hl.pow(hl.max(v, hl.f32(1e-30)), p["gamma"]) * hl.select(v > 0, hl.f32(1), hl.f32(0))
                    for v in looked)
        # optional hue restoration (HSV hue of the rendering-space input); structural (variant "hue")
        final = lin
        if self.variant(piece) == "hue":
            h0, _, _ = _rgb_to_hsv(*rend)
            h1, s1, v1 = _rgb_to_hsv(*lin)
            dist = h1 - h0
            dist = dist - hl.round(dist)  # shortest signed distance on the hue circle
            hm = (1.0 - p["hue_mix"]) * dist + h0
            hm = hm - hl.floor(hm)
            final = _hsv_to_rgb(hm, s1, v1)
        out = _mat(p["rendering_to_pipe"], final)
        mapped = hl.Func("agx")
        mapped[x, y, c] = hl.select(c == 0, out[0], c == 1, out[1], out[2])
        return mapped

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    def commit(self, piece):
        p = piece.params
        k = curve_parameters(p)
        m = primaries_matrices(p)
        b = p.look_brightness
        look_power = 1.0 / math.sqrt(max(b, EPS)) if b < 1 else 1.0 / b
        look_m = p.look_slope / (1.0 + p.look_lift) if p.look_lift != -1.0 else 0.0
        piece.data.update({"curve": k, **m, "look_m": look_m, "look_b": p.look_lift * look_m,
                           "look_power": look_power})

    def output_desc(self, piece, dsc_in):
        w = piece.data["curve"].target_white ** piece.data["curve"].gamma
        return dsc_in.copy(processed_maximum=(w, w, w))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        d, p = piece.data, piece.params
        k = d["curve"]
        vals = {n: getattr(k, n) for n in _CURVE_NAMES}
        vals.update({"pipe_to_base": f32(d["pipe_to_base"]), "base_to_rendering": f32(d["base_to_rendering"]),
                     "rendering_to_pipe": f32(d["rendering_to_pipe"]), "rendering_y": f32(d["rendering_y"]),
                     "look_m": d["look_m"], "look_b": d["look_b"], "look_power": d["look_power"],
                     "look_sat": p.look_saturation, "hue_mix": p.look_original_hue_mix_ratio,
                     "convex_toe": int(k.convex_toe), "concave_shoulder": int(k.concave_shoulder)})
        return vals
