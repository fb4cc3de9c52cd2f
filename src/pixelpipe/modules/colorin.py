"""colorin: input colour profile, camera RGB (or an RGB file's space) to linear Rec.2020.

Raw: the white-balanced camera RGB is multiplied by the camera matrix
(file, else LibRaw's table; neither: the camera is assumed to be linear sRGB,
with a notice). :func:`camera_matrix` and :func:`reference_coefficients` give
the same matrix and darktable's "camera reference" (D65) white balance through
it, for the white balance and color calibration modules (the scene-referred
path: temperature at the camera reference, the scene illuminant adapted later
by channelmixerrgb). Non-raw: the file's transfer curve is decoded, then its
primaries are converted. Region of interest: a point operation.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..engine.kernels import f32
from . import colorspaces as cs
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param
from .channelmixerrgb import SmallImageSafe, finite


@dataclass
class ColorinParams(Params):
    """Input profile.

    profile: "camera" (the raw's matrix), or an RGB profile name for non-raw
             inputs ("srgb", "linear_srgb", "adobe_rgb", "display_p3", "rec2020", ...).
    """

    profile: str = param("camera", choices=("camera",) + tuple(cs.profiles()))


LINEAR = {"g": 1.0, "a": 1.0, "b": 0.0, "c": 1.0, "d": -1e30}


class Colorin(SmallImageSafe, HalideModule):
    op = "colorin"
    name = "input color profile"
    Params = ColorinParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING
    default_enabled = True
    summary = "camera RGB to linear Rec.2020"
    inputs = (HInput("matrix", "buf_f32", 2),) + tuple(HInput(n) for n in ("g", "a", "b", "cc", "d"))

    # -- algorithm: optional TRC decode (g == 1 marks linear data, passed through
    #    so negative noise is kept), then a 3x3 matrix ([col, row] in Halide)
    def variant(self, piece):
        # linear input (raw camera data, linear profiles) compiles without the TRC: a select
        # computes both of its sides, so the decode's pow would run for every sample
        return "" if piece.data.get("trc", LINEAR)["g"] == 1.0 else "trc"

    def algorithm(self, rgb, p, piece):
        m = p["matrix"]
        v = finite(rgb[x, y, c])  # NaN -> 0, +-Inf -> +-1e6: nothing non-finite leaves the module
        linear = hl.Func("linear")
        if self.variant(piece) == "trc":
            linear[x, y, c] = hl.select(v >= p["d"], hl.pow(hl.max(p["a"] * v + p["b"], 0.0), p["g"]), p["cc"] * v)
        else:
            linear[x, y, c] = v
        working = hl.Func("working")
        working[x, y, c] = finite(m[0, c] * linear[x, y, 0] + m[1, c] * linear[x, y, 1] + m[2, c] * linear[x, y, 2])
        return working

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    def default_params(self, image):
        if image.is_raw:
            return ColorinParams("camera")
        return ColorinParams("linear_srgb" if image.encoding == "linear" else "srgb")

    def commit_notice(self, piece):
        if not piece.image.is_raw and piece.image.encoding == "icc" and piece.params.profile == "srgb":
            piece.notices.append("the file embeds an ICC profile this version cannot apply; "
                                 "its values are read as sRGB")

    def commit(self, piece):
        self.commit_notice(piece)
        p, img = piece.params, piece.image
        if p.profile == "camera":
            if img.cfa is not None and img.cfa.kind == "4color":
                # demosaic already converted the four colours to linear Rec.2020 (demosaic.cygm_matrix)
                piece.data["matrix"] = np.eye(3)
            elif img.cam_to_xyz is not None:
                piece.data["matrix"] = cs.camera_to_working(d65_xyz_to_cam(img))
            else:
                piece.notices.append("the file has no colour matrix; assuming the camera sees linear sRGB")
                piece.data["matrix"] = cs.profile_to_working("linear_srgb")
            piece.data["trc"] = LINEAR
        else:
            piece.data["matrix"] = cs.profile_to_working(p.profile)
            t = cs.trc(p.profile)
            piece.data["trc"] = LINEAR if t["g"] == 1.0 and t["c"] == 0 else t

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(space="rec2020")

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        t = piece.data["trc"]
        return {"matrix": f32(piece.data["matrix"]), "g": t["g"], "a": t["a"], "b": t["b"], "cc": t["c"], "d": t["d"]}


# --------------------------------------------------------------------------- facts for other modules

#: EXIF LightSource code of a DNG CalibrationIlluminant -> the illuminant (colour-science's
#: name) whose white darktable adapts to D65 for that matrix (D65, cloudy and unknown: none)
_DNG_ILLUMINANT = {23: "D50", 20: "D55", 1: "D55", 4: "D55", 9: "D55", 22: "D75", 11: "D75",
                   3: "A", 17: "A", 18: "B", 19: "C", 2: "FL2", 12: "FL1", 13: "FL8", 14: "FL9",
                   15: "FL3", 16: "FL4", 24: "ISO 7589 Studio Tungsten"}


def d65_xyz_to_cam(image) -> np.ndarray:
    """The image's XYZ -> camera matrix as a D65 matrix, the way darktable uses a DNG's.

    A DNG whose colour matrix is calibrated under another illuminant than D65
    (the GoPro HERO6 DNG: tungsten and D50; the decoder picks the one nearest
    D65) has that matrix multiplied, on the camera side, by the Bradford
    adaptation from the calibration illuminant to D65 (darktable 3.8 and later
    do this when reading the file, in exif.cc; they then use that product
    everywhere a camera matrix is needed). A D65 matrix, LibRaw's table
    matrices and 4-colour matrices are used as they are.
    """
    m = np.asarray(image.xyz_to_cam if image.xyz_to_cam is not None
                   else np.linalg.pinv(np.asarray(image.cam_to_xyz, dtype=np.float64)), dtype=np.float64)
    name = _DNG_ILLUMINANT.get(getattr(image, "calibration_illuminant", None) or 21)
    if name is None or m.shape != (3, 3) or getattr(image, "xyz_to_cam_source", None) != "file":
        return m
    return _adaptation_to_d65(name) @ m


@functools.lru_cache(maxsize=None)
def _adaptation_to_d65(name: str) -> np.ndarray:
    from ..io.icc import colour_module

    colour = colour_module()
    ccs = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]
    src, d65 = colour.xy_to_XYZ(ccs[name]), colour.xy_to_XYZ(ccs["D65"])
    return np.asarray(colour.adaptation.matrix_chromatic_adaptation_VonKries(src, d65, transform="Bradford"),
                      dtype=np.float64)


def camera_matrix(image) -> np.ndarray | None:
    """White-balanced camera RGB -> linear Rec.2020: the matrix the "camera" profile applies.

    None where the image has no 3x3 camera matrix (no matrix, or a 4-colour one).
    """
    m = getattr(image, "cam_to_xyz", None)
    if m is None:
        return None
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (3, 3) or not np.isfinite(m).all():
        return None
    try:
        return cs.camera_to_working(d65_xyz_to_cam(image))
    except np.linalg.LinAlgError:
        return None


def reference_coefficients(image) -> np.ndarray | None:
    """darktable's "camera reference" white balance for ``image``: R, G, B, G2 (G = 1).

    The multipliers that make a D65 white neutral through the matrix
    :func:`camera_matrix` uses (darktable derives its "D65" coefficients from the
    input matrix the same way), so white-balanced camera (1, 1, 1) is D65 white
    in the working space. None without a 3x3 matrix.
    """
    if camera_matrix(image) is None:
        return None
    # the working space's own white (as camera_to_working normalises to), so that
    # reference-balanced D65 is exactly (1, 1, 1) here
    cam_white = d65_xyz_to_cam(image) @ cs.rgb_to_xyz(cs.WORKING).sum(axis=1)
    c = (1.0 / cam_white) / (1.0 / cam_white[1])
    if not (np.isfinite(c).all() and (c > 0).all()):
        return None
    return np.array([c[0], c[1], c[2], c[1]], dtype=np.float64)
