"""Carrying points and masks through the distortion chain of a pipe.

Points are ``(N, 2)`` arrays of ``(x, y)`` at full resolution (scale 1),
continuous coordinates with pixel edges at integers (pixel ``i`` covers
``[i, i+1)``, its centre is ``i + 0.5``), as modules' ``distort_transform``
and ``distort_backtransform`` expect. A region of interest at scale ``s``
holds pixel ``(j, i)`` at full-resolution centre ``((roi.x + j + 0.5) / s,
(roi.y + i + 0.5) / s)``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..modules.base import ROI

Transform = Callable[[np.ndarray], np.ndarray]


def distorting(stages) -> list:
    """The stages whose module moves pixels (darktable's DISTORT tag)."""
    return [st for st in stages if st.module.is_distorting()]


def forward(stages, pts: np.ndarray) -> np.ndarray:
    """Input-space points -> the output space of the last of ``stages``."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    for st in distorting(stages):
        p = np.asarray(st.module.distort_transform(st.piece, p), dtype=np.float64).reshape(-1, 2)
    return p


def backward(stages, pts: np.ndarray) -> np.ndarray:
    """Output space of the last of ``stages`` -> the input space of the first."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    for st in reversed(distorting(stages)):
        p = np.asarray(st.module.distort_backtransform(st.piece, p), dtype=np.float64).reshape(-1, 2)
    return p


class Geometry:
    """Where a mask is drawn: the input image size and the ROI of one module's output."""

    def __init__(self, width: int, height: int, roi: ROI, stages: Sequence = ()):
        self.width, self.height = int(width), int(height)
        self.roi = roi
        self.stages = list(stages)
        self.unit = float(min(self.width, self.height))  # sizes are fractions of the shorter side

    # normalised input coordinates <-> input pixels
    def to_px(self, pts) -> np.ndarray:
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2) * [self.width, self.height]

    def to_roi(self, pts_px: np.ndarray) -> np.ndarray:
        """Input pixels -> ROI pixel coordinates (continuous, centres at +0.5)."""
        p = forward(self.stages, pts_px)
        return p * self.roi.scale - [self.roi.x, self.roi.y]

    def roi_centres_to_input(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Input-pixel coordinates of the centres of ROI pixels [x0, x1) x [y0, y1), row-major."""
        s = self.roi.scale
        xs = (self.roi.x + np.arange(x0, x1) + 0.5) / s
        ys = (self.roi.y + np.arange(y0, y1) + 0.5) / s
        gx, gy = np.meshgrid(xs, ys)
        return backward(self.stages, np.stack([gx.ravel(), gy.ravel()], axis=1))

    @property
    def px_scale(self) -> float:
        """ROI pixels per input pixel (distortions assumed locally area-preserving)."""
        return self.roi.scale


def bbox_of(pts: np.ndarray, w: int, h: int, margin: float) -> tuple[int, int, int, int] | None:
    """Integer box [x0, x1) x [y0, y1) of ROI pixels covering ``pts`` plus ``margin``, or None."""
    if len(pts) == 0 or not np.isfinite(pts).all():
        return None
    x0 = int(np.floor(pts[:, 0].min() - margin))
    x1 = int(np.ceil(pts[:, 0].max() + margin)) + 1
    y0 = int(np.floor(pts[:, 1].min() - margin))
    y1 = int(np.ceil(pts[:, 1].max() + margin)) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def sample_bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``img`` (H, W) at continuous pixel coordinates (u, v) (centres at integers), edges repeated."""
    h, w = img.shape
    u = np.clip(np.asarray(u, dtype=np.float64), 0, w - 1)
    v = np.clip(np.asarray(v, dtype=np.float64), 0, h - 1)
    x0 = np.floor(u).astype(np.int64)
    y0 = np.floor(v).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx, fy = u - x0, v - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def sample_separable(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample on the grid ``v[:, None] x u[None, :]`` (rows v, columns u)."""
    h, w = img.shape
    u = np.clip(np.asarray(u, dtype=np.float64), 0, w - 1)
    v = np.clip(np.asarray(v, dtype=np.float64), 0, h - 1)
    x0 = np.floor(u).astype(np.int64)
    y0 = np.floor(v).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx, fy = (u - x0)[None, :], (v - y0)[:, None]
    rows0, rows1 = img[y0], img[y1]
    top = rows0[:, x0] * (1 - fx) + rows0[:, x1] * fx
    bot = rows1[:, x0] * (1 - fx) + rows1[:, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def carry_mask(mask: np.ndarray, roi_src: ROI, stages_between, roi_dst: ROI) -> np.ndarray:
    """A mask over ``roi_src`` (output space of a producer) as seen over ``roi_dst`` (output
    space of a later module), through the distorting ``stages_between`` (the stages after
    the producer up to and including the consumer); bilinear, edges repeated."""
    sd, ss = roi_dst.scale, roi_src.scale
    if not distorting(stages_between):
        if roi_src == roi_dst:
            return mask
        xs = (roi_dst.x + np.arange(roi_dst.width) + 0.5) / sd * ss - roi_src.x - 0.5
        ys = (roi_dst.y + np.arange(roi_dst.height) + 0.5) / sd * ss - roi_src.y - 0.5
        return sample_separable(mask, xs, ys)
    out = np.empty((roi_dst.height, roi_dst.width), np.float32)
    rows = max(1, (1 << 20) // max(1, roi_dst.width))
    xs = (roi_dst.x + np.arange(roi_dst.width) + 0.5) / sd
    for y0 in range(0, roi_dst.height, rows):
        y1 = min(roi_dst.height, y0 + rows)
        ys = (roi_dst.y + np.arange(y0, y1) + 0.5) / sd
        gx, gy = np.meshgrid(xs, ys)
        p = backward(stages_between, np.stack([gx.ravel(), gy.ravel()], axis=1))
        u = p[:, 0] * ss - roi_src.x - 0.5
        v = p[:, 1] * ss - roi_src.y - 0.5
        out[y0:y1] = sample_bilinear(mask, u, v).reshape(y1 - y0, -1)
    return out
