"""colorbalancergb against a NumPy reference of darktable's color balance rgb (JzAzBz formula).

The reference follows darktable's documented steps with colour-science's own
conversions (Kirk 2019 Yrg and LMS, Safdar 2017 JzAzBz); Filmlight grading RGB
is rebuilt from Yrg (``(l + m + s) (r, g, 1 - r - g)``), independently of the
module's matrices; Yrg -> LMS inverts colour-science's LMS -> Yrg exactly (its
``Yrg_to_LMS`` uses rounded constants, a 1e-3 round-trip error darktable's
exact matrix pair does not have). Only the gamut table is shared (tested on
its own).
Tolerance: ``atol=3e-4, rtol=2e-3`` (float32 through the PQ curve of JzAzBz).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import raw_file
from helpers import rgb_image, run_module
from pixelpipe.errors import ParamsError
from pixelpipe.io.icc import colour_module
from pixelpipe.modules.colorbalancergb import ColorbalancergbParams, gamut_lut

colour = colour_module()
from colour.models import jzazbz, yrg  # noqa: E402

R2X = np.asarray(colour.RGB_COLOURSPACES["ITU-R BT.2020"].matrix_RGB_to_XYZ)
X2R = np.linalg.inv(R2X)
X2L = np.asarray(yrg.MATRIX_XYZ_TO_LMS_KIRK2019)
WHITE_RG = colour.models.LMS_to_Yrg(X2L @ R2X @ np.ones(3))[1:]
rng = np.random.default_rng(11)
TOL = dict(atol=3e-4, rtol=2e-3)


def _yrg_to_lms(yrg_):
    """Exact inverse of colour.models.LMS_to_Yrg: r, g are affine in the normalised l, m (s = 1 - l - m)."""
    yrg_ = np.asarray(yrg_, dtype=np.float64)
    e = np.eye(3)
    rg = np.array([colour.models.LMS_to_Yrg(v)[1:] for v in e]).T      # (2, 3) over l, m, s
    ky = np.array([colour.models.LMS_to_Yrg(v)[0] for v in e])
    a = np.vstack([rg, np.ones(3)])
    lms_n = np.linalg.solve(a, np.concatenate([yrg_[..., 1:], np.ones_like(yrg_[..., :1])], -1)[..., None])[..., 0]
    den = (lms_n @ ky)[..., None]
    return lms_n * np.where(den != 0, yrg_[..., :1] / np.where(den != 0, den, 1), 0)


def _jz_forward(xyz):
    """colour-science's XYZ -> Jzazbz with darktable's guard: negative LMS clipped to 0 before the PQ curve
    (colour's sign-preserving power would send out-of-gamut values far away)."""
    from colour.models.rgb.transfer_functions import eotf_inverse_ST2084

    k = jzazbz.CONSTANTS_JZAZBZ_SAFDAR2017
    X, Y, Z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    xyz_p = np.stack([k.b * X - (k.b - 1) * Z, k.g * Y - (k.g - 1) * X, Z], -1)
    lms = np.maximum(xyz_p @ np.asarray(jzazbz.MATRIX_JZAZBZ_XYZ_TO_LMS).T, 0)
    lms_p = eotf_inverse_ST2084(lms, 10000, k)
    iab = lms_p @ np.asarray(jzazbz.MATRIX_JZAZBZ_LMS_P_TO_IZAZBZ_SAFDAR2017).T
    iz = iab[..., 0]
    return np.stack([(1 + k.d) * iz / (1 + k.d * iz) - k.d_0, iab[..., 1], iab[..., 2]], -1)


def _grading_from_lms(lms):
    yrg_ = colour.models.LMS_to_Yrg(lms)
    a = lms.sum(-1, keepdims=True)
    r, g = yrg_[..., 1:2], yrg_[..., 2:3]
    return a * np.concatenate([r, g, 1 - r - g], -1)


def _lms_from_grading(rgb):
    a = rgb.sum(-1, keepdims=True)
    safe = np.where(a != 0, a, 1)
    lms = _yrg_to_lms(np.concatenate([np.ones_like(a), rgb[..., :2] / safe], -1))
    return np.where(a != 0, a * lms / lms.sum(-1, keepdims=True), 0)


def _ych_grading(Y, c, h_deg):
    h = math.radians(h_deg - 30.0)  # darktable's GUI hue: red at 0
    return _grading_from_lms(_yrg_to_lms(np.array([Y, c * math.cos(h) + WHITE_RG[0],
                                                               c * math.sin(h) + WHITE_RG[1]])))


def _reference(rgb, p: ColorbalancergbParams):
    px = np.maximum(rgb.reshape(3, -1).T.astype(np.float64), 0)
    Yrg = colour.models.LMS_to_Yrg(px @ (X2L @ R2X).T)
    Y = np.maximum(Yrg[:, 0], 0)
    # masks
    mg = p.mask_grey_fulcrum ** 0.4101205819200422
    ws, wh = 2 + 2 * p.shadows_weight, 2 + 2 * p.highlights_weight
    wm = ws ** 2 * wh ** 2 / (ws ** 2 + wh ** 2)
    xo = Y ** 0.4101205819200422 - mg
    alpha = 1 / (1 + np.exp(xo / mg * ws))
    beta = 1 / (1 + np.exp(-xo / mg * wh))
    gamma = np.exp(-xo ** 2 * wm / 4) * (1 - alpha) ** 2 * (1 - beta) ** 2 * 8
    masks = np.stack([alpha, gamma, beta], 1)
    # Ych, hue shift, chroma, vibrance, gamut clip in Yrg
    d = Yrg[:, 1:] - WHITE_RG
    ch = np.hypot(d[:, 0], d[:, 1])
    hue = np.where(ch > 0, np.arctan2(d[:, 1], d[:, 0]), 0.0) + math.radians(p.hue_angle)
    cos2, sin2 = np.cos(hue), np.sin(hue)
    boost = p.chroma_global + masks @ [p.chroma_shadows, p.chroma_midtones, p.chroma_highlights]
    ch = ch * np.maximum(1 + boost + p.vibrance * (1 - ch ** abs(p.vibrance)), 0)
    wr, wg = WHITE_RG
    with np.errstate(divide="ignore", invalid="ignore"):
        cm = ch.copy()
        cm = np.where(ch * cos2 + wr < 0, np.minimum(-wr / cos2, cm), cm)
        cm = np.where(ch * sin2 + wg < 0, np.minimum(-wg / sin2, cm), cm)
        cm = np.where(ch * (cos2 + sin2) + wr + wg > 1, np.minimum((1 - wr - wg) / (cos2 + sin2), cm), cm)
    lms = _yrg_to_lms(np.stack([Y, cm * cos2 + wr, cm * sin2 + wg], 1))
    lms = np.where(Y[:, None] > 0, lms, 0)
    grading = _grading_from_lms(lms)
    # 4 ways
    norm = _ych_grading(1, 0, 0)
    offset = _ych_grading(1, p.global_C, p.global_H) - norm + norm * p.global_Y
    lift = 1 + _ych_grading(1, p.shadows_C, p.shadows_H) - norm + p.shadows_Y
    gain = 1 + _ych_grading(1, p.highlights_C, p.highlights_H) - norm + p.highlights_Y
    power = 1 / (1 + _ych_grading(1, p.midtones_C, p.midtones_H) - norm)
    wf = 2.0 ** p.white_fulcrum
    e = (grading + offset) * ((1 - beta)[:, None] * ((1 - alpha)[:, None] + alpha[:, None] * lift)
                              + beta[:, None] * gain)
    e = np.sign(e) * (np.abs(e) / wf) ** power * wf
    # luminance power and contrast
    Yrg = colour.models.LMS_to_Yrg(_lms_from_grading(e))
    Y5 = np.maximum(Yrg[:, 0] / wf, 0) ** (1 / (1 + p.midtones_Y)) * wf
    Y5 = p.grey_fulcrum * (Y5 / p.grey_fulcrum) ** (1 + p.contrast)
    lms = _yrg_to_lms(np.stack([Y5, Yrg[:, 1], Yrg[:, 2]], 1))
    xyz = np.where(Y5[:, None] > 0, lms, 0) @ np.linalg.inv(X2L).T
    # JzAzBz saturation / brilliance and gamut mapping
    jab = _jz_forward(xyz)
    J, C, h = jab[:, 0], np.hypot(jab[:, 1], jab[:, 2]), np.arctan2(jab[:, 2], jab[:, 1])
    T = np.arctan2(C, J)
    b0 = 1 + p.brilliance_global + masks @ [p.brilliance_shadows, p.brilliance_midtones, p.brilliance_highlights]
    b1 = p.saturation_global + masks @ [p.saturation_shadows, p.saturation_midtones, p.saturation_highlights]
    so0 = J * np.cos(T) + C * np.sin(T)
    so1 = so0 * np.minimum(np.maximum(T * b1, -T), np.pi / 2 - T)
    so0 = np.maximum(so0 * b0, 0)
    J = np.maximum(so0 * np.cos(T) - so1 * np.sin(T), 0)
    C = np.maximum(so0 * np.sin(T) + so1 * np.cos(T), 0)
    lut = gamut_lut()
    gmax = np.interp((359 * (h + np.pi) / (2 * np.pi)), np.arange(361), np.append(lut, lut[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = C / J
        soft = np.where(s > 0.8 * gmax, 0.8 * gmax + (1 - np.exp(-(s - 0.8 * gmax) / (0.2 * gmax))) * 0.2 * gmax, s)
        sat = np.where(J > 0, soft, gmax)
        mj = np.where(sat > 0, C / sat, J)
    J, C = (J + mj) / 2, (C + J * sat) / 2
    k = jzazbz.CONSTANTS_JZAZBZ_SAFDAR2017
    iz = np.maximum((J + k.d_0) / (1 + k.d - k.d * (J + k.d_0)), 0)
    ai = np.asarray(jzazbz.MATRIX_JZAZBZ_IZAZBZ_TO_LMS_P_SAFDAR2017)
    cmax = C.copy()
    for row in ai:
        test = row[0] * iz + C * (row[1] * np.cos(h) + row[2] * np.sin(h))
        with np.errstate(divide="ignore", invalid="ignore"):
            cmax = np.where(test < 0, np.minimum(-iz / (row[1] * np.cos(h) + row[2] * np.sin(h)), cmax), cmax)
    xyz = colour.Jzazbz_to_XYZ(np.stack([J, cmax * np.cos(h), cmax * np.sin(h)], 1))
    return np.maximum(xyz @ X2R.T, 0).T.reshape(rgb.shape)


def _run(inp, p):
    return run_module("colorbalancergb", rgb_image(inp), inp, params=p)[0]


def _test_image():
    inp = rng.uniform(0.0, 1.0, size=(3, 8, 12)) ** 2 * 1.5
    inp = 0.6 * inp + 0.4 * inp.mean(0, keepdims=True)  # mostly moderate saturation, some strong
    inp[:, 0, :6] = np.array([0.0, 0.01, 0.05, 0.1845, 0.5, 2.0])[None]
    return inp.astype(np.float32)


CASES = [
    {},
    dict(global_Y=0.1, global_C=0.2, global_H=60.0, shadows_Y=-0.2, shadows_C=0.3, shadows_H=200.0,
         highlights_Y=0.15, highlights_C=0.1, highlights_H=30.0, midtones_Y=0.2, midtones_C=0.2, midtones_H=300.0),
    dict(chroma_global=0.3, chroma_shadows=-0.5, chroma_midtones=0.2, chroma_highlights=0.4, vibrance=0.5,
         hue_angle=40.0),
    dict(contrast=0.4, grey_fulcrum=0.25, white_fulcrum=1.5, shadows_weight=2.0, highlights_weight=0.2,
         mask_grey_fulcrum=0.3),
    dict(saturation_global=0.4, saturation_shadows=0.5, saturation_midtones=-0.3, saturation_highlights=-0.6,
         brilliance_global=0.2, brilliance_shadows=-0.3, brilliance_highlights=0.4),
    dict(vibrance=-0.7, contrast=-0.5, saturation_global=-1.0, brilliance_midtones=1.0),
]


@pytest.mark.parametrize("kw", CASES)
def test_matches_numpy_reference(kw):
    inp = _test_image()
    p = ColorbalancergbParams(**kw)
    np.testing.assert_allclose(_run(inp, p), _reference(inp, p), **TOL)


def test_defaults_leave_moderate_colours_unchanged():
    inp = (0.3 + 0.15 * rng.uniform(-1, 1, size=(3, 6, 6))).astype(np.float32)
    np.testing.assert_allclose(_run(inp, ColorbalancergbParams()), inp, atol=2e-4, rtol=1e-3)


def test_gamut_table_bounds_the_working_space():
    """Every colour of the RGB cube has a saturation within the table's (unsmoothed) maximum near its hue."""
    lut = gamut_lut()
    assert lut.shape == (360,) and np.all(lut > 0)
    cube = rng.uniform(0, 1, size=(4000, 3))
    jab = colour.XYZ_to_Jzazbz(cube @ R2X.T)
    sat = np.hypot(jab[:, 1], jab[:, 2]) / jab[:, 0]
    idx = np.round(359 * (np.arctan2(jab[:, 2], jab[:, 1]) + np.pi) / (2 * np.pi)).astype(int)
    near = np.max([np.roll(lut, k)[idx] for k in range(-3, 4)], axis=0)
    assert np.all(sat <= 5 * near / 1.0001)  # 5-tap box average: at worst a fifth of a spike
    assert np.mean(sat <= near * 1.0001) > 0.95


@pytest.mark.parametrize("kw", [dict(contrast=0.6), dict(saturation_global=0.8, chroma_global=0.5, vibrance=0.6),
                                dict(brilliance_global=0.5, midtones_Y=0.3, hue_angle=90.0),
                                dict(global_Y=0.05, shadows_Y=0.3, highlights_Y=-0.3)])
def test_neutral_stays_neutral(kw):
    """Greys stay grey (float32 through JzAzBz's PQ curve: about 1e-3 relative, as in darktable)."""
    levels = np.array([0.0, 0.01, 0.05, 0.18, 0.5, 1.0, 3.0], np.float32)
    inp = np.broadcast_to(levels, (3, 1, 7)).copy()
    out = _run(inp, ColorbalancergbParams(**kw))
    assert np.all(np.ptp(out, axis=0) <= 2.5e-3 * np.maximum(out.mean(0), 1e-2)), out


def test_four_ways_hue_lands_where_the_gui_says():
    grey = np.full((3, 1, 2), 0.18, np.float32)
    for hue in (0.0, 90.0, 200.0):
        out = _run(grey, ColorbalancergbParams(global_C=0.01, global_H=hue))[:, 0, 0].astype(np.float64)
        d = colour.models.LMS_to_Yrg(X2L @ R2X @ out)[1:] - WHITE_RG
        got = math.degrees(math.atan2(d[1], d[0])) + 30.0
        # (the offset is added in grading RGB: the hue in Yrg follows to within a few degrees)
        assert abs((got - hue + 180) % 360 - 180) < 4.0, (hue, got)


def test_contrast_pivots_on_the_grey_fulcrum():
    """(Y is Kirk's Yrg luminance, which the module grades; CIE Y differs slightly.)"""
    k = colour.models.LMS_to_Yrg(X2L @ R2X @ np.ones(3))[0]
    inp = np.broadcast_to(np.array([0.05, 0.1845, 0.6], np.float32) / np.float32(k), (3, 1, 3)).copy()
    out = _run(inp, ColorbalancergbParams(contrast=0.5))
    y_in = colour.models.LMS_to_Yrg(inp[:, 0].T.astype(float) @ (X2L @ R2X).T)[:, 0]
    y_out = colour.models.LMS_to_Yrg(out[:, 0].T.astype(float) @ (X2L @ R2X).T)[:, 0]
    assert abs(y_out[1] - y_in[1]) < 1e-4 and y_out[0] < y_in[0] and y_out[2] > y_in[2]


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_sizes_and_non_finite_values(shape):
    inp = rng.uniform(-1, 3, size=(3,) + shape).astype(np.float32)
    flat = inp.reshape(3, -1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30])
    flat[:, : min(flat.shape[1], 6)] = specials[: flat.shape[1]]
    for kw in ({}, dict(contrast=1.0, saturation_global=1.0, brilliance_global=-1.0, vibrance=1.0, chroma_global=1.0,
                        white_fulcrum=-16.0, midtones_Y=-1.0, midtones_C=1.0, global_C=1.0, shadows_weight=0.0,
                        highlights_weight=3.0, grey_fulcrum=0.001, mask_grey_fulcrum=1.0),
               dict(contrast=-1.0, saturation_global=-1.0, global_Y=-1.0, highlights_Y=-1.0, white_fulcrum=16.0)):
        out = _run(inp, ColorbalancergbParams(**kw))
        assert out.shape == inp.shape and np.isfinite(out).all()


@pytest.mark.parametrize("field,value", [("contrast", 1.5), ("shadows_H", 400.0), ("white_fulcrum", float("inf")),
                                         ("saturation_formula", "dtucs"), ("grey_fulcrum", 0.0),
                                         ("shadows_weight", -1.0)])
def test_out_of_range_parameters_name_module_and_field(field, value):
    d = ColorbalancergbParams().to_dict()
    d[field] = value
    with pytest.raises(ParamsError) as e:
        ColorbalancergbParams.from_dict("colorbalancergb", d)
    assert "colorbalancergb" in str(e.value) and field in str(e.value)


def test_real_raw_defaults_close_to_identity_and_saturation_adds_chroma():
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    img = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    edit = Edit.default_for(img)
    base = Pipe(img, edit).render(width=400)
    edit.set_params("colorbalancergb", img)
    same = Pipe(img, edit).render(width=400)
    # only the soft gamut mapping of the most saturated pixels acts at defaults
    assert np.mean(np.abs(same - base)) < 2e-3 and np.isfinite(same).all()
    edit.set_params("colorbalancergb", img, saturation_global=0.5, chroma_global=0.3)
    vivid = Pipe(img, edit).render(width=400)
    spread = lambda a: float(np.mean(np.ptp(a, axis=0)))  # noqa: E731
    assert spread(vivid) > 1.1 * spread(base)
