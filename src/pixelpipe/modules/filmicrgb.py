"""filmicrgb: darktable's filmic rgb view transform (colour science v6 and v7, spline v3).

Scene-referred linear RGB (working space, linear Rec.2020) to display-referred
linear RGB, in three steps:

1. **log encoding** of a pixel value ``v`` around the scene grey ``g`` (18.45 %
   unless ``custom_grey``): ``x = clamp((log2(v / g) - black_ev) / (white_ev -
   black_ev), 0, 1)``; ``black_point_source``/``white_point_source`` are the
   black and white relative exposures in EV around grey.
2. **the filmic spline** (darktable's spline v3): a straight segment through
   the grey node ``(|black_ev| / DR, (0.1845)^(1/hardness))`` with slope
   ``contrast * DR / 8 / (hardness * grey_display^(hardness - 1))`` (so the
   contrast at grey after the output power depends on ``contrast`` only),
   clamped so the curve can still reach its targets; ``latitude`` (% of the
   display range) moves the toe and shoulder nodes between grey and the point
   where the straight line meets black/white (minus a 1 % safety margin),
   ``balance`` slides both along the line; toe and shoulder are 4th-order
   ("hard"), 3rd-order ("soft") polynomials or rational functions ("safe")
   joining the line with matching slope (and zero curvature for polynomials)
   and reaching the black/white display targets. The curve output is raised
   to ``hardness`` (``output_power``), which maps display grey back to 18.45 %.
   With ``auto_hardness`` the hardness is
   ``ln(grey_target) / ln(-black_ev / DR)`` (grey lands on the grey target).
3. **colour** (v6 and v7 use the CIE 2006 LMS / Kirk-Filmlight Yrg space, Ych
   = luminance, chroma, hue):

   * v6, "preserve chrominance" = a norm (max RGB, luminance Y, RGB power norm
     ``sum|v|^3 / sum v^2``, RGB euclidean norm / sqrt(3)): the norm (clamped to
     the encoded range) goes through the curve and the RGB ratios are kept;
     "no": every channel goes through the curve and the chroma may only shrink.
   * v7: the per-channel result and the max-RGB-norm result are mixed,
     ``(0.5 - s) * per_channel + (0.5 + s) * max_rgb`` with ``s = saturation /
     100``; the chroma may only shrink.
   * both then **map the gamut** in Ych: the hue of the input is kept, the
     luminance is clamped to the display range, the chroma is changed by the
     "extreme luminance saturation" rule (v6 only: move back towards the
     input chroma by ``saturation`` %), clipped to the Yrg/LMS gamut, then to
     the largest chroma at that hue and luminance that the output RGB (sRGB,
     the default output profile) holds between 0 and display white; a pixel
     whose colour needs negative RGB is first brightened by half the white
     light that would fix it.

Parameters and defaults are darktable 4.2's default history (read from the
XMP darktable embeds in its exports): colour science v6, RGB power norm,
hard/hard curves, contrast 1, latitude 0.01 %, targets 0.01517634 / 18.45 /
100 %, white/black relative exposure 4 + 0.8 E and -8 + 0.5 E where E = 0.7 EV
minus the camera's exposure bias (the scene-referred exposure boost), hardness
automatic. (darktable 4.4 and later default to v7.)

Not implemented: highlight reconstruction (darktable's wavelet inpainting of
clipped areas; off in darktable 4.2's defaults). Asking for it gives a notice
and the module tone-maps without it, so there is nothing expensive for the
fast (cut-down) pipe to skip. Spline versions v1/v2 and colour science v3-v5
(darktable's legacy edits) are not implemented either. The gamut is mapped
against sRGB: a module cannot see the output profile chosen later in the pipe.

Region of interest: a point operation.
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

MIDDLE_GREY = 0.1845
SAFETY_MARGIN = 0.01
NORM_MIN = 2.0 ** -16

# --------------------------------------------------------------------------- colour facts
# Kirk (2019), "Chromaticity coordinates for graphic arts based on CIE 2006 LMS
# with even spacing of Munsell colours": CIE 1931 XYZ (D65) -> CIE 2006 LMS,
# luminance from LMS, Filmlight "grading RGB" <-> LMS and the D65 white in rg.
XYZ_D65_TO_LMS_2006 = np.array([[0.257085, 0.859943, -0.031061],
                                [-0.394427, 1.175800, 0.106423],
                                [0.064856, -0.076250, 0.559067]])
LMS_Y = (0.68990272, 0.34832189)
FILMLIGHT_TO_LMS = np.array([[0.95, 0.38, 0.00],
                             [0.05, 0.62, 0.03],
                             [0.00, 0.00, 0.97]])
LMS_TO_FILMLIGHT = np.linalg.inv(FILMLIGHT_TO_LMS)
WHITE_R, WHITE_G = 0.21902143, 0.54371398
#: CIE Y (1931) of an achromatic pixel expressed as Y (2006)
Y_1931_TO_2006 = 1.05785528
D50 = np.array([0.9642, 1.0, 0.8249])
D65 = np.array([0.95047, 1.0, 1.08883])

NORMS = ("none", "max_rgb", "luminance", "power_norm", "euclidean_norm")
CURVES = ("hard", "soft", "safe")  # 4th-order polynomial, 3rd-order polynomial, rational


@dataclass
class FilmicrgbParams(Params):
    """Filmic rgb.

    white_point_source: white relative exposure, EV above grey, 0.1..16.
    black_point_source: black relative exposure, EV below grey, -16..-0.1.
    grey_point_source: scene middle grey, %, 0.1..100 (used with custom_grey).
    grey_point_target: display middle grey, %, 1..50 (used with custom_grey / auto_hardness).
    black_point_target: display black, % of display white, 0..20.
    white_point_target: display white, %, 20..1600.
    output_power: hardness (power applied after the curve), 1..10; recomputed when auto_hardness.
    contrast: slope of the curve at grey (1 = darktable's default), 0..5.
    latitude: % of the display range kept linear around grey, 0..99.
    balance: shadows <-> highlights balance, %, -50..50.
    saturation: v6: extreme luminance saturation, % (-200..200); v7: mix of
        per-channel (< 0) and max-RGB (> 0) tone mapping, %, -50..50 useful.
    preserve_color: "none", "max_rgb", "luminance", "power_norm", "euclidean_norm" (v6 only).
    version: colour science, "v6" (darktable 4.2's default) or "v7".
    shadows, highlights: curve type "hard", "soft" or "safe".
    auto_hardness: derive output_power from the exposures and grey target.
    custom_grey: use grey_point_source/grey_point_target instead of 18.45 %.
    enable_highlight_reconstruction: not implemented (a notice says so).
    """

    VERSION = 1

    white_point_source: float = param(4.0, min=0.1, max=16.0, unit="EV")
    black_point_source: float = param(-8.0, min=-16.0, max=-0.1, unit="EV")
    grey_point_source: float = param(18.45, min=0.1, max=100.0, unit="%")
    grey_point_target: float = param(18.45, min=1.0, max=50.0, unit="%")
    black_point_target: float = param(0.01517634, min=0.0, max=20.0, unit="%")
    white_point_target: float = param(100.0, min=20.0, max=1600.0, unit="%")
    output_power: float = param(4.0, min=1.0, max=10.0)
    contrast: float = param(1.0, min=0.0, max=5.0)
    latitude: float = param(0.01, min=0.0, max=99.0, unit="%")
    balance: float = param(0.0, min=-50.0, max=50.0, unit="%")
    saturation: float = param(0.0, min=-200.0, max=200.0, unit="%")
    preserve_color: str = param("power_norm", choices=NORMS)
    version: str = param("v6", choices=("v6", "v7"))
    shadows: str = param("hard", choices=CURVES)
    highlights: str = param("hard", choices=CURVES)
    auto_hardness: bool = param(True)
    custom_grey: bool = param(False)
    enable_highlight_reconstruction: bool = param(False)


def auto_hardness(white_ev: float, black_ev: float, grey_target: float = 18.45) -> float:
    """Hardness that maps scene grey onto the display grey target."""
    return math.log(grey_target / 100.0) / math.log(-black_ev / (white_ev - black_ev))


def scene_referred_defaults(exposure_bias: float | None = 0.0) -> FilmicrgbParams:
    """darktable's defaults for a raw in the scene-referred workflow (exposure +0.7 EV)."""
    e = 0.7 - float(exposure_bias or 0.0)
    p = FilmicrgbParams()
    p.black_point_source = max(-16.0, min(-0.1, -8.0 + 0.5 * e))
    p.white_point_source = max(0.1, min(16.0, 4.0 + 0.8 * e))
    p.output_power = min(10.0, max(1.0, auto_hardness(p.white_point_source, p.black_point_source)))
    return p


# --------------------------------------------------------------------------- the spline
@dataclass
class Spline:
    """Nodes and per-segment coefficients of the filmic curve (log domain -> display)."""

    x: tuple
    y: tuple
    contrast: float
    latitude_min: float
    latitude_max: float
    toe: tuple  # (M1..M5) polynomial, or (a, b, c, toe_display, 0) rational
    shoulder: tuple
    linear: tuple  # (offset, slope)
    toe_type: str
    shoulder_type: str
    clamped: bool


def _solve_poly(rows, rhs):
    return np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))


