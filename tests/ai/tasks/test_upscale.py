"""The upscale task: 16 px overlap tiling, x2/x4 files, refusals, RLFN on a real crop."""
from __future__ import annotations

import numpy as np
import pytest

from task_helpers import install_real, tiny

from pixelpipe.ai.tasks import common, upscale
from pixelpipe.errors import AIError


def _reference(enc, s):
    """The stand-in: 3x3 box blur (reflect) then nearest x s."""
    p = np.pad(enc, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    H, W = enc.shape[1:]
    blur = sum(p[:, i:i + H, j:j + W] for i in range(3) for j in range(3)) / 9
    return np.repeat(np.repeat(blur, s, 1), s, 2)


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_protocol_matches_the_reference(ai_on, scale):
    m = tiny(ai_on, "upscale")
    s = common.session_for(m, scale=scale)
    enc = np.random.default_rng(0).random((3, 70, 90)).astype(np.float32)
    ref = _reference(enc, scale)
    assert np.allclose(upscale.upscale_encoded(s, enc, scale, tiled=False), ref, atol=1e-5)
    assert np.allclose(upscale.upscale_encoded(s, enc, scale, tile=64), ref, atol=1e-5)  # 16 px overlap


def test_file_and_refusals(ai_on):
    import tifffile
    from PIL import Image

    from pixelpipe.cli import main

    tiny(ai_on, "upscale")
    src = ai_on / "small.png"
    Image.fromarray((np.random.default_rng(1).random((40, 60, 3)) * 255).astype(np.uint8)).save(src)
    assert main(["ai", "upscale", "--scale", "4", str(src), str(ai_on / "out")]) == 0
    a = tifffile.imread(ai_on / "out" / "small_x4.tif")
    assert a.shape == (160, 240, 3) and a.dtype == np.float32
    g = common.group_of(ai_on / "out" / "small_x4.tif")
    assert g["task"] == "upscale" and g["settings"]["scale"] == 4 and g["source"] == "../small.png"
    assert main(["ai", "upscale", "--scale", "2", str(src), str(ai_on / "u16.tif"), "--bpp", "16"]) == 0
    assert tifffile.imread(ai_on / "u16.tif").dtype == np.uint16
    m = common.require_model("upscale")
    (m.path / "model_x4.onnx").unlink()
    with pytest.raises(AIError, match="no x4"):
        upscale.check_scale(common.require_model("upscale"), 4)


@pytest.mark.realdata
def test_rlfn_beats_bicubic_on_a_real_crop(ai_on, evaldata, tmp_path_factory):
    from PIL import Image

    install_real("upscale-rlfn", tmp_path_factory)
    s = common.session_for(common.require_model("upscale"), scale=2)
    hr = np.asarray(Image.open(evaldata / "Kodak24" / "kodim08.png").convert("RGB"))[100:292, 200:392]
    lr = Image.fromarray(hr).resize((96, 96), Image.BICUBIC)
    bic = np.asarray(lr.resize((192, 192), Image.BICUBIC), np.float32) / 255
    sr = np.moveaxis(upscale.upscale_encoded(s, np.moveaxis(np.asarray(lr, np.float32) / 255, 2, 0), 2), 0, 2)
    ref = hr.astype(np.float32) / 255

    def psnr(a):
        return 10 * np.log10(1 / np.mean((np.clip(a, 0, 1)[8:-8, 8:-8] - ref[8:-8, 8:-8]) ** 2))

    assert psnr(sr) > psnr(bic) + 1.0


def test_preview_of_a_region_equals_that_region_of_the_file(ai_on):
    """The interactive way: a region of the full-size output, rendered through the user's pipe with
    the tiles' 16 px of context, is the same region of the whole-file result; the command writes
    before | after side by side."""
    import tifffile
    from PIL import Image

    from pixelpipe.cli import main

    tiny(ai_on, "upscale")
    src = ai_on / "p.png"
    Image.fromarray((np.random.default_rng(7).random((90, 120, 3)) * 255).astype(np.uint8)).save(src)
    assert main(["ai", "upscale", "--scale", "2", str(src), str(ai_on / "whole.tif")]) == 0
    whole = np.moveaxis(tifffile.imread(ai_on / "whole.tif"), 2, 0)
    before, after = upscale.upscale_preview(src, (30, 20, 50, 40), 2)
    assert after.shape == before.shape == (3, 80, 100)
    assert np.abs(after - whole[:, 40:120, 60:160]).max() < 1e-5
    assert main(["ai", "upscale", "--scale", "2", str(src), str(ai_on / "prev.png"), "--preview", "30,20,50,40"]) == 0
    assert np.asarray(Image.open(ai_on / "prev.png")).shape == (80, 204, 3)
