"""channelmixerrgb (color calibration) against a NumPy reference of darktable's formulas.

The reference uses colour-science for the working space, the von Kries CATs
(CAT16, Bradford, XYZ scaling) and u'v' chromaticities, independently of the
module's own matrix assembly. Tolerance: float32 Halide vs float64 NumPy,
``atol=2e-4, rtol=1e-3`` (the u'v' round trip divides by small y).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from helpers import raw_file
from helpers import raw_image, rgb_image, run_module
from pixelpipe.errors import ParamsError
from pixelpipe.io.icc import colour_module
from pixelpipe.modules import colorin
from pixelpipe.modules.channelmixerrgb import ChannelmixerrgbParams, as_shot_xy, illuminant_xy

colour = colour_module()
REC2020 = colour.RGB_COLOURSPACES["ITU-R BT.2020"]
R2X = np.asarray(REC2020.matrix_RGB_to_XYZ)
X2R = np.linalg.inv(R2X)
WHITE = R2X @ np.ones(3)
CATS = {"cat16": "CAT16", "bradford": "Bradford", "xyz": "XYZ Scaling"}
rng = np.random.default_rng(7)
TOL = dict(atol=2e-4, rtol=1e-3)

# a plausible camera (XYZ -> camera, Adobe convention)
XYZ_TO_CAM = np.array([[0.7, 0.1, -0.05], [-0.2, 1.1, 0.15], [0.05, -0.1, 0.8]])


def _reference(rgb: np.ndarray, p: ChannelmixerrgbParams, illum_xy) -> np.ndarray:
    """darktable's color calibration pixel code, written from its documented steps."""
    px = rgb.reshape(3, -1).T.astype(np.float64)
    lo = 0.0 if p.clip else -np.inf
    px = np.maximum(px, lo)
    mix = np.array([p.red, p.green, p.blue], dtype=np.float64)
    for i, n in enumerate(("red", "green", "blue")):
        if getattr(p, f"normalize_{n}") and mix[i].sum() != 0:
            mix[i] /= mix[i].sum()
    if p.adaptation == "none":
        to_lms = from_lms = np.eye(3)
        xyz = px @ (R2X @ mix).T
        to_space, from_space = X2R, R2X
    else:
        L = np.asarray(colour.CHROMATIC_ADAPTATION_TRANSFORMS[CATS[p.adaptation]])
        src = colour.xy_to_XYZ(np.asarray(illum_xy))
        cat = colour.adaptation.matrix_chromatic_adaptation_VonKries(src, WHITE, transform=CATS[p.adaptation])
        to_lms, from_lms = L, np.linalg.inv(L)
        xyz = px @ (from_lms @ mix @ to_lms @ cat @ R2X).T
        to_space, from_space = L, np.linalg.inv(L)
    xyz = np.maximum(xyz, lo)
    # gamut compression in CIE 1976 u'v'
    s = xyz.sum(1)
    Y = xyz[:, 1]
    wxy = colour.XYZ_to_xy(WHITE)
    xy = np.where(s[:, None] > 0, xyz[:, :2] / np.where(s > 0, s, 1)[:, None], wxy)
    uv = colour.xy_to_Luv_uv(xy)
    wuv = colour.xy_to_Luv_uv(wxy)
    d = wuv - uv
    delta = np.maximum(Y * (d ** 2).sum(1), 0)
    corr = np.zeros_like(delta) if p.gamut == 0 else delta ** (1 / p.gamut)
    uv2 = uv + corr[:, None] * d
    uv2 = np.where(uv > wuv, np.maximum(uv2, wuv), np.minimum(uv2, wuv))
    xy2 = colour.Luv_uv_to_xy(uv2)
    if p.clip:
        xy2 = np.maximum(xy2, 0)
    xy2[:, 1] = np.maximum(xy2[:, 1], 1e-6)
    sc = xy2.sum(1)
    xy2 = np.where(sc[:, None] >= 1, xy2 / sc[:, None], xy2)
    xyz = np.stack([xy2[:, 0] * Y / xy2[:, 1], Y, (1 - xy2.sum(1)) * Y / xy2[:, 1]], 1)
    lms = np.maximum(xyz @ to_space.T, lo)
    # colourfulness / brightness
    sat = -np.asarray(p.saturation, float) + (np.mean(p.saturation) if p.normalize_saturation else 0)
    light = np.asarray(p.lightness, float) - (np.mean(p.lightness) if p.normalize_lightness else 0)
    norm = np.sqrt(np.maximum((lms ** 2).sum(1), 1e-6)) / math.sqrt(3)
    avg = np.maximum(lms.mean(1), 1e-6)
    ratios = lms / norm[:, None]
    k = (ratios @ sat) / 3
    ratios = np.maximum(ratios + (1 - ratios) * k[:, None], np.minimum(ratios, 0))
    norm = norm / (np.sqrt(np.maximum((ratios ** 2).sum(1), 1e-6)) / math.sqrt(3))
    norm *= np.maximum(1 + (lms @ light) / avg, 0)
    graded = np.maximum(ratios * norm[:, None], lo)
    grey = np.asarray(p.grey, float)
    if np.any(grey != 0):
        if p.normalize_grey and grey.sum() != 0:
            grey = grey / grey.sum()
        out = np.repeat(np.maximum(graded @ grey, 0)[:, None], 3, 1)
    else:
        out = np.maximum(np.maximum(graded @ from_space.T, lo) @ X2R.T, lo)
    return out.T.reshape(rgb.shape)


