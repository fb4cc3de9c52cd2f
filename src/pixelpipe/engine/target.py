"""Halide targets: which device a pipe runs on."""
from __future__ import annotations

import functools
import os
import sys

import halide as hl

from ..errors import PixelpipeError

DEVICES = ("cpu", "cuda", "auto", "metal", "vulkan", "opencl")

_GPU_FEATURE = {
    "cuda": "CUDA",
    "metal": "Metal",
    "vulkan": "Vulkan",
    "opencl": "OpenCL",
}


@functools.lru_cache(maxsize=None)
def host_target() -> hl.Target:
    return hl.get_host_target()


def gpu_target(device: str) -> hl.Target:
    feat = getattr(hl.TargetFeature, _GPU_FEATURE[device])
    t = host_target().with_feature(feat)
    if device == "cuda":
        # sm_80 covers Ampere and newer; PTX is JIT-upgraded by the driver for Hopper.
        t = t.with_feature(hl.TargetFeature.CUDACapability80)
    return t


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    """True where a CUDA driver library can be loaded (no GPU work done)."""
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0:
                return count.value > 0
        except Exception:  # noqa: BLE001 - any driver oddity means "no CUDA"
            return False
    return False


def resolve_device(device: str | None) -> str:
    """Map the user's --device choice onto what this computer can run.

    ``auto`` picks CUDA where a driver and GPU are present, else the CPU.
    Metal/Vulkan/OpenCL are experimental: asked for explicitly they are tried,
    and the caller falls back to the CPU with a notice where they fail.
    """
    device = (device or os.environ.get("PIXELPIPE_DEVICE") or "cpu").lower()
    if device not in DEVICES:
        raise PixelpipeError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        print("pixelpipe: notice: no CUDA device found, running on the CPU", file=sys.stderr)
        return "cpu"
    return device


def target_for(device: str) -> hl.Target:
    return host_target() if device == "cpu" else gpu_target(device)
