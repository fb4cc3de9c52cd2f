"""Colour facts shared by colorin and colorout (not a module: no ``op``).

One source of truth with the ICC writer: profile primaries, white points and
transfer curves come from :mod:`pixelpipe.io.icc` (colour-science underneath),
so the pixels always match the profile embedded in the file. The working space
is linear Rec.2020 (D65).
"""
from __future__ import annotations

import functools

import numpy as np

from ..io import icc

WORKING = "ITU-R BT.2020"


def profiles() -> tuple[str, ...]:
    return icc.PROFILE_NAMES


@functools.lru_cache(maxsize=None)
def _cs(name: str):
    return icc.colour_module().RGB_COLOURSPACES[name]


def rgb_to_xyz(colourspace: str) -> np.ndarray:
    return np.asarray(_cs(colourspace).matrix_RGB_to_XYZ, dtype=np.float64)


def working_to_profile(profile: str) -> np.ndarray:
    """Linear Rec.2020 -> the profile's linear RGB (Bradford where white points differ)."""
    colour = icc.colour_module()
    dst = icc.colourspace(profile).colourspace
    return np.asarray(colour.matrix_RGB_to_RGB(_cs(WORKING), dst, chromatic_adaptation_transform="Bradford"))


def profile_to_working(profile: str) -> np.ndarray:
    return np.linalg.inv(working_to_profile(profile))


def trc(profile: str) -> dict:
    return dict(icc.colourspace(profile).trc)


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