def _run(inp, p, image=None):
    return run_module("channelmixerrgb", image or rgb_image(inp), inp, params=p)


CASES = [
    dict(illuminant="A"),
    dict(illuminant="A", adaptation="bradford"),
    dict(illuminant="custom", x=0.40, y=0.38, adaptation="xyz", gamut=4.0),
    dict(illuminant="daylight", temperature=5000.0, red=[0.9, 0.2, -0.1], green=[0.1, 0.8, 0.1],
         blue=[-0.2, 0.3, 1.1], normalize_red=True, normalize_blue=True),
    dict(illuminant="blackbody", temperature=3000.0, saturation=[0.5, -0.3, 0.8], lightness=[0.2, -0.4, 0.1]),
    dict(illuminant="pipe", adaptation="none", saturation=[0.3, 0.3, 0.3], normalize_saturation=True,
         lightness=[0.5, 0.0, -0.5], normalize_lightness=True, clip=False, gamut=0.0),
    dict(illuminant="E", grey=[0.3, 0.6, 0.1], normalize_grey=True),
    dict(illuminant="D50", adaptation="none", grey=[0.2, 0.7, 0.1], clip=False),
]


@pytest.mark.parametrize("kw", CASES)
def test_matches_numpy_reference(kw):
    inp = rng.uniform(-0.05, 1.5, size=(3, 9, 11)).astype(np.float32)
    inp[:, 0, 0] = 0.0
    inp[:, 0, 1] = 0.18
    p = ChannelmixerrgbParams(**kw)
    out, piece = _run(inp, p)
    ref = _reference(inp, p, piece.data["illuminant_xy"])
    np.testing.assert_allclose(out, ref, **TOL)


def test_cat_matrix_is_colour_sciences_von_kries():
    """With an identity mix the adaptation is exactly colour-science's von Kries CAT."""
    for adaptation, name in CATS.items():
        p = ChannelmixerrgbParams(illuminant="A", adaptation=adaptation, gamut=0.0, clip=False)
        inp = rng.uniform(0.05, 0.9, size=(3, 4, 5)).astype(np.float32)
        out, _ = _run(inp, p)
        src = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["A"])
        xyz = np.einsum("ij,jhw->ihw", R2X, inp)
        adapted = colour.chromatic_adaptation(np.moveaxis(xyz, 0, -1), src, WHITE, method="Von Kries",
                                              transform=name)
        ref = np.einsum("ij,hwj->ihw", X2R, adapted)
        np.testing.assert_allclose(out, ref, **TOL)


