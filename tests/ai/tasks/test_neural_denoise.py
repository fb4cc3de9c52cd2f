"""The neural_denoise pipe module: position, ROI padding, fast path, pass-through, a real raw."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from helpers import raw_image, run_module, smooth_test_image
from task_helpers import flat_noise, install_real, tiny

from pixelpipe.modules import registry
from pixelpipe.modules.base import Flags, ROI


def test_module_declaration_and_order():
    from pixelpipe.pipe.order import IopOrder

    cls = registry()["neural_denoise"]
    assert cls.flags & Flags.EXPENSIVE and cls.flags & Flags.SUPPORTS_BLENDING
    order = IopOrder.from_preset("v50")
    ops = [e.op for e in order.entries()]
    assert ops.index("neural_denoise") == ops.index("denoiseprofile") + 1


def _image():
    return raw_image(np.zeros((64, 64), np.float32))


def test_roi_equals_the_same_part_of_the_whole_image(ai_on):
    tiny(ai_on, "denoise")
    img = _image()
    rgb = smooth_test_image(200, 260) + np.random.default_rng(0).normal(0, 0.02, (3, 200, 260)).astype(np.float32)
    params = registry()["neural_denoise"].Params(sigma=10.0)
    whole, piece = run_module("neural_denoise", img, rgb, params)
    assert not np.array_equal(whole, rgb) and np.isfinite(whole).all()
    roi = ROI(90, 70, 60, 50)
    part, _ = run_module("neural_denoise", img, rgb, params, roi_out=roi)
    assert np.allclose(part, whole[:, 70:120, 90:150], atol=1e-6)
    # the module asks for 64 px of context
    assert registry()["neural_denoise"]().modify_roi_in(piece, roi) == ROI(26, 6, 188, 178)


def test_fast_path_is_the_identity_and_strength_zero_too(ai_on):
    tiny(ai_on, "denoise")
    rgb = smooth_test_image(80, 90)
    out, _ = run_module("neural_denoise", _image(), rgb, pipe="full", fast=True)
    mod = registry()["neural_denoise"]()
    from pixelpipe.modules.base import Piece

    piece = Piece("neural_denoise", 0, mod.Params(), _image(), fast=True)
    assert np.array_equal(mod.process_fast(piece, rgb, ROI(0, 0, 90, 80), ROI(10, 5, 30, 20)),
                          rgb[:, 5:25, 10:40])
    zero, _ = run_module("neural_denoise", _image(), rgb, registry()["neural_denoise"].Params(strength=0.0))
    assert np.allclose(zero, rgb, atol=1e-6)


def test_passes_through_with_a_notice_while_ai_is_off():
    rgb = smooth_test_image(40, 50)
    out, piece = run_module("neural_denoise", _image(), rgb)
    assert np.array_equal(out, rgb)
    assert any("neural_denoise skipped" in n and "ai.enabled" in n for n in piece.notices)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_tiny_and_thin_images(ai_on, shape):
    tiny(ai_on, "denoise")
    rgb = np.random.default_rng(1).random((3,) + shape).astype(np.float32)
    out, _ = run_module("neural_denoise", _image(), rgb)
    assert out.shape == rgb.shape and np.isfinite(out).all()


def test_nan_and_inf_never_leave(ai_on):
    tiny(ai_on, "denoise")
    rgb = smooth_test_image(40, 40)
    rgb[0, 3, 3], rgb[1, 10, 10], rgb[2, 20, 20] = np.nan, np.inf, -np.inf
    out, _ = run_module("neural_denoise", _image(), rgb, registry()["neural_denoise"].Params(sigma=5.0))
    assert np.isfinite(out).all()


@pytest.mark.realdata
def test_real_raw_with_sensor_noise(ai_on, raws, tmp_path_factory):
    """The 550D raw with Poisson-Gaussian sensor noise added to its mosaic (var = 4e-4 x + 2e-6,
    normalised units), through the user's pipe with the module on (automatic noise level):
    the mean stays within 1 % (of the noisy and of the clean render), the noise in flat
    patches drops at least 2x."""
    import pixelpipe
    from pixelpipe.ai.tasks import common
    from pixelpipe.pipe.pipeline import Pipe

    install_real("denoise-ffdnet", tmp_path_factory)
    ph = pixelpipe.open(raws / "canon_550d_magiclantern_colorchart.dng")
    im = ph.image
    rng = np.random.default_rng(1)
    b = float(np.mean(im.black))
    span = im.white - b
    x = (im.data - b) / span
    x = x + rng.standard_normal(x.shape).astype(np.float32) * np.sqrt(4e-4 * np.maximum(x, 0) + 2e-6)
    noisy = dataclasses.replace(im, data=(x * span + b).astype(np.float32))
    edit = common.linear_edit(ph.edit, im)
    roi = ROI(300, 200, 600, 450)
    clean = Pipe(im, edit, "export").process(roi)
    before = Pipe(noisy, edit, "export").process(roi)
    on = copy.deepcopy(edit)
    on.set_params("neural_denoise", im)
    pipe = Pipe(noisy, on, "export")
    after = pipe.process(roi)
    assert not any("skipped" in n for n in pipe.notices)
    assert abs(after.mean() / before.mean() - 1) < 0.01
    assert abs(after.mean() / clean.mean() - 1) < 0.01
    assert np.median(flat_noise(before, clean) / flat_noise(after, clean)) >= 2.0
