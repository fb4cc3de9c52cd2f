"""CPU and GPU exports of the same edit agree (issue 5): mean CIEDE2000 <= 0.05, max <= 1.

Runs where a CUDA device is present (Halide's CUDA target); elsewhere it is
skipped with the reason. The GPU pipe compiles the whole same-scale chain as
one Halide pipeline with the GPU schedules; the CPU pipe runs module by module.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import raw_file
from pixelpipe.engine.kernels import kernel_cache_dir
from pixelpipe.engine.target import cuda_available
from pixelpipe.io.decode import load
from pixelpipe.pipe.history import Edit
from pixelpipe.pipe.pipeline import Pipe

CHART = "canon_550d_magiclantern_colorchart.dng"

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no CUDA driver or GPU on this machine: "
                                "the CPU/GPU parity test needs one")]


def delta_e00(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 between two display-encoded sRGB images (3, H, W) in [0, 1]."""
    import colour

    def lab(img):
        rgb = np.moveaxis(np.clip(img, 0, 1), 0, -1).astype(np.float64)
        xyz = colour.sRGB_to_XYZ(rgb)
        return colour.XYZ_to_Lab(xyz, colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])

    return colour.delta_E(lab(a), lab(b), method="CIE 2000")


@pytest.mark.parametrize("workflow", ["scene-referred-sigmoid", "scene-referred-filmic"])
def test_cpu_and_gpu_exports_agree(workflow):
    img = load(raw_file(CHART))
    edit = Edit.default_for(img, workflow=workflow)
    cpu = Pipe(img, edit, "export", device="cpu").render()
    gpu_pipe = Pipe(img, edit, "export", device="cuda")
    assert gpu_pipe.device == "cuda"
    gpu = gpu_pipe.render()
    assert gpu.shape == cpu.shape and np.isfinite(gpu).all()
    # the GPU pipe ran its same-scale chains as fused CUDA kernels
    assert any("+" in label for label in gpu_pipe.last.seconds), gpu_pipe.last.seconds
    assert any((kernel_cache_dir() / "cuda").iterdir())
    de = delta_e00(cpu, gpu)
    print(f"{workflow}: CPU vs GPU mean dE00 {de.mean():.6f}, max {de.max():.5f}, "
          f"max |difference| {np.abs(cpu - gpu).max():.2e}; stages {list(gpu_pipe.last.seconds)}")
    assert de.mean() <= 0.05 and de.max() <= 1.0