@pytest.mark.parametrize("adaptation", ["cat16", "bradford", "xyz", "none"])
def test_identity_without_adaptation_compression_or_clip(adaptation):
    """darktable's "same as pipeline" with gamut compression off and no clipping is an identity.

    (For colours with a valid chromaticity: the u'v' step always keeps y > 0 and x + y < 1.)
    """
    inp = rng.uniform(0.0, 3.0, size=(3, 6, 7)).astype(np.float32)
    inp[:, 0, 0] = 0.0
    p = ChannelmixerrgbParams(illuminant="pipe", adaptation=adaptation, gamut=0.0, clip=False)
    out, _ = _run(inp, p)
    np.testing.assert_allclose(out, inp, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("kw", [dict(illuminant="A"), dict(illuminant="blackbody", temperature=2500.0,
                                                             adaptation="bradford"),
                                dict(illuminant="pipe", adaptation="none", saturation=[1.0, -0.5, 0.7],
                                     lightness=[0.3, 0.3, 0.3])])
def test_neutral_stays_neutral(kw):
    """The illuminant's own colour becomes neutral; mixing in the working RGB, greys stay grey.

    (In a CAT space the pipe white is not L = M = S, so darktable's colourfulness
    nudges greys there; that is its behaviour and the reference test covers it.)
    """
    p = ChannelmixerrgbParams(**kw)
    xy, _ = illuminant_xy(p, rgb_image(np.zeros((3, 1, 1))))
    illum_rgb = X2R @ colour.xy_to_XYZ(xy)
    levels = np.array([0.01, 0.18, 0.5, 1.0, 4.0])
    inp = (levels[None, :, None] * illum_rgb[:, None, None]).astype(np.float32).repeat(2, axis=2)
    out, _ = _run(inp, p)
    spread = out.max(0) - out.min(0)
    assert np.all(spread <= 2e-4 * np.maximum(out.mean(0), 1.0)), spread


def test_grey_is_a_weighted_sum():
    inp = rng.uniform(0, 1, size=(3, 5, 5)).astype(np.float32)
    p = ChannelmixerrgbParams(illuminant="pipe", adaptation="none", gamut=0.0, grey=[0.25, 0.6, 0.15])
    out, _ = _run(inp, p)
    ref = np.maximum(np.tensordot([0.25, 0.6, 0.15], inp, axes=1), 0)
    np.testing.assert_allclose(out, np.broadcast_to(ref, out.shape), atol=2e-5)


def test_colourfulness_scales_chroma_at_constant_grey():
    """Positive saturation moves ratios away from grey; a grey pixel is untouched."""
    inp = np.array([[[0.2, 0.3]], [[0.3, 0.3]], [[0.5, 0.3]]], np.float32)
    kw = dict(illuminant="pipe", adaptation="none", gamut=0.0)
    base, _ = _run(inp, ChannelmixerrgbParams(**kw))
    more, _ = _run(inp, ChannelmixerrgbParams(**kw, saturation=[0.5, 0.5, 0.5]))
    less, _ = _run(inp, ChannelmixerrgbParams(**kw, saturation=[-0.5, -0.5, -0.5]))
    spread = lambda o: float(o[:, 0, 0].max() - o[:, 0, 0].min())  # noqa: E731
    assert spread(less) < spread(base) < spread(more)
    np.testing.assert_allclose(more[:, 0, 1], 0.3, atol=1e-5)


# ---------------------------------------------------------------- as-shot illuminant
def _camera(wb):
    return raw_image(np.zeros((4, 4)), wb=wb, cam_to_xyz=np.linalg.inv(XYZ_TO_CAM))


def test_as_shot_illuminant_from_white_balance():
    img = _camera((1.0, 1.0, 1.0, 1.0))
    ref = colorin.reference_coefficients(img)
    # a camera balanced for illuminant A: as-shot = 1 / camera response to A's white
    a_xyz = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["A"])
    cam_a = XYZ_TO_CAM @ a_xyz
    wb = tuple(cam_a[1] / cam_a) + (1.0,)
    img = _camera(wb)
    xy = as_shot_xy(img)
    # what a white under A looks like after the reference WB and colorin: the illuminant
    white_seen = colorin.camera_matrix(img) @ (ref[:3] * cam_a)
    np.testing.assert_allclose(xy, colour.XYZ_to_xy(R2X @ white_seen), atol=1e-9)
    # as-shot coefficients already applied: the illuminant is the pipe white (no double correction)
    np.testing.assert_allclose(as_shot_xy(img, applied=wb), colour.XYZ_to_xy(WHITE), atol=1e-9)
    # and the module maps that white to neutral
    p = ChannelmixerrgbParams()
    inp = np.repeat((0.4 * white_seen / white_seen[1]).astype(np.float32)[:, None, None], 3, axis=2)
    out, piece = _run(inp, p, img)
    assert not piece.notices
    assert np.ptp(out[:, 0, 0]) < 1e-4 * out.mean()


