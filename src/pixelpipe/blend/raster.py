"""Raster masks: the store of published masks, and external mask files (PNG, PFM).

A module's final mask is *published* after it runs (as darktable's raster
masks) under the module's cache key, so a later module can use it even when
the producer's output came from the pixel cache. Files for the ``rasterfile``
module are read once per (path, size, mtime) and kept.
"""
from __future__ import annotations

import functools
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..modules.base import ROI


@dataclass
class Published:
    mask: np.ndarray
    roi: ROI
    label: str


class RasterStore:
    """Published masks by cache key (least recently used dropped beyond ``max_entries``)."""

    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._d: "OrderedDict[str, Published]" = OrderedDict()
        #: the mask each label published last (for tests and "show mask")
        self.latest: dict[str, Published] = {}

    def put(self, key: str, mask: np.ndarray, roi: ROI, label: str) -> None:
        mask = np.ascontiguousarray(mask, dtype=np.float32)
        mask.setflags(write=False)
        pub = Published(mask, roi, label)
        self._d[key] = pub
        self._d.move_to_end(key)
        self.latest[label] = pub
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def get(self, key: str) -> Published | None:
        pub = self._d.get(key)
        if pub is not None:
            self._d.move_to_end(key)
        return pub

    def __contains__(self, key: str) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)


# --------------------------------------------------------------------------- mask files

CHANNELS = ("gray", "red", "green", "blue", "max")


def _read_pfm(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        head = fh.readline().strip()
        if head not in (b"PF", b"Pf"):
            raise ValueError("not a PFM file (expected PF or Pf)")
        dims = fh.readline().split()
        while dims and dims[0].startswith(b"#"):
            dims = fh.readline().split()
        if len(dims) != 2:
            raise ValueError("bad PFM size line")
        w, h = int(dims[0]), int(dims[1])
        scale = float(fh.readline().strip())
        if w <= 0 or h <= 0 or w * h > 1 << 30:
            raise ValueError(f"bad PFM size {w}x{h}")
        ch = 3 if head == b"PF" else 1
        data = np.frombuffer(fh.read(), dtype="<f4" if scale < 0 else ">f4")
    if data.size < w * h * ch:
        raise ValueError(f"PFM data truncated ({data.size} of {w * h * ch} values)")
    img = data[: w * h * ch].reshape(h, w, ch)[::-1].astype(np.float32)  # rows stored bottom to top
    return img


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGBA" if "A" in mode or "transparency" in im.info else "RGB")
            mode = im.mode
        arr = np.asarray(im)
    if arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif arr.dtype in (np.uint16, np.int32, np.uint32) or mode.startswith("I"):
        img = arr.astype(np.float32) / 65535.0
    else:
        img = arr.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] in (2, 4):  # drop alpha
        img = img[:, :, :-1]
    return img


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, size: int, mtime: int) -> np.ndarray:
    p = Path(path)
    try:
        if p.suffix.lower() == ".pfm":
            img = _read_pfm(p)
        else:
            img = _read_png(p)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault
        raise InputError(f"cannot read raster mask: {e.__class__.__name__}: {str(e)[:200]}", path=path) from None
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError("cannot read raster mask: empty image", path=path)
    img = np.nan_to_num(img, nan=0.0, posinf=1.0, neginf=0.0)
    img.setflags(write=False)
    return img


def load_mask_file(path: str | os.PathLike, channel: str = "gray") -> np.ndarray:
    """The file's mask (H, W) in 0..1 from ``channel`` ("gray" = mean of RGB, "max", or one channel)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise InputError(f"cannot read raster mask: {e.strerror or e.__class__.__name__}", path=str(p)) from None
    if not p.is_file():
        raise InputError("cannot read raster mask: not a file", path=str(p))
    img = _load_cached(str(p), st.st_size, st.st_mtime_ns)
    if img.shape[2] == 1 or channel == "gray":
        m = img.mean(axis=2)
    elif channel == "max":
        m = img.max(axis=2)
    else:
        m = img[:, :, {"red": 0, "green": 1, "blue": 2}[channel]]
    return np.clip(m, 0.0, 1.0).astype(np.float32)


def mask_over_roi(mask: np.ndarray, full_w: int, full_h: int, roi: ROI) -> np.ndarray:
    """``mask`` stretched over a ``full_w`` x ``full_h`` image, sampled over ``roi`` (bilinear)."""
    from .geometry import sample_separable

    mh, mw = mask.shape
    s = roi.scale
    xs = (roi.x + np.arange(roi.width) + 0.5) / s * (mw / full_w) - 0.5
    ys = (roi.y + np.arange(roi.height) + 0.5) / s * (mh / full_h) - 0.5
    return sample_separable(mask, xs, ys)
