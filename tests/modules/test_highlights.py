"""highlights: clip and inpaint opposed against NumPy references written from the documented rule.

The opposed reference below is written with plain loops from the module
docstring (3x3 per-colour means of max(v, 0), cube-root domain, the opposed
colours' mean cubed; the chrominance from unclipped photosites above 0.2 of
the clip level near clipped data: 3x3-photosite blocks, disc of radius 3
blocks; more than 100 samples). Tolerance: rtol 2e-5 / atol 2e-6 (float32
kernel, float64 reference; pow in float32).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import raw_file
from helpers import RGGB, raw_image, run_module
from pixelpipe.io.source import CFA
from pixelpipe.modules.base import BufferDesc, ROI
from pixelpipe.modules.highlights import HighlightsParams, saturation_level

rng = np.random.default_rng(11)
COEFF = (2.0, 1.0, 1.5)
GOPRO = "gopro_hero6_black_gpr2dng.dng"


# ---------------------------------------------------------------- references
def _colours(h, w, pattern):
    rgb = np.array([0, 1, 2, 1])[pattern]
    yy, xx = np.mgrid[0:h, 0:w]
    return rgb[yy % pattern.shape[0], xx % pattern.shape[1]]


def _ref_at(m, col, y, x):
    h, w = m.shape
    s, n = np.zeros(3), np.zeros(3)
    for j in range(max(0, y - 1), min(h, y + 2)):
        for i in range(max(0, x - 1), min(w, x + 2)):
            s[col[j, i]] += max(float(m[j, i]), 0.0)
            n[col[j, i]] += 1
    r = [math.pow(s[k] / n[k], 1 / 3) if n[k] and s[k] > 0 else 0.0 for k in range(3)]
    k = col[y, x]
    return ((sum(r) - r[k]) / 2) ** 3


def chroma_ref(m, col, clips):
    h, w = m.shape
    hb, wb = -(-h // 3), -(-w // 3)
    blocks = np.zeros((3, hb, wb), bool)
    for y in range(h):
        for x in range(w):
            if m[y, x] >= clips[col[y, x]]:
                blocks[col[y, x], y // 3, x // 3] = True
    near = np.zeros_like(blocks)
    for k in range(3):
        for by, bx in zip(*np.nonzero(blocks[k])):
            for dy in range(-3, 4):
                for dx in range(-3, 4):
                    if dx * dx + dy * dy <= 13 and 0 <= by + dy < hb and 0 <= bx + dx < wb:
                        near[k, by + dy, bx + dx] = True
    sums, cnts = np.zeros(3), np.zeros(3)
    for y in range(h):
        for x in range(w):
            k = col[y, x]
            v = float(m[y, x])
            if v < clips[k] and v > 0.2 * clips[k] and near[k, y // 3, x // 3]:
                sums[k] += max(v, 0.0) - _ref_at(m, col, y, x)
                cnts[k] += 1
    return np.where(cnts > 100, sums / np.maximum(cnts, 1), 0.0)


def opposed_ref(m, col, clips, chroma):
    out = np.maximum(m.astype(np.float64), 0)
    for y, x in zip(*np.nonzero(m >= np.asarray(clips)[col])):
        k = col[y, x]
        out[y, x] = max(out[y, x], _ref_at(m, col, y, x) + chroma[k])
    return out


def scene(h=48, w=60, pattern=RGGB, rows=None):
    """A balanced mosaic with a cyan-ish sky blob clipped in G and B (one centred on each of
    ``rows``; default: the middle row), and its raw (white = 1) source."""
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.stack([0.35 + 0.2 * np.sin(xx / 7.0), 0.45 + 0.2 * np.cos(yy / 5.0), 0.4 + 0.1 * np.sin((xx + yy) / 9)])
    glow = 0
    for r in rows or [h / 2]:
        sky = ((yy - r) / 10) ** 2 + ((xx - w / 2) / 12) ** 2
        glow = glow + np.clip(1.6 - 0.6 * sky, 0, None)  # bright core fading into the surroundings
    truth = truth + glow[None] * np.array([1.35, 1.2, 1.25])[:, None, None]
    col = _colours(h, w, pattern)
    balanced_true = np.take_along_axis(truth, col[None], 0)[0]
    coeff = np.array(COEFF)[col]
    raw = np.minimum(balanced_true / coeff, 1.0).astype(np.float32)  # the sensor saturates at white
    balanced = (raw * coeff.astype(np.float32)).astype(np.float32)
    img = raw_image(raw, pattern=pattern, black=(0, 0, 0, 0), white=1.0, wb=COEFF + (1.0,))
    return img, balanced, col


def _dsc(img):
    return BufferDesc(1, img.cfa, "raw", processed_maximum=COEFF)


NO_DETECT = HighlightsParams(mode="opposed", detect_saturation=False)


# ---------------------------------------------------------------- opposed vs NumPy
XTRANS = np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                   [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]])


@pytest.mark.parametrize("pattern", [RGGB, np.array([[1, 0], [2, 3]]), XTRANS])
def test_opposed_matches_numpy_reference(pattern):
    img, m, col = scene(pattern=pattern)
    if pattern.shape == (6, 6):
        img.cfa = CFA("xtrans", pattern, "RGBG")
    clips = 0.987 * np.array(COEFF)
    assert (m >= clips[col]).sum() > 100  # the scene has clipped photosites
    chroma = chroma_ref(m, col, clips)
    assert np.all(chroma != 0)  # enough samples for every colour
    out, piece = run_module("highlights", img, m, params=NO_DETECT, dsc=_dsc(img))
    np.testing.assert_allclose(piece.data["chroma"], chroma, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out, opposed_ref(m, col, clips, piece.data["chroma"]), rtol=2e-5, atol=2e-6)
    # reconstructed G in the clipped core rises above the sensor's clip, towards the true colour
    core = (m >= clips[col]) & (col == 1)
    assert out[core].mean() > 1.1


def test_statistic_leaves_out_only_rows_far_from_clipping():
    """Two clipped bands with unclipped rows between and below: the block rows more than
    three blocks from any clipped block are not computed, and the chrominance is still the
    whole-grid rule's."""
    from pixelpipe.modules.highlights import _block_stats

    img, m, col = scene(h=150, pattern=RGGB, rows=[20, 95])
    clips = 0.987 * np.array(COEFF)
    clipped_rows = np.flatnonzero((m >= clips[col]).any(axis=1))
    assert clipped_rows.max() < 120 and np.diff(clipped_rows).max() > 30  # two bands, a gap, a margin
    stats = _block_stats(m, img.cfa.rgb_pattern(), np.ones(3), clips)
    near = sorted({b + d for b in set(clipped_rows // 3) for d in range(-3, 4) if 0 <= b + d < 50})
    assert stats.shape[1] == len(near) < 50
    assert (stats[:3].max(axis=(0, 2)) > 0).sum() == len(set(clipped_rows // 3))
    chroma = chroma_ref(m, col, clips)
    assert np.all(chroma != 0)
    _, piece = run_module("highlights", img, m, params=NO_DETECT, dsc=_dsc(img))
    np.testing.assert_allclose(piece.data["chroma"], chroma, rtol=1e-4, atol=1e-6)


def test_opposed_region_of_interest_equals_the_whole_image():
    img, m, _ = scene()
    whole, _ = run_module("highlights", img, m, params=NO_DETECT, dsc=_dsc(img))
    for roi in (ROI(17, 13, 20, 15), ROI(0, 0, 9, 7), ROI(51, 40, 9, 8), ROI(30, 0, 1, 48)):
        part, piece = run_module("highlights", img, m, params=NO_DETECT, dsc=_dsc(img), roi_out=roi)
        np.testing.assert_array_equal(part, whole[roi.y: roi.y + roi.height, roi.x: roi.x + roi.width])


def test_region_padding_and_flags():
    from pixelpipe.modules import registry
    from pixelpipe.modules.base import Piece

    img, m, _ = scene()
    mod = registry()["highlights"]()
    piece = Piece("highlights", 0, HighlightsParams(), img, buf_in=(60, 48), dsc_in=_dsc(img))
    mod.commit(piece)
    assert not mod.pointwise
    assert mod.modify_roi_in(piece, ROI(10, 10, 5, 5)) == ROI(9, 9, 7, 7)
    assert mod.modify_roi_in(piece, ROI(0, 0, 60, 48)) == ROI(0, 0, 60, 48)  # clamped to the buffer
    for fast, params in ((True, HighlightsParams()), (False, HighlightsParams(mode="clip"))):
        piece = Piece("highlights", 0, params, img, buf_in=(60, 48), dsc_in=_dsc(img), fast=fast)
        mod = registry()["highlights"]()
        mod.commit(piece)
        assert mod.pointwise and mod.variant(piece) == "clip"
        assert mod.modify_roi_in(piece, ROI(10, 10, 5, 5)) == ROI(10, 10, 5, 5)
    assert HighlightsParams().mode == "opposed"


def test_fast_pipe_clips():
    img, m, _ = scene()
    out, _ = run_module("highlights", img, m, dsc=_dsc(img), fast=True)
    np.testing.assert_allclose(out, np.minimum(m, 1.0), rtol=1e-6)


def test_four_colour_cfa_falls_back_to_clip_with_notice():
    img, m, _ = scene()
    img.cfa = CFA("4color", np.array([[0, 1], [3, 2]]), "GMCY")
    out, piece = run_module("highlights", img, m, dsc=_dsc(img))
    assert any("inpaint opposed needs an RGB" in n for n in piece.notices)
    np.testing.assert_allclose(out, np.minimum(m, 1.0), rtol=1e-6)


def test_planar_opposed_uses_each_pixels_other_channels():
    h, w = 20, 24
    rgb = rng.uniform(0.1, 2.2, size=(3, h, w)).astype(np.float32)
    img = raw_image(np.zeros((h, w)), white=1.0)
    img.cfa = CFA("none", np.array([[0, 1, 2]]), "RGBG")
    img.data = (rgb / np.array(COEFF, np.float32)[:, None, None]).astype(np.float32)
    dsc = BufferDesc(3, img.cfa, "raw", processed_maximum=COEFF)
    out, piece = run_module("highlights", img, rgb, params=NO_DETECT, dsc=dsc)
    chroma = piece.data["chroma"]
    clips = 0.987 * np.array(COEFF)
    v = rgb.astype(np.float64)
    root = np.cbrt(v)
    ref = ((root.sum(0)[None] - root) / 2) ** 3
    want = np.where(v >= clips[:, None, None], np.maximum(v, ref + chroma[:, None, None]), v)
    np.testing.assert_allclose(out, want, rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------- camera reference: the scene's white
#: a camera matrix (camera -> XYZ) whose D65 white balance is far from COEFF (the as-shot one)
CAM_TO_XYZ = np.array([[0.55, 0.30, 0.12], [0.25, 0.70, 0.05], [0.03, 0.12, 0.85]])


@pytest.mark.parametrize("params", [NO_DETECT, HighlightsParams(mode="clip")], ids=["opposed", "clip"])
def test_camera_reference_reconstructs_towards_the_as_shot_white(params):
    """With the camera reference (D65) applied, the result is the as-shot reconstruction rescaled:
    a blown area takes the as-shot white, which color calibration then maps to neutral."""
    from pixelpipe.modules.highlights import scene_scale_rgb
    from pixelpipe.modules.temperature import camera_reference

    img, m_shot, col = scene()
    img.cam_to_xyz = CAM_TO_XYZ
    ref = camera_reference(img)[:3]
    s = np.array(COEFF) / ref  # as shot / applied (both G = 1)
    assert np.abs(s - 1).max() > 0.2  # the two whites differ a lot
    np.testing.assert_allclose(scene_scale_rgb(img, ref), s, rtol=1e-12)
    np.testing.assert_array_equal(scene_scale_rgb(img, COEFF), np.ones(3))  # as shot: its own white
    np.testing.assert_array_equal(scene_scale_rgb(img, (1.7, 1.0, 1.3)), np.ones(3))  # a user white
    m_ref = (img.data * ref.astype(np.float32)[col]).astype(np.float32)
    shot, _ = run_module("highlights", img, m_shot, params=params, dsc=_dsc(img))
    out, piece = run_module("highlights", img, m_ref, params=params,
                            dsc=BufferDesc(1, img.cfa, "raw", processed_maximum=tuple(ref)))
    np.testing.assert_allclose(out, shot / s[col], rtol=3e-5, atol=3e-6)
    clipped = m_shot >= 0.987 * np.array(COEFF)[col]
    assert clipped.sum() > 100
    if params.mode == "opposed":  # photosites below the sensor's clip pass untouched
        np.testing.assert_array_equal(out[~clipped & (m_ref >= 0)], m_ref[~clipped & (m_ref >= 0)])
    else:  # the limit per colour is the as-shot white in the D65 balance
        lim = min(COEFF) / s
        np.testing.assert_allclose(piece.dsc_out.processed_maximum, lim, rtol=1e-6)
        np.testing.assert_allclose(out, np.minimum(m_ref, lim[col].astype(np.float32)), rtol=1e-6)


# ---------------------------------------------------------------- saturation below the white point
def test_saturation_level_detection():
    smooth = rng.uniform(0, 0.95, 200000)
    plateau = np.concatenate([smooth, 0.95 + rng.normal(0, 0.001, 20000)])
    level = saturation_level(plateau.astype(np.float32))
    assert level is not None and 0.94 < level < 0.95
    assert saturation_level(smooth.astype(np.float32)) is None
    # a bright flat surface (a bump with both flanks) is not a ceiling
    bump = np.concatenate([smooth * 0.8, rng.normal(0.85, 0.01, 20000)])
    assert saturation_level(bump.astype(np.float32)) is None
    assert saturation_level(np.zeros(10, np.float32)) is None


def test_detected_saturation_lowers_the_clip_level():
    img, m, col = scene()
    # the camera saturates at 0.9 of white in G: none of G reaches the 0.987 margin
    raw = img.data.copy()
    green = col == 1
    noise = rng.normal(0, 2e-4, raw.shape)
    raw[green] = np.where(raw[green] >= 0.9, 0.9 + noise[green], raw[green])
    img.data = raw.astype(np.float32)
    m = (img.data * np.array(COEFF, np.float32)[col]).astype(np.float32)
    plain, p0 = run_module("highlights", img, m, params=NO_DETECT, dsc=_dsc(img))
    found, p1 = run_module("highlights", img, m, dsc=_dsc(img))
    assert p0.data["clips"][1] == pytest.approx(0.987)
    assert 0.88 < p1.data["clips"][1] < 0.9
    core = (m >= 0.9 - 0.01) & green
    assert np.array_equal(plain[core], m[core])  # not seen as clipped: stays at 0.9
    assert found[core].mean() > 1.0  # reconstructed


# ---------------------------------------------------------------- real raw: the clipped GoPro sky
@pytest.fixture(scope="module")
def gopro():
    from pixelpipe.io.decode import load

    return load(raw_file(GOPRO))


def test_gopro_clipped_sky_has_no_magenta_cast(gopro):
    from pixelpipe.io.icc import colour_module
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    colour = colour_module()
    f = 5
    d = gopro.data / gopro.white
    g = np.zeros(d.shape, bool)
    g[0::2, 1::2] = d[0::2, 1::2] >= 0.944  # G at its saturation plateau (0.951 of white in this file)
    g[1::2, 0::2] = d[1::2, 0::2] >= 0.944
    H, W = d.shape
    sky = g[: H // f * f, : W // f * f].reshape(H // f, f, W // f, f).mean((1, 3)) >= 0.5
    sky = sky[:, ::-1]  # EXIF orientation 2: mirrored
    assert sky.sum() > 2000
    stats = {}
    for name, params in (("clip", {"mode": "clip"}), ("opposed", {"mode": "opposed"}),
                         ("opposed_plain", {"mode": "opposed", "detect_saturation": False})):
        edit = Edit.default_for(gopro)
        edit.set_params("highlights", gopro, **params)
        out = Pipe(gopro, edit).render(width=W // f).transpose(1, 2, 0)
        assert np.isfinite(out).all()
        lab = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(out, 0, 1)))[sky[: out.shape[0], : out.shape[1]]]
        stats[name] = (lab[:, 1].mean(), lab[:, 2].mean(), (lab[:, 1] > 3).mean(), lab[:, 0].mean())
    a, b, magenta, light = stats["opposed"]
    assert abs(a) < 1.5 and abs(b) < 2.5 and magenta < 0.01, stats
    assert light >= stats["clip"][3] - 1, stats  # reconstruction does not darken the sky
    # darktable's rule alone (clip level from the white point) leaves magenta speckles in this file
    assert stats["opposed_plain"][2] > magenta, stats


def test_gopro_sky_keeps_its_colour_through_color_calibration(gopro):
    """The clipped sky rendered with camera reference + color calibration (modern) has the colour
    the as-shot white balance (legacy) gives it: not warmed to pink by the adaptation."""
    from pixelpipe.io.icc import colour_module
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    colour = colour_module()
    H, W = gopro.data.shape
    outs = {}
    for ca in ("modern", "legacy"):
        edit = Edit.default_for(gopro, "scene-referred-sigmoid", chromatic_adaptation=ca)
        assert (edit.find("channelmixerrgb") is not None) == (ca == "modern")
        outs[ca] = Pipe(gopro, edit).render(width=W // 5).transpose(1, 2, 0)
    labs = {k: colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(v, 0, 1))) for k, v in outs.items()}
    # the blown sky: bright in both renderings (top of the frame)
    sky = (labs["legacy"][..., 0] > 88) & (labs["modern"][..., 0] > 88)
    sky[sky.shape[0] // 2:] = False
    assert sky.sum() > 2000
    a = {k: v[sky][:, 1] for k, v in labs.items()}
    pink = {k: float((v > 1.5).mean()) for k, v in a.items()}
    assert pink["modern"] < pink["legacy"] + 0.03, pink  # no pink (modern was 26 %, legacy 2 %)
    assert abs(a["modern"].mean() - a["legacy"].mean()) < 0.4, (a["modern"].mean(), a["legacy"].mean())


# ---------------------------------------------------------------- robustness
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1), (3, 5)])
@pytest.mark.parametrize("fill", ["black", "clipped", "random"])
def test_sizes_and_contents_stay_finite(shape, fill):
    data = {"black": np.zeros(shape), "clipped": np.full(shape, 1.0),
            "random": rng.uniform(0, 1.1, size=shape)}[fill].astype(np.float32)
    img = raw_image(data, black=(0, 0, 0, 0), white=1.0, wb=COEFF + (1.0,))
    m = (data * np.array(COEFF, np.float32)[_colours(*shape, RGGB)]).astype(np.float32)
    for params in (HighlightsParams(), HighlightsParams(mode="opposed", clip=0.0),
                   HighlightsParams(mode="opposed", clip=2.0), HighlightsParams(mode="clip", clip=0.0)):
        out, _ = run_module("highlights", img, m, params=params, dsc=_dsc(img))
        assert out.shape == shape and np.isfinite(out).all()
        if params.mode == "opposed":
            assert (out >= np.maximum(m, 0) - 1e-6).all()  # opposed only ever raises a sample


def test_non_finite_input_does_not_spread():
    img, m, _ = scene(12, 12)
    m = m.copy()
    m[5, 5] = np.inf
    out, _ = run_module("highlights", img, m, dsc=_dsc(img), params=HighlightsParams(mode="clip"))
    assert np.isfinite(out).all()


def test_version_1_edits_keep_clipping():
    p = HighlightsParams.from_dict("highlights", {"clip": 1.0}, version=1)
    assert p.mode == "clip"


@pytest.mark.parametrize("shape", [(48, 60), (1, 300), (300, 1), (130, 7)])
def test_saturation_histogram_kernel_matches_numpy(shape):
    """The Halide histogram behind the saturation search bins exactly as np.histogram does, edges
    included: values on bin edges, at the last edge, above it, below 0.5, and NaN."""
    from pixelpipe.modules.highlights import HIST_BINS, _HIST_EDGES, _histograms

    h, w = shape
    white, black = 16383.0, (64.0, 60.0, 70.0, 64.0)
    edges = _HIST_EDGES
    # levels on and between the edges, as normalised values u, mapped back to raw values
    u = np.concatenate([edges, edges[:-1] + 0.4 / 1024, [0.2, 0.499, 1.1, 1.3, 5.0]])
    u = rng.choice(u, size=(h, w))
    col = _colours(h, w, RGGB)
    cfa_black = np.array(black)[RGGB][np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2]
    raw = (u * (white - cfa_black) + cfa_black).astype(np.float32)
    raw.flat[::17] = np.nan
    img = raw_image(raw, black=black, white=white, wb=COEFF + (1.0,))
    got = _histograms(img)
    for k in range(3):
        v = ((raw[col == k].astype(np.float64) - cfa_black[col == k]) / (white - cfa_black[col == k])).astype(np.float32)
        v = v[v >= 0.5]
        want, _ = np.histogram(v, edges)
        np.testing.assert_array_equal(got[k, :HIST_BINS], want)
        assert got[k, :HIST_BINS + 1].sum() == v.size  # the values >= 0.5 (those above 1.1 too)
