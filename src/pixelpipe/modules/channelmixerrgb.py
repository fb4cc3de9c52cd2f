"""channelmixerrgb (color calibration): chromatic adaptation, channel mixer, colourfulness, brightness, grey.

Algorithm (darktable's color calibration, saturation formula v3), per pixel of
linear Rec.2020 (pixelpipe's working space, white D65):

1. negatives are clipped (``clip``); RGB -> CIE XYZ -> the adaptation space:
   CAT16 or Bradford cone space (colour-science's matrices), XYZ itself, or the
   working RGB for ``adaptation = "none"``;
2. chromatic adaptation: von Kries scaling in that space from the scene
   illuminant to the pipe white (D65 here; darktable's pipe white is D50). The
   illuminant "pipe" makes it an identity, the module then only mixes;
3. the R/G/B mixing matrix (rows ``red``, ``green``, ``blue``, each optionally
   normalised to sum 1) in the same space, then to XYZ;
4. gamut compression in CIE 1976 u'v': the chromaticity moves towards the
   white by ``(Y |white - u'v'|^2)^(1/gamut)`` of its distance, never past it
   (``gamut = 0``: off); x, y are kept valid (y > 0, x + y < 1);
5. back to the adaptation space: colourfulness and brightness. With ``n`` the
   Euclidean norm / sqrt(3), the ratios ``r = LMS / n`` (1, 1, 1 for a grey)
   move towards 1 by ``k = -(r . saturation) / 3`` (``r + (1 - r) k``; positive
   saturation moves them away: more colourful), the norm is restored, and the
   pixel is scaled by ``max(1 + (LMS . lightness) / mean(LMS), 0)``;
6. grey: any non-zero ``grey`` weight gives R = G = B = max(LMS . grey, 0)
   (weights optionally normalised to sum 1); otherwise back to RGB.

``illuminant = "as_shot"`` is darktable's "as shot in camera": the scene
illuminant is the colour a white takes in the working space when the raw was
white balanced with the coefficients the temperature module applied instead of
the as-shot ones, i.e. ``colorin_matrix @ (applied / as_shot)``. With the
temperature module at the camera reference (D65) this undoes the reference
and adapts from the as-shot illuminant, so greys come out as neutral as with
as-shot white balance while other colours get a proper CAT; with as-shot
coefficients already applied it is an identity (no double correction). The
applied coefficients are read from the input buffer description
(``wb_coeffs``) when the pipe provides it, else the camera reference is
assumed (darktable's scene-referred default). Unlike darktable, the default
keeps "as_shot" rather than snapping the illuminant to the nearest daylight /
Planckian temperature (a GUI convenience), so greys stay exactly neutral.

Parameter ranges and units are in :class:`ChannelmixerrgbParams`.
Region of interest: a point operation.
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..errors import ParamsError
from ..io.icc import colour_module
from . import colorspaces as cs
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

ILLUMINANTS = ("as_shot", "pipe", "daylight", "blackbody", "A", "D50", "D65", "E", "custom")
ADAPTATIONS = ("cat16", "bradford", "xyz", "none")
#: colour-science names of the adaptation spaces (cone response matrices)
_CAT_NAMES = {"cat16": "CAT16", "bradford": "Bradford", "xyz": "XYZ Scaling"}
_NORM_MIN = 1e-6
#: finite stand-in for +-Inf inputs (scene-linear values never come close)
_BIG = 1e6


@dataclass
class ChannelmixerrgbParams(Params):
    """Color calibration.

    illuminant: scene illuminant: "as_shot" (from the raw's as-shot white balance),
        "pipe" (no adaptation, mixing only), "daylight" / "blackbody" (at
        ``temperature``), "A", "D50", "D65", "E" (CIE standard illuminants) or
        "custom" (chromaticity ``x``, ``y``).
    temperature: K, 1667..25000 (daylight below 4000 K falls back to blackbody).
    x, y: CIE 1931 chromaticity of a custom illuminant, 0.01..0.9, x + y < 1.
    adaptation: "cat16" (CAT16, darktable's default), "bradford" (linear
        Bradford), "xyz" (XYZ scaling) or "none" (mix in the working RGB, no CAT).
    gamut: gamut compression strength, 0..12 (0: off).
    clip: clip negative RGB/LMS/XYZ values.
    red, green, blue: output channel = row . input (R, G, B), each -2..2.
    normalize_red/green/blue: scale that row to sum 1.
    saturation: colourfulness per input channel, -2..2 (0: unchanged).
    normalize_saturation: remove the mean of the three (keeps overall colourfulness).
    lightness: brightness per input channel, -2..2 (0: unchanged).
    normalize_lightness: remove the mean of the three.
    grey: monochrome weights, -2..2; all zero: colour output.
    normalize_grey: scale the weights to sum 1.
    """

    illuminant: str = param("as_shot", choices=ILLUMINANTS)
    temperature: float = param(6504.0, min=1667.0, max=25000.0, unit="K")
    x: float = param(0.3127, min=0.01, max=0.9)
    y: float = param(0.3290, min=0.01, max=0.9)
    adaptation: str = param("cat16", choices=ADAPTATIONS)
    gamut: float = param(1.0, min=0.0, max=12.0)
    clip: bool = param(True)
    red: list = param([1.0, 0.0, 0.0], min=-2.0, max=2.0)
    green: list = param([0.0, 1.0, 0.0], min=-2.0, max=2.0)
    blue: list = param([0.0, 0.0, 1.0], min=-2.0, max=2.0)
    normalize_red: bool = param(False)
    normalize_green: bool = param(False)
    normalize_blue: bool = param(False)
    saturation: list = param([0.0, 0.0, 0.0], min=-2.0, max=2.0)
    normalize_saturation: bool = param(False)
    lightness: list = param([0.0, 0.0, 0.0], min=-2.0, max=2.0)
    normalize_lightness: bool = param(False)
    grey: list = param([0.0, 0.0, 0.0], min=-2.0, max=2.0)
    normalize_grey: bool = param(False)

    def validate(self, op: str) -> "ChannelmixerrgbParams":
        super().validate(op)
        if self.x + self.y >= 1.0:
            raise ParamsError(f"module {op}: parameters 'x' + 'y' = {self.x + self.y} must be below 1 "
                              "(not a chromaticity)")
        for name in ("red", "green", "blue", "saturation", "lightness", "grey"):
            if len(getattr(self, name)) != 3:
                raise ParamsError(f"module {op}: parameter {name!r} must be a list of 3 numbers")
        return self


# --------------------------------------------------------------------------- colour facts

@functools.lru_cache(maxsize=None)
def working_to_xyz() -> np.ndarray:
    return cs.rgb_to_xyz(cs.WORKING)


def pipe_white_xyz() -> np.ndarray:
    """XYZ of working RGB (1, 1, 1): the pipe white (D65, Y = 1)."""
    return working_to_xyz().sum(axis=1)


def lms_matrix(adaptation: str) -> np.ndarray:
    """XYZ -> the adaptation's cone space (colour-science's CAT matrices)."""
    return np.asarray(colour_module().CHROMATIC_ADAPTATION_TRANSFORMS[_CAT_NAMES[adaptation]], dtype=np.float64)


def xy_to_xyz(xy) -> np.ndarray:
    xv, yv = float(xy[0]), float(xy[1])
    return np.array([xv / yv, 1.0, (1.0 - xv - yv) / yv])


def xyz_to_xy(xyz) -> np.ndarray:
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz[:2] / xyz.sum()


def standard_xy(name: str) -> np.ndarray:
    ccs = colour_module().CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]
    return np.asarray(ccs[name], dtype=np.float64)


def temperature_xy(kind: str, kelvin: float) -> np.ndarray:
    """Chromaticity of a daylight (CIE D series, >= 4000 K) or Planckian (Kang 2002) illuminant."""
    colour = colour_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "daylight" and kelvin >= 4000.0:
            return np.asarray(colour.temperature.CCT_to_xy_CIE_D(kelvin), dtype=np.float64)
        return np.asarray(colour.temperature.CCT_to_xy_Kang2002(kelvin), dtype=np.float64)


def as_shot_xy(image, applied=None) -> np.ndarray | None:
    """The scene illuminant's chromaticity from the raw's as-shot white balance.

    ``applied``: the R, G, B(, G2) multipliers the temperature module used
    (None: darktable's camera reference, :func:`colorin.reference_coefficients`).
    The result is the chromaticity, in the working space's XYZ, of a white lit
    by the as-shot illuminant after those multipliers and colorin's matrix.
    None where the image has no as-shot white balance or no 3x3 camera matrix.
    """
    from .colorin import camera_matrix, reference_coefficients

    wb = getattr(image, "wb_as_shot", None)
    m = camera_matrix(image)
    ref = reference_coefficients(image)
    if wb is None or m is None or ref is None:
        return None
    wb = np.asarray(wb, dtype=np.float64)[:3]
    app = ref[:3] if applied is None else np.asarray(applied, dtype=np.float64)[:3]
    if not (np.isfinite(wb).all() and (wb > 0).all() and np.isfinite(app).all() and (app > 0).all()):
        return None
    xyz = working_to_xyz() @ (m @ (app / wb))
    if not np.isfinite(xyz).all() or xyz[1] <= 0 or xyz.sum() <= 0:
        return None
    return xyz_to_xy(xyz)


def illuminant_xy(p: ChannelmixerrgbParams, image, applied=None) -> tuple[np.ndarray, str | None]:
    """(illuminant chromaticity, notice) for the parameters."""
    pipe = xyz_to_xy(pipe_white_xyz())
    if p.illuminant == "pipe":
        return pipe, None
    if p.illuminant == "as_shot":
        xy = as_shot_xy(image, applied)
        if xy is None:
            return pipe, ("color calibration: the file has no as-shot white balance or no camera matrix; "
                          "no chromatic adaptation is done")
        return xy, None
    if p.illuminant in ("daylight", "blackbody"):
        return temperature_xy(p.illuminant, p.temperature), None
    if p.illuminant == "custom":
        return np.array([p.x, p.y]), None
    return standard_xy(p.illuminant), None


def _rows(p: ChannelmixerrgbParams) -> np.ndarray:
    rows = []
    for name in ("red", "green", "blue"):
        r = np.asarray(getattr(p, name), dtype=np.float64)
        s = r.sum()
        if getattr(p, f"normalize_{name}") and s != 0.0:
            r = r / s
        rows.append(r)
    return np.stack(rows)


def mixer_data(p: ChannelmixerrgbParams, illum_xy) -> dict:
    """The matrices and vectors the pixel code needs (see the module docstring).

    mats[0]: RGB -> XYZ through adaptation and mixing; mats[1]: XYZ -> mixing
    space; mats[2]: mixing space -> XYZ; mats[3]: XYZ -> RGB.
    vecs: saturation, lightness, grey coefficients as the pixel code uses them.
    """
    r2x = working_to_xyz()
    x2r = np.linalg.inv(r2x)
    mix = _rows(p)
    if p.adaptation == "none":
        mats = [r2x @ mix, x2r, r2x, x2r]
    else:
        lms = lms_matrix(p.adaptation)
        src = lms @ xy_to_xyz(illum_xy)
        dst = lms @ pipe_white_xyz()
        cat = np.diag(dst / src)
        lms_inv = np.linalg.inv(lms)
        mats = [lms_inv @ mix @ cat @ lms @ r2x, lms, lms_inv, x2r]
    sat = np.asarray(p.saturation, dtype=np.float64)
    light = np.asarray(p.lightness, dtype=np.float64)
    grey = np.asarray(p.grey, dtype=np.float64)
    sat_d = -sat + (sat.mean() if p.normalize_saturation else 0.0)
    light_d = light - (light.mean() if p.normalize_lightness else 0.0)
    gsum = grey.sum()
    grey_d = grey / gsum if (p.normalize_grey and gsum != 0.0) else grey
    white = pipe_white_xyz()
    wxy = xyz_to_xy(white)
    den = -2 * wxy[0] + 12 * wxy[1] + 3
    return {
        "mats": np.stack(mats),
        "vecs": np.stack([sat_d, light_d, grey_d]),
        "gamut_exp": 0.0 if p.gamut == 0.0 else 1.0 / p.gamut,
        "clip": 1.0 if p.clip else 0.0,
        "grey_on": 1.0 if np.any(grey != 0.0) else 0.0,
        "white_u": 4 * wxy[0] / den, "white_v": 9 * wxy[1] / den,
        "white_x": wxy[0], "white_y": wxy[1],
    }


# --------------------------------------------------------------------------- Halide helpers

def finite(v, big: float = _BIG):
    """NaN -> 0, +-Inf -> +-big: what enters or leaves the colour modules is always finite.

    Tested on the float's bits and marked strict: Halide compiles float maths
    with LLVM's fast-math flags, under which a NaN/Inf test may be folded away.
    """
    bits = hl.reinterpret(hl.UInt(32), v)
    special = (bits & 0x7F800000) == 0x7F800000
    nan = special & ((bits & 0x007FFFFF) != 0)
    negative = (bits >> 31) == 1
    return hl.strict_float(hl.select(special, hl.select(nan, hl.f32(0.0), hl.select(negative, hl.f32(-big),
                                                                                  hl.f32(big))), v))


@functools.lru_cache(maxsize=None)
def helper_tag(*module_names: str) -> str:
    """A hash of the module files whose Halide helpers a kernel uses.

    The kernel cache keys a module's kernel on its own file only; modules using
    the helpers here return this as (part of) their ``variant`` so that a
    change to a helper rebuilds their kernels too.
    """
    import hashlib
    import importlib
    from pathlib import Path

    h = hashlib.sha256()
    for name in (__name__,) + module_names:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return "h" + h.hexdigest()[:10]


def planar(*exprs) -> hl.Expr:
    """One Expr per channel -> an Expr over ``c`` (0, 1, 2)."""
    e0, e1, e2 = exprs
    return hl.select(c == 0, e0, c == 1, e1, e2)


def matvec(m, k, v):
    """Row-major numpy matrix ``k`` of an ImageParam stack (Halide m[col, row, k]) times v."""
    return [m[0, r, k] * v[0] + m[1, r, k] * v[1] + m[2, r, k] * v[2] for r in range(3)]


def staged_schedule(out: hl.Func, stages, piece) -> None:
    """CPU schedule of a per-pixel algorithm split into stages (Funcs over x, y, c).

    Inlined, chains of non-linear steps that each read all three channels of
    the previous one grow the expression exponentially (and Halide's compile
    time and memory with it), so each stage is computed per row of the
    output, in strips of rows run in parallel. Modules using this are not
    point-wise for the export pipe's fusion (their stages need this schedule);
    on GPUs the autoscheduler places the stages.
    """
    from ..engine.halide_ops import GUARD, VEC, yi, yo

    out.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    out.split(y, yo, yi, 8, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    for f in stages:
        f.compute_at(out, yi)
        if f.dimensions() == 3:
            f.reorder(c, x, y).unroll(c)
        f.vectorize(x, VEC, GUARD)


def tuple_stage(name: str, exprs, stages: list) -> list:
    """A per-pixel stage holding three values as one Tuple Func over (x, y): computed
    together, so their common subexpressions are evaluated once. Returns the three values."""
    f = hl.Func(name)
    f[x, y] = hl.Tuple(list(exprs))
    stages.append(f)
    return [f[x, y][k] for k in range(3)]


class SmallImageSafe:
    """Mixin for HalideModules using the helpers of this file: the kernel variant carries
    :func:`helper_tag` so that the kernel cache notices changes to the helpers."""

    helper_modules: ClassVar[tuple[str, ...]] = ()

    def variant(self, piece) -> str:
        base = super().variant(piece)
        tag = helper_tag(*self.helper_modules)
        return f"{base}_{tag}" if base else tag


class Channelmixerrgb(SmallImageSafe, HalideModule):
    op = "channelmixerrgb"
    name = "color calibration"
    Params = ChannelmixerrgbParams
    flags = Flags.INCLUDE_IN_STYLES | Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING
    summary = "chromatic adaptation (CAT16/Bradford), channel mixer, colourfulness, grey"
    pointwise = False  # point-wise maths, but staged (see staged_schedule): not fused on the CPU
    staged = True
    inputs = (HInput("mats", "buf_f32", 3), HInput("vecs", "buf_f32", 2)) + tuple(
        HInput(n) for n in ("gamut_exp", "clip", "grey_on", "white_u", "white_v", "white_x", "white_y"))

    # -- algorithm (see the module docstring for the steps), in stages (see staged_schedule)
    def algorithm(self, rgb, p, piece):
        m, vec = p["mats"], p["vecs"]
        lo = hl.select(p["clip"] > 0.5, hl.f32(0.0), hl.f32(-3.0e38))

        def cl(v):
            return [hl.max(e, lo) for e in v]

        def dot(v, row):
            return v[0] * vec[0, row] + v[1] * vec[1, row] + v[2] * vec[2, row]

        src = hl.Func("calibration_in")
        src[x, y, c] = hl.max(finite(rgb[x, y, c]), lo)
        xyz = cl(matvec(m, 0, [src[x, y, k] for k in range(3)]))
        X, Y, Z = xyz
        # gamut compression in u'v' towards the white
        s = X + Y + Z
        xc = hl.select(s > 0, X / s, p["white_x"])
        yc = hl.select(s > 0, Y / s, p["white_y"])
        den = -2.0 * xc + 12.0 * yc + 3.0
        u, v = 4.0 * xc / den, 9.0 * yc / den
        du, dv = p["white_u"] - u, p["white_v"] - v
        delta = hl.max(Y * (du * du + dv * dv), 0.0)
        corr = hl.select(p["gamut_exp"] == 0.0, 0.0, hl.pow(delta, p["gamut_exp"]))
        u2 = u + corr * du
        v2 = v + corr * dv
        u2 = hl.select(u > p["white_u"], hl.max(u2, p["white_u"]), hl.min(u2, p["white_u"]))
        v2 = hl.select(v > p["white_v"], hl.max(v2, p["white_v"]), hl.min(v2, p["white_v"]))
        den2 = 6.0 * u2 - 16.0 * v2 + 12.0
        x2 = hl.max(9.0 * u2 / den2, lo)
        y2 = hl.max(hl.max(4.0 * v2 / den2, lo), hl.f32(_NORM_MIN))
        sc = x2 + y2
        x2, y2 = hl.select(sc >= 1.0, x2 / sc, x2), hl.select(sc >= 1.0, y2 / sc, y2)
        stages = [src]
        mapped = tuple_stage("calibration_gamut", (x2 * Y / y2, Y, (1.0 - x2 - y2) * Y / y2), stages)
        lms = cl(matvec(m, 1, mapped))
        # colourfulness and brightness (darktable's luma_chroma, v3)
        inv_sqrt3 = 1.0 / math.sqrt(3.0)
        en = hl.sqrt(hl.max(lms[0] * lms[0] + lms[1] * lms[1] + lms[2] * lms[2], hl.f32(_NORM_MIN)))
        avg = hl.max((lms[0] + lms[1] + lms[2]) / 3.0, hl.f32(_NORM_MIN))
        mix = dot(lms, 1)
        norm = en * inv_sqrt3
        ratios = [e / norm for e in lms]
        k = dot(ratios, 0) / 3.0
        ratios = [hl.max(r + (1.0 - r) * k, hl.min(r, 0.0)) for r in ratios]
        en2 = hl.sqrt(hl.max(ratios[0] * ratios[0] + ratios[1] * ratios[1] + ratios[2] * ratios[2],
                             hl.f32(_NORM_MIN)))
        norm = norm / (en2 * inv_sqrt3) * hl.max(1.0 + mix / avg, 0.0)
        g = tuple_stage("calibration_graded", [hl.max(r * norm, lo) for r in ratios], stages)
        grey = hl.max(dot(g, 2), 0.0)
        back = cl(matvec(m, 3, cl(matvec(m, 2, g))))
        calibrated = hl.Func("calibrated")
        calibrated[x, y, c] = finite(hl.select(p["grey_on"] > 0.5, grey, planar(*back)))
        self._stages = stages
        return calibrated

    def schedule(self, out, piece):
        staged_schedule(out, self.built_stages(), piece)

    # -- parameters
    def default_params(self, image):
        p = ChannelmixerrgbParams()
        cfa = getattr(image, "cfa", None)
        if cfa is not None and cfa.kind == "mono":
            p.illuminant, p.adaptation = "pipe", "none"
        elif not image.is_raw or as_shot_xy(image) is None:
            p.illuminant = "pipe"
        return p

    def commit(self, piece):
        applied = getattr(piece.dsc_in, "wb_coeffs", None) if piece.dsc_in is not None else None
        xy, notice = illuminant_xy(piece.params, piece.image, applied)
        if notice:
            piece.notices.append(notice)
        piece.data["illuminant_xy"] = xy
        piece.data.update(mixer_data(piece.params, xy))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        d = piece.data
        return {k: d[k] for k in ("mats", "vecs", "gamut_exp", "clip", "grey_on", "white_u", "white_v",
                                  "white_x", "white_y")}
