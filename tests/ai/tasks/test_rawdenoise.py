"""The rawdenoise task: bayer_v1/xtrans_v1 protocol, CFA DNG output read by rawpy, refusals,
re-import with the edit, preview, and demosaicnet on a real raw."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from task_helpers import install_real, scaled_bayer_model, tiny

from pixelpipe.ai.tasks import common, rawdenoise
from pixelpipe.errors import UnsupportedCFAError

rawpy = pytest.importorskip("rawpy")

CM = np.array([[0.6, -0.1, -0.05], [-0.4, 1.3, 0.1], [-0.05, 0.2, 0.6]])


def _dng(path: Path, pattern: str, h: int = 72, w: int = 90, seed: int = 0) -> Path:
    from pixelpipe.io.dng import write_cfa_dng

    yy, xx = np.mgrid[0:h, 0:w]
    base = 600 + 2500 * (0.5 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 7.0))
    m = (base + np.random.default_rng(seed).normal(0, 30, (h, w))).clip(0, 4095).astype(np.uint16)
    bl = [256, 257, 258, 259] if pattern != "XTRANS" else 256
    return write_cfa_dng(path, m, pattern, bl, 4095, CM, (0.5, 1.0, 0.7), orientation=6, make="Acme",
                         model="Test", exif={"iso": 800, "exposure_time": 0.01}, preview_rgb=None)


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_identity_model_round_trips_every_bayer_phase(ai_on, pattern):
    tiny(ai_on, "rawdenoise")
    src = _dng(ai_on / f"{pattern}.dng", pattern)
    out = rawdenoise.rawdenoise_file(src, ai_on / "out.dng", keep_levels=False).output
    with rawpy.imread(str(src)) as a, rawpy.imread(str(out)) as b:
        va, vb = a.raw_image_visible.astype(int), b.raw_image_visible.astype(int)
        assert vb.shape == va.shape
        assert np.array_equal(a.raw_pattern, b.raw_pattern) and a.color_desc == b.color_desc
        assert list(a.black_level_per_channel) == list(b.black_level_per_channel)
        assert a.white_level == b.white_level
        assert np.allclose(np.array(a.camera_whitebalance[:3]) / a.camera_whitebalance[1],
                           np.array(b.camera_whitebalance[:3]) / b.camera_whitebalance[1], rtol=1e-4)
        assert a.sizes.flip == b.sizes.flip
        # the RGGB crop leaves at most one row/column on each side to the nearest computed pixel
        assert np.abs(va - vb)[1:-1, 1:-1].max() <= 1
        assert b.extract_thumb().format == rawpy.ThumbFormat.BITMAP  # the embedded sRGB preview
    from pixelpipe.io.decode import load

    im = load(out)
    assert im.exif.get("iso") == 800 and im.orientation == 6
    assert np.allclose(im.xyz_to_cam, CM, atol=1e-4)


def test_match_gain_strength_and_wb_normaliser(ai_on):
    tiny(ai_on, "rawdenoise", bayer=scaled_bayer_model(0.5), output_scale="match_gain", model_id="rd-gain")
    src = _dng(ai_on / "a.dng", "RGGB")
    with rawpy.imread(str(src)) as r:
        va = r.raw_image_visible.astype(float) - 256
    out = rawdenoise.rawdenoise_file(src, ai_on / "g.dng", keep_levels=False).output
    with rawpy.imread(str(out)) as r:
        vb = r.raw_image_visible.astype(float) - 256
    assert abs(vb.mean() / va.mean() - 1) < 0.01  # one gain per tile brings the level back
    tiny(ai_on, "rawdenoise", bayer=scaled_bayer_model(0.5), output_scale="absolute", model_id="rd-abs")
    half = rawdenoise.rawdenoise_file(src, ai_on / "h.dng", strength=0.5, keep_levels=False).output
    with rawpy.imread(str(half)) as r:
        vh = r.raw_image_visible.astype(float) - 256
    assert np.allclose(vh[2:-2, 2:-2].mean() / va[2:-2, 2:-2].mean(), 0.75, atol=0.01)
    # the local level correction undoes a model's level shift (here a factor 0.5), per CFA position
    kept = rawdenoise.rawdenoise_file(src, ai_on / "k.dng").output
    with rawpy.imread(str(kept)) as r:
        vk = r.raw_image_visible.astype(float) - 256
    for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):
        assert abs(vk[i::2, j::2].mean() / va[i::2, j::2].mean() - 1) < 0.01
    from pixelpipe.io.decode import load

    wb = rawdenoise.wb_normaliser(load(src), "as_shot")
    assert np.allclose(wb, [2.0, 1.0, 1 / 0.7], rtol=1e-4)
    assert np.allclose(rawdenoise.wb_normaliser(load(src), "none"), 1)


def test_xtrans_through_the_xtrans_variant(ai_on):
    tiny(ai_on, "rawdenoise", xtrans=True)
    src = _dng(ai_on / "x.dng", "XTRANS", 96, 120)
    r = rawdenoise.rawdenoise_file(src, ai_on / "xo.dng", keep_levels=False)
    assert r.settings["variant"] == "xtrans"
    with rawpy.imread(str(src)) as a, rawpy.imread(str(r.output)) as b:
        assert np.array_equal(a.raw_pattern, b.raw_pattern)
        d = np.abs(a.raw_image_visible.astype(int) - b.raw_image_visible.astype(int))
        assert d[6:-6, 6:-6].max() <= 1


def test_refusals(ai_on):
    from pixelpipe.cli import main
    from pixelpipe.io.source import CFA, SourceImage

    tiny(ai_on, "rawdenoise")
    mono = SourceImage(path="m.dng", kind="raw", data=np.zeros((8, 8), np.float32),
                       cfa=CFA("mono", np.zeros((1, 1), np.uint8)))
    with pytest.raises(UnsupportedCFAError, match="monochrome"):
        rawdenoise.sensor_kind(mono)
    planar = dataclasses.replace(mono, cfa=CFA("none", np.arange(3).reshape(1, 3)))
    with pytest.raises(UnsupportedCFAError, match="non-CFA"):
        rawdenoise.sensor_kind(planar)
    with pytest.raises(UnsupportedCFAError, match="not an R/G/G/B"):
        rawdenoise.rggb_origin(np.array([[0, 0], [1, 2]]))
    xt = _dng(ai_on / "x.dng", "XTRANS", 48, 60)
    assert main(["ai", "rawdenoise", str(xt)]) == 2  # the tiny model has no xtrans variant
    assert not (ai_on / "x_rawdenoised.dng").exists()


@pytest.mark.realdata
def test_four_colour_raw_is_refused(ai_on, raws):
    from pixelpipe.cli import main

    tiny(ai_on, "rawdenoise")
    assert main(["ai", "rawdenoise", str(raws / "canon_powershot_g1_cygm.crw"), str(ai_on / "o.dng")]) == 2
    assert not (ai_on / "o.dng").exists()


def test_interrupted_run_leaves_no_partial_file(ai_on, monkeypatch):
    from pixelpipe.cli import main
    from pixelpipe.io import dng

    tiny(ai_on, "rawdenoise")
    src = _dng(ai_on / "a.dng", "RGGB")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dng, "add_sub_ifds", boom)
    assert main(["ai", "rawdenoise", str(src)]) == 130
    assert sorted(p.name for p in ai_on.iterdir() if p.is_file() and p.suffix != ".dtmodel") == ["a.dng"]


def _real_crop(raws: Path, dest: Path, y0=400, x0=600, h=256, w=320) -> Path:
    """A 256x320 cut of the 550D raw written as a DNG with the file's own tags."""
    from pixelpipe.io.decode import load

    im = load(raws / "canon_550d_magiclantern_colorchart.dng")
    cut = dataclasses.replace(im, data=np.ascontiguousarray(im.data[y0:y0 + h, x0:x0 + w]), crop=None,
                              gain_maps=None, black_map=None)
    x, _, _, _ = rawdenoise.normalised(cut, apply_gain=False)
    rawdenoise.write_dng(dest, cut, x)
    return dest


