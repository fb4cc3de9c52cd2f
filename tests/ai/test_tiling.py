"""Tiled inference: identical to untiled when the receptive field fits the overlap; OOM retry."""
from __future__ import annotations

import numpy as np
import pytest

from aitest_helpers import bayer_model, box_blur, upscaler
from pixelpipe import prefs
from pixelpipe.ai import load_session, tiling
from pixelpipe.errors import AIError

pytest.importorskip("onnxruntime")


def _img(h, w, c=3, seed=0):
    return np.random.default_rng(seed).random((1, c, h, w), dtype=np.float32)


def _session(tmp_path, data, name="m.onnx"):
    p = tmp_path / name
    p.write_bytes(data)
    return load_session(p, provider="cpu")


def test_ladders_and_overlaps():
    assert tiling.LADDER_X1 == (2048, 1536, 1024, 768, 512, 384, 256)
    assert tiling.LADDER_SR == (768, 512, 384, 256, 192)
    assert (tiling.OVERLAP_DENOISE, tiling.OVERLAP_UPSCALE) == (64, 16)


def test_choose_tile_from_memory():
    assert tiling.choose_tile(1, budget=10 << 40) == 2048
    assert tiling.choose_tile(1, budget=tiling.estimate_bytes(768, 1)) == 768
    assert tiling.choose_tile(1, budget=tiling.estimate_bytes(768, 1) - 1) == 512
    assert tiling.choose_tile(2, budget=10 << 40) == 768
    assert tiling.choose_tile(2, budget=1) == 192
    assert tiling.available_memory() > 0
    with open("/proc/meminfo") as fh:
        avail = next(int(l.split()[1]) for l in fh if l.startswith("MemAvailable:"))
    assert abs(tiling.available_memory() - avail * 1024) < (1 << 30)


def test_mirror_matches_numpy_reflect():
    idx = np.arange(-7, 12)
    ref = np.pad(np.arange(5), 7, mode="reflect")[: len(idx)]
    np.testing.assert_array_equal(tiling._mirror(idx, 5), ref)


def test_denoise_tiled_equals_untiled(enable_ai, tmp_path):
    x = _img(300, 250)
    untiled = _session(tmp_path, box_blur(5)).run({"input": x})["output"]
    s = _session(tmp_path, box_blur(5), "t.onnx")
    calls = []
    tiled = tiling.run_tiled(s, x, scale=1, overlap=64, tile=192, progress=lambda d, t: calls.append((d, t)))
    assert s.tile == 192  # the session was pinned to the tile size
    assert calls[-1] == (len(calls), 5 * 4)  # 64 px steps over 300 x 250
    assert tiled.shape == untiled.shape
    assert np.abs(tiled - untiled).max() <= 1e-6


def test_upscale_tiled_equals_untiled(enable_ai, tmp_path):
    x = _img(90, 130, seed=3)
    untiled = _session(tmp_path, upscaler(2)).run({"input": x})["output"]
    tiled = tiling.run_tiled(_session(tmp_path, upscaler(2), "t.onnx"), x, scale=2, overlap=16, tile=64)
    assert tiled.shape == (1, 3, 180, 260)
    assert np.abs(tiled - untiled).max() <= 1e-6
    # a 3-D input comes back 3-D
    assert tiling.run_tiled(_session(tmp_path, upscaler(2), "u.onnx"), x[0], 2, 16, tile=64).shape == (3, 180, 260)


def test_sigma_map_is_tiled_with_the_image(enable_ai, tmp_path):
    x = _img(150, 170, seed=5)
    sigma = np.random.default_rng(9).random((1, 1, 150, 170), dtype=np.float32)
    untiled = _session(tmp_path, box_blur(5, num_inputs=2)).run({"input": x, "sigma": sigma})["output"]
    s = _session(tmp_path, box_blur(5, num_inputs=2), "t.onnx")
    tiled = tiling.run_tiled(s, x, 1, 64, tile=192, extra_inputs={"sigma": sigma})
    assert np.abs(tiled - untiled).max() <= 1e-6


def test_fixed_size_model_uses_its_tile(enable_ai, tmp_path):
    s = _session(tmp_path, bayer_model(32))
    assert s.static_tile == 32
    x = _img(50, 70, c=4)
    out = tiling.run_tiled(s, x, scale=2, overlap=8, tile=1024)
    assert out.shape == (1, 3, 100, 140)
    # the model copies packed channel k%4 into output pixel (2y+dy, 2x+dx) with k = c*4+dy*2+dx
    np.testing.assert_allclose(out[0, 0, ::2, ::2], x[0, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 1::2, 1::2], x[0, 3], atol=1e-6)


def test_small_image_uses_a_smaller_tile(enable_ai, tmp_path):
    s = _session(tmp_path, box_blur(5))
    x = _img(40, 30)
    out = tiling.run_tiled(s, x, 1, 64)
    assert s.tile == 192  # 40 + 2*64 rounded up to 64, not the 2048 ladder top
    np.testing.assert_allclose(out, _session(tmp_path, box_blur(5), "r.onnx").run({"input": x})["output"],
                               atol=1e-6)


class _OOMAbove:
    """Wraps a Session; 'runs out of memory' for tiles above ``limit``."""

    def __init__(self, inner, limit):
        self.inner, self.limit, self.tiles_tried = inner, limit, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def pin_tile(self, t):
        self.tiles_tried.append(t)
        self.inner.pin_tile(t)

    def run(self, feed):
        if self.inner.tile > self.limit:
            raise MemoryError("simulated allocation failure")
        return self.inner.run(feed)


def test_oom_retries_smaller_and_remembers(enable_ai, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tiling, "available_memory", lambda: 1 << 50)  # ladder top first
    inner = _session(tmp_path, box_blur(5))
    inner.cache_key = "denoise-test"
    s = _OOMAbove(inner, 384)
    x = _img(600, 520)
    out = tiling.run_tiled(s, x, 1, 64)
    assert s.tiles_tried == [768, 512, 384]  # 600+128 -> 768 (64-aligned, below 2048), then the ladder
    err = capsys.readouterr().err
    assert "out of memory at tile 768" in err and "retrying with tile 512" in err
    assert prefs.get("ai.tile_cache.denoise-test.1.cpu") == 384
    ref = _session(tmp_path, box_blur(5), "r.onnx").run({"input": x})["output"]
    assert np.abs(out - ref).max() <= 1e-6
    # next time the remembered size is used straight away
    s2 = _OOMAbove(inner, 384)
    tiling.run_tiled(s2, x, 1, 64)
    assert s2.tiles_tried == [384]


def test_oom_at_every_size_is_a_clear_error(enable_ai, tmp_path):
    s = _OOMAbove(_session(tmp_path, box_blur(5)), 0)
    with pytest.raises(AIError, match="out of memory even with tile size 256"):
        tiling.run_tiled(s, _img(300, 300), 1, 64, tile=512)


def test_bad_arguments(enable_ai, tmp_path):
    s = _session(tmp_path, box_blur(5))
    with pytest.raises(AIError, match="leaves nothing inside"):
        tiling.run_tiled(s, _img(300, 300), 1, 64, tile=128, ladder=[128])
    with pytest.raises(AIError, match=r"\[1,C,H,W\]"):
        tiling.run_tiled(s, np.zeros((2, 3, 8, 8), np.float32), 1, 64)
    with pytest.raises(AIError, match="is not 64x64"):
        tiling.run_tiled(_session(tmp_path, upscaler(2), "u.onnx"), _img(40, 40), scale=1, overlap=8,
                         tile=64)
