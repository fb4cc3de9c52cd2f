"""A synthetic raw sample: a test chart rendered through a real Bayer mosaic.

:func:`make_sample_dng` draws a D65-lit scene (ColorChecker 24 patches from
colour-science's reference values, a smooth grey ramp that runs into
clipping, an EV step wedge, a zone plate and a slanted edge), takes it to
camera RGB through a plausible camera matrix (the Adobe D65 matrix of a Canon
EOS 5D Mark II: camera RGB is not white balanced, just as a sensor records
it), samples it through an RGGB CFA, adds Poisson-Gaussian noise from a fixed
seed and writes a DNG with :func:`~pixelpipe.io.dng.write_cfa_dng` (with a
matching NoiseProfile and a small sRGB preview).

:func:`mosaic_from_rgb` synthesises a mosaic from any RGB image (Kodak24-like
sets, X-Trans tests).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dng import cfa_pattern, write_cfa_dng

#: XYZ (D65) -> camera RGB, Adobe convention (Canon EOS 5D Mark II, dcraw/LibRaw table)
CAMERA_XYZ_TO_CAM = np.array([[0.4716, 0.0603, -0.0830],
                              [-0.7798, 1.5474, 0.2480],
                              [-0.1496, 0.1937, 0.6651]])

D65_XYZ = np.array([0.95047, 1.0, 1.08883])

SAMPLE_BLACK = 512
SAMPLE_WHITE = 16383
SAMPLE_FULL_WELL = 12000.0   # electrons at white (normalised 1.0)
SAMPLE_READ_NOISE = 2.0      # DN
SAMPLE_EXPOSURE = 0.6        # camera max channel of a Y = 1 D65 white, as a fraction of white - black


def _colorchecker_xyz_d65() -> np.ndarray:
    """The 24 ColorChecker patches as XYZ under D65 (Bradford from the D50 reference)."""
    from .icc import bradford, colour_module

    colour = colour_module()
    cc = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
    xyy = np.array(list(cc.data.values()), dtype=np.float64)
    xyz_d50 = colour.xyY_to_XYZ(xyy)
    wx, wy = np.asarray(cc.illuminant, dtype=np.float64)
    d50 = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz_d50 @ bradford(d50, D65_XYZ).T


def sample_scene(width: int = 1200, height: int = 800) -> np.ndarray:
    """The chart as scene-linear XYZ (D65), float64 ``(H, W, 3)`` (white patch Y ~ 0.9)."""
    w, h = int(width), int(height)
    if w < 120 or h < 80:
        raise ValueError("the sample chart needs at least 120x80 pixels")
    grey = lambda y: np.asarray(y, dtype=np.float64)[..., None] * D65_XYZ  # noqa: E731
    img = np.empty((h, w, 3))
    img[:] = grey(0.18)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # ColorChecker 6x4, black surround
    x0, x1, y0, y1 = int(0.03 * w), int(0.60 * w), int(0.04 * h), int(0.64 * h)
    img[y0:y1, x0:x1] = grey(0.03)
    patches = _colorchecker_xyz_d65()
    pw, ph = (x1 - x0) / 6, (y1 - y0) / 4
    gap = 0.08
    for i, xyz in enumerate(patches):
        r, c = divmod(i, 6)
        px0, px1 = int(x0 + (c + gap) * pw), int(x0 + (c + 1 - gap) * pw)
        py0, py1 = int(y0 + (r + gap) * ph), int(y0 + (r + 1 - gap) * ph)
        img[py0:py1, px0:px1] = xyz

    # zone plate (circular chirp reaching Nyquist at its rim)
    zx0, zx1, zy0, zy1 = int(0.64 * w), int(0.97 * w), int(0.04 * h), int(0.36 * h)
    cx, cy = (zx0 + zx1) / 2, (zy0 + zy1) / 2
    rad = min(zx1 - zx0, zy1 - zy0) / 2
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    k = np.pi / (2 * rad)  # local frequency k*r/pi cycles/px = 0.5 at r = rad
    zone = 0.05 + 0.55 * (0.5 + 0.5 * np.cos(k * r2))
    inside = r2 <= rad ** 2
    img[inside] = grey(zone[inside])

    # slanted edge (5 degrees)
    ex0, ex1, ey0, ey1 = int(0.64 * w), int(0.97 * w), int(0.40 * h), int(0.66 * h)
    ecx, ecy = (ex0 + ex1) / 2, (ey0 + ey1) / 2
    t = np.tan(np.radians(5.0))
    region = (slice(ey0, ey1), slice(ex0, ex1))
    side = (xx[region] - ecx) - t * (yy[region] - ecy) > 0
    img[region] = np.where(side[..., None], grey(0.60), grey(0.05))

    # smooth ramp 0 .. 2.0 (its top clips in the camera) and an EV step wedge
    rx0, rx1 = int(0.03 * w), int(0.97 * w)
    ry0, ry1 = int(0.70 * h), int(0.79 * h)
    ramp = np.clip((xx[ry0:ry1, rx0:rx1] - rx0) / max(rx1 - rx0 - 1, 1), 0, 1) * 2.0
    img[ry0:ry1, rx0:rx1] = grey(ramp)
    sy0, sy1 = int(0.84 * h), int(0.95 * h)
    steps = 16
    sw = (rx1 - rx0) / steps
    img[sy0 - 4:sy1 + 4, rx0 - 4:rx1 + 4] = grey(0.002)  # near-black surround
    for s in range(steps):
        a, b = int(rx0 + s * sw) + 1, int(rx0 + (s + 1) * sw) - 1
        img[sy0:sy1, a:b] = grey(0.9 * 2.0 ** (-s * 0.75))
    return img


def mosaic_from_rgb(rgb: np.ndarray, pattern) -> np.ndarray:
    """Sample ``rgb`` ``(H, W, 3)`` through a CFA: 2x2/6x6 of 0=R 1=G 2=B or a name.

    The result has ``rgb``'s dtype; the pattern's phase is at the top-left.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3), got {a.shape}")
    pat = cfa_pattern(pattern)
    h, w = a.shape[:2]
    pr, pc = pat.shape
    idx = np.tile(pat, (-(-h // pr), -(-w // pc)))[:h, :w]
    return np.take_along_axis(a, idx[..., None].astype(np.intp), axis=2)[..., 0]


def camera_neutral(xyz_to_cam: np.ndarray = CAMERA_XYZ_TO_CAM) -> np.ndarray:
    """Camera RGB of D65 white, normalised to G = 1 (the DNG AsShotNeutral)."""
    n = np.asarray(xyz_to_cam) @ D65_XYZ
    return n / n[1]


def make_sample_dng(path: str | os.PathLike, width: int = 1200, height: int = 800, *,
                    seed: int = 1234, pattern="RGGB", overwrite: bool = False) -> Path:
    """Write the synthetic chart as a DNG (RGGB by default) and return its path."""
    xyz = sample_scene(width, height)
    cam = xyz @ CAMERA_XYZ_TO_CAM.T
    scale = SAMPLE_EXPOSURE / float(np.max(CAMERA_XYZ_TO_CAM @ D65_XYZ))
    norm = np.clip(cam * scale, 0.0, None)                      # 1.0 = white level
    mosaic = mosaic_from_rgb(norm, pattern)
    rng = np.random.default_rng(seed)
    electrons = rng.poisson(np.minimum(mosaic, 4.0) * SAMPLE_FULL_WELL)
    rng_dn = SAMPLE_WHITE - SAMPLE_BLACK
    dn = SAMPLE_BLACK + electrons / SAMPLE_FULL_WELL * rng_dn + rng.normal(0.0, SAMPLE_READ_NOISE, mosaic.shape)
    mosaic_u16 = np.clip(np.round(dn), 0, SAMPLE_WHITE).astype(np.uint16)

    # a small sRGB preview (box-downsampled scene)
    f = 4
    hh, ww = (xyz.shape[0] // f) * f, (xyz.shape[1] // f) * f
    small = xyz[:hh, :ww].reshape(hh // f, f, ww // f, f, 3).mean(axis=(1, 3))
    from .icc import colourspace

    srgb = colourspace("srgb")
    lin = small @ np.linalg.inv(srgb.matrix_rgb_to_xyz).T
    preview = np.clip(srgb.encode(np.clip(lin / 0.9, 0, 1)), 0, 1)

    noise_profile = (1.0 / SAMPLE_FULL_WELL, (SAMPLE_READ_NOISE / rng_dn) ** 2)
    return write_cfa_dng(
        path, mosaic_u16, pattern, SAMPLE_BLACK, SAMPLE_WHITE, CAMERA_XYZ_TO_CAM,
        camera_neutral(), make="pixelpipe", model="synthetic chart",
        unique_model="pixelpipe synthetic chart",
        exif={"iso": 100, "exposure_time": 1 / 125, "fnumber": 8.0, "focal_length": 50.0,
              "datetime": "2024:01:01 12:00:00"},
        noise_profile=noise_profile, preview_rgb=preview.astype(np.float32), overwrite=overwrite)
