"""Colour facts shared by colorin and colorout (not a module: no ``op``).

Primaries and white points come from colour-science; TRC parameters from
``data/profiles.json``. The working space is linear Rec.2020 (D65).
"""
from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

WORKING = "ITU-R BT.2020"


@functools.lru_cache(maxsize=None)
def profiles() -> dict:
    d = json.loads(resources.files(__package__).joinpath("data/profiles.json").read_text())
    d.pop("_doc", None)
    return d


@functools.lru_cache(maxsize=None)
def _cs(name: str):
    import colour

    return colour.RGB_COLOURSPACES[name]


def rgb_to_xyz(colourspace: str) -> np.ndarray:
    return np.asarray(_cs(colourspace).matrix_RGB_to_XYZ, dtype=np.float64)


def xyz_to_rgb(colourspace: str) -> np.ndarray:
    return np.asarray(_cs(colourspace).matrix_XYZ_to_RGB, dtype=np.float64)


def working_to_profile(profile: str) -> np.ndarray:
    """Linear Rec.2020 -> the profile's linear RGB (all D65 here; adapted if not)."""
    import colour

    src, dst = _cs(WORKING), _cs(profiles()[profile]["colourspace"])
    return np.asarray(colour.matrix_RGB_to_RGB(src, dst, chromatic_adaptation_transform="Bradford"))


def profile_to_working(profile: str) -> np.ndarray:
    return np.linalg.inv(working_to_profile(profile))


def trc(profile: str) -> dict:
    return profiles()[profile]["trc"]


def decode_trc(v: np.ndarray, t: dict) -> np.ndarray:
    """Encoded -> linear (NumPy), the ICC parametric curve."""
    v = np.asarray(v, dtype=np.float64)
    hi = np.power(np.maximum(t["a"] * v + t["b"], 0), t["g"])
    return np.where(v >= t["d"], hi, t["c"] * v)


def encode_trc(lin: np.ndarray, t: dict) -> np.ndarray:
    """Linear -> encoded (NumPy), inverse of :func:`decode_trc`."""
    lin = np.maximum(np.asarray(lin, dtype=np.float64), 0)
    hi = (np.power(lin, 1.0 / t["g"]) - t["b"]) / t["a"]
    lo = lin / t["c"] if t["c"] > 0 else hi
    return np.where(lin >= t["c"] * t["d"], hi, lo)


def camera_to_working(xyz_to_cam: np.ndarray) -> np.ndarray:
    """Matrix from white-balanced camera RGB to linear Rec.2020.

    ``xyz_to_cam`` is the Adobe/LibRaw D65 XYZ->camera matrix. Its product with
    Rec.2020->XYZ is normalised per row so that a white-balanced neutral
    (camera 1, 1, 1) lands on D65 white (1, 1, 1), as dcraw and darktable do.
    """
    cam_from_work = np.asarray(xyz_to_cam, dtype=np.float64) @ rgb_to_xyz(WORKING)
    cam_from_work = cam_from_work / cam_from_work.sum(axis=1, keepdims=True)
    return np.linalg.inv(cam_from_work)


def daylight_coefficients(xyz_to_cam: np.ndarray) -> np.ndarray:
    """White-balance multipliers that make D65 white neutral (G = 1), R, G, B."""
    cam_from_srgb = np.asarray(xyz_to_cam, dtype=np.float64) @ rgb_to_xyz("sRGB")
    pre = 1.0 / cam_from_srgb.sum(axis=1)
    return pre / pre[1]
