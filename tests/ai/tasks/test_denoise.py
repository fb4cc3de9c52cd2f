"""The denoise task: darktable's conventions (sRGB curve, NCHW, 64 px overlap, sigma map,
detail recovery), the TIFF + group sidecar output, and FFDNet on a real raw."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aitest_helpers import box_blur_reference, cli
from task_helpers import flat_noise, install_real, tiny

from pixelpipe.ai.tasks import common, denoise
from pixelpipe.ai.tasks.wavelets import bands


def test_srgb_curve_round_trip_and_slope():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(common.srgb_decode(common.srgb_encode(x)), x, atol=2e-6)
    assert common.srgb_encode(np.float32(0.0031308)) == pytest.approx(0.04045, abs=1e-5)
    h = 1e-4
    xs = np.array([0.001, 0.01, 0.2, 0.8], np.float32)
    num = (common.srgb_encode(xs + h) - common.srgb_encode(xs - h)) / (2 * h)
    assert np.allclose(common.srgb_slope(xs), num, rtol=2e-2)


def test_wavelet_bands_reconstruct_and_detail_recovery():
    rng = np.random.default_rng(0)
    img = rng.random((37, 53)).astype(np.float32)
    bs, res = bands(img, 5)
    assert np.allclose(sum(bs) + res, img, atol=1e-5)
    noisy = rng.random((3, 40, 40)).astype(np.float32)
    den = np.full_like(noisy, 0.5)
    assert denoise.detail_recovery(noisy, den, 0.0) is den
    out = denoise.detail_recovery(noisy, den, 1.0)
    # the same detail is added to R, G and B; thresholds keep it smaller than the residual
    d = out - den
    assert np.allclose(d[0], d[1]) and np.allclose(d[1], d[2])
    resid = common.luminance(noisy) - common.luminance(den)
    assert np.abs(d[0]).mean() < np.abs(resid - resid.mean()).mean()


def test_sigma_estimate_on_white_noise():
    rng = np.random.default_rng(1)
    img = np.full((3, 256, 256), 0.5, np.float32) + rng.normal(0, 10 / 255, (3, 256, 256)).astype(np.float32)
    # the luminance of independent channels has sigma * sqrt(sum of squared weights)
    expect = 10 * np.sqrt(0.2126 ** 2 + 0.7152 ** 2 + 0.0722 ** 2)
    assert denoise.estimate_sigma(img) == pytest.approx(expect, rel=0.1)


def test_protocol_with_a_stand_in_model(ai_on):
    """NCHW in [0, 1] after the sRGB curve, sigma map of sigma/255, output decoded: the stand-in
    (5x5 box blur + sigma) gives exactly the NumPy reference, tiled or not."""
    m = tiny(ai_on, "denoise")
    s = common.session_for(m)
    rng = np.random.default_rng(2)
    lin = rng.random((3, 150, 170)).astype(np.float32)
    enc = common.srgb_encode(lin)
    ref = box_blur_reference(enc[None])[0] + np.float32(10 / 255)
    got_untiled = denoise.denoise_encoded(s, enc, 10.0, tiled=False)
    got_tiled = denoise.denoise_encoded(s, enc, 10.0, tile=192)  # 3x3 tiles with 64 px overlap
    assert np.allclose(got_untiled, ref, atol=1e-5)
    assert np.allclose(got_tiled, ref, atol=1e-5)
    out = denoise.denoise_linear(s, lin, sigma=10.0)
    assert np.allclose(out, common.srgb_decode(np.clip(ref, 0, 1)), atol=1e-5)
    half = denoise.denoise_linear(s, lin, sigma=10.0, strength=0.5)
    assert np.allclose(half, 0.5 * out + 0.5 * lin, atol=1e-5)
    # a spatially varying sigma map reaches the model pixel for pixel
    smap = np.linspace(0, 50, 150 * 170, dtype=np.float32).reshape(150, 170)
    got = denoise.denoise_encoded(s, enc, smap)
    assert np.allclose(got - box_blur_reference(enc[None])[0], smap / 255, atol=1e-5)


def test_model_that_does_not_fit_the_task_is_refused_at_load(ai_on):
    from aitest_helpers import upscaler

    from pixelpipe.errors import AIError

    m = tiny(ai_on, "denoise")
    (m.path / "model.onnx").write_bytes(upscaler(2))  # an x2 upscaler where a denoiser belongs
    with pytest.raises(AIError, match="does not fit task denoise"):
        common.session_for(m)


def test_cli_refuses_while_ai_is_off(tmp_path):
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    r = cli(["ai", "denoise", str(img)])
    assert r.returncode == 5 and "prefs set ai.enabled true" in r.stderr
    assert not list(tmp_path.glob("a_denoised*"))


def _png(path: Path, rng, h=96, w=128) -> Path:
    from PIL import Image

    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_file_output_tiff_and_group_sidecar(ai_on):
    import tifffile

    from pixelpipe.cli import main

    tiny(ai_on, "denoise")
    src = _png(ai_on / "photo.png", np.random.default_rng(3))
    assert main(["ai", "denoise", str(src), "--sigma", "15"]) == 0
    out = ai_on / "photo_denoised.tif"
    a = tifffile.imread(out)
    assert a.dtype == np.float32 and a.shape == (96, 128, 3)
    g = common.group_of(out)
    assert g["leader"] == out.name and g["source"] == "photo.png" and g["task"] == "denoise"
    assert g["model"] == "denoise-tiny" and g["settings"]["sigma"] == 15.0
    assert g["source_sha256"] == common.sha256_file(src)
    side = json.loads((ai_on / "photo_denoised.tif.pixelpipe.json").read_text())
    assert side["format"] == "pixelpipe-edit" and side["workflow"] == "none"
    # the developed TIFF re-opens as it is: the none workflow, linear input profile
    import pixelpipe

    ph = pixelpipe.open(out)
    assert ph.edit.workflow == "none"
    assert main(["ai", "denoise", str(src)]) == 4  # exists: refused without --overwrite


def test_interrupted_run_leaves_no_partial_file(ai_on, monkeypatch):
    from pixelpipe.cli import main
    from pixelpipe.io import writers

    tiny(ai_on, "denoise")
    src = _png(ai_on / "p.png", np.random.default_rng(4))

    def broken(tmp, *a, **k):
        Path(tmp).write_bytes(b"II*\x00partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, "_write_tiff", broken)
    assert main(["ai", "denoise", str(src)]) == 130
    assert sorted(p.name for p in ai_on.iterdir() if p.suffix != ".dtmodel" and p.is_file()) == ["p.png"]


@pytest.mark.realdata
def test_ffdnet_on_a_real_raw_keeps_the_level_and_removes_noise(ai_on, raws, tmp_path_factory):
    """darktable's way on a region of the 550D raw (the pipe renders it as linear Rec.709):
    the mean stays within 1 %, noise in flat patches drops at least 2x."""
    install_real("denoise-ffdnet", tmp_path_factory)
    src = raws / "canon_550d_magiclantern_colorchart.dng"
    before, after = denoise.denoise_preview(src, (500, 300, 480, 360), sigma=25.0)
    assert abs(after.mean() / before.mean() - 1) < 0.01
    nb, na = flat_noise(before, before), flat_noise(after, before)
    assert np.median(nb / np.maximum(na, 1e-9)) >= 2.0


def test_preview_of_a_region_equals_that_region_of_the_file(ai_on):
    """darktable's split preview, ours on a region: the region with 64 px of context through the
    user's pipe gives the same pixels as the whole-file result (stand-in model)."""
    import tifffile
    from PIL import Image

    from pixelpipe.cli import main

    tiny(ai_on, "denoise")
    src = _png(ai_on / "q.png", np.random.default_rng(8), 150, 200)
    assert main(["ai", "denoise", str(src), str(ai_on / "whole.tif"), "--sigma", "20", "--detail", "0.5"]) == 0
    whole = np.moveaxis(tifffile.imread(ai_on / "whole.tif"), 2, 0)
    before, after = denoise.denoise_preview(src, (70, 40, 60, 50), sigma=20.0, detail=0.5)
    assert after.shape == before.shape == (3, 50, 60)
    assert np.abs(after - whole[:, 40:90, 70:130]).max() < 1e-5
    assert not np.allclose(before, after)
    assert main(["ai", "denoise", str(src), str(ai_on / "prev.png"), "--preview", "70,40,60,50"]) == 0
    assert np.asarray(Image.open(ai_on / "prev.png")).shape == (50, 124, 3)