def test_defaults_per_image_kind():
    from pixelpipe.modules import registry

    cls = registry()["channelmixerrgb"]
    assert cls().default_params(_camera((2.0, 1.0, 1.5, 1.0))).illuminant == "as_shot"
    no_wb = cls().default_params(_camera(None))
    assert no_wb.illuminant == "pipe"
    assert cls().default_params(rgb_image(np.zeros((3, 2, 2)))).illuminant == "pipe"
    # as_shot asked for where it cannot be computed: no adaptation, and a notice
    inp = rng.uniform(0, 1, size=(3, 3, 3)).astype(np.float32)
    out, piece = _run(inp, ChannelmixerrgbParams(gamut=0.0), _camera(None))
    assert any("no as-shot white balance" in n for n in piece.notices)
    np.testing.assert_allclose(out, inp, atol=2e-5)


# ---------------------------------------------------------------- robustness
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_sizes_and_non_finite_values(shape):
    inp = rng.uniform(-1, 2, size=(3,) + shape).astype(np.float32)
    flat = inp.reshape(3, -1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30])
    flat[:, : min(flat.shape[1], len(specials))] = specials[: flat.shape[1]]
    for kw in [{}, dict(illuminant="blackbody", temperature=1667.0, gamut=12.0, saturation=[2, -2, 2],
                        lightness=[-2, 2, -2], red=[2, -2, 2], clip=False),
               dict(illuminant="custom", x=0.01, y=0.01, grey=[-2, 2, -2], normalize_grey=True)]:
        out, _ = _run(inp, ChannelmixerrgbParams(**kw), _camera((2.0, 1.0, 1.5, 1.0)))
        assert out.shape == inp.shape and np.isfinite(out).all()


def test_black_and_clipped_inputs():
    inp = np.zeros((3, 2, 3), np.float32)
    inp[:, 1] = 1.0  # clipped white
    out, _ = _run(inp, ChannelmixerrgbParams(illuminant="A"))
    np.testing.assert_allclose(out[:, 0], 0.0, atol=1e-7)
    assert np.isfinite(out).all() and out[:, 1].min() > 0


@pytest.mark.parametrize("field,value", [("temperature", 1000.0), ("gamut", -1.0), ("red", [3.0, 0.0, 0.0]),
                                         ("saturation", [0.0, float("nan"), 0.0]), ("illuminant", "F11"),
                                         ("adaptation", "cat02"), ("x", 0.95), ("grey", [0.0, 1.0])])
def test_out_of_range_parameters_name_module_and_field(field, value):
    d = ChannelmixerrgbParams().to_dict()
    d[field] = value
    with pytest.raises(ParamsError) as e:
        ChannelmixerrgbParams.from_dict("channelmixerrgb", d)
    assert "channelmixerrgb" in str(e.value) and field in str(e.value)


def test_custom_chromaticity_must_be_valid():
    with pytest.raises(ParamsError, match="channelmixerrgb.*'x' \\+ 'y'"):
        ChannelmixerrgbParams.from_dict("channelmixerrgb", {"illuminant": "custom", "x": 0.6, "y": 0.5})