@pytest.mark.realdata
def test_demosaicnet_on_a_real_raw_reimported_with_the_edit(ai_on, raws, tmp_path_factory):
    import pixelpipe
    from pixelpipe.pipe.history import sidecar_path

    install_real("rawdenoise-demosaicnet", tmp_path_factory)
    src = _real_crop(raws, ai_on / "cut.dng")
    ph = pixelpipe.open(src)
    ph.edit.set_params("exposure", ph.image, exposure=1.0)
    ph.edit.set_params("neural_denoise", ph.image)  # a classical/other denoiser the result must not repeat
    ph.save_edit()
    out = rawdenoise.rawdenoise_file(src, ai_on / "cut_rd.dng").output
    with rawpy.imread(str(src)) as r0, rawpy.imread(str(out)) as r:
        va = r0.raw_image_visible.astype(float) - 2056
        vb = r.raw_image_visible.astype(float) - 2056
    assert vb.shape == (256, 320)
    for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):  # levels kept per CFA position (deep shadows here)
        assert abs(vb[i::2, j::2].mean() / va[i::2, j::2].mean() - 1) < 0.01

    def hp(v):
        g = v[0::2, 1::2]
        return (g[1:-1, 1:-1] - 0.25 * (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:])).std()

    assert hp(va) / hp(vb) >= 2.0
    side = json.loads(sidecar_path(out).read_text())
    mods = {(m["op"], m["instance"]): m for m in side["modules"]}
    assert mods[("neural_denoise", 0)]["enabled"] is False
    assert mods[("exposure", 0)]["params"]["exposure"] == 1.0
    assert side["group"]["source"] == "cut.dng" and side["group"]["task"] == "rawdenoise"
    a = pixelpipe.open(src).render()
    re = pixelpipe.open(out)
    assert re.edit.find("exposure").params.exposure == 1.0
    b = re.render()
    assert a.shape == b.shape
    assert abs(b.mean() / a.mean() - 1) < 0.03  # the noisy render's clipped shadows read brighter
    assert 10 * np.log10(1 / np.mean((a - b) ** 2)) > 30
    before, after = rawdenoise.rawdenoise_preview(src, (40, 40, 120, 90))
    assert before.shape == after.shape == (3, 90, 120) and not np.array_equal(before, after)


