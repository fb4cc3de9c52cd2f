"""Halide building blocks shared by modules: variables, pattern look-ups, resampling."""
from __future__ import annotations

import halide as hl
import numpy as np

from .kernels import f32, get_kernel, source_tag_of

x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
xo, yo, xi, yi = hl.Var("xo"), hl.Var("yo"), hl.Var("xi"), hl.Var("yi")

VEC = 16  # float32 lanes for AVX-512; Halide splits for narrower targets


GUARD = hl.TailStrategy.GuardWithIf  # any size works, down to 1x1; steady state stays unguarded


def rows(f: hl.Func) -> hl.Func:
    """CPU schedule of an output: strips of rows in parallel, x vectorised."""
    return f.vectorize(x, VEC, GUARD).parallel(y, 8, GUARD)


def schedule_point_rgb(f: hl.Func) -> None:
    """A point-wise planar RGB stage: per channel plane, rows in parallel."""
    rows(f.reorder(x, y, c))


def schedule_point_2d(f: hl.Func) -> None:
    rows(f)


def pattern_lut(cfa_pattern: np.ndarray, per_colour: np.ndarray) -> np.ndarray:
    """Per-CFA-position values: lut[j, i] = per_colour[pattern[j, i]] (float32)."""
    return f32(np.asarray(per_colour, dtype=np.float64)[np.asarray(cfa_pattern)])


# --------------------------------------------------------------------------- resampling

