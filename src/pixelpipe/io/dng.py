"""A small DNG writer (tifffile) for synthetic mosaics and processed raw data.

:func:`write_cfa_dng` writes a CFA (Bayer 2x2 or X-Trans 6x6) mosaic,
:func:`write_linear_dng` demosaiced linear camera RGB (PhotometricInterpretation
LinearRaw). Both carry the tags a raw reader needs (LibRaw reads them back:
the tests check mosaic, pattern, black/white and as-shot white balance).

Layout: with a preview, IFD0 is the preview (NewSubFileType 1) and the raw
sits in a SubIFD (NewSubFileType 0), as cameras write DNG; without one the
raw is IFD0. Camera-wide tags (DNGVersion, UniqueCameraModel, ColorMatrix1,
AsShotNeutral, Make/Model, Orientation, NoiseProfile, EXIF) are in IFD0;
raw-image tags (CFA, levels, crops) in the raw IFD. The file appears
atomically (temporary name + rename).

LibRaw (like dcraw) refuses images with a side under 22 pixels; write at
least 22x22 when LibRaw must read the file back.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import OutputError
from .atomic import atomic_write
from .writers import add_sub_ifds, exif_sub_ifds, exif_to_bytes

# TIFF types
BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL, DOUBLE = 1, 2, 3, 4, 5, 10, 12

#: DNG CFAPlaneColor codes
PLANE_COLOURS = {"R": 0, "G": 1, "B": 2, "C": 3, "M": 4, "Y": 5, "W": 6}

#: the X-Trans (Fujifilm X-Trans I/II/III) 6x6 layout, 0=R 1=G 2=B
XTRANS_PATTERN = np.array([[1, 1, 0, 1, 1, 2],
                           [1, 1, 2, 1, 1, 0],
                           [2, 0, 1, 0, 2, 1],
                           [1, 1, 2, 1, 1, 0],
                           [1, 1, 0, 1, 1, 2],
                           [0, 2, 1, 2, 0, 1]], dtype=np.uint8)

_BAYER = {"RGGB": [[0, 1], [1, 2]], "BGGR": [[2, 1], [1, 0]],
          "GRBG": [[1, 0], [2, 1]], "GBRG": [[1, 2], [0, 1]]}


def cfa_pattern(pattern) -> np.ndarray:
    """A 2x2/6x6 array of 0=R 1=G 2=B from an array or a name ("RGGB", ..., "XTRANS")."""
    if isinstance(pattern, str):
        key = pattern.upper().replace("-", "")
        if key in _BAYER:
            return np.array(_BAYER[key], dtype=np.uint8)
        if key == "XTRANS":
            return XTRANS_PATTERN.copy()
        raise ValueError(f"unknown CFA pattern {pattern!r}")
    p = np.asarray(pattern)
    if p.ndim != 2 or p.shape not in ((2, 2), (6, 6)) or p.min() < 0 or p.max() > 2:
        raise ValueError(f"a CFA pattern is 2x2 or 6x6 of 0/1/2, got {p.tolist()}")
    return p.astype(np.uint8)


def _rationals(values, den: int = 10000, signed: bool = False) -> tuple[int, ...]:
    out: list[int] = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        f = Fraction(float(v)).limit_denominator(den if abs(v) < 1e4 else 1)
        if not signed and f < 0:
            raise ValueError(f"negative value {v} in an unsigned rational tag")
        out += [f.numerator, f.denominator]
    return tuple(out)


def _levels(values, n: int) -> tuple[int, tuple]:
    """BlackLevel as LONG when integral, else RATIONAL."""
    v = np.broadcast_to(np.asarray(values, dtype=np.float64).ravel(), (n,)) if np.size(values) == 1 \
        else np.asarray(values, dtype=np.float64).ravel()
    if len(v) != n:
        raise ValueError(f"expected 1 or {n} black levels, got {len(v)}")
    if np.all(v == np.round(v)):
        return LONG, tuple(int(x) for x in v)
    return RATIONAL, _rationals(v, 1000)


def _camera_tags(*, make: str, model: str, unique_model: str | None, color_matrix1,
                 as_shot_neutral, orientation: int, illuminant: int, noise_profile,
                 color_matrix2=None, illuminant2: int | None = None,
                 baseline_exposure: float | None = None, software: str = "pixelpipe") -> list[tuple]:
    if not 1 <= int(orientation) <= 8:
        raise ValueError(f"orientation must be 1..8, got {orientation}")
    cm = np.asarray(color_matrix1, dtype=np.float64)
    if cm.shape != (3, 3):
        raise ValueError(f"ColorMatrix1 must be 3x3 (XYZ -> camera), got {cm.shape}")
    neutral = np.asarray(as_shot_neutral, dtype=np.float64).ravel()
    if neutral.shape != (3,) or np.any(neutral <= 0):
        raise ValueError(f"AsShotNeutral must be 3 positive values, got {neutral.tolist()}")
    tags = [
        (271, ASCII, 0, make or "pixelpipe", True),
        (272, ASCII, 0, model or "synthetic", True),
        (274, SHORT, 1, int(orientation), True),
        (305, ASCII, 0, software, True),
        (50706, BYTE, 4, (1, 4, 0, 0), True),       # DNGVersion 1.4
        (50707, BYTE, 4, (1, 1, 0, 0), True),       # DNGBackwardVersion 1.1
        (50708, ASCII, 0, unique_model or f"{make} {model}".strip(), True),
        (50721, SRATIONAL, 9, _rationals(cm, signed=True), True),
        (50778, SHORT, 1, int(illuminant), True),
        (50728, RATIONAL, 3, _rationals(neutral, 1_000_000), True),
    ]
    if color_matrix2 is not None:
        tags.append((50722, SRATIONAL, 9, _rationals(np.asarray(color_matrix2).reshape(3, 3), signed=True), True))
        tags.append((50779, SHORT, 1, int(illuminant2 or 17), True))
    if baseline_exposure is not None:
        tags.append((50730, SRATIONAL, 1, _rationals([baseline_exposure], signed=True), True))
    if noise_profile is not None:
        npf = np.asarray(noise_profile, dtype=np.float64).ravel()
        if npf.size % 2 or npf.size == 0:
            raise ValueError("NoiseProfile is (scale, offset) pairs")
        tags.append((51041, DOUBLE, int(npf.size), tuple(float(x) for x in npf), True))
    return tags


def _write(path, raw: np.ndarray, photometric: int, camera_tags: list[tuple],
           raw_tags: list[tuple], exif, preview_rgb, overwrite: bool) -> Path:
    import tifffile

    exif_b = exif_to_bytes(exif, orientation=None) if exif else None
    subs = exif_sub_ifds(exif_b)
    samples = 1 if raw.ndim == 2 else raw.shape[2]
    with atomic_write(path, overwrite=overwrite) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=False, byteorder="<") as tw:
            if preview_rgb is not None:
                prev = np.asarray(preview_rgb)
                if prev.dtype != np.uint8:
                    prev = np.clip(prev.astype(np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
                if prev.ndim != 3 or prev.shape[2] != 3:
                    raise OutputError(f"preview must be (H, W, 3), got {prev.shape}", path=str(path))
                tw.write(prev, photometric="rgb", subfiletype=1, subifds=1, metadata=None,
                         extratags=camera_tags, software=False)
                tw.write(raw, photometric=photometric, subfiletype=0, metadata=None,
                         extratags=raw_tags, software=False,
                         planarconfig="contig" if samples > 1 else None)
            else:
                tw.write(raw, photometric=photometric, subfiletype=0, metadata=None,
                         extratags=camera_tags + raw_tags, software=False,
                         planarconfig="contig" if samples > 1 else None)
        add_sub_ifds(tmp, subs)
    return Path(path)


def write_cfa_dng(path: str | os.PathLike, mosaic: np.ndarray, cfa_pattern_: Sequence | np.ndarray | str,
                  black: float | Sequence[float], white: int, color_matrix1: np.ndarray,
                  as_shot_neutral: Sequence[float], *, orientation: int = 1, make: str = "pixelpipe",
                  model: str = "synthetic", exif: bytes | dict | None = None,
                  noise_profile: Sequence[float] | None = None, preview_rgb: np.ndarray | None = None,
                  illuminant: int = 21, active_area: Sequence[int] | None = None,
                  default_crop: Sequence[int] | None = None, color_matrix2: np.ndarray | None = None,
                  illuminant2: int | None = None, baseline_exposure: float | None = None,
                  unique_model: str | None = None, overwrite: bool = False) -> Path:
    """Write a CFA mosaic (uint16 ``(H, W)``) as a DNG.

    ``cfa_pattern_``: 2x2 or 6x6 of 0=R 1=G 2=B (or "RGGB"/"GRBG"/.../"XTRANS"),
    phase at the top-left of the active area. ``black``: one value or one per
    pattern cell (BlackLevelRepeatDim = pattern size). ``color_matrix1``: XYZ ->
    camera (Adobe convention) for ``illuminant`` (EXIF LightSource, 21 = D65).
    ``as_shot_neutral``: camera neutral (R, G, B), i.e. 1 / WB multipliers.
    ``active_area`` (top, left, bottom, right) and ``default_crop`` (x, y, w, h,
    relative to the active area) are optional.
    """
    m = np.asarray(mosaic)
    if m.ndim != 2:
        raise OutputError(f"a CFA mosaic is (H, W), got {m.shape}", path=str(path))
    if m.dtype != np.uint16:
        if np.issubdtype(m.dtype, np.integer) and m.min() >= 0 and m.max() <= 65535:
            m = m.astype(np.uint16)
        else:
            raise OutputError(f"mosaic must be uint16 sensor values, got {m.dtype}", path=str(path))
    pat = cfa_pattern(cfa_pattern_)
    r, c = pat.shape
    nblack = np.size(black)
    if nblack == 1:
        bdim, btype_vals = (1, 1), _levels(black, 1)
    elif nblack == r * c:
        bdim, btype_vals = (r, c), _levels(black, r * c)
    else:
        raise OutputError(f"black must have 1 or {r * c} values, got {nblack}", path=str(path))
    h, w = m.shape
    top, left, bottom, right = active_area if active_area is not None else (0, 0, h, w)
    aw, ah = right - left, bottom - top
    cx, cy, cw, ch = default_crop if default_crop is not None else (0, 0, aw, ah)
    raw_tags = [
        (33421, SHORT, 2, (r, c), True),                       # CFARepeatPatternDim
        (33422, BYTE, r * c, tuple(int(v) for v in pat.ravel()), True),  # CFAPattern
        (50710, BYTE, 3, (0, 1, 2), True),                     # CFAPlaneColor
        (50711, SHORT, 1, 1, True),                            # CFALayout: rectangular
        (50713, SHORT, 2, bdim, True),                         # BlackLevelRepeatDim
        (50714, btype_vals[0], len(btype_vals[1]) // (2 if btype_vals[0] == RATIONAL else 1),
         btype_vals[1], True),                                 # BlackLevel
        (50717, LONG, 1, int(white), True),                    # WhiteLevel
        (50719, LONG, 2, (int(cx), int(cy)), True),            # DefaultCropOrigin
        (50720, LONG, 2, (int(cw), int(ch)), True),            # DefaultCropSize
    ]
    if active_area is not None:
        raw_tags.append((50829, LONG, 4, tuple(int(v) for v in active_area), True))
    cam = _camera_tags(make=make, model=model, unique_model=unique_model, color_matrix1=color_matrix1,
                       as_shot_neutral=as_shot_neutral, orientation=orientation, illuminant=illuminant,
                       noise_profile=noise_profile, color_matrix2=color_matrix2,
                       illuminant2=illuminant2, baseline_exposure=baseline_exposure)
    return _write(path, m, 32803, cam, raw_tags, exif, preview_rgb, overwrite)


def write_linear_dng(path: str | os.PathLike, rgb: np.ndarray, *, black: float | Sequence[float] = 0,
                     white: int = 65535, color_matrix1: np.ndarray | None = None,
                     as_shot_neutral: Sequence[float] = (1.0, 1.0, 1.0), orientation: int = 1,
                     make: str = "pixelpipe", model: str = "synthetic",
                     exif: bytes | dict | None = None, noise_profile: Sequence[float] | None = None,
                     preview_rgb: np.ndarray | None = None, illuminant: int = 21,
                     unique_model: str | None = None, overwrite: bool = False) -> Path:
    """Write linear camera RGB ``(H, W, 3)`` as a LinearRaw DNG (PhotometricInterpretation 34892).

    ``rgb``: uint16 sensor values, or float32 in [0, 1] scaled to
    ``black .. white`` (rounded). ``color_matrix1`` defaults to the XYZ ->
    linear sRGB matrix (the data is then sRGB-primaries linear light).
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise OutputError(f"linear DNG data is (H, W, 3), got {a.shape}", path=str(path))
    if a.dtype != np.uint16:
        if np.issubdtype(a.dtype, np.floating):
            b = float(np.max(black))
            a = np.clip(np.nan_to_num(a.astype(np.float64)) * (white - b) + b + 0.5, 0, 65535).astype(np.uint16)
        elif np.issubdtype(a.dtype, np.integer) and a.min() >= 0 and a.max() <= 65535:
            a = a.astype(np.uint16)
        else:
            raise OutputError(f"linear DNG data must be uint16 or float, got {a.dtype}", path=str(path))
    if color_matrix1 is None:
        from .icc import colourspace

        color_matrix1 = np.linalg.inv(colourspace("linear_srgb").matrix_rgb_to_xyz)
    nblack = np.size(black)
    if nblack not in (1, 3):
        raise OutputError(f"black must have 1 or 3 values, got {nblack}", path=str(path))
    btype, bvals = _levels(black, nblack)
    h, w = a.shape[:2]
    raw_tags = [
        (50713, SHORT, 2, (1, 1), True),
        (50714, btype, nblack, bvals, True),
        (50717, LONG, 3, (int(white),) * 3, True),
        (50719, LONG, 2, (0, 0), True),
        (50720, LONG, 2, (w, h), True),
    ]
    cam = _camera_tags(make=make, model=model, unique_model=unique_model, color_matrix1=color_matrix1,
                       as_shot_neutral=as_shot_neutral, orientation=orientation, illuminant=illuminant,
                       noise_profile=noise_profile)
    return _write(path, a, 34892, cam, raw_tags, exif, preview_rgb, overwrite)