# --------------------------------------------------------------------------- linear_v1 (LinearRaw DNG)

def _linear_dng(path: Path, h: int = 80, w: int = 96, seed: int = 5) -> tuple[Path, np.ndarray]:
    """A LinearRaw DNG: smooth camera RGB plus noise, black 512, white 16383."""
    from pixelpipe.io.dng import write_linear_dng

    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([0.2 + 0.15 * np.sin(xx / 11.0 + c) * np.cos(yy / 9.0) for c in range(3)], -1)
    noisy = clean + np.random.default_rng(seed).normal(0, 0.02, clean.shape)
    vals = np.clip(np.rint(noisy * (16383 - 512) + 512), 0, 65535).astype(np.uint16)
    write_linear_dng(path, vals, black=512, white=16383, color_matrix1=CM, as_shot_neutral=(0.5, 1.0, 0.7),
                     orientation=6, make="Acme", model="Lin", exif={"iso": 1600})
    return path, clean.astype(np.float32)


def test_linear_raw_through_the_linear_variant_writes_a_linear_dng(ai_on):
    """Non-CFA raw data: camera RGB -> as-shot WB -> Rec.2020 -> mean 0.30 -> the model (a 5x5 box
    blur) -> all undone -> a LinearRaw DNG that rawpy and pixelpipe read back with the tags."""
    from aitest_helpers import box_blur

    import pixelpipe
    from pixelpipe.io.decode import load

    tiny(ai_on, "rawdenoise", linear=box_blur(), no_bayer=True, model_id="rd-linear")
    src, clean = _linear_dng(ai_on / "lin.dng")
    r = rawdenoise.rawdenoise_file(src, ai_on / "lin_rd.dng", keep_levels=False)
    assert r.settings["variant"] == "linear" and r.settings["input_colorspace"] == "lin_rec2020"
    assert r.settings["gain"] > 0
    im = load(r.output)
    assert im.is_raw and im.cfa.kind == "none" and im.orientation == 6 and im.exif.get("iso") == 1600
    assert np.allclose(im.xyz_to_cam, CM, atol=1e-4)
    src_im = load(src)
    before = rawdenoise.camera_rgb(src_im)
    after = rawdenoise.camera_rgb(im)
    assert after.shape == before.shape == (3, 80, 96)
    # the box blur in Rec.2020 is a box blur in camera RGB too (linear maps commute): noise down,
    # levels kept
    truth = np.moveaxis(clean, 2, 0)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    assert abs(after[inner].mean() / before[inner].mean() - 1) < 0.01
    assert np.std((before - truth)[inner]) / np.std((after - truth)[inner]) > 3
    with rawpy.imread(str(r.output)) as rp:
        assert rp.raw_image.ndim == 3 and rp.raw_image.shape[:2] == (80, 96)  # LibRaw: 4 planes, 3 used
        assert rp.raw_image[..., :3].min() > 0 and not rp.raw_image[..., 3:].any()
        assert np.allclose(np.array(rp.camera_whitebalance[:3]) / rp.camera_whitebalance[1], [2, 1, 1 / 0.7],
                           rtol=1e-3)
        rgb = rp.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16)
        assert rgb.shape[:2] in ((80, 96), (96, 80)) and rgb.mean() > 0
        thumb = rp.extract_thumb()  # the embedded sRGB preview
        assert thumb.format == rawpy.ThumbFormat.BITMAP and thumb.data.shape[2] == 3 and thumb.data.mean() > 10
    # re-import: the sidecar's edit renders the new file
    ph = pixelpipe.open(r.output)
    assert ph.render().shape == (96, 80, 3)  # orientation 6: rotated