# ---------------------------------------------------------------- real raws
def _pipe(img, edit):
    from pixelpipe.pipe.pipeline import Pipe

    return Pipe(img, edit)


def _d65_preset():
    from pixelpipe.modules.temperature import PRESETS

    for name in ("camera-reference", "camera reference", "camera_reference", "daylight"):
        if name in PRESETS:
            return name
    pytest.skip("the temperature module has no camera-reference (D65) preset")


def _chroma(rgb_display):
    lab = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(rgb_display, 0, 1)))
    return float(np.hypot(lab[1], lab[2])), float(math.degrees(math.atan2(lab[2], lab[1])))


def _sample_under(tmp_path, illuminant="A", size=(600, 400)):
    """The synthetic chart lit by ``illuminant`` (greys exact), as-shot WB for it, as a DNG."""
    from pixelpipe.io import sample
    from pixelpipe.io.dng import write_cfa_dng

    w, h = size
    xyz = sample.sample_scene(w, h)
    src = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"][illuminant])
    xyz = colour.chromatic_adaptation(xyz, sample.D65_XYZ, src, method="Von Kries", transform="Bradford")
    m = sample.CAMERA_XYZ_TO_CAM
    cam = xyz @ m.T
    cam = np.clip(cam * sample.SAMPLE_EXPOSURE / float(np.max(m @ src)), 0, 1)
    mosaic = sample.mosaic_from_rgb(cam, "RGGB")
    dn = np.round(sample.SAMPLE_BLACK + mosaic * (sample.SAMPLE_WHITE - sample.SAMPLE_BLACK)).astype(np.uint16)
    neutral = m @ src
    path = write_cfa_dng(tmp_path / f"chart_{illuminant}.dng", dn, "RGGB", sample.SAMPLE_BLACK,
                         sample.SAMPLE_WHITE, m, neutral / neutral[1])
    return path


def _sample_grey_centres(w, h):
    """Bottom ColorChecker row of pixelpipe.io.sample's chart (as tests/test_pipe.py)."""
    x0, x1, y0, y1 = 0.03 * w, 0.60 * w, 0.04 * h, 0.64 * h
    pw, ph = (x1 - x0) / 6, (y1 - y0) / 4
    return [(int(x0 + (col + 0.5) * pw), int(y0 + 3.5 * ph)) for col in range(6)]


@pytest.mark.parametrize("illuminant", ["A", "D50"])
def test_camera_reference_plus_cat_neutralises_a_non_d65_scene(tmp_path, illuminant):
    """temperature at the camera reference + default color calibration: greys neutral, as with as-shot WB."""
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit

    img = load(_sample_under(tmp_path, illuminant))
    results = {}
    for label, preset, cat in [("reference+cat", _d65_preset(), True), ("as-shot", "as-shot", False),
                               ("reference", _d65_preset(), False)]:
        edit = Edit.default_for(img, "scene-referred")
        edit.set_params("temperature", img, preset=preset)
        edit.get("channelmixerrgb").enabled = cat
        out = _pipe(img, edit).render().transpose(1, 2, 0)
        h, w = out.shape[:2]
        results[label] = [_chroma(out[cy - 4:cy + 4, cx - 4:cx + 4].reshape(-1, 3).mean(0))[0]
                          for cx, cy in _sample_grey_centres(w, h)[:5]]
    assert max(results["reference+cat"]) < 1.5, results
    assert max(results["as-shot"]) < 1.5, results
    if illuminant == "A":  # without the CAT the tungsten cast stays
        assert min(results["reference"]) > 5, results


def test_as_shot_white_balance_upstream_is_not_corrected_twice_in_a_real_pipe():
    """temperature at "as-shot" hands its coefficients down (BufferDesc.wb_coeffs): color
    calibration's as-shot adaptation is then an identity, so the chart's greys come out as
    with calibration off."""
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    greys = {}
    for cat in (True, False):
        edit = Edit.default_for(img, "scene-referred")
        edit.set_params("temperature", img, preset="as-shot")
        edit.get("channelmixerrgb").enabled = cat
        p = _pipe(img, edit)
        out = p.render()
        greys[cat] = np.array([out[:, y - 15:y + 15, x - 15:x + 15].reshape(3, -1).mean(1) for x, y in CHART_GREYS])
        if cat:
            assert p.last.pieces["channelmixerrgb"].dsc_in.wb_coeffs is not None
    np.testing.assert_allclose(greys[True], greys[False], atol=0.01)