def _taps(n_out: int, start_out: int, factor: float, start_in: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Area (box-overlap) weights for one axis.

    Output pixel X (absolute, in the output's scaled space) covers input
    coordinates [X/factor, (X+1)/factor) (absolute, input's scaled space).
    For upscaling (factor > 1) a tent of one input pixel is used instead.
    Returns (indices, weights) of shape (n_out, K) relative to the input buffer.
    """
    X = np.arange(start_out, start_out + n_out, dtype=np.float64)
    if factor <= 1.0:
        lo = X / factor
        hi = (X + 1) / factor
        first = np.floor(lo).astype(np.int64)
        K = int(np.ceil(1.0 / factor)) + 1
        idx = first[:, None] + np.arange(K)[None, :]
        w = np.clip(np.minimum(idx + 1, hi[:, None]) - np.maximum(idx, lo[:, None]), 0, None)
    else:
        centre = (X + 0.5) / factor - 0.5
        first = np.floor(centre).astype(np.int64)
        frac = centre - first
        idx = np.stack([first, first + 1], axis=1)
        w = np.stack([1 - frac, frac], axis=1)
    idx = idx - start_in
    idx = np.clip(idx, 0, n_in - 1)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(idx, dtype=np.int32), f32(w)


def _build_resample():
    inp = hl.ImageParam(hl.Float(32), 3, "inp")
    ix = hl.ImageParam(hl.Int(32), 2, "ix")  # [k, x]
    wx = hl.ImageParam(hl.Float(32), 2, "wx")
    iy = hl.ImageParam(hl.Int(32), 2, "iy")  # [k, y]
    wy = hl.ImageParam(hl.Float(32), 2, "wy")
    kx = hl.RDom([(0, ix.dim(0).extent())], "kx")
    ky = hl.RDom([(0, iy.dim(0).extent())], "ky")
    horizontal = hl.Func("horizontal")
    horizontal[x, y, c] = hl.f32(0)
    horizontal[x, y, c] += wx[kx, x] * inp[hl.clamp(ix[kx, x], 0, inp.dim(0).extent() - 1), y, c]
    out = hl.Func("resampled")
    out[x, y, c] = hl.f32(0)
    out[x, y, c] += wy[ky, y] * horizontal[x, hl.clamp(iy[ky, y], 0, inp.dim(1).extent() - 1), c]
    # horizontal pass over all needed input rows, then vertical; both parallel over rows
    rows(horizontal.compute_root().reorder(x, y, c))
    horizontal.update(0).reorder(x, kx, y, c).parallel(y, 8, GUARD).vectorize(x, VEC, GUARD)
    rows(out.compute_root().reorder(x, y, c))
    out.update(0).reorder(x, ky, y, c).parallel(y, 8, GUARD).vectorize(x, VEC, GUARD)
    return out, [inp, ix, wx, iy, wy]


def resample(img: np.ndarray, in_x: int, in_y: int, in_scale: float,
             out_x: int, out_y: int, out_w: int, out_h: int, out_scale: float,
             device: str = "cpu") -> np.ndarray:
    """Resample planar (3, H, W) ``img`` covering a region starting at
    (in_x, in_y) of a buffer at ``in_scale`` onto the output region at ``out_scale``."""
    factor = out_scale / in_scale
    ch, h, w = img.shape
    # at least 2 x 2 computed (thin arrays are read with their axes swapped: kernels.widen), cropped after
    ow, oh = max(out_w, 2), max(out_h, 2)
    ixs, wxs = _taps(ow, out_x, factor, in_x, w)
    iys, wys = _taps(oh, out_y, factor, in_y, h)
    k = get_kernel("resample", _build_resample, device=device, source_tag=source_tag_of(_build_resample))
    out = np.empty((ch, oh, ow), np.float32)
    k(f32(img), ixs, wxs, iys, wys, out)
    return out if (ow, oh) == (out_w, out_h) else np.ascontiguousarray(out[:, :out_h, :out_w])


# --------------------------------------------------------------------------- module inputs

XYC = (x, y, c)
#: inputs every module kernel receives after its own: input size and output offset
BUILTINS = ("in_w", "in_h", "dx", "dy")


def declare_inputs(inputs, prefix: str = "", builtins: dict | None = None) -> dict:
    """hl.Param/ImageParam objects for a module's declared inputs (+ the built-ins).

    ``prefix`` keeps argument names unique when several modules are fused;
    ``builtins`` shares one set of in_w/in_h/dx/dy between fused point-wise modules.
    """
    types = {"f32": hl.Float(32), "i32": hl.Int(32), "buf_f32": hl.Float(32), "buf_i32": hl.Int(32)}
    p = {}
    for i in inputs:
        if i.kind.startswith("buf_"):
            p[i.name] = hl.ImageParam(types[i.kind], i.dims, prefix + i.name)
        else:
            p[i.name] = hl.Param(types[i.kind], prefix + i.name)
    for n in BUILTINS:
        p[n] = builtins[n] if builtins is not None else hl.Param(hl.Int(32), n)
    return p


def clamped(inp: hl.Func, p: dict) -> hl.Func:
    """The module input with edges repeated beyond the buffer (for neighbourhood algorithms)."""
    return hl.BoundaryConditions.repeat_edge(inp, [(0, p["in_w"]), (0, p["in_h"])])


# --------------------------------------------------------------------------- GPU schedules

_li2018_loaded = False


def gpu_autoschedule(out: hl.Func, src: hl.ImageParam, chain, params_all, device: str, estimate) -> None:
    """Schedule ``out`` (and everything it calls) for a GPU with the Li2018 autoscheduler.

    The modules' hand-written schedules target CPUs; Li2018, shipped with the
    Halide wheel, needs only size estimates and handles GPU block/thread
    placement for any algorithm.
    """
    import os

    from .target import target_for

    global _li2018_loaded
    if not _li2018_loaded:
        hl.load_plugin(os.path.join(os.path.dirname(hl.__file__), "lib64", "libautoschedule_li2018.so"))
        _li2018_loaded = True
    w, h = estimate
    dims = src.dimensions()
    src.set_estimates([(0, w), (0, h)] + ([(0, 3)] if dims == 3 else []))
    for (m, _), params in zip(chain, params_all):
        for i in m.inputs:
            v = params[i.name]
            if i.kind.startswith("buf_"):
                v.set_estimates([(0, 16)] * i.dims)
            elif i.kind == "i32":
                v.set_estimate(0)
            else:
                v.set_estimate(1.0)
        for n in ("in_w", "in_h"):
            params[n].set_estimate(w if n == "in_w" else h)
        for n in ("dx", "dy"):
            params[n].set_estimate(0)
    out.set_estimates([(0, w), (0, h)] + ([(0, 3)] if out.dimensions() == 3 else []))
    hl.Pipeline(out).apply_autoscheduler(target_for(device), hl.AutoschedulerParams("Li2018", {}))