def test_xtrans_without_an_xtrans_variant_takes_the_linear_path(ai_on):
    """darktable's fallback: X-Trans -> demosaicked camera RGB -> linear_v1 -> LinearRaw DNG; an
    identity model with the level correction gives back the demosaicked camera RGB; the
    preview of a region equals that region of the whole result's render."""
    import pixelpipe
    from pixelpipe.io.decode import load

    from aitest_helpers import _model, _vi
    from onnx import helper

    ident = _model([helper.make_node("Identity", ["input"], ["output"])],
                   [_vi("input", [1, 3, "h", "w"])], [_vi("output", [1, 3, "h", "w"])])
    tiny(ai_on, "rawdenoise", linear=ident, model_id="rd-bayer-linear",
         linear_settings={"output_scale": "match_gain"})
    src = _dng(ai_on / "x.dng", "XTRANS", 96, 120)
    r = rawdenoise.rawdenoise_file(src, ai_on / "x_rd.dng")
    assert r.settings["variant"] == "linear" and r.output.suffix == ".dng"
    im = load(r.output)
    assert im.cfa.kind == "none"
    cam = rawdenoise.camera_rgb(load(src))
    got = rawdenoise.camera_rgb(im)
    assert np.abs(got - cam).max() < 2e-4  # 16-bit quantisation
    with rawpy.imread(str(r.output)) as rp:
        assert rp.raw_image.shape[:2] == (96, 120) and rp.raw_image[..., :3].any()
    side = json.loads((ai_on / "x_rd.dng.pixelpipe.json").read_text())
    assert side["group"]["settings"]["variant"] == "linear"
    whole = common.render_linear(pixelpipe.open(r.output))  # the re-imported result, linear Rec.709
    before, after = rawdenoise.rawdenoise_preview(src, (20, 30, 40, 30))
    assert after.shape == (3, 30, 40)
    assert np.abs(after - whole[:, 30:60, 20:60]).max() < 2e-3
    # without a linear (or xtrans) variant: a refusal that names both
    tiny(ai_on, "rawdenoise", model_id="rd-bayer-only")
    with pytest.raises(UnsupportedCFAError, match="xtrans_v1 or a linear_v1"):
        rawdenoise.rawdenoise_file(src, ai_on / "never.dng")
    assert not (ai_on / "never.dng").exists()
