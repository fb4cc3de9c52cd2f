"""Each engine-chain module against an independent NumPy reference.

Tolerances are stated per module: float32 Halide vs float64 NumPy.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from helpers import RGGB, mosaic_of, raw_image, rgb_image, run_module, smooth_test_image
from pixelpipe.errors import ParamsError, UnsupportedCFAError
from pixelpipe.io.source import CFA
from pixelpipe.modules import colorspaces as cs
from pixelpipe.modules import registry
from pixelpipe.modules.base import BufferDesc, Piece, ROI

rng = np.random.default_rng(1)


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize("op", sorted(registry()))
def test_params_json_round_trip_and_defaults(op):
    cls = registry()[op]
    p = cls.Params()
    d = json.loads(json.dumps(p.to_dict()))
    assert cls.Params.from_dict(op, d) == p
    assert cls.Params.VERSION >= 1


@pytest.mark.parametrize("op,field,value", [
    ("exposure", "exposure", 40.0), ("exposure", "black", float("nan")), ("sigmoid", "middle_grey_contrast", 0.0),
    ("temperature", "preset", "tungsten-ish"), ("flip", "orientation", 9), ("demosaic", "method", "magic"),
    ("rawprepare", "black_level", [1, 2, 3, -4]), ("crop", "cx", 1.5), ("colorout", "profile", "cmyk"),
])
def test_out_of_range_names_module_and_field(op, field, value):
    cls = registry()[op]
    d = cls.Params().to_dict()
    d[field] = value
    with pytest.raises(ParamsError) as e:
        cls.Params.from_dict(op, d)
    assert op in str(e.value) and field in str(e.value)


def test_unknown_parameter_and_wrong_type_are_refused():
    with pytest.raises(ParamsError, match="unknown parameter"):
        registry()["exposure"].Params.from_dict("exposure", {"exposur": 1})
    with pytest.raises(ParamsError, match="must be a number"):
        registry()["exposure"].Params.from_dict("exposure", {"exposure": "1"})
    with pytest.raises(ParamsError, match="true or false"):
        registry()["exposure"].Params.from_dict("exposure", {"compensate_exposure_bias": 1})


# ---------------------------------------------------------------- raw stage
def test_rawprepare_matches_numpy_per_channel_black():
    black = (100.0, 110.0, 120.0, 105.0)
    img = raw_image(np.zeros((8, 8)), black=black, white=4000.0)
    mosaic = rng.uniform(90, 4100, size=(37, 52)).astype(np.float32)
    # a region starting at an odd position: the CFA phase must follow
    out, _ = run_module("rawprepare", img, mosaic[1:, 1:], roi_in=ROI(1, 1, 51, 36), roi_out=ROI(1, 1, 51, 36))
    lut = np.array(black)[RGGB]
    yy, xx = np.mgrid[1:37, 1:52]
    b = lut[yy % 2, xx % 2]
    ref = (mosaic[1:, 1:] - b) / (4000.0 - b)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_temperature_and_highlights_clip():
    img = raw_image(np.zeros((4, 4)), wb=(2.0, 1.0, 1.5, 1.0))
    mosaic = rng.uniform(0, 1.2, size=(16, 20)).astype(np.float32)
    out, piece = run_module("temperature", img, mosaic)
    coeff = np.array([2.0, 1.0, 1.5, 1.0])[RGGB]
    yy, xx = np.mgrid[0:16, 0:20]
    np.testing.assert_allclose(out, mosaic * coeff[yy % 2, xx % 2], rtol=1e-6)
    assert piece.dsc_out.processed_maximum == (2.0, 1.0, 1.5)
    from pixelpipe.modules.highlights import HighlightsParams

    clipped, _ = run_module("highlights", img, out, params=HighlightsParams(mode="clip"), dsc=piece.dsc_out)
    np.testing.assert_allclose(clipped, np.minimum(out, 1.0), rtol=1e-6)  # min(processed_maximum) = 1


def test_temperature_without_as_shot_uses_daylight_and_says_so():
    xyz_to_cam = np.array([[0.9, -0.2, -0.1], [-0.3, 1.2, 0.1], [0.0, 0.2, 0.6]])
    img = raw_image(np.zeros((4, 4)), wb=None, cam_to_xyz=np.linalg.inv(xyz_to_cam))
    img.wb_daylight = (1.8, 1.0, 1.4, 1.0)
    _, piece = run_module("temperature", img, np.ones((4, 4), np.float32))
    assert np.allclose(piece.data["coeffs"], [1.8, 1.0, 1.4, 1.0])
    assert any("no as-shot white balance" in n for n in piece.notices)


# ---------------------------------------------------------------- demosaic
def _bilinear_ref(mosaic, pattern):
    """Normalised convolution with a 3x3 tent, mirror borders (independent NumPy version)."""
    h, w = mosaic.shape
    lut = np.array([0, 1, 2, 1])[pattern]
    yy, xx = np.mgrid[0:h, 0:w]
    col = lut[yy % 2, xx % 2]
    pad = lambda a: np.pad(a, 1, mode="reflect")  # noqa: E731
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], float)
    out = np.zeros((3, h, w))
    for ch in range(3):
        m = (col == ch).astype(float)
        pv, pm = pad(mosaic * m), pad(m)
        num = sum(k[j, i] * pv[j:j + h, i:i + w] for j in range(3) for i in range(3))
        den = sum(k[j, i] * pm[j:j + h, i:i + w] for j in range(3) for i in range(3))
        out[ch] = num / den
    return out


@pytest.mark.parametrize("pattern", [RGGB, np.array([[1, 0], [2, 3]]), np.array([[2, 3], [1, 0]])])
def test_bilinear_demosaic_matches_numpy(pattern):
    rgb = rng.uniform(0, 1, size=(3, 30, 40))
    mosaic = mosaic_of(rgb, pattern)
    img = raw_image(mosaic, pattern=pattern)
    from pixelpipe.modules.demosaic import DemosaicParams

    out, _ = run_module("demosaic", img, mosaic, params=DemosaicParams("bilinear"),
                        roi_in=ROI(0, 0, 40, 30), roi_out=ROI(0, 0, 40, 30))
    np.testing.assert_allclose(out, _bilinear_ref(mosaic, pattern), atol=1e-5)


def test_mhc_demosaic_is_exact_on_flat_colour_and_good_on_smooth_image():
    from pixelpipe.modules.demosaic import DemosaicParams

    flat = np.ones((3, 24, 24)) * np.array([0.2, 0.5, 0.8])[:, None, None]
    img = raw_image(mosaic_of(flat))
    out, _ = run_module("demosaic", img, mosaic_of(flat), params=DemosaicParams("mhc"))
    np.testing.assert_allclose(out, flat, atol=1e-5)
    # detailed luminance with correlated channels, as in photographs (MHC's premise)
    yy, xx = np.mgrid[0:64, 0:96]
    lum = 0.5 + 0.3 * np.sin(0.9 * xx + 0.4 * yy) * np.cos(0.5 * yy)
    smooth = (lum[None] * np.array([0.9, 1.0, 0.7])[:, None, None] + 0.05 * smooth_test_image()).astype(np.float32)
    m = mosaic_of(smooth)
    o_mhc, _ = run_module("demosaic", raw_image(m), m, params=DemosaicParams("mhc"))
    o_bil, _ = run_module("demosaic", raw_image(m), m, params=DemosaicParams("bilinear"))
    err = lambda o: np.abs(o - smooth)[:, 4:-4, 4:-4].mean()  # noqa: E731
    assert err(o_mhc) < 0.7 * err(o_bil)


def test_half_size_demosaic_averages_each_block():
    rgb = rng.uniform(0, 1, size=(3, 16, 16))
    m = mosaic_of(rgb)
    from pixelpipe.modules.demosaic import run_kernel

    half = run_kernel("half", m, np.array([[0, 1], [1, 2]]))
    np.testing.assert_allclose(half[0], m[0::2, 0::2], atol=1e-6)
    np.testing.assert_allclose(half[1], (m[0::2, 1::2] + m[1::2, 0::2]) / 2, atol=1e-6)
    np.testing.assert_allclose(half[2], m[1::2, 1::2], atol=1e-6)


def test_unknown_cfa_is_refused_clearly():
    img = raw_image(np.zeros((12, 12)))
    img.cfa = CFA("quad", np.zeros((4, 4), int), "RGBG")
    with pytest.raises(UnsupportedCFAError, match="not supported: quad colour filter arrays"):
        run_module("demosaic", img, np.zeros((12, 12), np.float32))
    img.cfa = CFA("xtrans", np.zeros((6, 6), int), "RGBG")  # an X-Trans pattern without R and B
    with pytest.raises(UnsupportedCFAError, match="not supported: an X-Trans pattern"):
        run_module("demosaic", img, np.zeros((12, 12), np.float32))
    img.cfa = CFA("bayer", np.array([[0, 1], [2, 3]]), "RGBG")  # R G / B G: greens in a column
    with pytest.raises(UnsupportedCFAError, match="greens are not on a diagonal"):
        run_module("demosaic", img, np.zeros((12, 12), np.float32))


# ---------------------------------------------------------------- colour
def test_colorin_camera_matrix_maps_neutral_to_neutral_and_matches_numpy():
    xyz_to_cam = np.array([[0.7, 0.1, -0.05], [-0.2, 1.1, 0.15], [0.05, -0.1, 0.8]])
    img = raw_image(np.zeros((4, 4)), cam_to_xyz=np.linalg.inv(xyz_to_cam))
    inp = rng.uniform(0, 1, size=(3, 10, 12)).astype(np.float32)
    inp[:, 0, 0] = 0.5  # a white-balanced grey
    out, piece = run_module("colorin", img, inp)
    M = cs.camera_to_working(xyz_to_cam)
    np.testing.assert_allclose(out, np.einsum("ij,jhw->ihw", M, inp), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out[:, 0, 0], 0.5, atol=1e-5)


def test_colorin_without_matrix_assumes_srgb_with_notice():
    img = raw_image(np.zeros((4, 4)), cam_to_xyz=None)
    _, piece = run_module("colorin", img, np.ones((3, 4, 4), np.float32))
    assert any("no colour matrix" in n for n in piece.notices)


@pytest.mark.parametrize("profile", ["srgb", "display_p3", "adobe_rgb", "rec2020", "linear_srgb", "linear_rec2020"])
def test_colorout_matches_colour_science(profile):
    import colour

    from pixelpipe.modules.colorout import ColoroutParams

    inp = rng.uniform(0, 1, size=(3, 8, 9)).astype(np.float32)
    img = rgb_image(inp)
    out, _ = run_module("colorout", img, inp, params=ColoroutParams(profile))
    spaces = {"srgb": "sRGB", "display_p3": "Display P3", "adobe_rgb": "Adobe RGB (1998)", "rec2020": "ITU-R BT.2020"}
    name = spaces.get(profile.replace("linear_", ""), "sRGB")
    rgb = inp.reshape(3, -1).T
    lin = colour.RGB_to_RGB(rgb, colour.RGB_COLOURSPACES["ITU-R BT.2020"], colour.RGB_COLOURSPACES[name])
    lin = np.maximum(lin, 0)
    if profile.startswith("linear_"):
        ref = lin
    elif profile in ("srgb", "display_p3"):
        ref = colour.cctf_encoding(lin, function="sRGB")
    elif profile == "adobe_rgb":
        ref = lin ** (256 / 563)
    else:
        ref = colour.models.oetf_BT2020(lin)
    np.testing.assert_allclose(out.reshape(3, -1).T, ref, atol=2e-4)


def test_exposure_formula_and_bias_compensation():
    from pixelpipe.modules.exposure import ExposureParams

    inp = rng.uniform(0, 1, size=(3, 5, 6)).astype(np.float32)
    img = rgb_image(inp)
    img.exif["exposure_bias"] = -1.0
    out, _ = run_module("exposure", img, inp, params=ExposureParams(0.7, -0.000244140625, True))
    ev, black = 0.7 + 1.0, -0.000244140625
    ref = (inp - black) / (2 ** -ev - black)
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def _sigmoid_ref(rgb, p):
    from pixelpipe.modules.sigmoid import curve_parameters

    d = curve_parameters(p)

    def f(v):
        film = np.where(d["fog"] + v > 0, np.maximum(d["fog"] + v, 0) ** d["film_power"], 0)
        return d["white"] * (film / (d["paper_exp"] + film)) ** d["paper_power"]

    px = rgb.reshape(3, -1).T.astype(np.float64)
    avg = np.maximum(px.mean(1), 0)
    lo = px.min(1)
    sat = np.where(lo < 0, -avg / np.where(lo < 0, lo - avg, -1), 1.0)
    px = avg[:, None] + sat[:, None] * (px - avg[:, None])
    out = np.empty_like(px)
    h = p.hue_preservation / 100
    for k, v in enumerate(px):
        o = np.argsort(v, kind="stable")
        mn, md, mx = v[o[0]], v[o[1]], v[o[2]]
        fm, fd, fx = f(mn), f(md), f(mx)
        ms = (md - mn) / (mx - mn) if mx - mn != 0 else 0.0
        naive = (1 - h) * fd + h * (fm + (fx - fm) * ms)
        blend = 2 * mn / (mn + md) if mn + md != 0 else 0.0
        target = blend * (fm + fd + fx) + (1 - blend) * (fm + naive + fx)
        if naive <= fd:
            nd = ((1 - h) * fd + h * (ms * fx + (1 - ms) * (target - fx))) / (1 + h * (1 - ms))
            lo_, hi_ = target - fx - nd, fx
        else:
            nd = ((1 - h) * fd + h * (fm * (1 - ms) + ms * (target - fm))) / (1 + h * ms)
            lo_, hi_ = fm, target - fm - nd
        res = np.empty(3)
        res[o[0]], res[o[1]], res[o[2]] = lo_, nd, hi_
        out[k] = res
    return out.T.reshape(rgb.shape)


def test_sigmoid_matches_numpy_and_hits_targets():
    from pixelpipe.modules.sigmoid import SigmoidParams

    inp = rng.uniform(-0.05, 4.0, size=(3, 6, 7)).astype(np.float32)
    inp[:, 0, 0] = 0.1845  # grey stays grey
    inp[:, 0, 1] = 0.0
    p = SigmoidParams()
    out, _ = run_module("sigmoid", rgb_image(inp), inp, params=p)
    np.testing.assert_allclose(out, _sigmoid_ref(inp, p), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(out[:, 0, 0], 0.1845, atol=1e-4)
    np.testing.assert_allclose(out[:, 0, 1], 0.000152, atol=1e-5)
    # hue preservation keeps the channel sum, so a saturated channel may pass white a little
    assert np.isfinite(out).all() and out.max() < 1.5


# ---------------------------------------------------------------- geometry
@pytest.mark.parametrize("bits", range(8))
def test_flip_pixels_and_point_round_trip(bits):
    from pixelpipe.modules.flip import FLIP_X, FLIP_Y, SWAP_XY, FlipParams

    inp = rng.uniform(0, 1, size=(3, 5, 8)).astype(np.float32)
    img = rgb_image(inp)
    out, piece = run_module("flip", img, inp, params=FlipParams(bits))
    ref = inp
    if bits & FLIP_X:
        ref = ref[:, :, ::-1]
    if bits & FLIP_Y:
        ref = ref[:, ::-1, :]
    if bits & SWAP_XY:
        ref = ref.transpose(0, 2, 1)
    np.testing.assert_array_equal(out, ref)
    mod = registry()["flip"]()
    pts = rng.uniform(0, 5, size=(50, 2))
    back = mod.distort_backtransform(piece, mod.distort_transform(piece, pts))
    assert np.abs(back - pts).max() < 0.1
    # a pixel centre lands on the centre of the pixel that received its value
    p = np.array([[2.5, 1.5]])
    q = mod.distort_transform(piece, p)[0]
    assert out[:, int(q[1]), int(q[0])].tolist() == inp[:, 1, 2].tolist()


def test_crop_region_and_point_round_trip():
    from pixelpipe.modules.crop import CropParams

    inp = rng.uniform(0, 1, size=(3, 40, 60)).astype(np.float32)
    p = CropParams(0.25, 0.1, 0.75, 0.6)
    out, piece = run_module("crop", rgb_image(inp), inp, params=p)
    np.testing.assert_array_equal(out, inp[:, 4:24, 15:45])
    mod = registry()["crop"]()
    pts = rng.uniform(0, 40, size=(20, 2))
    assert np.abs(mod.distort_backtransform(piece, mod.distort_transform(piece, pts)) - pts).max() < 0.1
    with pytest.raises(ParamsError, match="crop"):
        CropParams(0.5, 0, 0.4, 1).validate("crop")


def test_no_nan_or_inf_leaves_gamma():
    inp = np.array([[[np.nan, np.inf, -np.inf, -1, 2]]] * 3, np.float32)
    out, _ = run_module("gamma", rgb_image(inp), inp)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
