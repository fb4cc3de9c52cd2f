"""The neural_upscale pipe module: position, geometry, a region equals the same part of the whole
enlarged image, the same pixels as the upscale task's file, pass-through enlargement while AI is off."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from task_helpers import tiny

from pixelpipe.modules import registry
from pixelpipe.modules.base import Flags, ROI, Tags


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    import pixelpipe

    yy, xx = np.mgrid[0:90, 0:120]
    rgb = np.stack([0.5 + 0.4 * np.sin(xx / 7.0 + c) * np.cos(yy / 5.0) for c in range(3)], -1)
    rgb = rgb + np.random.default_rng(3).normal(0, 0.03, rgb.shape)
    p = tmp_path / "small.png"
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(p)
    return pixelpipe.open(p)


def _pipe(photo, scale=2, profile=None):
    from pixelpipe.pipe.pipeline import Pipe

    e = copy.deepcopy(photo.edit)
    e.set_params("neural_upscale", photo.image, scale=scale)
    if profile:
        e.set_params("colorout", photo.image, profile=profile)
    return Pipe(photo.image, e, "export")


def test_declaration_order_and_geometry():
    from pixelpipe.pipe.order import IopOrder

    cls = registry()["neural_upscale"]
    assert cls.tags & Tags.DISTORT and cls.flags & Flags.EXPENSIVE and cls.flags & Flags.ONE_INSTANCE
    ops = [e.op for e in IopOrder.from_preset("v50").entries()]
    assert ops.index("neural_upscale") == ops.index("colorout") + 1
    from pixelpipe.modules.base import Piece

    m = cls()
    piece = Piece("neural_upscale", 0, cls.Params(scale=4), None)
    pts = np.array([[1.5, 2.0], [100.0, 37.25]])
    assert np.allclose(m.distort_transform(piece, pts), pts * 4)
    assert np.allclose(m.distort_backtransform(piece, m.distort_transform(piece, pts)), pts)
    assert m.modify_roi_out(piece, ROI(0, 0, 30, 20)) == ROI(0, 0, 120, 80)
    assert m.modify_roi_in(piece, ROI(41, 8, 10, 10)) == ROI(10 - 16, 2 - 16, 3 + 32, 3 + 32)


@pytest.mark.parametrize("scale", [2, 4])
def test_pipe_output_region_and_task_file_agree(ai_on, photo, scale):
    import tifffile

    from pixelpipe.ai.tasks import common, upscale

    tiny(ai_on, "upscale")
    pipe = _pipe(photo, scale)
    assert pipe.full_size() == (120 * scale, 90 * scale)
    whole = pipe.process(ROI(0, 0, 120 * scale, 90 * scale, 1.0))
    assert not any("pixel repetition" in n for n in pipe.notices)
    # a region (the darkroom's view of the enlarged image) is that part of the whole
    part = _pipe(photo, scale).process(ROI(50 * scale // 2, 30, 40 * scale, 24 * scale, 1.0))
    assert np.abs(part - whole[:, 30:30 + 24 * scale, 25 * scale:25 * scale + 40 * scale]).max() < 1e-5
    # darktable's way (the task's TIFF, linear) carries the same pixels, sRGB-encoded by colorout here
    dst = ai_on / "t.tif"
    upscale.upscale_file(photo.image.path, dst, scale)
    task = common.srgb_encode(np.moveaxis(tifffile.imread(dst), 2, 0))
    assert np.abs(task - whole).max() < 2e-3


def test_other_output_profiles_go_through_the_srgb_curve(ai_on, photo):
    tiny(ai_on, "upscale")
    srgb = _pipe(photo).process(ROI(0, 0, 240, 180, 1.0))
    lin = _pipe(photo, profile="linear_srgb").process(ROI(0, 0, 240, 180, 1.0))
    from pixelpipe.ai.tasks import common

    assert np.abs(common.srgb_encode(np.clip(lin, 0, 1)) - srgb).max() < 2e-3


def test_without_a_model_the_geometry_stays_with_a_notice(photo):
    pipe = _pipe(photo, 4)
    out = pipe.process(ROI(0, 0, 480, 360, 1.0))
    assert out.shape == (3, 360, 480)
    assert any("neural_upscale" in n and "pixel repetition" in n for n in pipe.notices)
    assert np.array_equal(out[:, 0:4, 0:4], np.repeat(np.repeat(out[:, 0:1, 0:1], 4, 1), 4, 2))