# ColorChecker bottom row (white .. black) in the export of canon_550d_magiclantern_colorchart.dng
# (1734x1156, orientation 1); the same coordinates as bench/quality_colorchecker.py
CHART_GREYS = [(707, 926), (819, 926), (926, 926), (1035, 926), (1143, 926), (1251, 926)]


def test_real_chart_cat_from_a_grey_patch_and_as_shot_path():
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    # 1. measure the white patch in the working space, camera-reference WB, no CAT, no tone curve
    edit = Edit.default_for(img, "scene-referred")
    edit.set_params("temperature", img, preset=_d65_preset())
    edit.get("channelmixerrgb").enabled = False
    edit.get("sigmoid").enabled = False
    edit.set_params("colorout", img, profile="linear_rec2020")
    lin = _pipe(img, edit).render()
    cx, cy = CHART_GREYS[1]
    patch = lin[:, cy - 15:cy + 15, cx - 15:cx + 15].reshape(3, -1).mean(1)
    xy = colour.XYZ_to_xy(R2X @ patch)
    # 2. adapt from that illuminant: all six greys neutral
    edit = Edit.default_for(img, "scene-referred")
    edit.set_params("temperature", img, preset=_d65_preset())
    edit.set_params("channelmixerrgb", img, illuminant="custom", x=float(xy[0]), y=float(xy[1]))
    out = _pipe(img, edit).render()
    chroma = [_chroma(out[:, y - 15:y + 15, x - 15:x + 15].reshape(3, -1).mean(1))[0] for x, y in CHART_GREYS]
    # (the darker patches keep a little of the mixed, non-uniform light: chroma 4 at L* 10-20,
    # against 20-30 with the as-shot white balance)
    assert np.mean(chroma[:5]) < 3.0 and max(chroma[:5]) < 5.0, chroma
    # 3. the default (as-shot illuminant) path: greys as neutral as with as-shot WB (same cast, same hue)
    res = {}
    for label, preset, cat in [("cat", _d65_preset(), True), ("as-shot", "as-shot", False)]:
        edit = Edit.default_for(img, "scene-referred")
        edit.set_params("temperature", img, preset=preset)
        edit.get("channelmixerrgb").enabled = cat
        out = _pipe(img, edit).render()
        res[label] = [_chroma(out[:, y - 15:y + 15, x - 15:x + 15].reshape(3, -1).mean(1)) for x, y in CHART_GREYS[:5]]
    for (c_cat, h_cat), (c_ws, h_ws) in zip(res["cat"], res["as-shot"]):
        assert abs(c_cat - c_ws) < 0.15 * c_ws + 1.0 and abs(h_cat - h_ws) < 5.0, res


def test_double_white_balance_is_avoided_when_the_pipe_reports_coefficients():
    """With as-shot WB applied upstream, as_shot adaptation must be (close to) an identity."""
    from pixelpipe.modules.base import BufferDesc

    if "wb_coeffs" not in {f.name for f in dataclasses.fields(BufferDesc)}:
        pytest.skip("BufferDesc does not carry the applied white balance (wb_coeffs) yet")
    img = _camera((2.0, 1.0, 1.5, 1.0))
    inp = rng.uniform(0.05, 1, size=(3, 4, 4)).astype(np.float32)
    dsc = BufferDesc(3, None, "rec2020", wb_coeffs=(2.0, 1.0, 1.5, 1.0))
    out, _ = run_module("channelmixerrgb", img, inp, params=ChannelmixerrgbParams(gamut=0.0), dsc=dsc)
    np.testing.assert_allclose(out, inp, atol=1e-4)
