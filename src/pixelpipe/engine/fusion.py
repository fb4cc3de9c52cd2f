"""Fusing consecutive point-wise modules into one Halide pipeline.

The export pipe does not need every module's output, so a run of point-wise
modules (output pixel from the same input pixel: exposure, colorin, sigmoid,
colorout, gamma, ...) is compiled as one kernel: every intermediate is inlined
and each pixel is read and written once, instead of once per module.
"""
from __future__ import annotations

import hashlib

import numpy as np

from . import halide_ops as ho
from .kernels import f32, get_kernel, source_tag_of


def fused_kernel(chain, device: str = "cpu"):
    """A kernel ``k(input, *args_of_each_module, in_w, in_h, dx, dy, out)`` for ``chain``,
    a list of (module, piece) pairs of point-wise HalideModules."""
    variant = "|".join(f"{m.op}:{m.variant(p)}:{m.channels_in}>{m.channels_out}" for m, p in chain)
    name = "fused_" + hashlib.sha1(variant.encode()).hexdigest()[:12]

    def build():
        hl = ho.hl
        first = chain[0][0]
        dims_in = 2 if first.channels_in == 1 else 3
        src = hl.ImageParam(hl.Float(32), dims_in, "input")
        f = hl.Func("in")
        f[tuple(ho.XYC[:dims_in])] = src[tuple(ho.XYC[:dims_in])]
        builtins = {n: hl.Param(hl.Int(32), n) for n in ho.BUILTINS}
        args = [src]
        for k, (m, p) in enumerate(chain):
            params = ho.declare_inputs(m.inputs, prefix=f"m{k}_", builtins=builtins)
            f = m.algorithm(f, params, p)
            args += [params[i.name] for i in m.inputs]
        last_m, last_p = chain[-1]
        last_m.schedule(f, last_p)
        return f, args + [builtins[n] for n in ho.BUILTINS]

    return get_kernel(name, build, variant=variant, device=device,
                      source_tag=source_tag_of(*[type(m) for m, _ in chain]))


def run_fused(chain, inp: np.ndarray, roi_in, roi_out, device: str = "cpu") -> np.ndarray:
    args = [f32(inp)]
    for m, p in chain:
        args += m.runtime_args(p, roi_in, roi_out)
    h, w = inp.shape[-2:]
    args += [w, h, 0, 0]
    last_m, last_p = chain[-1]
    out = np.empty(last_m.output_shape(last_p, roi_out), np.float32)
    fused_kernel(chain, device)(*args, out)
    return out
