"""What a decoder hands to the pipe: pixels plus the metadata modules need.

A :class:`SourceImage` is read-only input. Raw files carry a CFA mosaic in
sensor units (before black subtraction); non-raw files carry linear or encoded
RGB that enters the pipe after demosaic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class CFA:
    """Colour filter array description.

    ``pattern`` is a small int array (2x2 Bayer, 6x6 X-Trans, 2x2 four-colour)
    of colour indices into ``colors`` (e.g. "RGBG" for Bayer: 0=R, 1=G, 2=B,
    3=second G), read from the top-left of the *visible/active* area.
    ``kind`` is one of "bayer", "xtrans", "4color", "none" (non-CFA/linear),
    "mono". For "none" (LibRaw ``RawType.Stack``: LinearRaw DNG, Kodak YRGB)
    the mosaic is planar ``(C, H, W)`` and ``pattern`` is ``(1, C)``: channel
    ``c`` holds colour ``colors[pattern[0, c]]``. For "mono" it is ``[[0]]``.
    """

    kind: str
    pattern: np.ndarray
    colors: str = "RGBG"

    def rgb_pattern(self) -> np.ndarray:
        """The pattern as 0=R, 1=G, 2=B (second green folded into G) for Bayer/X-Trans."""
        lut = np.array(["RGB".index(ch) if ch in "RGB" else -1 for ch in self.colors])
        return lut[self.pattern]


@dataclass
class SourceImage:
    """Decoded input.

    Attributes
    ----------
    path: the file it came from (never opened for writing).
    kind: "raw" (CFA mosaic) or "rgb" (non-raw: JPEG/PNG/TIFF/LinearRaw).
    data: raw -> float32 (H, W) mosaic of the *active area* in sensor units
          (black not yet subtracted); rgb -> float32 (3, H, W) planar, values
          in [0, 1] nominal, ``encoding`` says whether linear or sRGB-encoded.
    cfa: CFA of the active area (raw only).
    black: per-CFA-colour black levels, length 4 (indices as cfa.colors).
    white: white (saturation) level in sensor units.
    wb_as_shot: as-shot white-balance multipliers (R, G, B, G2) normalised to
          G=1, or None when the file has none.
    wb_daylight: daylight multipliers from the camera matrix, or None.
    cam_to_xyz: 3x3 camera RGB -> XYZ (D65-adapted, LibRaw/Adobe convention),
          or None when neither file nor LibRaw's table has one.
    xyz_to_cam_source: "file", "libraw" or None.
    orientation: EXIF orientation 1..8 (1 = as stored).
    exif: dict of EXIF fields (maker, model, iso, exposure_time, fnumber,
          focal_length, datetime, lens, exposure_bias, ...); for raws also
          camera_maker/camera_model, LibRaw's normalised names (for camera
          lookups), while maker/model are as the file writes them.
    raw_exif_bytes: raw EXIF block to copy into exports, if any.
    noise_profile: DNG NoiseProfile pairs (scale, offset) per plane, or None.
    gain_maps: DNG OpcodeList GainMap entries (list of dicts), if present.
    icc_profile: embedded ICC of a non-raw input, if any.
    encoding: for rgb inputs, "srgb" or "linear"; "icc" when an embedded
          profile that is not sRGB describes the values (see icc_profile).
    xyz_to_cam: the XYZ -> camera matrix as read (n_colours x 3, Adobe/LibRaw
          convention, not normalised); ``cam_to_xyz`` is its (pseudo-)inverse
          (3 x n_colours: 3x3 for RGB cameras, 3x4 for CYGM).
    calibration_illuminant: EXIF LightSource code of that matrix (21 = D65;
          LibRaw's table matrices are D65), or None.
    black_map: DNG BlackLevel pattern (rows, cols) in sensor units, phase at the
          top-left of ``data``, when it is not expressible per CFA colour
          (``black`` then holds per-colour means); None otherwise.
    crop: default crop (x, y, w, h) in ``data`` coordinates (LibRaw's inset
          crop / DNG DefaultCrop), or None.
    dng_opcodes: names of the DNG opcodes per list ("1", "2", "3"), or None.
    notices: one-line remarks for the user (missing WB, unsupported opcodes, ...).

    Gain maps (``gain_maps``) come from OpcodeList2 only; their Top/Left/Bottom/
    Right are relative to the DNG active area, which is ``data``'s origin.
    """

    path: str
    kind: str
    data: np.ndarray
    cfa: CFA | None = None
    black: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    white: float = 1.0
    wb_as_shot: tuple[float, float, float, float] | None = None
    wb_daylight: tuple[float, float, float, float] | None = None
    cam_to_xyz: np.ndarray | None = None
    xyz_to_cam_source: str | None = None
    orientation: int = 1
    exif: dict[str, Any] = field(default_factory=dict)
    raw_exif_bytes: bytes | None = None
    noise_profile: list[tuple[float, float]] | None = None
    gain_maps: list[dict] | None = None
    icc_profile: bytes | None = None
    encoding: str = "linear"
    notices: list[str] = field(default_factory=list)
    xyz_to_cam: np.ndarray | None = None
    calibration_illuminant: int | None = None
    black_map: np.ndarray | None = None
    crop: tuple[int, int, int, int] | None = None
    dng_opcodes: dict[str, list[str]] | None = None

    @property
    def width(self) -> int:
        return int(self.data.shape[-1])

    @property
    def height(self) -> int:
        return int(self.data.shape[-2])

    @property
    def is_raw(self) -> bool:
        return self.kind == "raw"

    def identity(self) -> str:
        """A stable id for cache keys: path + size + mtime."""
        import os

        st = os.stat(self.path)
        return f"{os.path.abspath(self.path)}:{st.st_size}:{st.st_mtime_ns}"
