"""Buffer conversions at the edge of the pipe: planar float -> interleaved integers for writers.

The pipe's output is planar float32 (3, H, W); image writers want interleaved
(H, W, 3) 8- or 16-bit samples. In NumPy the transposed, strided clip-scale-round
of a 12 MP image costs a few hundred milliseconds on one core; as one Halide kernel
(rows in parallel, vectorised) it is a single pass over memory.
"""
from __future__ import annotations

import numpy as np

from . import halide_ops as ho
from .buffers import empty
from .kernels import get_kernel, source_tag_of


def quantised(v, bits: int):
    """The integer sample of the float ``v``: ``v * max + 0.5`` clamped to [0, max] and truncated
    (round half up); NaN gives 0, +-inf the ends (as ``io.writers.quantise``)."""
    hl = ho.hl
    top = float((1 << bits) - 1)
    v = hl.select(hl.is_nan(v), hl.f32(0), v)
    return hl.cast(hl.UInt(bits), hl.clamp(v * hl.f32(top) + hl.f32(0.5), hl.f32(0), hl.f32(top)))


def _build(bits: int):
    def build():
        hl, x, y, c = ho.hl, ho.x, ho.y, ho.c
        src = hl.ImageParam(hl.Float(32), 3, "planar")  # (x, y, c)
        out = hl.Func("interleaved")  # (c, x, y): numpy (H, W, 3)
        out[c, x, y] = quantised(src[x, y, c], bits)
        out.bound(c, 0, 3).reorder(c, x, y).unroll(c)
        out.vectorize(x, ho.VEC, ho.GUARD).parallel(y, 16, ho.GUARD)
        return out, [src]
    return build


def quantise_planar(planar: np.ndarray, bits: int) -> np.ndarray:
    """Planar float32 ``(3, H, W)`` -> interleaved ``(H, W, 3)`` uint8/uint16 (see :func:`quantised`)."""
    import sys

    k = get_kernel(f"quantise_u{bits}", _build(bits), variant=str(bits),
                   source_tag=source_tag_of(sys.modules[__name__]))
    _, h, w = planar.shape
    out = empty((h, w, 3), np.uint8 if bits == 8 else np.uint16)
    k(np.ascontiguousarray(planar, dtype=np.float32), out)
    return out


def fast_path(rgb: np.ndarray) -> np.ndarray | None:
    """The planar C-contiguous float32 array behind an ``(H, W, 3)`` view, when there is one."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.float32:
        return None
    planar = rgb.transpose(2, 0, 1)
    if not planar.flags.c_contiguous or min(planar.shape[1:]) < 2:
        return None
    return planar
