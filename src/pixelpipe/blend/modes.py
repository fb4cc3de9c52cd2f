"""Blend colour spaces and blend modes: names, darktable codes, availability, formulas.

A blending module combines its input ``a`` and its output ``b`` per pixel
with a mask ``m`` (the local opacity: mask times global opacity)::

    result = (1 - m) * a + m * f(a, b)

(darktable manual, "blend modes"). ``reverse`` swaps the roles of input and
output: ``result = (1 - m) * b + m * f(b, a)``.

Blend colour spaces (darktable's "blending options"):

* ``raw``: the mosaic, one value per pixel; per-channel modes only.
* ``rgb_display``: the module's RGB values with display-referred assumptions
  (50 % grey fulcrum, results clamped to 0..1).
* ``rgb_scene``: the module's linear RGB, unbounded; modes that assume a
  0..1 range are not offered; arithmetic modes use the *blend fulcrum*:
  ``p = 2^-fulcrum`` (fulcrum in EV, 0 EV = 1.0), so "multiply" darkens where
  the output is below the fulcrum and brightens above it.
* ``lab``: CIE L*a*b* (D50) converted from the linear working RGB (Rec.2020,
  Bradford-adapted), scaled to ``L/100, a/128, b/128`` for blending.

Formulas (``A = clamp01(a)``, ``B = clamp01(b)``):

per channel, ``rgb_display`` and ``raw`` (results clamped to 0..1 except normal):
  normal ``b`` (unclamped) - bounded ``b`` (result clamped) - lighten ``max(a, b)`` -
  darken ``min(a, b)`` - multiply ``a*b`` - average ``(a+b)/2`` - add ``a+b`` -
  subtract ``max(a-b, 0)`` - difference ``|a-b|`` - divide ``a/max(b, 1e-6)`` -
  geometric_mean ``sqrt(max(a*b, 0))`` - harmonic_mean ``2ab/(max(a,5e-7)+max(b,5e-7))``.
  Contrast modes work on ``A``, ``B`` (and ``(1-m)*A`` on the left):
  screen ``1-(1-A)(1-B)`` - overlay ``A>.5 ? 1-2(1-A)(1-B) : 2AB`` -
  softlight ``B>.5 ? 1-(1-A)(1.5-B) : A(B+.5)`` - hardlight ``B>.5 ? 1-2(1-A)(1-B) : 2AB`` -
  vividlight ``B>.5 ? (B>=1 ? 1 : A/(2(1-B))) : (B<=0 ? 0 : 1-(1-A)/(2B))`` -
  linearlight ``A+2B-1`` - pinlight ``B>.5 ? max(A, 2B-1) : min(A, 2B)``.
``rgb_display`` colour modes (HSL of the clamped pixels; the mask mixes inside):
  lightness: H, S of ``a``, L mixed - chromaticity: S mixed - hue: H mixed along the
  shorter way round the circle - color: H and S mixed, L of ``a`` - coloradjust: H and
  S mixed, L of ``b``; results clamped. HSV (unclamped): hsv_value: V mixed, H and S
  of ``a``; hsv_color: the (S cos 2piH, S sin 2piH) vectors mixed, V of ``a``.
  rgb_r/rgb_g/rgb_b: that channel mixed, the others from ``a`` (unclamped).
``rgb_scene`` (unclamped, ``p`` from the fulcrum):
  normal ``b`` - multiply ``a*b*p`` - divide ``a/max(p*b, 1e-6)`` - add ``a+p*b`` -
  subtract ``max(a-p*b, 0)`` - difference, average, geometric_mean, harmonic_mean as
  above - lightness ``a*|b|/|a|`` (Euclidean norms, floored at 1e-6) - chromaticity
  ``b*|a|/|b|`` - rgb_r/g/b: ``(1-m)a_k + m*p*b_k`` on that channel only.
``lab`` (scaled L, a, b):
  normal: all three mixed (unclamped); bounded: mixed, then L in 0..1, a and b in -1..1.
  Tone modes (lighten .. pinlight and the arithmetic ones available in Lab): the
  per-channel formula on L (clamped 0..1); a and b mixed as "normal", clamped to -1..1.
  lab_lightness / lab_a / lab_b: only that channel mixed; lab_color: a and b mixed
  (all unclamped). lightness: L mixed; chromaticity: LCh chroma mixed; hue: LCh hue
  mixed (shorter way); color: chroma and hue mixed, L of ``a``; coloradjust: chroma
  and hue mixed, L of ``b`` (these clamped like bounded).
"""
from __future__ import annotations

