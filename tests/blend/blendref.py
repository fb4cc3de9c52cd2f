"""NumPy references of the blend modes and colour conversions, written from the formulas
documented in pixelpipe/blend/modes.py (darktable manual, "blend modes"), with colour-science
for HSL/HSV/Lab/JzAzBz so the kernels' conversions are checked independently."""
from __future__ import annotations

import colour
import numpy as np

LUMA = np.array([0.2627002120112671, 0.6779980715188708, 0.05930171646986196])
REC2020 = colour.RGB_COLOURSPACES["ITU-R BT.2020"]
D50 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D50"]
D65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]


def c01(v):
    return np.clip(v, 0.0, 1.0)


def hw3(a):
    return np.moveaxis(a, 0, -1)


def planar(a):
    return np.moveaxis(a, -1, 0)


def f_arith(name, a, b, p=1.0):
    pb = p * b
    return {
        "lighten": lambda: np.maximum(a, b), "darken": lambda: np.minimum(a, b), "multiply": lambda: a * pb,
        "average": lambda: (a + b) / 2, "add": lambda: a + pb, "subtract": lambda: np.maximum(a - pb, 0),
        "difference": lambda: np.abs(a - b), "divide": lambda: a / np.maximum(pb, 1e-6),
        "geometric_mean": lambda: np.sqrt(np.maximum(a * b, 0)),
        "harmonic_mean": lambda: 2 * a * b / (np.maximum(a, 5e-7) + np.maximum(b, 5e-7)),
    }[name]()


def f_contrast(name, A, B):
    return {
        "screen": lambda: 1 - (1 - A) * (1 - B),
        "overlay": lambda: np.where(A > 0.5, 1 - 2 * (1 - A) * (1 - B), 2 * A * B),
        "softlight": lambda: np.where(B > 0.5, 1 - (1 - A) * (1.5 - B), A * (B + 0.5)),
        "hardlight": lambda: np.where(B > 0.5, 1 - 2 * (1 - A) * (1 - B), 2 * A * B),
        "vividlight": lambda: np.where(B > 0.5, np.where(B >= 1, 1.0, A / (2 * np.maximum(1 - B, 1e-6))),
                                       np.where(B <= 0, 0.0, 1 - (1 - A) / (2 * np.maximum(B, 1e-6)))),
        "linearlight": lambda: A + 2 * B - 1,
        "pinlight": lambda: np.where(B > 0.5, np.maximum(A, 2 * B - 1), np.minimum(A, 2 * B)),
    }[name]()


ARITH = ("lighten", "darken", "multiply", "average", "add", "subtract", "difference", "divide",
         "geometric_mean", "harmonic_mean")
CONTRAST = ("screen", "overlay", "softlight", "hardlight", "vividlight", "linearlight", "pinlight")


def per_channel(name, a, b, m):
    if name == "normal":
        return a * (1 - m) + b * m
    if name == "bounded":
        return c01(a * (1 - m) + b * m)
    if name in ARITH:
        return c01(a * (1 - m) + f_arith(name, a, b) * m)
    A, B = c01(a), c01(b)
    return c01(A * (1 - m) + f_contrast(name, A, B) * m)


def mix_hue(ha, hb, m):
    d = hb - ha
    d = d - np.floor(d + 0.5)
    return np.mod(ha + m * d, 1.0)


def hue_ambiguous(ha, hb, tol=0.01):
    d = np.mod(hb - ha, 1.0)
    return np.abs(d - 0.5) < tol


def display(name, a, b, m):
    if name in ("normal", "bounded") + ARITH + CONTRAST:
        return per_channel(name, a, b, m)
    if name.startswith("rgb_"):
        k = "rgb".index(name[-1])
        out = a.copy()
        out[k] = a[k] * (1 - m) + b[k] * m
        return out
    if name.startswith("hsv_"):
        A, B = colour.RGB_to_HSV(hw3(a)), colour.RGB_to_HSV(hw3(b))
        mm = m
        if name == "hsv_value":
            hsv = np.stack([A[..., 0], A[..., 1], A[..., 2] * (1 - mm) + B[..., 2] * mm], -1)
        else:
            t = 2 * np.pi
            xa, ya = A[..., 1] * np.cos(t * A[..., 0]), A[..., 1] * np.sin(t * A[..., 0])
            xb, yb = B[..., 1] * np.cos(t * B[..., 0]), B[..., 1] * np.sin(t * B[..., 0])
            xc, yc = xa * (1 - mm) + xb * mm, ya * (1 - mm) + yb * mm
            hsv = np.stack([np.mod(np.arctan2(yc, xc) / t, 1), np.hypot(xc, yc), A[..., 2]], -1)
        return planar(colour.HSV_to_RGB(hsv))
    A, B = colour.RGB_to_HSL(hw3(c01(a))), colour.RGB_to_HSL(hw3(c01(b)))
    ha, sa, la = A[..., 0], A[..., 1], A[..., 2]
    hb, sb, lb = B[..., 0], B[..., 1], B[..., 2]
    mixs = sa * (1 - m) + sb * m
    hsl = {
        "lightness": (ha, sa, la * (1 - m) + lb * m),
        "chromaticity": (ha, mixs, la),
        "hue": (mix_hue(ha, hb, m), sa, la),
        "color": (mix_hue(ha, hb, m), mixs, la),
        "coloradjust": (mix_hue(ha, hb, m), mixs, lb),
    }[name]
    return c01(planar(colour.HSL_to_RGB(np.stack(hsl, -1))))


