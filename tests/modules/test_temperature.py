"""temperature (white balance): presets, the camera reference, temperature/tint and its inverse.

References: the coefficients are the reciprocal of the camera's response
``xyz_to_cam @ XYZ(white)`` normalised to green, XYZ(white) from the CIE
chromaticity of the illuminant with Y = 1 / tint; pixels are ``v * coeff``.
Tolerances: pixels rtol 1e-6 (one float32 multiply); coefficients 1e-9 unless stated.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import raw_file
from helpers import RGGB, raw_image, run_module
from pixelpipe.errors import ParamsError
from pixelpipe.io.source import CFA
from pixelpipe.modules import colorspaces as cs
from pixelpipe.modules.base import BufferDesc, ROI
from pixelpipe.modules.temperature import (TemperatureParams, camera_reference, coefficients,
                                           coefficients_for_temperature, temperature_tint, xy_of_temperature)

rng = np.random.default_rng(3)
XYZ_TO_CAM = np.array([[0.9, -0.25, -0.1], [-0.3, 1.2, 0.12], [0.02, 0.15, 0.55]])  # a plausible camera
D65_XY = np.array([0.3127, 0.3290])


def _camera(wb=(2.0, 1.0, 1.5, 1.0), m=XYZ_TO_CAM, **kw):
    img = raw_image(np.zeros((4, 4)), wb=wb, cam_to_xyz=np.linalg.inv(m), **kw)
    img.xyz_to_cam = m
    return img


def _xyz(xy, Y=1.0):
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y]) * Y


# ---------------------------------------------------------------- pixels
@pytest.mark.parametrize("pattern", [RGGB, np.array([[1, 0], [2, 3]]), np.array([[2, 3], [1, 0]])])
def test_pixels_are_multiplied_per_cfa_position_with_the_phase(pattern):
    img = _camera(wb=(2.2, 1.0, 1.4, 1.0), pattern=pattern)
    m = rng.uniform(0, 1.2, size=(21, 30)).astype(np.float32)
    roi = ROI(3, 5, 27, 16)
    out, piece = run_module("temperature", img, m[5:21, 3:30], roi_in=roi, roi_out=roi)
    yy, xx = np.mgrid[5:21, 3:30]
    coeff = np.array([2.2, 1.0, 1.4, 1.0])[pattern[yy % 2, xx % 2]]
    np.testing.assert_allclose(out, m[5:21, 3:30] * coeff, rtol=1e-6)
    assert piece.dsc_out.processed_maximum == pytest.approx((2.2, 1.0, 1.4))


def test_user_coefficients_and_planar_raw():
    img = _camera()
    img.cfa = CFA("none", np.array([[0, 1, 2]]), "RGBG")
    data = rng.uniform(0, 1, size=(3, 5, 7)).astype(np.float32)
    p = TemperatureParams(preset="user", red=1.7, green=1.0, blue=2.5)
    out, piece = run_module("temperature", img, data, params=p, dsc=BufferDesc(3, img.cfa, "raw"))
    np.testing.assert_allclose(out, data * np.array([1.7, 1.0, 2.5])[:, None, None], rtol=1e-6)
    assert out.shape == (3, 5, 7)


# ---------------------------------------------------------------- camera reference (D65)
def test_camera_reference_makes_a_d65_grey_neutral_through_the_matrix():
    img = _camera()
    c, notice = coefficients(img, TemperatureParams(preset="camera-reference"))
    assert notice is None and c[1] == 1.0
    grey = 0.18 * _xyz(D65_XY)  # an 18 % grey lit by D65
    cam = XYZ_TO_CAM @ grey
    balanced = cam * c[:3]
    np.testing.assert_allclose(balanced / balanced[1], 1.0, atol=2e-4)  # D65 of sRGB vs (0.3127, 0.3290)
    # and colorin's matrix takes that neutral to neutral working RGB
    rgb = cs.camera_to_working(XYZ_TO_CAM) @ balanced
    np.testing.assert_allclose(rgb / rgb[1], 1.0, atol=2e-4)
    # the older name gives the same coefficients
    np.testing.assert_array_equal(coefficients(img, TemperatureParams(preset="daylight"))[0], c)
    np.testing.assert_allclose(c[:3], cs.daylight_coefficients(XYZ_TO_CAM), rtol=1e-12)


#: darktable 4.2.1's camera reference for the GoPro DNG (its history with chromatic adaptation
#: "modern"): its D50 matrix is adapted to D65 first, which LibRaw's daylight multipliers
#: (2.13 / 1 / 1.47, the D50 matrix read as a D65 one) do not do
DARKTABLE_GOPRO_REFERENCE = (2.15936, 1.0, 1.13509)


def test_camera_reference_of_a_d50_dng_matrix_is_darktables():
    from pixelpipe.io.decode import load

    img = load(raw_file("gopro_hero6_black_gpr2dng.dng"))
    np.testing.assert_allclose(camera_reference(img)[:3], DARKTABLE_GOPRO_REFERENCE, rtol=1e-3)


@pytest.mark.parametrize("name", ["canon_550d_magiclantern_colorchart.dng",
                                  "canon_eos_d30.crw", "canon_powershot_g1_cygm.crw"])
def test_camera_reference_agrees_with_libraw_daylight(name):
    from pixelpipe.io.decode import load

    img = load(raw_file(name))
    c = camera_reference(img)
    g = img.cfa.colors.index("G")
    assert c[g] == 1.0
    n = 4 if img.cfa.kind == "4color" else 3
    np.testing.assert_allclose(c[:n], np.array(img.wb_daylight)[:n], rtol=2e-3)


# ---------------------------------------------------------------- temperature / tint
def test_locus_chromaticities_are_the_cie_ones():
    # Planckian locus at 2856 K is illuminant A; the daylight locus at 6504 K is D65
    np.testing.assert_allclose(xy_of_temperature(2856), [0.44757, 0.40745], atol=2e-4)
    np.testing.assert_allclose(xy_of_temperature(6504), D65_XY, atol=3e-4)
    np.testing.assert_allclose(xy_of_temperature(5003), [0.3457, 0.3585], atol=3e-4)  # D50


def test_temperature_coefficients_follow_the_formula():
    img = _camera()
    for t, tint in ((3200.0, 1.0), (5000.0, 0.9), (7500.0, 1.2)):
        xy = xy_of_temperature(t)
        white = np.array([xy[0] / xy[1], 1.0 / tint, (1 - xy[0] - xy[1]) / xy[1]])
        ref = 1.0 / (XYZ_TO_CAM @ white)
        ref = ref / ref[1]
        got = coefficients_for_temperature(img, t, tint)
        np.testing.assert_allclose(got[:3], ref, rtol=1e-12)
        p = TemperatureParams(preset="temperature", temperature=t, tint=tint)
        np.testing.assert_allclose(coefficients(img, p)[0][:3], ref, rtol=1e-12)
    # warmer light needs more blue gain; tint above 1 raises green against red and blue
    warm, cold = coefficients_for_temperature(img, 3000, 1), coefficients_for_temperature(img, 9000, 1)
    assert warm[2] > cold[2] and warm[0] < cold[0]
    green = coefficients_for_temperature(img, 5000, 1.3)
    plain = coefficients_for_temperature(img, 5000, 1.0)
    assert green[0] < plain[0] and green[2] < plain[2]
    # 6504 K on the locus is (almost exactly) the camera reference
    np.testing.assert_allclose(coefficients_for_temperature(img, 6504, 1.0), camera_reference(img), rtol=2e-3)


@pytest.mark.parametrize("t,tint", [(2500.0, 1.0), (3500.0, 0.85), (5000.0, 1.1), (6504.0, 1.0), (12000.0, 0.95)])
def test_temperature_tint_round_trip(t, tint):
    img = _camera()
    c = coefficients_for_temperature(img, t, tint)
    t2, tint2 = temperature_tint(img, c)
    assert abs(t2 - t) < 0.05 and abs(tint2 - tint) < 1e-6
    np.testing.assert_allclose(coefficients_for_temperature(img, t2, tint2), c, rtol=1e-7)


@pytest.mark.parametrize("name", ["gopro_hero6_black_gpr2dng.dng", "canon_550d_magiclantern_colorchart.dng"])
def test_as_shot_coefficients_round_trip_through_temperature_tint(name):
    from pixelpipe.io.decode import load

    img = load(raw_file(name))
    c = np.array(img.wb_as_shot)
    t, tint = temperature_tint(img, c)
    assert 1901 < t < 25000 and 0.135 < tint < 2.326
    np.testing.assert_allclose(coefficients_for_temperature(img, t, tint)[:3], c[:3], rtol=1e-6)


def test_four_colour_temperature_round_trip():
    from pixelpipe.io.decode import load

    img = load(raw_file("canon_powershot_g1_cygm.crw"))
    c = coefficients_for_temperature(img, 4500.0, 1.05)
    assert c[img.cfa.colors.index("G")] == 1.0 and np.all(c > 0)
    t, tint = temperature_tint(img, c)
    assert abs(t - 4500) < 0.05 and abs(tint - 1.05) < 1e-6


# ---------------------------------------------------------------- files without white balance
def test_no_as_shot_uses_the_camera_daylight_with_a_notice_d30():
    from pixelpipe.io.decode import load

    img = load(raw_file("canon_eos_d30.crw"))
    assert img.wb_as_shot is None
    _, piece = run_module("temperature", img, np.ones((4, 4), np.float32))
    assert any("no as-shot white balance" in n for n in piece.notices)
    np.testing.assert_allclose(piece.data["coeffs"][:3], camera_reference(img)[:3], rtol=2e-4)
    np.testing.assert_allclose(piece.data["coeffs"][:3], [2.10, 1.0, 1.06], atol=0.01)


def test_no_white_balance_and_no_matrix_is_neutral_with_notices():
    img = raw_image(np.zeros((4, 4)), wb=None, cam_to_xyz=None)
    for preset, words in (("as-shot", "no as-shot white balance"), ("camera-reference", "no colour matrix"),
                          ("temperature", "as if it were sRGB")):
        c, notice = coefficients(img, TemperatureParams(preset=preset))
        assert words in notice
        if preset != "temperature":
            np.testing.assert_array_equal(c, 1.0)
        else:  # sRGB primaries: 6504 K is (almost) neutral
            np.testing.assert_allclose(c, 1.0, atol=3e-3)


def test_cygm_as_shot_is_normalised_to_its_green():
    from pixelpipe.io.decode import load

    img = load(raw_file("canon_powershot_g1_cygm.crw"))
    assert img.cfa.colors == "GMCY"
    mosaic = rng.uniform(0, 1, size=(6, 8)).astype(np.float32)
    out, piece = run_module("temperature", img, mosaic)
    c = piece.data["coeffs"]
    np.testing.assert_allclose(c, np.array(img.wb_as_shot) / img.wb_as_shot[0], rtol=1e-12)
    yy, xx = np.mgrid[0:6, 0:8]
    np.testing.assert_allclose(out, mosaic * c[img.cfa.pattern[yy % 2, xx % 2]], rtol=1e-6)
    assert piece.dsc_out.processed_maximum == pytest.approx((c.min(),) * 3)


# ---------------------------------------------------------------- parameters and robustness
def test_params_ranges_and_old_version():
    for field, value in (("temperature", 1000.0), ("tint", 3.0), ("preset", "shade"), ("red", -1.0)):
        d = TemperatureParams().to_dict()
        d[field] = value
        with pytest.raises(ParamsError, match=field):
            TemperatureParams.from_dict("temperature", d)
    old = TemperatureParams.from_dict("temperature", {"preset": "daylight", "red": 1.0, "green": 1.0,
                                                      "blue": 1.0, "g2": 1.0}, version=1)
    assert old.preset == "daylight" and old.temperature == 6504.0


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_tiny_and_long_images(shape):
    img = _camera(wb=(2.0, 1.0, 1.5, 1.0))
    m = rng.uniform(0, 1, size=shape).astype(np.float32)
    out, _ = run_module("temperature", img, m)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    np.testing.assert_allclose(out, m * np.array([2.0, 1.0, 1.5, 1.0])[RGGB[yy % 2, xx % 2]], rtol=1e-6)


def test_extreme_parameters_stay_finite():
    img = _camera()
    m = rng.uniform(0, 1, size=(4, 4)).astype(np.float32)
    for p in (TemperatureParams(preset="user", red=0.0, green=0.0, blue=0.0),
              TemperatureParams(preset="user", red=8.0, green=8.0, blue=8.0, g2=8.0),
              TemperatureParams(preset="temperature", temperature=1901.0, tint=0.135),
              TemperatureParams(preset="temperature", temperature=25000.0, tint=2.326)):
        out, piece = run_module("temperature", img, m, params=p)
        assert np.isfinite(out).all() and np.isfinite(piece.data["coeffs"]).all()
