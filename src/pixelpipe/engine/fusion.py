"""Fusing consecutive modules into one Halide pipeline.

The export pipe does not need every module's output. On the CPU a run of
point-wise modules (exposure, colorin, sigmoid, colorout, gamma, ...) becomes
one kernel: intermediates are inlined and each pixel is read and written once.
On a GPU the whole same-scale chain (neighbourhood modules included) is one
pipeline, so buffers stay on the device between modules and cross the bus
once each way; Halide's Li2018 autoscheduler places the GPU stages.

Each module keeps its own inputs (prefixed ``m<k>_``) and its own built-ins
(input size and output offset), so a neighbourhood module in the chain clamps
to the region its predecessor produced, exactly as when it runs alone.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from . import halide_ops as ho
from .buffers import empty
from .convert import quantised
from .kernels import f32, get_kernel, source_tag_of, widen


def chain_variant(chain) -> str:
    return "|".join(f"{m.op}:{m.variant(p)}:{m.channels_in}>{m.channels_out}" for m, p in chain)


def build_chain(chain, device: str = "cpu", estimate=(4000, 3000), output_u8: bool = False):
    """Funcs for ``chain`` (list of (module, piece)); returns (output Func, argument list).

    ``output_u8``: end with the 8-bit quantisation (``convert.quantised``) of the
    display-encoded result, interleaved (numpy (H, W, 3)), as darktable's gamma does,
    so 8-bit exports move a quarter of the bytes and skip a pass.
    """
    hl = ho.hl
    first = chain[0][0]
    dims_in = 2 if first.channels_in == 1 else 3
    src = hl.ImageParam(hl.Float(32), dims_in, "input")
    f = hl.Func("in")
    f[tuple(ho.XYC[:dims_in])] = src[tuple(ho.XYC[:dims_in])]
    args = [src]
    stage_outputs = []
    inner_stages = []  # a staged module's per-pixel Funcs
    tables = []  # per-call tables (computed once, before the pixels)
    for k, (m, p) in enumerate(chain):
        builtins = {n: hl.Param(hl.Int(32), f"m{k}_{n}") for n in ho.BUILTINS}
        params = ho.declare_inputs(m.inputs, prefix=f"m{k}_", builtins=builtins)
        f = m.algorithm(f, params, p)
        stage_outputs.append(f)
        inner_stages.append(m.built_stages())
        tables += m.built_tables()
        args += [params[i.name] for i in m.inputs] + [builtins[n] for n in ho.BUILTINS]
    last_m, last_p = chain[-1]
    if output_u8:
        q = hl.Func("quantised")
        q[ho.c, ho.x, ho.y] = quantised(f[ho.x, ho.y, ho.c], 8)
        f = q
    if device == "cpu":
        if len(stage_outputs) == 1 and not output_u8:
            last_m.schedule(f, last_p)
        else:
            _schedule_fused_cpu(f, [g for g in stage_outputs if g is not f] + sum(inner_stages, []), tables)
    else:
        _schedule_gpu(f, stage_outputs, chain, inner_stages)
    return f, args


def _schedule_gpu(final, outputs, chain, inner) -> None:
    """``schedule_gpu`` for a chain: ``outputs[k]`` is the Func of ``chain[k]`` (module, piece),
    ``inner[k]`` its per-pixel stages."""
    groups, pending = [], []
    for k, (g, mp) in enumerate(zip(outputs, chain)):
        pending += inner[k]
        if g is final:
            break
        nxt = chain[k + 1] if k + 1 < len(chain) else None
        if not _gpu_pointwise(*mp) or (nxt is not None and not _gpu_pointwise(*nxt)):
            groups.append((g, pending))  # a neighbourhood stage, or the input of one: a kernel
            pending = []
        else:
            pending.append(g)
    schedule_gpu(final, pending, groups)


def _gpu_pointwise(m, piece) -> bool:
    return bool(m.pointwise_for(piece) or getattr(m, "staged", False))


def schedule_gpu(final, stages, roots=(), root_channels: int | None = 3) -> None:
    """GPU schedule: ``final`` and each Func of ``roots`` ((Func, its stages) pairs) is one
    kernel in 32x8 thread blocks, a pixel's channels per thread. The per-pixel Funcs
    listed with a kernel are computed per thread, in registers, inside it (inlined,
    steps that read all three channels of the previous one would recompute it three
    times per step); other Funcs (a neighbourhood stage's helpers) are inlined."""
    for f, inner in list(roots) + [(final, stages)]:
        if f is not final:
            f.compute_root()
        xi = _gpu_tile(f, 3 if f is final else root_channels)
        for g in inner:
            g.compute_at(f, xi)
            if g.dimensions() == 3:
                g.reorder(ho.c, ho.x, ho.y).bound(ho.c, 0, 3).unroll(ho.c)


#: GPU thread-block shape (x, y); PIXELPIPE_GPU_BLOCK=WxH overrides it (for tuning)
_GPU_BLOCK = tuple(int(v) for v in os.environ.get("PIXELPIPE_GPU_BLOCK", "32x8").split("x"))


def _gpu_tile(f, channels: int | None = 3):
    """32x8 thread blocks over (x, y); a third dimension (``channels`` long, unrolled; any
    length, looped, when None) is computed by each thread."""
    hl, x, y, c = ho.hl, ho.x, ho.y, ho.c
    xo, yo, xi, yi = hl.Var("gxo"), hl.Var("gyo"), hl.Var("gxi"), hl.Var("gyi")
    if f.dimensions() == 3:
        f.reorder(c, x, y)
        if channels is not None:
            f.bound(c, 0, channels).unroll(c)
    f.gpu_tile(x, y, xo, yo, xi, yi, *_GPU_BLOCK, ho.GUARD)
    return xi


def _schedule_fused_cpu(final, intermediates, tables=()) -> None:
    """Rows flow through the chain: for each output row every module's output (and every
    per-pixel stage of a staged module) is computed into a row buffer that stays in the
    cache for the next step, so the chain makes one pass over memory and each step keeps
    its own vectorised inner loop; strips of rows run in parallel."""
    hl, x, y, c = ho.hl, ho.x, ho.y, ho.c
    yo, yi = hl.Var("yo"), hl.Var("yi")
    # channels innermost and unrolled: per-pixel work shared by the three channels
    # (a tone curve's min/max/mid, a matrix's inputs) is computed once
    if final.dimensions() == 3:
        final.reorder(c, x, y).bound(c, 0, 3).unroll(c)
    final.split(y, yo, yi, 8, ho.GUARD).parallel(yo).vectorize(x, ho.VEC, ho.GUARD)
    for g in intermediates:
        g.compute_at(final, yi)
        if g.dimensions() == 3:
            g.reorder(c, x, y).unroll(c)
        g.vectorize(x, ho.VEC, ho.GUARD)
    for t in tables:
        t.compute_root().vectorize(x, ho.VEC, ho.GUARD)


def fused_kernel(chain, device: str = "cpu", output_u8: bool = False):
    """A kernel ``k(input, *per_module(args..., in_w, in_h, dx, dy), out)`` for ``chain``."""
    variant = chain_variant(chain) + (f"|block{_GPU_BLOCK}" if device != "cpu" else "")
    variant += "|u8" if output_u8 else ""
    name = "fused_" + hashlib.sha1(variant.encode()).hexdigest()[:12]
    return get_kernel(name, lambda: build_chain(chain, device, output_u8=output_u8), variant=variant,
                      device=device, source_tag=source_tag_of(*[type(m) for m, _ in chain]))


def chain_args(chain, rois) -> list:
    """Runtime arguments for ``chain`` given each stage's (roi_in, roi_out)."""
    args = []
    for (m, p), (rin, rout) in zip(chain, rois):
        args += m.runtime_args(p, rin, rout)
        sx = rout.x - int(round(rin.x * rout.scale / rin.scale))
        sy = rout.y - int(round(rin.y * rout.scale / rin.scale))
        args += [rin.width, rin.height, sx, sy]
    return args


def run_fused(chain, inp: np.ndarray, rois, device: str = "cpu", output_u8: bool = False) -> np.ndarray:
    """Run ``chain`` on ``inp``; (roi_in, roi_out) of each stage in ``rois``. Buffers with a row
    or column of one pixel are widened as in ``HalideModule.process`` (the kernels still get
    the true sizes from the regions) and the output cropped back. ``output_u8``: the result is
    the interleaved 8-bit (H, W, 3) quantisation of the chain's (3, H, W) output."""
    last_m, last_p = chain[-1]
    rout = rois[-1][1]
    h, w = inp.shape[-2:]
    thin = min(h, w, rout.width, rout.height) < 2
    if thin:
        inp = widen(inp)
        rout = rout.with_(width=max(2, rout.width), height=max(2, rout.height))
    args = [f32(inp)] + chain_args(chain, rois)
    if output_u8:
        out = empty((rout.height, rout.width, 3), np.uint8)
    else:
        out = empty(last_m.output_shape(last_p, rout), np.float32)
    fused_kernel(chain, device, output_u8)(*args, out)
    if thin:
        h, w = rois[-1][1].height, rois[-1][1].width
        return np.ascontiguousarray(out[:h, :w] if output_u8 else out[..., :h, :w])
    return out
