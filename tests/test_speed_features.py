"""Speed machinery that must not change results: fusion, tiling; and the persistent kernel cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import raw_file
from pixelpipe.io.decode import load
from pixelpipe.pipe.history import Edit
from pixelpipe.pipe.pipeline import Pipe

CHART = "canon_550d_magiclantern_colorchart.dng"


@pytest.fixture(scope="module")
def chart():
    return load(raw_file(CHART))


@pytest.mark.parametrize("workflow, orientation", [("scene-referred-sigmoid", 2), ("scene-referred-filmic", 0),
                                                   ("scene-referred-agx", 3), ("display-referred", -1)])
def test_fused_export_equals_module_by_module(chart, monkeypatch, workflow, orientation):
    """The CPU export pipe runs the per-pixel modules after demosaic (staged ones included,
    led by a mirroring flip) as one kernel; the result is the module-by-module one."""
    edit = Edit.default_for(chart, workflow)
    edit.set_params("flip", chart, orientation=orientation)
    fused = Pipe(chart, edit, "export")
    assert fused.fuse
    a = fused.render(width=600)
    runs = [k.split("+") for k in fused.last.seconds if "+" in k]
    tone = {"scene-referred-sigmoid": "sigmoid", "scene-referred-filmic": "filmicrgb",
            "scene-referred-agx": "agx", "display-referred": "basecurve"}[workflow]
    assert any(r[0] == "flip" and tone in r and r[-1] == "gamma" for r in runs), runs
    monkeypatch.setenv("PIXELPIPE_NO_FUSION", "1")
    plain = Pipe(chart, edit, "export")
    assert not plain.fuse
    b = plain.render(width=600)
    assert not any("+" in k for k in plain.last.seconds)
    np.testing.assert_allclose(a, b, atol=2e-6)
    # every module still counts as executed
    assert fused.last.executed == plain.last.executed


def test_swapping_flip_is_not_fused(chart):
    """A rotation by 90 degrees would read an input column per output row: its own kernel."""
    edit = Edit.default_for(chart)
    edit.set_params("flip", chart, orientation=6)
    p = Pipe(chart, edit, "export")
    p.render(width=300)
    assert "flip" in p.last.seconds and any(k.startswith("exposure+") for k in p.last.seconds)


@pytest.mark.parametrize("fuse, budget", [(True, None), (False, None), (True, 20 << 20)])
def test_8bit_render_is_the_quantised_float_render(chart, monkeypatch, fuse, budget):
    """``render(u8=True)`` (the last fused kernel quantises; otherwise the edge conversion;
    in bands too) gives exactly the writers' rounding of the float render."""
    from pixelpipe.engine.convert import quantise_planar

    if not fuse:
        monkeypatch.setenv("PIXELPIPE_NO_FUSION", "1")
    edit = Edit.default_for(chart)
    want = quantise_planar(Pipe(chart, edit, "export").render(width=500, memory_budget=budget), 8)
    p = Pipe(chart, edit, "export")
    got = p.render(width=500, memory_budget=budget, u8=True)
    assert got.dtype == np.uint8 and got.shape == want.shape and got.shape[2] == 3
    assert (p.last.tiles > 1) == (budget is not None)
    assert any(k.endswith("+gamma") for k in p.last.seconds) == fuse
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("width", [None, 700])
def test_tiled_render_equals_untiled(chart, width):
    edit = Edit.default_for(chart)
    whole = Pipe(chart, edit, "export").render(width=width, memory_budget=1 << 40)
    p = Pipe(chart, edit, "export")
    tiled = p.render(width=width, memory_budget=20 << 20)  # 20 MB: forces bands
    assert p.last.tiles > 1
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def _export_stats(tmp_path, cache, name):
    env = dict(os.environ, PIXELPIPE_KERNEL_CACHE=str(cache), PIXELPIPE_KERNEL_STATS="1")
    r = subprocess.run([sys.executable, "-m", "pixelpipe.cli", "export", str(raw_file(CHART)),
                        str(tmp_path / name), "--width", "300"], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stderr.splitlines() if l.startswith("pixelpipe: kernel stats ")][-1]
    return json.loads(line.split("pixelpipe: kernel stats ", 1)[1])


def test_second_process_compiles_nothing(tmp_path):
    from pixelpipe.engine.kernels import _aot_possible

    if not _aot_possible():
        pytest.skip("no C++ compiler or Python headers here: kernels are JIT-compiled per process")
    cache = tmp_path / "kernels"
    first = _export_stats(tmp_path, cache, "a.jpg")
    assert first["compiled"] > 0
    second = _export_stats(tmp_path, cache, "b.jpg")
    assert second["compiled"] == 0 and second["jit"] == 0
    assert second["loaded_from_disk"] == first["compiled"]