def _rational(p_far, p_near, g):
    """(a, b, c) of y = a (b t^2 + t) / (b t^2 + t + c), t the distance from the join node."""
    dx = abs(p_near[0] - p_far[0])
    dy = abs(p_near[1] - p_far[1])
    b = g / (2.0 * dy) + (math.sqrt(max((dx * g / dy + 1.0) ** 2 - 4.0, 0.0)) - 1.0) / (2.0 * dx)
    cc = dy / g * (b * dx * dx + dx) / (b * dx * dx + dx - dy / g)
    return cc * g, b, cc


def compute_spline(p: FilmicrgbParams, power: float | None = None) -> Spline:
    """The filmic spline v3 of ``p`` (hardness ``power``, default ``p.output_power``)."""
    hardness = p.output_power if power is None else power
    if p.custom_grey:
        grey_display = (min(max(p.grey_point_target, p.black_point_target), p.white_point_target) / 100.0) \
            ** (1.0 / hardness)
    else:
        grey_display = MIDDLE_GREY ** (1.0 / hardness)
    dr = p.white_point_source - p.black_point_source
    black_log, white_log = 0.0, 1.0
    grey_log = abs(p.black_point_source) / dr
    black_display = (min(max(p.black_point_target, 0.0), p.grey_point_target) / 100.0) ** (1.0 / hardness)
    white_display = (max(p.white_point_target, p.grey_point_target) / 100.0) ** (1.0 / hardness)

    latitude = min(max(p.latitude, 0.0), 100.0) / 100.0
    balance = min(max(p.balance, -50.0), 50.0) / 100.0
    slope = p.contrast * dr / 8.0
    min_contrast = max(1.0, (white_display - grey_display) / (white_log - grey_log),
                       (grey_display - black_display) / (grey_log - black_log)) + SAFETY_MARGIN
    contrast = slope / (hardness * grey_display ** (hardness - 1.0))
    clamped_contrast = min(max(contrast, min_contrast), 100.0)
    clamped = clamped_contrast != contrast
    contrast = clamped_contrast
    intercept = grey_display - contrast * grey_log
    span = white_display - black_display
    xmin = (black_display + SAFETY_MARGIN * span - intercept) / contrast
    xmax = (white_display - SAFETY_MARGIN * span - intercept) / contrast
    toe_log = (1.0 - latitude) * grey_log + latitude * xmin
    shoulder_log = (1.0 - latitude) * grey_log + latitude * xmax
    corr = 2.0 * balance * (shoulder_log - grey_log) if balance > 0 else 2.0 * balance * (grey_log - toe_log)
    toe_log = max(toe_log - corr, xmin)
    shoulder_log = min(shoulder_log - corr, xmax)
    toe_display = toe_log * contrast + intercept
    shoulder_display = shoulder_log * contrast + intercept

    T, S = toe_log, shoulder_log
    if p.shadows == "hard":
        m = _solve_poly([[0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [T ** 4, T ** 3, T ** 2, T, 1],
                         [4 * T ** 3, 3 * T ** 2, 2 * T, 1, 0], [12 * T ** 2, 6 * T, 2, 0, 0]],
                        [black_display, 0.0, toe_display, contrast, 0.0])
        toe = (m[4], m[3], m[2], m[1], m[0])
    elif p.shadows == "soft":
        m = _solve_poly([[0, 0, 0, 1], [T ** 3, T ** 2, T, 1], [3 * T ** 2, 2 * T, 1, 0], [6 * T, 2, 0, 0]],
                        [black_display, toe_display, contrast, 0.0])
        toe = (m[3], m[2], m[1], m[0], 0.0)
    else:
        a, b, cc = _rational((black_log, black_display), (toe_log, toe_display), contrast)
        toe = (a, b, cc, toe_display, 0.0)
    if p.highlights == "hard":
        m = _solve_poly([[1, 1, 1, 1, 1], [4, 3, 2, 1, 0], [S ** 4, S ** 3, S ** 2, S, 1],
                         [4 * S ** 3, 3 * S ** 2, 2 * S, 1, 0], [12 * S ** 2, 6 * S, 2, 0, 0]],
                        [white_display, 0.0, shoulder_display, contrast, 0.0])
        shoulder = (m[4], m[3], m[2], m[1], m[0])
    elif p.highlights == "soft":
        m = _solve_poly([[1, 1, 1, 1], [S ** 3, S ** 2, S, 1], [3 * S ** 2, 2 * S, 1, 0], [6 * S, 2, 0, 0]],
                        [white_display, shoulder_display, contrast, 0.0])
        shoulder = (m[3], m[2], m[1], m[0], 0.0)
    else:
        a, b, cc = _rational((white_log, white_display), (shoulder_log, shoulder_display), contrast)
        shoulder = (a, b, cc, shoulder_display, 0.0)
    return Spline(x=(black_log, toe_log, grey_log, shoulder_log, white_log),
                  y=(black_display, toe_display, grey_display, shoulder_display, white_display),
                  contrast=contrast, latitude_min=toe_log, latitude_max=shoulder_log,
                  toe=tuple(float(v) for v in toe), shoulder=tuple(float(v) for v in shoulder),
                  linear=(toe_display - contrast * toe_log, contrast), toe_type=p.shadows,
                  shoulder_type=p.highlights, clamped=clamped)


def eval_spline(s: Spline, xs) -> np.ndarray:
    """The spline at log-encoded ``xs`` (NumPy, float64), before the output power."""
    xs = np.asarray(xs, dtype=np.float64)

    def poly(m, v):
        return m[0] + v * (m[1] + v * (m[2] + v * (m[3] + v * m[4])))

    def toe(v):
        if s.toe_type == "safe":
            a, b, cc, d, _ = s.toe
            t = s.latitude_min - v
            r = t * (t * b + 1.0)
            return d - a * r / (r + cc)
        return poly(s.toe, v)

    def shoulder(v):
        if s.shoulder_type == "safe":
            a, b, cc, d, _ = s.shoulder
            t = v - s.latitude_max
            r = t * (t * b + 1.0)
            return d + a * r / (r + cc)
        return poly(s.shoulder, v)

    lin = s.linear[0] + s.linear[1] * xs
    return np.where(xs < s.latitude_min, toe(xs), np.where(xs > s.latitude_max, shoulder(xs), lin))


# --------------------------------------------------------------------------- colour matrices
@functools.lru_cache(maxsize=None)
def _cat16(src: tuple, dst: tuple) -> np.ndarray:
    from ..io.icc import colour_module

    colour = colour_module()
    return np.asarray(colour.adaptation.matrix_chromatic_adaptation_VonKries(
        np.array(src), np.array(dst), transform="CAT16"), dtype=np.float64)


@functools.lru_cache(maxsize=None)
def rgb_to_lms(profile: str) -> np.ndarray:
    """Linear RGB of ``profile`` -> CIE 2006 LMS (D65), as darktable builds it: the
    profile's D50 (ICC, Bradford-adapted) matrix, then CAT16 D50 -> D65."""
    from ..io import icc

    return XYZ_D65_TO_LMS_2006 @ _cat16(tuple(D50), tuple(D65)) @ icc.colourspace(profile).matrix_rgb_to_xyz_d50


def luminance_coefficients(profile: str = "linear_rec2020") -> np.ndarray:
    """The Y row of the profile's D50 (ICC) RGB -> XYZ matrix (darktable's luminance)."""
    from ..io import icc

    return icc.colourspace(profile).matrix_rgb_to_xyz_d50[1].copy()


# --------------------------------------------------------------------------- Halide helpers
class _M:
    """A 3x3 matrix held in a 2D buffer: M(i, j) = row i, column j."""

    def __init__(self, buf):
        self.b = buf

    def __call__(self, i, j):
        return self.b[j, i]

    def apply(self, v):
        return tuple(self(i, 0) * v[0] + self(i, 1) * v[1] + self(i, 2) * v[2] for i in range(3))


_FL = [[hl.f32(float(FILMLIGHT_TO_LMS[i, j])) for j in range(3)] for i in range(3)]
_LF = [[hl.f32(float(LMS_TO_FILMLIGHT[i, j])) for j in range(3)] for i in range(3)]


def _safe_div(a, b, fallback=0.0):
    return hl.select(b != 0, a / hl.select(b != 0, b, hl.f32(1)), hl.f32(fallback))


def h_rgb_to_ych(rgb, m: _M):
    """(Y, c, cos h, sin h) of linear RGB (tuple of Exprs) via the RGB -> LMS matrix."""
    L, M, S = m.apply(rgb)
    Y = LMS_Y[0] * L + LMS_Y[1] * M
    a = L + M + S
    l_, m_, s_ = (_safe_div(v, a) for v in (L, M, S))
    r = _LF[0][0] * l_ + _LF[0][1] * m_ + _LF[0][2] * s_ - WHITE_R
    g = _LF[1][0] * l_ + _LF[1][1] * m_ + _LF[1][2] * s_ - WHITE_G
    ch = hl.sqrt(r * r + g * g)
    cos_h = hl.select(ch != 0, r / hl.select(ch != 0, ch, hl.f32(1)), hl.f32(1))
    sin_h = hl.select(ch != 0, g / hl.select(ch != 0, ch, hl.f32(1)), hl.f32(0))
    return Y, ch, cos_h, sin_h


def h_ych_to_lms(Y, ch, cos_h, sin_h):
    r = ch * cos_h + WHITE_R
    g = ch * sin_h + WHITE_G
    b = 1.0 - r - g
    lms = tuple(_FL[i][0] * r + _FL[i][1] * g + _FL[i][2] * b for i in range(3))
    den = LMS_Y[0] * lms[0] + LMS_Y[1] * lms[1]
    k = _safe_div(Y, den)
    return tuple(v * k for v in lms)


def _white_dir():
    """LMS of the white point chromaticity (unnormalised) and the LMS change per unit chroma."""
    w = FILMLIGHT_TO_LMS @ np.array([WHITE_R, WHITE_G, 1.0 - WHITE_R - WHITE_G])
    return w


def h_max_chroma(m_out: _M, white, Y, cos_h, sin_h):
    """Largest chroma at (Y, hue) whose RGB (LMS -> RGB matrix ``m_out``) stays in [0, white].

    Along a hue line the unnormalised LMS is ``w + c d`` (w the white, d the
    direction), so RGB channel i is ``Y (a_i + b_i c) / (d0 + d1 c)``: each
    bound is reached at ``c = (T d0 - Y a_i) / (Y b_i - T d1)``.
    """
    w = _white_dir()
    dvec = [_FL[i][0] * cos_h + _FL[i][1] * sin_h - _FL[i][2] * (cos_h + sin_h) for i in range(3)]
    d0 = float(LMS_Y[0] * w[0] + LMS_Y[1] * w[1])
    d1 = LMS_Y[0] * dvec[0] + LMS_Y[1] * dvec[1]
    big = hl.f32(3.0e38)
    eps = 1e-3
    max_Y = Y_1931_TO_2006 * white
    best = big
    for i in range(3):
        a_i = m_out(i, 0) * float(w[0]) + m_out(i, 1) * float(w[1]) + m_out(i, 2) * float(w[2])
        b_i = m_out(i, 0) * dvec[0] + m_out(i, 1) * dvec[1] + m_out(i, 2) * dvec[2]

        def white_raw(Yv):
            den = Yv * b_i - white * d1
            ok = (b_i != 0) & (hl.select(b_i > 0, den > 0, den < 0))
            return hl.select(ok, (white * d0 - Yv * a_i) / hl.select(den != 0, den, hl.f32(1)), big)

        dY = hl.max(max_Y - Y, 0.0)
        near = white_raw((1.0 - eps) * max_Y) * dY / (eps * max_Y)
        cw = hl.select(dY < eps, near, white_raw(Y))
        cw = hl.select(cw >= 0, cw, big)
        cb = hl.select(b_i != 0, -a_i / hl.select(b_i != 0, b_i, hl.f32(1)), big)
        cb = hl.select(cb >= 0, cb, big)
        best = hl.min(best, hl.min(cw, cb))
    return best


def h_gamut_map(Y_o, c_o, cos_o, sin_o, Y_f, c_f, black, white, sat, m_out, m_exp_in, m_exp_out, m_work_out):
    """darktable's filmic v6/v7 gamut mapping; returns pipeline RGB (tuple of Exprs)."""
    lo, hi = Y_1931_TO_2006 * black, Y_1931_TO_2006 * white
    Yf = hl.clamp(Y_f, lo, hi)
    # extreme luminance saturation (chroma as c * Y)
    chroma_o = c_o * Y_o
    chroma_f = c_f * Yf
    delta = sat * (chroma_o - chroma_f)
    brightens = Yf > Y_o
    resat = chroma_o < chroma_f
    desat = chroma_o > chroma_f
    chroma_new = hl.select(brightens & resat, (chroma_o + chroma_f) / 2.0,
                           ((sat > 0) & desat) | (sat < 0), chroma_f + delta, chroma_f)
    cf = hl.max(_safe_div(chroma_new, Yf), 0.0)
    # Yrg / LMS gamut: chroma limited at constant hue and luminance
    r = cf * cos_o + WHITE_R
    g = cf * sin_o + WHITE_G
    cf = hl.select(r < 0, hl.min(cf, -WHITE_R / cos_o), cf)
    cf = hl.select(g < 0, hl.min(cf, -WHITE_G / sin_o), cf)
    cf = hl.select(r + g > 1, hl.min(cf, (1.0 - WHITE_R - WHITE_G) / (cos_o + sin_o)), cf)
    # output RGB gamut: brighten by half the white light that removes negatives, then cap chroma
    rgb_b = m_exp_out.apply(h_ych_to_lms(Yf, cf, cos_o, sin_o))
    off = hl.max(-hl.min(hl.min(rgb_b[0], rgb_b[1]), rgb_b[2]), 0.0)
    lms_b = m_exp_in.apply(tuple(v + off for v in rgb_b))
    Y_b = LMS_Y[0] * lms_b[0] + LMS_Y[1] * lms_b[1]
    Yn = hl.clamp((Yf + Y_b) / 2.0, lo, hi)
    cn = hl.min(cf, h_max_chroma(m_exp_out, white, Yn, cos_o, sin_o))
    rgb = tuple(hl.clamp(v, 0.0, white) for v in m_exp_out.apply(h_ych_to_lms(Yn, cn, cos_o, sin_o)))
    return m_work_out.apply(m_exp_in.apply(rgb))


class Filmicrgb(HalideModule):
    op = "filmicrgb"
    name = "filmic rgb"
    Params = FilmicrgbParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    summary = "scene-to-display tone mapping (log + filmic spline, v6/v7 colour science)"
    inputs = (HInput("m_in", "buf_f32", 2), HInput("m_out", "buf_f32", 2),
              HInput("m_exp_in", "buf_f32", 2), HInput("m_exp_out", "buf_f32", 2),
              HInput("coef", "buf_f32", 1),
              *(HInput(n) for n in ("grey", "black_ev", "dr", "power", "disp_black", "disp_white", "sat",
                                    "lat_min", "lat_max", "norm_min", "norm_max", "lum_r", "lum_g", "lum_b")),
              HInput("norm", "i32"), HInput("toe_rational", "i32"), HInput("shoulder_rational", "i32"))

    def variant(self, piece):
        p = piece.params
        return "v7" if p.version == "v7" else "split" if p.preserve_color == "none" else "norm"

    def default_params(self, image):
        if image.is_raw:
            return scene_referred_defaults(image.exif.get("exposure_bias"))
        return FilmicrgbParams()

    # -- algorithm
    def algorithm(self, rgb, p, piece):
        coef = p["coef"]
        grey, black_ev, dr, power = p["grey"], p["black_ev"], p["dr"], p["power"]
        disp_black, disp_white = p["disp_black"], p["disp_white"]
        lat_min, lat_max = p["lat_min"], p["lat_max"]
        toe_rat, sh_rat = p["toe_rational"], p["shoulder_rational"]
        m_in, m_out = _M(p["m_in"]), _M(p["m_out"])
        m_exp_in, m_exp_out = _M(p["m_exp_in"]), _M(p["m_exp_out"])

        def spline(v):
            t = [coef[k] for k in range(5)]
            s = [coef[5 + k] for k in range(5)]
            poly_t = t[0] + v * (t[1] + v * (t[2] + v * (t[3] + v * t[4])))
            poly_s = s[0] + v * (s[1] + v * (s[2] + v * (s[3] + v * s[4])))
            xt = lat_min - v
            rt = xt * (xt * t[1] + 1.0)
            rat_t = t[3] - t[0] * rt / (rt + t[2])
            xs = v - lat_max
            rs = xs * (xs * s[1] + 1.0)
            rat_s = s[3] + s[0] * rs / (rs + s[2])
            toe = hl.select(toe_rat != 0, rat_t, poly_t)
            shoulder = hl.select(sh_rat != 0, rat_s, poly_s)
            return hl.select(v < lat_min, toe, v > lat_max, shoulder, coef[10] + coef[11] * v)

        def log_encode(v):
            ratio = hl.max(v / grey, hl.f32(1e-30))
            return hl.clamp((hl.log(ratio) * (1.0 / math.log(2.0)) - black_ev) / dr, 0.0, 1.0)

        def per_channel(v):
            return hl.pow(hl.clamp(spline(log_encode(v)), 0.0, disp_white), power)

        def sane(v):  # NaN -> 0, +-Inf -> +-1e6 (NaN/Inf never leave the module)
            return hl.select(hl.is_nan(v), hl.f32(0), hl.clamp(v, -1e6, 1e6))

        r, g, b = sane(rgb[x, y, 0]), sane(rgb[x, y, 1]), sane(rgb[x, y, 2])
        norm_kind = p["norm"]
        ar, ag, ab = hl.abs(r), hl.abs(g), hl.abs(b)
        power_norm = (ar * ar * ar + ag * ag * ag + ab * ab * ab) / hl.max(r * r + g * g + b * b, hl.f32(1e-12))
        max_rgb = hl.max(hl.max(r, g), b)
        lum = p["lum_r"] * r + p["lum_g"] * g + p["lum_b"] * b
        eucl = hl.sqrt(r * r + g * g + b * b) * (1.0 / math.sqrt(3.0))
        n_v6 = hl.select(norm_kind == 1, max_rgb, norm_kind == 2, lum, norm_kind == 3, power_norm, eucl)
        # the colour path is structural (variant "v7", "split" or "norm"): only it is compiled
        path = self.variant(piece)
        sat = p["sat"]

        def by_norm(n):
            n = hl.clamp(n, p["norm_min"], p["norm_max"])
            k = hl.pow(hl.clamp(spline(log_encode(n)), disp_black, disp_white), power) / n
            return (r * k, g * k, b * k)

        if path == "norm":
            out = by_norm(n_v6)
        else:
            split = (per_channel(r), per_channel(g), per_channel(b))
            if path == "v7":
                out = tuple((0.5 - sat) * s_ + (0.5 + sat) * n_ for s_, n_ in zip(split, by_norm(max_rgb)))
            else:
                out = split

        Y_o, c_o, cos_o, sin_o = h_rgb_to_ych((r, g, b), m_in)
        Y_f, c_f, _, _ = h_rgb_to_ych(out, m_in)
        if path != "norm":
            c_f = hl.min(c_o, c_f)
        sat_gm = hl.f32(0) if path == "v7" else sat
        res = h_gamut_map(Y_o, c_o, cos_o, sin_o, Y_f, c_f, disp_black, disp_white, sat_gm, m_out,
                          m_exp_in, m_exp_out, m_out)
        mapped = hl.Func("filmic")
        mapped[x, y, c] = hl.select(c == 0, res[0], c == 1, res[1], res[2])
        return mapped

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    # -- parameters -> runtime values
    def commit(self, piece):
        p = piece.params
        power = p.output_power
        if p.auto_hardness:
            grey_t = p.grey_point_target if p.custom_grey else 18.45
            power = min(10.0, max(1.0, auto_hardness(p.white_point_source, p.black_point_source, grey_t)))
        s = compute_spline(p, power)
        grey = p.grey_point_source / 100.0 if p.custom_grey else MIDDLE_GREY
        dr = p.white_point_source - p.black_point_source
        coef = np.zeros(12)
        coef[0:5] = s.toe
        coef[5:10] = s.shoulder
        coef[10:12] = s.linear
        work = "linear_rec2020"
        m_in = rgb_to_lms(work)
        m_exp_in = rgb_to_lms("linear_srgb")
        lum = luminance_coefficients(work)
        saturation = p.saturation / 100.0
        piece.data.update({
            "spline": s, "power": power, "grey": grey, "dr": dr, "coef": coef,
            "disp_black": s.y[0] ** power, "disp_white": s.y[4] ** power, "sat": saturation,
            "m_in": m_in, "m_out": np.linalg.inv(m_in), "m_exp_in": m_exp_in, "m_exp_out": np.linalg.inv(m_exp_in),
            "lum": lum, "norm_min": grey * 2.0 ** p.black_point_source,
            "norm_max": grey * 2.0 ** p.white_point_source,
        })
        if p.enable_highlight_reconstruction:
            piece.notices.append("filmicrgb: highlight reconstruction is not implemented in this version; "
                                 "tone mapping without it")

    def output_desc(self, piece, dsc_in):
        w = piece.data["disp_white"]
        return dsc_in.copy(processed_maximum=(w, w, w))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        d, p = piece.data, piece.params
        s = d["spline"]
        return {"m_in": f32(d["m_in"]), "m_out": f32(d["m_out"]), "m_exp_in": f32(d["m_exp_in"]),
                "m_exp_out": f32(d["m_exp_out"]), "coef": f32(d["coef"]), "grey": d["grey"],
                "black_ev": p.black_point_source, "dr": d["dr"], "power": d["power"],
                "disp_black": d["disp_black"], "disp_white": d["disp_white"], "sat": d["sat"],
                "lat_min": s.latitude_min, "lat_max": s.latitude_max, "norm_min": d["norm_min"],
                "norm_max": d["norm_max"], "lum_r": d["lum"][0], "lum_g": d["lum"][1], "lum_b": d["lum"][2],
                "norm": NORMS.index(p.preserve_color), "toe_rational": int(s.toe_type == "safe"),
                "shoulder_rational": int(s.shoulder_type == "safe")}
