"""colorin / colorout: the camera-reference facts color calibration relies on, round trips, robustness.

NumPy references use colour-science (tolerances stated per test).
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import raw_file
from helpers import raw_image, rgb_image, run_module
from pixelpipe.io.icc import colour_module
from pixelpipe.modules import colorin
from pixelpipe.modules.colorin import ColorinParams
from pixelpipe.modules.colorout import ColoroutParams

colour = colour_module()
R2X = np.asarray(colour.RGB_COLOURSPACES["ITU-R BT.2020"].matrix_RGB_to_XYZ)
XYZ_TO_CAM = np.array([[0.7, 0.1, -0.05], [-0.2, 1.1, 0.15], [0.05, -0.1, 0.8]])
rng = np.random.default_rng(17)


def _camera(wb=(2.0, 1.0, 1.5, 1.0), m=XYZ_TO_CAM):
    return raw_image(np.zeros((4, 4)), wb=wb, cam_to_xyz=np.linalg.inv(m))


def test_camera_matrix_is_what_colorin_applies():
    img = _camera()
    inp = rng.uniform(0, 1, size=(3, 5, 6)).astype(np.float32)
    out, piece = run_module("colorin", img, inp)
    np.testing.assert_allclose(piece.data["matrix"], colorin.camera_matrix(img), atol=1e-12)
    np.testing.assert_allclose(out, np.einsum("ij,jhw->ihw", colorin.camera_matrix(img), inp), rtol=1e-4, atol=1e-6)


def test_reference_coefficients_make_d65_white_neutral():
    """darktable's camera reference: a D65 white, after those multipliers and the matrix, is (1, 1, 1)."""
    img = _camera()
    ref = colorin.reference_coefficients(img)
    assert ref[1] == 1.0 and ref[3] == ref[1]
    working_white = R2X @ np.ones(3)
    white = colorin.camera_matrix(img) @ (ref[:3] * (XYZ_TO_CAM @ working_white))
    np.testing.assert_allclose(white / white[1], 1.0, atol=1e-9)
    # the working white is D65 (to the rounding of colour-science's Rec.2020 matrix)
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    np.testing.assert_allclose(colour.XYZ_to_xy(working_white), d65, atol=1e-4)


def test_no_matrix_or_four_colour_matrix_gives_none():
    assert colorin.camera_matrix(raw_image(np.zeros((2, 2)))) is None
    assert colorin.reference_coefficients(raw_image(np.zeros((2, 2)))) is None
    cygm = raw_image(np.zeros((2, 2)), cam_to_xyz=np.ones((3, 4)))
    assert colorin.camera_matrix(cygm) is None and colorin.reference_coefficients(cygm) is None


def test_real_raw_reference_matches_libraw_daylight():
    from pixelpipe.io.decode import load

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    np.testing.assert_allclose(colorin.reference_coefficients(img)[:3], np.asarray(img.wb_daylight)[:3], rtol=1e-3)


def test_dng_matrix_of_another_illuminant_is_adapted_to_d65_as_darktable_does():
    """The GoPro DNG's matrices are calibrated under tungsten and D50; darktable takes the D50 one
    and multiplies it (camera side) by the Bradford adaptation D50 -> D65."""
    from pixelpipe.io.decode import load

    img = load(raw_file("gopro_hero6_black_gpr2dng.dng"))
    assert img.calibration_illuminant == 23
    ccs = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]
    bradford = colour.adaptation.matrix_chromatic_adaptation_VonKries(
        colour.xy_to_XYZ(ccs["D50"]), colour.xy_to_XYZ(ccs["D65"]), transform="Bradford")
    cam_from_work = (bradford @ np.asarray(img.xyz_to_cam)) @ R2X
    expected = np.linalg.inv(cam_from_work / cam_from_work.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(colorin.camera_matrix(img), expected, atol=1e-9)
    # darktable 4.2.1's own matrix, fitted from its exports with colorin on and off (least
    # squares over 0.5 M pixels, residual 5e-5; bench/compare_darktable_rawstage.py measures it)
    darktable = np.array([[0.91433, 0.45844, -0.37277], [-0.13996, 1.51273, -0.37278], [-0.03858, -0.22408, 1.26267]])
    np.testing.assert_allclose(colorin.camera_matrix(img), darktable, atol=5e-4)
    # a D65 matrix is used as it is
    d65 = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    cam_from_work = np.asarray(d65.xyz_to_cam) @ R2X
    np.testing.assert_allclose(colorin.camera_matrix(d65),
                               np.linalg.inv(cam_from_work / cam_from_work.sum(axis=1, keepdims=True)), atol=1e-9)


@pytest.mark.parametrize("profile", ["srgb", "display_p3", "adobe_rgb", "rec2020", "prophoto", "linear_srgb"])
def test_colorin_then_colorout_round_trips(profile):
    """A file in ``profile`` read by colorin and written by colorout in the same profile is unchanged."""
    enc = rng.uniform(0.02, 1.0, size=(3, 6, 7)).astype(np.float32)
    img = rgb_image(enc, encoding="linear" if profile.startswith("linear") else "srgb")
    lin, _ = run_module("colorin", img, enc, params=ColorinParams(profile))
    back, _ = run_module("colorout", img, lin, params=ColoroutParams(profile))
    np.testing.assert_allclose(back, enc, atol=3e-4)


def test_colorin_decodes_srgb_like_colour_science():
    enc = rng.uniform(0, 1, size=(3, 4, 5)).astype(np.float32)
    out, _ = run_module("colorin", rgb_image(enc, encoding="srgb"), enc, params=ColorinParams("srgb"))
    lin = colour.cctf_decoding(enc.reshape(3, -1).T, function="sRGB")
    ref = colour.RGB_to_RGB(lin, colour.RGB_COLOURSPACES["sRGB"], colour.RGB_COLOURSPACES["ITU-R BT.2020"])
    np.testing.assert_allclose(out.reshape(3, -1).T, ref, atol=2e-4)


@pytest.mark.parametrize("op", ["colorin", "colorout"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_sizes_and_non_finite_values(op, shape):
    inp = rng.uniform(-1, 3, size=(3,) + shape).astype(np.float32)
    flat = inp.reshape(3, -1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30])
    flat[:, : min(flat.shape[1], 6)] = specials[: flat.shape[1]]
    img = _camera() if op == "colorin" else rgb_image(inp)
    out, _ = run_module(op, img, inp)
    assert out.shape == inp.shape and np.isfinite(out).all()
    if op == "colorout":
        assert out.min() >= 0
