"""Blending inside the pipe: masks follow the subject through flip (including the 90°
transposes), rotation and perspective (ashift) and crop; raster masks pass from one module to another and from a file
(rasterfile); blend settings and forms are part of the cache key; the darkroom overlay."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import raw_image, rgb_image, smooth_test_image
from pixelpipe.blend import BlendParams, Brush, Circle, Ellipse, MaskGroup, Path, add_drawn_group, blend_of
from pixelpipe.blend import output_to_normalised, normalised_to_output, pipe_hooks
from pixelpipe.errors import InputError, ParamsError
from pixelpipe.modules import registry
from pixelpipe.modules.base import Flags, Module, Params
from pixelpipe.pipe.cache import PipeCache
from pixelpipe.pipe.history import Edit, ModuleInstance
from pixelpipe.pipe.pipeline import Pipe

H, W = 60, 90


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "img.tif"
    p.write_bytes(b"stand-in for a decoded file")
    return rgb_image(smooth_test_image(H, W), path=str(p))


@pytest.fixture
def captured(monkeypatch):
    """Stage label -> (module input window, blended output) of the last run."""
    seen = {}
    orig = pipe_hooks.after_process

    def spy(pipe, stages, keys, i, buf, out):
        res = orig(pipe, stages, keys, i, buf, out)
        seen[stages[i].label] = (buf, out, res)
        return res

    monkeypatch.setattr(pipe_hooks, "after_process", spy)
    return seen


def base_edit(img, ev=1.5):
    """The default edit of the image plus exposure and sigmoid (both support blending)."""
    e = Edit.default_for(img)
    e.set_params("exposure", img, exposure=ev)
    e.set_params("sigmoid", img)
    return e


def edit_with_circle(img, label="exposure", center=(0.3, 0.35)):
    e = base_edit(img)
    add_drawn_group(e, label, MaskGroup.of([Circle(center, 0.15, 0.05)]))
    return e


def orient(a, bits):
    """darktable flip bits on a planar image: FLIP_Y=1, FLIP_X=2, then SWAP_XY=4."""
    if bits & 2:
        a = a[..., :, ::-1]
    if bits & 1:
        a = a[..., ::-1, :]
    if bits & 4:
        a = np.swapaxes(a, -1, -2)
    return a


def test_drawn_mask_follows_the_subject_through_flips_and_transposes(img):
    e = edit_with_circle(img)
    e.set_params("flip", img, orientation=0)
    base = Pipe(img, e).render()
    base_mask = Pipe(img, e)
    base_mask.render()
    m0 = base_mask.raster_masks.latest["exposure"].mask
    assert m0.max() == 1 and m0.min() == 0
    plain = base_edit(img)
    assert not np.allclose(base, Pipe(img, plain).render(), atol=1e-3)  # the mask limits the effect
    for bits in range(1, 8):
        e.set_params("flip", img, orientation=bits)
        p = Pipe(img, e)
        out = p.render()
        np.testing.assert_allclose(out, orient(base, bits), atol=1e-5, err_msg=f"orientation {bits}")
        np.testing.assert_array_equal(p.raster_masks.latest["exposure"].mask, orient(m0, bits))


def test_drawn_mask_follows_the_subject_through_crop_and_transpose(img):
    for bits in (0, 5):  # 5: transpose + mirror (a 90° turn)
        e = edit_with_circle(img, "sigmoid", center=(0.6, 0.5))  # sigmoid comes after crop
        e.set_params("flip", img, orientation=bits)
        whole = Pipe(img, e).render()
        e.set_params("crop", img, cx=0.2, cy=0.1, cw=0.9, ch=0.8)
        p = Pipe(img, e)
        cropped = p.render()
        ww, hh = whole.shape[2], whole.shape[1]
        x0, y0, x1, y1 = round(0.2 * ww), round(0.1 * hh), round(0.9 * ww), round(0.8 * hh)
        np.testing.assert_allclose(cropped, whole[:, y0:y1, x0:x1], atol=1e-5)
        # the circle's centre in output pixels, found back in normalised input coordinates
        m = p.raster_masks.latest["sigmoid"].mask
        yy, xx = np.nonzero(m == m.max())
        centre = np.array([[xx.mean() + 0.5, yy.mean() + 0.5]])
        np.testing.assert_allclose(output_to_normalised(p, centre), [[0.6, 0.5]], atol=0.02)
        np.testing.assert_allclose(normalised_to_output(p, [[0.6, 0.5]]), centre, atol=1.0)


@pytest.mark.parametrize("params", [dict(rotation=30.0), dict(rotation=-20.0, cropmode="largest"),
                                    dict(rotation=10.0, lensshift_v=0.3, cropmode="aspect")])
def test_drawn_mask_follows_the_subject_through_rotation_and_perspective(tmp_path, params):
    if "ashift" not in registry():
        pytest.skip("no rotation module in this build")
    path = tmp_path / "blob.tif"
    path.write_bytes(b"x")
    yy, xx = (np.mgrid[0:H, 0:W] + 0.5)
    subject = (0.3, 0.4)  # normalised input coordinates of a bright blob
    blob = np.exp(-((xx - subject[0] * W) ** 2 + (yy - subject[1] * H) ** 2) / (2 * 2.0 ** 2))
    image = rgb_image(0.1 * smooth_test_image(H, W) + 0.8 * blob[None], path=str(path))
    e = base_edit(image, 0.5)
    add_drawn_group(e, "exposure", Circle(subject, 0.08, 0.0))  # exposure comes after ashift
    e.set_params("ashift", image, **params)
    p = Pipe(image, e)
    out = p.render()
    m = p.raster_masks.latest["exposure"].mask
    where = normalised_to_output(p, [subject])[0]  # the subject carried by ashift's own transform
    ys, xs = np.nonzero(m > 0.5)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], where, atol=0.75)
    assert abs((m > 0.5).sum() - np.pi * (0.08 * H) ** 2) < 0.1 * np.pi * (0.08 * H) ** 2
    lum = out.mean(axis=0)
    py, px = np.unravel_index(np.argmax(lum), lum.shape)  # the subject, as rendered
    np.testing.assert_allclose([px + 0.5, py + 0.5], where, atol=1.5)
    assert m[py, px] == 1.0


def test_raster_mask_passes_from_one_module_to_a_later_one_through_crop(img):
    e = edit_with_circle(img, "exposure")
    p = Pipe(img, e)
    p.render()
    full = p.raster_masks.latest["exposure"].mask  # the producer's mask over the whole frame
    e.set_params("crop", img, cx=0.1, cy=0.2, cw=0.8, ch=1.0)
    bp = blend_of(e, "sigmoid")
    bp.mask_mode, bp.raster_source = "raster", "exposure"
    p = Pipe(img, e)
    p.render()
    src = full
    dst = p.raster_masks.latest["sigmoid"].mask
    np.testing.assert_allclose(dst, src[round(0.2 * H):, round(0.1 * W):round(0.8 * W)], atol=1e-6)
    bp.raster_inverted, bp.opacity = True, 50.0
    p = Pipe(img, e)
    p.render()
    np.testing.assert_allclose(p.raster_masks.latest["sigmoid"].mask,
                               0.5 * (1 - src[round(0.2 * H):, round(0.1 * W):round(0.8 * W)]), atol=1e-6)
    # a source that is not before the consumer: an empty mask and a notice
    bp.raster_source, bp.raster_inverted = "colorout", False
    p = Pipe(img, e)
    p.render()
    assert p.raster_masks.latest["sigmoid"].mask.max() == 0
    assert any("raster mask 'colorout'" in n for n in p.notices)


def test_opacity_reverse_and_modes_inside_the_pipe(img, captured):
    e = base_edit(img, 1.0)
    bp = blend_of(e, "exposure")
    bp.opacity = 30.0
    Pipe(img, e).render()
    a, b, res = captured["exposure"]
    np.testing.assert_allclose(res, 0.7 * a + 0.3 * b, atol=1e-6)
    bp.reverse, bp.opacity = True, 100.0
    Pipe(img, e).render()
    a, b, res = captured["exposure"]
    np.testing.assert_allclose(res, a, atol=1e-6)  # reverse normal at full opacity: the input
    bp.reverse, bp.mode, bp.fulcrum = False, "multiply", 1.0
    Pipe(img, e).render()
    a, b, res = captured["exposure"]
    np.testing.assert_allclose(res, a * b * 0.5, rtol=1e-5, atol=1e-7)  # RGB scene, p = 2^-1
    bp.mode = "overlay"  # not in RGB (scene): normal, with a notice
    p = Pipe(img, e)
    p.render()
    assert any("overlay is not available" in n for n in p.notices)
    bp.colorspace = "rgb_display"
    p = Pipe(img, e)
    p.render()
    a, b, res = captured["exposure"]
    A, B = np.clip(a, 0, 1), np.clip(b, 0, 1)
    np.testing.assert_allclose(res, np.where(A > 0.5, 1 - 2 * (1 - A) * (1 - B), 2 * A * B), atol=2e-6)


def test_blend_settings_and_forms_are_part_of_the_cache_key(img):
    e = edit_with_circle(img)
    cache = PipeCache(64)
    pipe = Pipe(img, e, "full", cache=cache)
    roi_out = pipe.full_size()
    from pixelpipe.modules.base import ROI

    roi = ROI(0, 0, roi_out[0], roi_out[1], 1.0)
    first = pipe.process(roi)
    labels = [l for l, _, _ in pipe.last.stages]
    pipe.process(roi)
    assert pipe.last.executed == []
    bp = e.get("exposure").blend
    bp.forms.members[0].form.members[0].form.radius = 0.2  # resizing the circle in its group
    pipe.process(roi)
    assert pipe.last.executed == labels[labels.index("exposure"):]
    bp.opacity = 60.0
    again = pipe.process(roi)
    assert pipe.last.executed[0] == "exposure" and not np.array_equal(first, again)
    # a raster consumer changing only its own settings reuses the producer's stored mask
    sb = blend_of(e, "sigmoid")
    sb.mask_mode, sb.raster_source = "raster", "exposure"
    pipe.process(roi)
    sb.opacity = 40.0
    pipe.process(roi)
    assert pipe.last.executed[0] == "sigmoid"
    # a new pipe sharing the pixel cache but without the stored masks: nothing to run, no mask needed
    fresh = Pipe(img, e, "full", cache=cache)
    fresh.process(roi)
    assert fresh.last.executed == []
    # ... but when the consumer must run, the producer runs again to publish its mask
    sb.opacity = 45.0
    out = fresh.process(roi)
    assert fresh.last.executed[0] == "exposure"
    np.testing.assert_allclose(out, pipe.process(roi), atol=1e-6)


def test_show_mask_overlay_in_the_darkroom_only(img):
    e = edit_with_circle(img)
    p = Pipe(img, e, "full")
    p.show_mask = "exposure"
    w, h = p.full_size()
    from pixelpipe.modules.base import ROI

    shown = p.process(ROI(0, 0, w, h, 1.0))
    m = p.raster_masks.latest["exposure"].mask
    inside, outside = np.unravel_index(m.argmax(), m.shape), np.unravel_index(m.argmin(), m.shape)
    np.testing.assert_allclose(shown[:, inside[0], inside[1]], [1, 1, 0], atol=1e-6)
    px = shown[:, outside[0], outside[1]]
    assert np.ptp(px) < 1e-6  # grey
    exp = Pipe(img, e, "export")
    exp.show_mask = "exposure"
    assert not np.allclose(exp.render()[:, inside[0], inside[1]], [1, 1, 0])


def _png(path, arr):
    from PIL import Image

    Image.fromarray(arr).save(path)


def test_rasterfile_publishes_an_external_mask_carried_through_orientation(img, tmp_path):
    yy, xx = np.mgrid[0:H, 0:W]
    mask8 = ((xx * 255) // (W - 1)).astype(np.uint8)
    mask8[: H // 3] = 0
    _png(tmp_path / "mask.png", mask8)
    e = base_edit(img, 1.0)
    e.set_params("rasterfile", img, path="mask.png")  # relative to the image's folder
    bp = blend_of(e, "exposure")
    bp.mask_mode, bp.raster_source = "raster", "rasterfile"
    for bits in (0, 2, 6):
        e.set_params("flip", img, orientation=bits)
        p = Pipe(img, e)
        p.render()
        np.testing.assert_allclose(p.raster_masks.latest["exposure"].mask, orient(mask8 / 255.0, bits), atol=1e-6)
    # a mask of the wrong size is resampled, with a notice
    _png(tmp_path / "small.png", mask8[::2, ::2].copy())
    e.set_params("flip", img, orientation=0)
    e.set_params("rasterfile", img, path=str(tmp_path / "small.png"))
    p = Pipe(img, e)
    p.render()
    assert any("resampled" in n for n in p.notices)
    got = p.raster_masks.latest["exposure"].mask
    assert np.abs(got - mask8 / 255.0)[H // 3 + 2:].mean() < 0.02
    # PFM (bottom-to-top rows, little-endian), channel choice and inversion
    pf = np.stack([mask8 / 255.0, np.zeros((H, W)), np.ones((H, W))], -1).astype("<f4")
    with open(tmp_path / "mask.pfm", "wb") as fh:
        fh.write(f"PF\n{W} {H}\n-1.0\n".encode())
        fh.write(pf[::-1].tobytes())
    e.set_params("rasterfile", img, path=str(tmp_path / "mask.pfm"), channel="red", invert=True)
    p = Pipe(img, e)
    p.render()
    np.testing.assert_allclose(p.raster_masks.latest["exposure"].mask, 1 - mask8 / 255.0, atol=1e-6)


def test_rasterfile_unreadable_or_missing_is_a_clear_error(img, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    (tmp_path / "bad.pfm").write_bytes(b"PF\n10 10\n-1\n\x00\x00")
    e = Edit.default_for(img)
    for name in ("bad.png", "bad.pfm", "missing.png"):
        e.set_params("rasterfile", img, path=str(tmp_path / name))
        with pytest.raises(InputError, match="raster mask") as ei:
            Pipe(img, e).render()
        assert name in str(ei.value)


def test_every_shape_kind_renders_in_a_pipe_and_bad_blend_settings_are_refused(img):
    e = base_edit(img, 1.0)
    g = MaskGroup.of([Ellipse((0.5, 0.5), (0.2, 0.1), 20, 0.05), Brush.stroke([(0.1, 0.1), (0.9, 0.2)], 0.03),
                      Path.from_polygon([(0.2, 0.6), (0.8, 0.9), (0.8, 0.6), (0.2, 0.9)], 0.02)],
                     ["union", "union", "exclusion"])
    bp = add_drawn_group(e, "exposure", g)
    bp.mask_mode = "drawn+parametric"
    bp.channel("gray_in", 0.0, 0.1, 0.9, 1.0)
    bp.feather_radius, bp.blur_radius, bp.contrast, bp.brightness = 5.0, 2.0, 0.3, -0.2
    p = Pipe(img, e)
    out = p.render()
    assert np.isfinite(out).all()
    with pytest.raises(ParamsError, match="does not support blending"):
        blend_of(e, "colorout")
    with pytest.raises(ParamsError):
        BlendParams.from_dict({"mask_mode": "raster"})
    with pytest.raises(ParamsError, match="not available"):
        BlendParams.from_dict({"colorspace": "rgb_scene", "mode": "screen"})


@pytest.mark.parametrize("h,w", [(1, 1), (2, 2), (1, 300), (300, 1)])
def test_tiny_and_one_row_images(tmp_path, h, w):
    path = tmp_path / "tiny.tif"
    path.write_bytes(b"x")
    image = rgb_image(np.full((3, h, w), 0.3, np.float32), path=str(path))
    e = base_edit(image, 1.0)
    bp = add_drawn_group(e, "exposure", MaskGroup.of([Circle((0.5, 0.5), 0.4, 0.1),
                                                      Brush.stroke([(0, 0), (1, 1)], 0.2)]))
    bp.mask_mode, bp.feather_radius, bp.blur_radius = "drawn+parametric", 3.0, 1.5
    bp.channel("gray_in", 0.0, 0.1, 0.9, 1.0)
    for space, mode in (("rgb_scene", "multiply"), ("rgb_display", "hue"), ("lab", "color")):
        bp.colorspace, bp.mode = space, mode
        out = Pipe(image, e).render()
        assert out.shape == (3, h, w) and np.isfinite(out).all()


class _RawProbe(Module):
    """A stand-in raw module with blending (as rawdenoise), halving its input."""

    op = "rawdenoise"
    works_on = "raw"
    flags = Flags.SUPPORTS_BLENDING

    def process(self, piece, inp, roi_in, roi_out):
        return inp * 0.5


def test_blending_a_raw_module_on_the_mosaic(tmp_path, monkeypatch, captured):
    monkeypatch.setitem(registry(), "rawdenoise", _RawProbe)
    p = tmp_path / "raw.dng"
    p.write_bytes(b"x")
    rng = np.random.default_rng(0)
    raw = raw_image(rng.uniform(0.1, 0.9, (40, 60)), path=str(p))
    e = Edit.default_for(raw)
    e.instances.append(ModuleInstance("rawdenoise", 0, True, Params()))
    add_drawn_group(e, "rawdenoise", Circle((0.5, 0.5), 0.2, 0.0))
    pipe = Pipe(raw, e)
    pipe.render()
    a, b, res = captured["rawdenoise"]
    m = pipe.raster_masks.latest["rawdenoise"].mask
    assert res.ndim == 2 and m.max() == 1 and m.min() == 0
    np.testing.assert_allclose(res, a * (1 - m) + b * m, atol=1e-6)