def scene(name, a, b, m, p):
    if name == "normal":
        return a * (1 - m) + b * m
    if name in ("lightness", "chromaticity"):
        na = np.maximum(np.sqrt((a * a).sum(0)), 1e-6)
        nb = np.maximum(np.sqrt((b * b).sum(0)), 1e-6)
        f = a * nb / na if name == "lightness" else b * na / nb
        return a * (1 - m) + f * m
    if name.startswith("rgb_"):
        k = "rgb".index(name[-1])
        out = a.copy()
        out[k] = a[k] * (1 - m) + p * b[k] * m
        return out
    return a * (1 - m) + f_arith(name, a, b, p) * m


def to_lab(rgb):
    """Working Rec.2020 -> Lab (D50, Bradford), scaled L/100, a/128, b/128."""
    xyz = colour.RGB_to_XYZ(hw3(rgb), REC2020, illuminant=D50, chromatic_adaptation_transform="Bradford")
    return planar(colour.XYZ_to_Lab(xyz, D50) / [100.0, 128.0, 128.0])


def from_lab(lab):
    xyz = colour.Lab_to_XYZ(hw3(lab) * [100.0, 128.0, 128.0], D50)
    return planar(colour.XYZ_to_RGB(xyz, REC2020, illuminant=D50, chromatic_adaptation_transform="Bradford"))


def lab_polar(L):
    C = np.hypot(L[1], L[2])
    h = np.mod(np.arctan2(L[2], L[1]) / (2 * np.pi), 1)
    return C, h


def lab(name, a, b, m):
    La, Lb = to_lab(a), to_lab(b)

    def mix(u, v):
        return u * (1 - m) + v * m

    def bound(L, A, B):
        return np.stack([c01(L), np.clip(A, -1, 1), np.clip(B, -1, 1)])

    if name == "normal":
        res = mix(La, Lb)
    elif name == "bounded":
        r = mix(La, Lb)
        res = bound(*r)
    elif name in ARITH or name in CONTRAST:
        A, B = c01(La[0]), c01(Lb[0])
        f = f_arith(name, A, B) if name in ARITH else f_contrast(name, A, B)
        res = bound(mix(A, f), mix(La[1], Lb[1]), mix(La[2], Lb[2]))
    elif name == "lab_lightness":
        res = np.stack([mix(La[0], Lb[0]), La[1], La[2]])
    elif name == "lab_a":
        res = np.stack([La[0], mix(La[1], Lb[1]), La[2]])
    elif name == "lab_b":
        res = np.stack([La[0], La[1], mix(La[2], Lb[2])])
    elif name == "lab_color":
        res = np.stack([La[0], mix(La[1], Lb[1]), mix(La[2], Lb[2])])
    elif name == "lightness":
        res = bound(mix(La[0], Lb[0]), La[1], La[2])
    else:
        Ca, ha = lab_polar(La)
        Cb, hb = lab_polar(Lb)
        C, h, L = {
            "chromaticity": (mix(Ca, Cb), ha, La[0]),
            "hue": (Ca, mix_hue(ha, hb, m), La[0]),
            "color": (mix(Ca, Cb), mix_hue(ha, hb, m), La[0]),
            "coloradjust": (mix(Ca, Cb), mix_hue(ha, hb, m), Lb[0]),
        }[name]
        res = bound(L, C * np.cos(2 * np.pi * h), C * np.sin(2 * np.pi * h))
    return from_lab(res)


def hsl_hue(rgb):
    return colour.RGB_to_HSL(hw3(c01(rgb)))[..., 0]


def jzczhz(rgb):
    xyz = colour.RGB_to_XYZ(hw3(rgb), REC2020, illuminant=D65)
    jab = colour.XYZ_to_Jzazbz(xyz * 10000.0)
    J, az, bz = jab[..., 0], jab[..., 1], jab[..., 2]
    return J, np.hypot(az, bz), np.mod(np.arctan2(bz, az) / (2 * np.pi), 1)
