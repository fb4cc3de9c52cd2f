"""colorbalancergb (color balance rgb): 4-ways grading, chroma, vibrance, contrast, saturation, brilliance.

Algorithm (darktable's color balance rgb, with its "JzAzBz (2021)" saturation
formula), per pixel of linear Rec.2020 (negatives clipped first):

1. to CIE 2006 LMS and Kirk's (2019) Filmlight Yrg (luminance Y, chromaticity
   r, g; colour-science's ``LMS_to_Yrg``), then polar Ych around the white;
2. luminance masks from ``Y^0.4101`` (middle grey at 50 %): shadows
   ``1 / (1 + exp(n * ws))``, highlights ``1 / (1 + exp(-n * wh))`` with
   ``n = (Y' - fulcrum') / fulcrum'``, ``ws = 2 + 2 shadows_weight`` (same for
   highlights), mid-tones ``8 exp(-(Y' - fulcrum')^2 wm / 4) (1 - s)^2 (1 - h)^2``,
   ``wm = ws^2 wh^2 / (ws^2 + wh^2)``;
3. hue shift (rotation of the chromaticity), linear chroma: ``c *= max(1 +
   chroma_global + masks . chroma + vibrance (1 - c^|vibrance|), 0)``, then
   chroma clipped at constant hue and Y to the Yrg triangle;
4. 4 ways in Filmlight grading RGB (colours set by luminance, chroma and hue
   angle, hue 0 deg = red, darktable's 30 deg GUI shift): ``+ offset``,
   ``* ((1 - h)((1 - s) + s lift) + h gain)`` (shadows lift, highlights gain),
   then the power ``sign(v) (|v| / white)^(1 / (1 + power)) white`` with the
   white fulcrum ``white = 2^white_fulcrum``;
5. back to Yrg: luminance power (mid-tones luminance) and contrast around the
   grey fulcrum: ``Y = grey (Y / grey)^(1 + contrast)``;
6. JzAzBz (colour-science's Safdar 2017 constants): brilliance and saturation
   move (Jz, Cz) along and across the pixel's own saturation direction; then
   a soft gamut mapping against the working space's highest saturation per
   hue (a 360-entry table, computed once, sampled from the RGB cube) and a
   hard chroma clip keeping JzAzBz's LMS non-negative;
7. back to RGB, negatives clipped.

Defaults leave in-gamut colours unchanged (up to float rounding) except the
soft gamut mapping of colours above 80 % of the gamut's saturation.
Not implemented: darktable's 2022 "darktable UCS" saturation formula (its
default since 4.0) and the mask display; ``saturation_formula`` accepts
"jzazbz" only.
Region of interest: a point operation.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..io.icc import colour_module
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param
from .channelmixerrgb import SmallImageSafe, finite, planar, staged_schedule, tuple_stage, working_to_xyz

LUT_ELEM = 360
LUT_STEPS = 92
#: darktable shifts the GUI hue so that 0 deg is red (Filmlight Yrg puts red at 330 deg)
ANGLE_SHIFT = -30.0
#: the mask abscissa Y^(this) puts middle grey at 50 % (darktable's constant)
MASK_POWER = 0.4101205819200422
#: smallest denominator of the power exponents (darktable leaves 1 / 0 possible)
_MIN_DEN = 1e-3


@dataclass
class ColorbalancergbParams(Params):
    """Color balance rgb (darktable's ranges).

    {shadows,midtones,highlights,global}_Y: luminance of lift / power / gain / offset, -1..1.
    {...}_C: chroma of that colour, 0..1; {...}_H: its hue angle, degrees 0..360.
    shadows_weight, highlights_weight: mask fall-offs, 0..3.
    white_fulcrum: EV, -16..16 (normalises the power).
    chroma_global/shadows/midtones/highlights: linear chroma, -1..1.
    vibrance: -1..1.  contrast: -1..1 around grey_fulcrum (0.001..1, default 0.1845).
    saturation_global/shadows/midtones/highlights, brilliance_*: perceptual, -1..1.
    hue_angle: global hue shift, degrees -180..180.
    mask_grey_fulcrum: luminance where all three masks are 50 %, 0.001..1.
    saturation_formula: "jzazbz" (darktable's 2021 formula; the 2022 UCS one is not implemented).
    """

    shadows_Y: float = param(0.0, min=-1.0, max=1.0)
    shadows_C: float = param(0.0, min=0.0, max=1.0)
    shadows_H: float = param(0.0, min=0.0, max=360.0, unit="deg")
    midtones_Y: float = param(0.0, min=-1.0, max=1.0)
    midtones_C: float = param(0.0, min=0.0, max=1.0)
    midtones_H: float = param(0.0, min=0.0, max=360.0, unit="deg")
    highlights_Y: float = param(0.0, min=-1.0, max=1.0)
    highlights_C: float = param(0.0, min=0.0, max=1.0)
    highlights_H: float = param(0.0, min=0.0, max=360.0, unit="deg")
    global_Y: float = param(0.0, min=-1.0, max=1.0)
    global_C: float = param(0.0, min=0.0, max=1.0)
    global_H: float = param(0.0, min=0.0, max=360.0, unit="deg")
    shadows_weight: float = param(1.0, min=0.0, max=3.0)
    white_fulcrum: float = param(0.0, min=-16.0, max=16.0, unit="EV")
    highlights_weight: float = param(1.0, min=0.0, max=3.0)
    chroma_shadows: float = param(0.0, min=-1.0, max=1.0)
    chroma_highlights: float = param(0.0, min=-1.0, max=1.0)
    chroma_global: float = param(0.0, min=-1.0, max=1.0)
    chroma_midtones: float = param(0.0, min=-1.0, max=1.0)
    saturation_global: float = param(0.0, min=-1.0, max=1.0)
    saturation_highlights: float = param(0.0, min=-1.0, max=1.0)
    saturation_midtones: float = param(0.0, min=-1.0, max=1.0)
    saturation_shadows: float = param(0.0, min=-1.0, max=1.0)
    hue_angle: float = param(0.0, min=-180.0, max=180.0, unit="deg")
    brilliance_global: float = param(0.0, min=-1.0, max=1.0)
    brilliance_highlights: float = param(0.0, min=-1.0, max=1.0)
    brilliance_midtones: float = param(0.0, min=-1.0, max=1.0)
    brilliance_shadows: float = param(0.0, min=-1.0, max=1.0)
    mask_grey_fulcrum: float = param(0.1845, min=0.001, max=1.0)
    vibrance: float = param(0.0, min=-1.0, max=1.0)
    grey_fulcrum: float = param(0.1845, min=0.001, max=1.0)
    contrast: float = param(0.0, min=-1.0, max=1.0)
    saturation_formula: str = param("jzazbz", choices=("jzazbz",))


# --------------------------------------------------------------------------- colour facts (colour-science)

@functools.lru_cache(maxsize=None)
def facts() -> dict:
    """Matrices and constants of the spaces the module works in, all from colour-science.

    rgb_to_lms: working RGB -> CIE 2006 LMS (Kirk 2019); lms_to_xyz; ky: Y = ky . LMS;
    grading: normalised LMS -> Filmlight grading rgb (r, g are Yrg's chromaticity);
    white_rg: the pipe white's r, g; jz: JzAzBz constants and matrices (Safdar 2017).
    """
    colour = colour_module()
    from colour.models import jzazbz, yrg

    r2x = working_to_xyz()
    x2l = np.asarray(yrg.MATRIX_XYZ_TO_LMS_KIRK2019, dtype=np.float64)
    eye = np.eye(3)
    ky = np.array([colour.models.LMS_to_Yrg(e)[0] for e in eye])
    rg = np.array([colour.models.LMS_to_Yrg(e)[1:] for e in eye]).T  # rows r, g over l, m, s
    grading = np.vstack([rg, 1.0 - rg.sum(axis=0)])
    white = colour.models.LMS_to_Yrg(x2l @ r2x @ np.ones(3))
    k = jzazbz.CONSTANTS_JZAZBZ_SAFDAR2017
    return {
        "rgb_to_lms": x2l @ r2x,
        "lms_to_rgb": np.linalg.inv(x2l @ r2x),
        "ky": ky, "grading": grading, "grading_inv": np.linalg.inv(grading),
        "white_rg": np.asarray(white[1:], dtype=np.float64),
        "xyz_to_rgb": np.linalg.inv(r2x), "rgb_to_xyz": r2x,
        "lms_to_xyz": np.linalg.inv(x2l),
        "jz": {name: float(getattr(k, name)) for name in ("b", "g", "d", "d_0", "m_1", "m_2", "c_1", "c_2", "c_3")},
        "jz_xyz_to_lms": np.asarray(jzazbz.MATRIX_JZAZBZ_XYZ_TO_LMS, dtype=np.float64),
        "jz_lms_to_xyz": np.asarray(jzazbz.MATRIX_JZAZBZ_LMS_TO_XYZ, dtype=np.float64),
        "jz_lmsp_to_iab": np.asarray(jzazbz.MATRIX_JZAZBZ_LMS_P_TO_IZAZBZ_SAFDAR2017, dtype=np.float64),
        "jz_iab_to_lmsp": np.asarray(jzazbz.MATRIX_JZAZBZ_IZAZBZ_TO_LMS_P_SAFDAR2017, dtype=np.float64),
    }


def grading_rgb(Y: float, chroma: float, hue_rad: float) -> np.ndarray:
    """Filmlight grading RGB of the Ych colour (darktable's Ych_to_gradingRGB)."""
    f = facts()
    r = chroma * math.cos(hue_rad) + f["white_rg"][0]
    g = chroma * math.sin(hue_rad) + f["white_rg"][1]
    rgb = np.array([r, g, 1.0 - r - g])
    lms = f["grading_inv"] @ rgb
    den = float(f["ky"] @ lms)
    return rgb * (Y / den if den != 0 else 0.0)


def gui_hue(deg: float) -> float:
    """GUI degrees -> Yrg hue radians (darktable's DEG_TO_RAD with its 30 deg shift)."""
    return (deg + ANGLE_SHIFT) * math.pi / 180.0


@functools.lru_cache(maxsize=None)
def gamut_lut() -> np.ndarray:
    """Highest JzAzBz saturation (Cz / Jz) of the working RGB cube per hue, 360 entries over [-pi, pi].

    darktable's construction: 92^3 RGB samples in [0, 1], max per rounded hue
    index, then a circular 5-tap box average.
    """
    colour = colour_module()
    t = np.linspace(0.0, 1.0, LUT_STEPS)
    rgb = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3)
    jab = colour.XYZ_to_Jzazbz(rgb @ working_to_xyz().T)
    jz, cz = jab[:, 0], np.hypot(jab[:, 1], jab[:, 2])
    sat = np.where(jz > 0, cz / np.where(jz > 0, jz, 1.0), 0.0)
    h = np.arctan2(jab[:, 2], jab[:, 1])
    idx = np.round((LUT_ELEM - 1) * (h + np.pi) / (2 * np.pi)).astype(int)
    lut = np.zeros(LUT_ELEM)
    np.maximum.at(lut, idx, sat)
    return sum(np.roll(lut, k) for k in (-2, -1, 0, 1, 2)) / 5.0


def balance_data(p: ColorbalancergbParams) -> dict:
    """Runtime values: ``vals`` (5, 3): offset, lift, gain, power, [chroma]; ``ctl`` scalars."""
    norm = grading_rgb(1.0, 0.0, 0.0)
    glob = grading_rgb(1.0, p.global_C, gui_hue(p.global_H))
    glob = (glob - norm) + norm * p.global_Y
    lift = 1.0 + (grading_rgb(1.0, p.shadows_C, gui_hue(p.shadows_H)) - norm) + p.shadows_Y
    gain = 1.0 + (grading_rgb(1.0, p.highlights_C, gui_hue(p.highlights_H)) - norm) + p.highlights_Y
    # (darktable divides by these unguarded: power -1 would be an infinite exponent)
    power = 1.0 / np.maximum(1.0 + (grading_rgb(1.0, p.midtones_C, gui_hue(p.midtones_H)) - norm), _MIN_DEN)
    ws, wh = 2.0 + 2.0 * p.shadows_weight, 2.0 + 2.0 * p.highlights_weight
    wm = ws ** 2 * wh ** 2 / (ws ** 2 + wh ** 2)
    band = np.array([
        glob, lift, gain, power,
        [p.chroma_shadows, p.chroma_midtones, p.chroma_highlights],
        [p.saturation_shadows, p.saturation_midtones, p.saturation_highlights],
        [p.brilliance_shadows, p.brilliance_midtones, p.brilliance_highlights],
    ], dtype=np.float64)
    ha = math.radians(p.hue_angle)
    return {
        "band": band,
        "ws": ws, "wh": wh, "wm": wm,
        "mask_fulcrum": p.mask_grey_fulcrum ** MASK_POWER,
        "white": 2.0 ** p.white_fulcrum,
        "power_y": 1.0 / max(1.0 + p.midtones_Y, _MIN_DEN),
        "grey": p.grey_fulcrum, "contrast": 1.0 + p.contrast,
        "cos_hue": math.cos(ha), "sin_hue": math.sin(ha),
        "chroma_global": p.chroma_global, "vibrance": p.vibrance,
        "saturation_global": p.saturation_global, "brilliance_global": p.brilliance_global,
    }


SCALARS = ("ws", "wh", "wm", "mask_fulcrum", "white", "power_y", "grey", "contrast", "cos_hue", "sin_hue",
           "chroma_global", "vibrance", "saturation_global", "brilliance_global")


# --------------------------------------------------------------------------- Halide helpers

def _mv(m, v):
    """Constant numpy matrix times a list of three Exprs."""
    return [float(m[r, 0]) * v[0] + float(m[r, 1]) * v[1] + float(m[r, 2]) * v[2] for r in range(3)]


def _safe_div(a, b):
    return hl.select(b != 0, a / hl.select(b != 0, b, 1.0), 0.0)


def _lms_to_yrg(lms, f):
    Y = sum(float(f["ky"][k]) * lms[k] for k in range(3))
    a = lms[0] + lms[1] + lms[2]
    n = [_safe_div(e, a) for e in lms]
    r, g, _ = _mv(f["grading"], n)
    return Y, r, g


def _yrg_to_lms(Y, r, g, f):
    lms = _mv(f["grading_inv"], [r, g, 1.0 - r - g])
    den = sum(float(f["ky"][k]) * lms[k] for k in range(3))
    a = _safe_div(Y, den)
    return [e * a for e in lms]


def _xyz_to_jab(xyz, f):
    k = f["jz"]
    X, Y, Z = xyz
    xp = k["b"] * X - (k["b"] - 1.0) * Z
    yp = k["g"] * Y - (k["g"] - 1.0) * X
    lms = _mv(f["jz_xyz_to_lms"], [xp, yp, Z])
    pq = []
    for e in lms:
        yp_ = hl.pow(hl.max(e / 10000.0, 0.0), k["m_1"])
        pq.append(hl.pow((k["c_1"] + k["c_2"] * yp_) / (1.0 + k["c_3"] * yp_), k["m_2"]))
    iz, az, bz = _mv(f["jz_lmsp_to_iab"], pq)
    jz = (1.0 + k["d"]) * iz / (1.0 + k["d"] * iz) - k["d_0"]
    return jz, az, bz


def _jab_to_xyz(jz, az, bz, f):
    k = f["jz"]
    iz = hl.max((jz + k["d_0"]) / (1.0 + k["d"] - k["d"] * (jz + k["d_0"])), 0.0)
    lmsp = _mv(f["jz_iab_to_lmsp"], [iz, az, bz])
    lms = []
    for e in lmsp:
        t = hl.pow(hl.max(e, 0.0), 1.0 / k["m_2"])
        lms.append(10000.0 * hl.pow(hl.max((k["c_1"] - t) / (k["c_3"] * t - k["c_2"]), 0.0), 1.0 / k["m_1"]))
    xp, yp, zp = _mv(f["jz_lms_to_xyz"], lms)
    X = (xp + (k["b"] - 1.0) * zp) / k["b"]
    Y = (yp + (k["g"] - 1.0) * X) / k["g"]
    return [X, Y, zp]


def _soft_clip(v, soft, hard):
    n = hard - soft
    return hl.select(v > soft, soft + (1.0 - hl.exp(-(v - soft) / hl.select(n > 0, n, 1.0))) * n, v)


class Colorbalancergb(SmallImageSafe, HalideModule):
    op = "colorbalancergb"
    name = "color balance rgb"
    Params = ColorbalancergbParams
    flags = Flags.INCLUDE_IN_STYLES | Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING
    summary = "4-ways colour grading, chroma, vibrance, contrast, saturation (JzAzBz)"
    pointwise = False  # point-wise maths, but staged (see staged_schedule): not fused on the CPU
    staged = True
    inputs = (HInput("band", "buf_f32", 2), HInput("gamut", "buf_f32", 1)) + tuple(HInput(n) for n in SCALARS)

    # -- algorithm (numbered as in the module docstring), in stages (see staged_schedule)
    def algorithm(self, rgb, p, piece):
        f = facts()
        band = p["band"]
        wr, wg = float(f["white_rg"][0]), float(f["white_rg"][1])
        stages = []

        def st(name, *exprs):
            return tuple_stage(name, exprs, stages)

        # 1. Yrg of the input
        v = [hl.max(finite(rgb[x, y, k]), 0.0) for k in range(3)]
        Y, r, g = st("balance_yrg_in", *_lms_to_yrg(_mv(f["rgb_to_lms"], v), f))
        Y = hl.max(Y, 0.0)
        # 2. luminance masks
        xo = hl.pow(Y, MASK_POWER) - p["mask_fulcrum"]
        xn = xo / p["mask_fulcrum"]
        alpha = 1.0 / (1.0 + hl.exp(xn * p["ws"]))
        beta = 1.0 / (1.0 + hl.exp(-xn * p["wh"]))
        gamma = hl.exp(-xo * xo * p["wm"] / 4.0) * (1.0 - alpha) * (1.0 - alpha) * (1.0 - beta) * (1.0 - beta) * 8.0
        m = st("balance_masks", alpha, gamma, beta)
        # 3. Ych, hue shift, chroma, vibrance, Yrg gamut clip
        dr, dg = r - wr, g - wg
        ch = hl.sqrt(dr * dr + dg * dg)
        cos_h = hl.select(ch != 0, dr / hl.select(ch != 0, ch, 1.0), 1.0)
        sin_h = hl.select(ch != 0, dg / hl.select(ch != 0, ch, 1.0), 0.0)
        cos2 = p["cos_hue"] * cos_h - p["sin_hue"] * sin_h
        sin2 = p["sin_hue"] * cos_h + p["cos_hue"] * sin_h
        boost = p["chroma_global"] + m[0] * band[0, 4] + m[1] * band[1, 4] + m[2] * band[2, 4]
        vib = p["vibrance"] * (1.0 - hl.pow(ch, hl.abs(p["vibrance"])))
        ych = st("balance_ych", ch * hl.max(1.0 + boost + vib, 0.0), cos2, sin2)
        ch, cos2, sin2 = ych
        r2, g2 = ch * cos2 + wr, ch * sin2 + wg
        cmax = ch
        cmax = hl.select(r2 < 0, hl.min(-wr / cos2, cmax), cmax)
        cmax = hl.select(g2 < 0, hl.min(-wg / sin2, cmax), cmax)
        cmax = hl.select(r2 + g2 > 1.0, hl.min((1.0 - wr - wg) / (cos2 + sin2), cmax), cmax)
        _, r3, g3 = st("balance_yrg_chroma", Y, cmax * cos2 + wr, cmax * sin2 + wg)
        lms = st("balance_lms", *_yrg_to_lms(Y, r3, g3, f))
        grading = _mv(f["grading"], lms)
        # 4. offset, lift / gain with masks, power around the white fulcrum
        white = p["white"]
        balanced = []
        for k in range(3):
            e = grading[k] + band[k, 0]
            e = e * ((1.0 - m[2]) * ((1.0 - m[0]) + m[0] * band[k, 1]) + m[2] * band[k, 2])
            sign = hl.select(e < 0, -1.0, 1.0)
            balanced.append(sign * hl.pow(hl.abs(e) / white, band[k, 3]) * white)
        balanced = st("balance_4ways", *balanced)
        # 5. luminance power and contrast
        Y5, r5, g5 = st("balance_yrg_out", *_lms_to_yrg(_mv(f["grading_inv"], balanced), f))
        Y5 = hl.pow(hl.max(Y5 / white, 0.0), p["power_y"]) * white
        Y5 = p["grey"] * hl.pow(Y5 / p["grey"], p["contrast"])
        lms5 = st("balance_lms_out", *_yrg_to_lms(Y5, r5, g5, f))
        graded = st("balance_graded_xyz", *_mv(f["lms_to_xyz"], lms5))
        # 6. perceptual saturation / brilliance in JzAzBz, gamut mapping
        jz, az, bz = st("balance_jab", *_xyz_to_jab(graded, f))
        cz = hl.sqrt(az * az + bz * bz)
        h = hl.atan2(bz, az)
        T = hl.atan2(cz, jz)
        sT, cT = hl.sin(T), hl.cos(T)
        b0 = 1.0 + p["brilliance_global"] + m[0] * band[0, 6] + m[1] * band[1, 6] + m[2] * band[2, 6]
        b1 = p["saturation_global"] + m[0] * band[0, 5] + m[1] * band[1, 5] + m[2] * band[2, 5]
        so0 = jz * cT + cz * sT
        so1 = so0 * hl.min(hl.max(T * b1, -T), math.pi / 2 - T)
        so0 = hl.max(so0 * b0, 0.0)
        J, C, h = st("balance_jch", hl.max(so0 * cT - so1 * sT, 0.0), hl.max(so0 * sT + so1 * cT, 0.0), h)
        lut = p["gamut"]
        xt = (LUT_ELEM - 1) * (h + math.pi) / (2 * math.pi)
        i0 = hl.clamp(hl.cast(hl.Int(32), hl.floor(xt)), 0, LUT_ELEM - 1)
        i1 = hl.clamp(hl.select(i0 + 1 > LUT_ELEM - 1, 0, i0 + 1), 0, LUT_ELEM - 1)
        fr = xt - hl.floor(xt)
        gmax = lut[i0] + fr * (lut[i1] - lut[i0])
        sat = hl.select(J > 0, _soft_clip(C / hl.select(J > 0, J, 1.0), 0.8 * gmax, gmax), gmax)
        max_c_at_sat = J * sat
        max_j_at_sat = hl.select(sat > 0, C / hl.select(sat > 0, sat, 1.0), J)
        J, C, h = st("balance_jch_mapped", (J + max_j_at_sat) / 2.0, (C + max_c_at_sat) / 2.0, h)
        k = f["jz"]
        iz = hl.max((J + k["d_0"]) / (1.0 + k["d"] - k["d"] * (J + k["d_0"])), 0.0)
        cos_H, sin_H = hl.cos(h), hl.sin(h)
        ai = f["jz_iab_to_lmsp"]
        c_max = C
        for row in range(3):
            a1, a2 = float(ai[row, 1]), float(ai[row, 2])
            test = float(ai[row, 0]) * iz + a1 * C * cos_H + a2 * C * sin_H
            den = a1 * cos_H + a2 * sin_H
            c_max = hl.select(test < 0, hl.min(-iz / hl.select(den != 0, den, 1e-30), c_max), c_max)
        jab = st("balance_jab_out", J, c_max * cos_H, c_max * sin_H)
        xyz = st("balance_xyz_out", *_jab_to_xyz(*jab, f))
        # 7. back to RGB
        out = hl.Func("balanced")
        out[x, y, c] = finite(hl.max(planar(*_mv(f["xyz_to_rgb"], xyz)), 0.0))
        self._stages = stages
        return out

    def schedule(self, out, piece):
        staged_schedule(out, self.built_stages(), piece)

    def commit(self, piece):
        piece.data.update(balance_data(piece.params))
        piece.data["gamut"] = gamut_lut()

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        d = piece.data
        return {"band": d["band"], "gamut": d["gamut"], **{n: d[n] for n in SCALARS}}
