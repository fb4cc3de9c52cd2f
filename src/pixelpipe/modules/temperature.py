"""temperature (white balance): multiply each CFA colour by its coefficient.

Algorithm: ``out = in * coeff[cfa(x, y)]`` (a planar non-CFA raw: channel c by
the coefficient of its colour), coefficients normalised to green = 1.

Where the coefficients come from (``preset``; names are stored in sidecars and
never change):

* ``as-shot``: the file's (DNG AsShotNeutral, maker notes). A file without them
  (e.g. the Canon EOS D30) gets the camera-reference (D65) coefficients of its
  colour matrix, with a notice. darktable 4.2 shows 2.13/1/1.006 there, from its
  own fallback; the D65 white of the matrix is the physically defined choice
  (2.10/1/1.06 for the D30, the same as LibRaw's daylight multipliers).
* ``camera-reference``: the coefficients that make D65 white neutral through the
  camera matrix (darktable's "camera reference", DT_IOP_TEMP_D65): what color
  calibration expects, since its chromatic adaptation then starts from D65.
  ``daylight`` is the older name of the same coefficients.
* ``temperature``: a correlated colour temperature (K) and tint, converted
  through the camera matrix: the illuminant's chromaticity (CIE daylight locus
  from 4000 K up, Planckian locus below, as darktable; computed with
  colour-science) gives XYZ = (x/y, 1/tint, (1-x-y)/y), the camera sees
  ``xyz_to_cam @ XYZ`` and the coefficients are its reciprocal, normalised to
  green. tint > 1 adds green, < 1 magenta (darktable's convention).
  :func:`temperature_tint` is the inverse (coefficients -> K, tint).
* ``user``: the four coefficients of the parameters.

Without a colour matrix (e.g. Kodak DC50) camera-reference and temperature use
the sRGB primaries as the camera's (the same assumption colorin makes), and a
file with neither WB nor matrix gets 1/1/1; both with a notice.

Four-colour CFAs (CYGM) have four coefficients in the file's colour order
(``cfa.colors``, e.g. G, M, C, Y), normalised to its green; the user
coefficients red/green/blue/g2 then mean those four colours in that order.
Region of interest: a point operation.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, pattern_lut, x, y
from ..engine.kernels import f32
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param
from .rawprepare import at_least_2

PRESETS = ("as-shot", "camera-reference", "daylight", "temperature", "user")
#: darktable's temperature range (K) and tint range
T_MIN, T_MAX = 1901.0, 25000.0
TINT_MIN, TINT_MAX = 0.135, 2.326
#: below this the Planckian locus is used, from it on the CIE daylight locus (darktable's rule)
DAYLIGHT_FROM = 4000.0


@dataclass
class TemperatureParams(Params):
    """White balance.

    preset: "as-shot" (the file's coefficients), "camera-reference" (D65 white of the
            camera matrix, for color calibration; "daylight" is its older name),
            "temperature" (the temperature/tint below) or "user" (the coefficients below).
    temperature: correlated colour temperature of the illuminant, K, 1901..25000.
    tint: green/magenta balance, 0.135..2.326 (1 = on the locus, > 1 greener).
    red, green, blue, g2: user coefficients (multipliers), 0..8; for four-colour CFAs the
            file's four colours in its order (e.g. G, M, C, Y).
    """

    VERSION = 2

    preset: str = param("as-shot", choices=PRESETS)
    temperature: float = param(6504.0, min=T_MIN, max=T_MAX, unit="K")
    tint: float = param(1.0, min=TINT_MIN, max=TINT_MAX)
    red: float = param(1.0, min=0.0, max=8.0)
    green: float = param(1.0, min=0.0, max=8.0)
    blue: float = param(1.0, min=0.0, max=8.0)
    g2: float = param(1.0, min=0.0, max=8.0)

    @classmethod
    def migrate(cls, version: int, d: dict) -> dict:
        return d  # version 1 had no temperature/tint: their defaults apply


# --------------------------------------------------------------------------- colour facts

def _xyz_to_cam(image) -> tuple[np.ndarray, bool]:
    """(the camera's XYZ -> camera matrix, whether it is the file's/LibRaw's) - sRGB if none.

    A DNG matrix calibrated under another illuminant is adapted to D65 as colorin
    does (:func:`colorin.d65_xyz_to_cam`, darktable's rule), so the camera reference
    here is D65 white through colorin's matrix.
    """
    m = None
    if image.xyz_to_cam is not None or image.cam_to_xyz is not None:
        from .colorin import d65_xyz_to_cam

        m = d65_xyz_to_cam(image)
    if m is not None:
        m = np.asarray(m, dtype=np.float64)
        if m.ndim == 2 and m.shape[1] == 3 and m.shape[0] in (3, 4) and np.isfinite(m).all():
            return m, True
    from .colorspaces import rgb_to_xyz

    return np.linalg.inv(rgb_to_xyz("sRGB")), False


def _green_index(colors: str, n: int) -> int:
    return colors.index("G") if "G" in colors[:n] else 1


def _normalised(cam: np.ndarray, image) -> np.ndarray:
    """Four multipliers (file colour order) from the camera's response to the white, green = 1."""
    cam = np.asarray(cam, dtype=np.float64)
    colors = image.cfa.colors if image.cfa is not None else "RGBG"
    coeff = np.ones(4)
    n = min(len(cam), 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        coeff[:n] = 1.0 / cam[:n]
    if n == 3:
        coeff[3] = coeff[1]  # the second green of an RGBG Bayer
    g = coeff[_green_index(colors, n)]
    if not np.isfinite(coeff).all() or (coeff[:n] <= 0).any() or not np.isfinite(g) or g <= 0:
        return np.ones(4)
    return coeff / g


def xy_of_temperature(temperature: float) -> np.ndarray:
    """Chromaticity (x, y) of the illuminant at ``temperature`` K (daylight from 4000 K, else Planckian)."""
    t = float(np.clip(temperature, T_MIN, T_MAX))
    return _xy_cached(round(t, 6))


@functools.lru_cache(maxsize=4096)
def _xy_cached(t: float) -> np.ndarray:
    from ..io.icc import colour_module

    colour = colour_module()
    if t >= DAYLIGHT_FROM:
        return np.asarray(colour.temperature.CCT_to_xy_CIE_D(t), dtype=np.float64)
    uv = colour.temperature.CCT_to_uv_Planck1900(t)
    return np.asarray(colour.UCS_uv_to_xy(uv), dtype=np.float64)


def illuminant_xyz(temperature: float, tint: float) -> np.ndarray:
    """XYZ of the illuminant (Y = 1 / tint)."""
    xx, yy = xy_of_temperature(temperature)
    return np.array([xx / yy, 1.0 / tint, (1.0 - xx - yy) / yy])


def coefficients_for_temperature(image, temperature: float, tint: float) -> np.ndarray:
    """The four multipliers that make an illuminant of ``temperature`` K and ``tint`` neutral."""
    m, _ = _xyz_to_cam(image)
    return _normalised(m @ illuminant_xyz(temperature, tint), image)


def camera_reference(image) -> np.ndarray:
    """The four multipliers that make D65 white neutral through the camera matrix (green = 1)."""
    from .colorspaces import daylight_coefficients

    m, _ = _xyz_to_cam(image)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _normalised(1.0 / daylight_coefficients(m), image)


def temperature_tint(image, coeffs) -> tuple[float, float]:
    """Inverse of :func:`coefficients_for_temperature`: (K, tint) whose coefficients are ``coeffs``.

    The camera's white ``1 / coeffs`` goes to XYZ through the (pseudo-)inverse
    matrix; its Z/X ratio fixes the temperature (tint only scales Y), found by
    bisection on the daylight locus first, then the Planckian one (each is
    monotonic); the tint is then Y of the locus point over the measured Y, both
    scaled to the same X. Outside the loci the temperature is clamped to
    1901..25000 K and the round trip is then not exact.
    """
    m, _ = _xyz_to_cam(image)
    c = np.asarray(coeffs, dtype=np.float64)[: m.shape[0]]
    cam_white = 1.0 / c
    xyz = np.linalg.pinv(m) @ cam_white
    if xyz[0] <= 0 or not np.isfinite(xyz).all():
        return 6504.0, 1.0
    target = xyz[2] / xyz[0]

    def ratio(t):
        xx, yy = xy_of_temperature(t)
        return (1.0 - xx - yy) / xx  # Z / X, grows with temperature

    def solve(lo, hi):
        if not (ratio(lo) <= target <= ratio(hi)):
            return None
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if ratio(mid) < target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    t = solve(DAYLIGHT_FROM, T_MAX)
    if t is None:
        t = solve(T_MIN, np.nextafter(DAYLIGHT_FROM, 0))
    if t is None:
        t = T_MAX if target > ratio(T_MAX) else T_MIN
    xx, yy = xy_of_temperature(t)
    locus_y_over_x = yy / xx
    tint = locus_y_over_x / (xyz[1] / xyz[0]) if xyz[1] > 0 else 1.0
    return float(t), float(np.clip(tint, TINT_MIN, TINT_MAX))


def coefficients(image, p: TemperatureParams) -> tuple[np.ndarray, str | None]:
    """(four multipliers in the file's colour order, green = 1) for this image and the notice, if any."""
    notice = None
    _, has_matrix = _xyz_to_cam(image)
    preset = "camera-reference" if p.preset == "daylight" else p.preset
    missing = "the file has no as-shot white balance; using the camera's daylight (D65) coefficients"
    if preset == "user":
        c = np.array([p.red, p.green, p.blue, p.g2], dtype=np.float64)
    elif preset == "as-shot" and image.wb_as_shot is not None:
        c = np.array(image.wb_as_shot, dtype=np.float64)
    elif preset == "temperature":
        c = coefficients_for_temperature(image, p.temperature, p.tint)
        if not has_matrix:
            notice = "no colour matrix for this camera: the temperature is converted as if it were sRGB"
    elif preset == "as-shot" and image.wb_daylight is not None:
        # LibRaw's daylight multipliers: the D65 white of the same matrix (they agree to 1e-4)
        c, notice = np.array(image.wb_daylight, dtype=np.float64), missing
    elif has_matrix:
        c = camera_reference(image)
        notice = missing if preset == "as-shot" else None
    elif image.wb_daylight is not None:
        c = np.array(image.wb_daylight, dtype=np.float64)
    else:
        c = np.ones(4)
        notice = ("the file has no as-shot white balance and no camera matrix; using neutral coefficients "
                  "1/1/1" if preset == "as-shot" else
                  "no colour matrix for this camera: the camera reference white balance is neutral 1/1/1")
    c = np.array(c, dtype=np.float64).reshape(-1)[:4]
    c = np.concatenate([c, np.ones(4 - len(c))]) if len(c) < 4 else c
    colors = image.cfa.colors if image.cfa is not None else "RGBG"
    ncol = 4 if image.cfa is not None and image.cfa.kind == "4color" else 3
    g = _green_index(colors, ncol)
    if not np.isfinite(c).all() or c[g] <= 0 or (c[:ncol] < 0).any():
        c = np.ones(4)
    if ncol == 3 and c[3] <= 0:
        c[3] = c[1]
    return c / c[g], notice


def _is_planar(piece: Piece) -> bool:
    if piece.dsc_in is not None:
        return piece.dsc_in.channels == 3
    cfa = piece.image.cfa
    return cfa is not None and cfa.kind == "none"


class Temperature(HalideModule):
    op = "temperature"
    name = "white balance"
    Params = TemperatureParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING
    default_enabled = True
    works_on = "raw"
    summary = "white balance: as shot, camera reference (D65), temperature/tint or coefficients"
    channels_in = channels_out = 1
    inputs = (HInput("coeff", "buf_f32", 2), HInput("ox", "i32"), HInput("oy", "i32"))

    def variant(self, piece: Piece) -> str:
        return "planar" if _is_planar(piece) else ""

    # -- algorithm: one multiplier per CFA position (or per channel of a planar raw)
    def algorithm(self, mosaic, p, piece):
        k = p["coeff"]
        balanced = hl.Func("balanced")
        if _is_planar(piece):
            balanced[x, y, c] = mosaic[x, y, c] * k[c, 0]
        else:
            balanced[x, y] = mosaic[x, y] * k[(x + p["ox"]) % k.dim(0).extent(), (y + p["oy"]) % k.dim(1).extent()]
        return balanced

    def commit(self, piece):
        self.channels_in = self.channels_out = 3 if _is_planar(piece) else 1
        c, notice = coefficients(piece.image, piece.params)
        piece.data["coeffs"] = c
        if notice:
            piece.notices.append(notice)

    def output_desc(self, piece, dsc_in):
        c = piece.data["coeffs"]
        cfa = piece.image.cfa
        applied = tuple(float(v) for v in c)  # color calibration's as-shot adaptation reads them
        if cfa is not None and cfa.kind == "4color":
            # no R, G, B yet: every channel is safe up to the least amplified colour's saturation
            m = float(np.min(c))
            return dsc_in.copy(processed_maximum=(m, m, m), wb_coeffs=applied)
        return dsc_in.copy(processed_maximum=(float(c[0]), float(c[1]), float(c[2])), wb_coeffs=applied)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        c = piece.data["coeffs"]
        cfa = piece.image.cfa
        if _is_planar(piece):
            pat = np.asarray(cfa.pattern).reshape(1, -1) if cfa is not None else np.arange(3).reshape(1, 3)
            return {"coeff": f32(at_least_2(c[np.clip(pat, 0, 3)])), "ox": 0, "oy": 0}
        return {"coeff": at_least_2(pattern_lut(cfa.pattern, c)), "ox": roi_in.x, "oy": roi_in.y}