SPACES = ("raw", "rgb_display", "rgb_scene", "lab")
#: "auto": raw for mosaics, rgb_display after the output profile, else rgb_scene
SPACE_CHOICES = ("auto",) + SPACES

#: darktable's blend mode codes (blend.h), for reference and XMP mapping
CODES = {
    "lighten": 0x02, "darken": 0x03, "multiply": 0x04, "average": 0x05, "add": 0x06,
    "subtract": 0x07, "screen": 0x09, "overlay": 0x0A, "softlight": 0x0B, "hardlight": 0x0C,
    "vividlight": 0x0D, "linearlight": 0x0E, "pinlight": 0x0F, "lightness": 0x10,
    "chromaticity": 0x11, "hue": 0x12, "color": 0x13, "coloradjust": 0x16, "difference": 0x17,
    "normal": 0x18, "bounded": 0x19, "lab_lightness": 0x1A, "lab_color": 0x1B, "hsv_value": 0x1C,
    "hsv_color": 0x1D, "lab_a": 0x1F, "lab_b": 0x20, "rgb_r": 0x21, "rgb_g": 0x22, "rgb_b": 0x23,
    "divide": 0x26, "geometric_mean": 0x28, "harmonic_mean": 0x29,
}
REVERSE = 0x80000000

ARITH = ("lighten", "darken", "multiply", "average", "add", "subtract", "difference", "divide",
         "geometric_mean", "harmonic_mean")
CONTRAST = ("screen", "overlay", "softlight", "hardlight", "vividlight", "linearlight", "pinlight")
PER_CHANNEL = ("normal", "bounded") + ARITH + CONTRAST

#: the modes of each blend space, in kernel order (the index is the kernel's runtime mode)
MODES_BY_SPACE: dict[str, tuple[str, ...]] = {
    "raw": PER_CHANNEL,
    "rgb_display": PER_CHANNEL + ("lightness", "chromaticity", "hue", "color", "coloradjust",
                                  "hsv_value", "hsv_color", "rgb_r", "rgb_g", "rgb_b"),
    "rgb_scene": ("normal", "multiply", "divide", "add", "subtract", "difference", "average",
                  "geometric_mean", "harmonic_mean", "lightness", "chromaticity", "rgb_r", "rgb_g", "rgb_b"),
    "lab": ("normal", "bounded", "lighten", "darken", "multiply", "average", "add", "subtract",
            "difference") + CONTRAST + ("lightness", "chromaticity", "hue", "color", "coloradjust",
                                        "lab_lightness", "lab_a", "lab_b", "lab_color"),
}

MODES = tuple(sorted({m for ms in MODES_BY_SPACE.values() for m in ms}, key=lambda m: CODES[m]))

#: parametric (blendif) channels of each space; "_in"/"_out" select the module's input or output
CHANNELS_BY_SPACE: dict[str, tuple[str, ...]] = {
    "raw": (),
    "rgb_display": ("gray", "R", "G", "B", "H", "S", "l"),
    "rgb_scene": ("gray", "R", "G", "B", "Jz", "Cz", "hz"),
    "lab": ("L", "a", "b", "C", "h"),
}
#: channels that need the polar/perceptual conversion (skipped when unused)
POLAR = {"H", "S", "l", "Jz", "Cz", "hz", "C", "h"}
ALL_CHANNELS = tuple(dict.fromkeys(c for cs in CHANNELS_BY_SPACE.values() for c in cs))
#: channels the boost factor (EV) applies to (scene-referred, unbounded)
BOOSTABLE = {"gray", "R", "G", "B", "Jz", "Cz"}

MASK_MODES = ("off", "uniform", "drawn", "parametric", "drawn+parametric", "raster")
#: darktable's mask_mode bits for each of our names
MASK_MODE_BITS = {"off": 0, "uniform": 1, "drawn": 1 | 2, "parametric": 1 | 4, "drawn+parametric": 1 | 2 | 4,
                  "raster": 1 | 8}
COMBINE = ("exclusive", "inclusive")
FEATHER_GUIDES = ("input_after_blur", "output_after_blur", "input_before_blur", "output_before_blur")


def modes_for(space: str) -> tuple[str, ...]:
    return MODES_BY_SPACE[space]


def space_names() -> dict[str, str]:
    return {"raw": "raw", "rgb_display": "RGB (display)", "rgb_scene": "RGB (scene)", "lab": "Lab"}
