"""rawprepare against NumPy references written from the documented formulas.

Levels: ``(v - black) / (white - black)`` per CFA position (per colour, or the
DNG black-level pattern); gain maps: the DNG spec's GainMap (bilinear map
lookup at ((Y + 0.5) / H - origin_v) / spacing_v, clamped; area, pitch and
plane selection), written here per photosite with plain loops over the maps.
Tolerance: float32 kernel vs float64 NumPy, rtol 1e-5 / atol 1e-6 unless stated.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import raw_file
from helpers import raw_image, run_module
from pixelpipe.io.source import CFA
from pixelpipe.modules.base import BufferDesc, ROI
from pixelpipe.modules.rawprepare import RawprepareParams, interpolate_gain

rng = np.random.default_rng(7)
GOPRO = "gopro_hero6_black_gpr2dng.dng"


def levels_ref(mosaic, x0, y0, black_at, white):
    h, w = mosaic.shape
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w]
    b = black_at(yy, xx)
    return (mosaic.astype(np.float64) - b) / (white - b)


def gain_ref(maps, x0, y0, h, w, H, W, plane=0):
    """Product of the GainMaps covering each photosite, straight from the DNG spec."""
    g = np.ones((h, w))
    for m in maps:
        if not (m["plane"] <= plane < m["plane"] + m["planes"]):
            continue
        grid = m["gain"][:, :, min(plane, m["map_planes"] - 1)].astype(np.float64)
        nv, nh = grid.shape
        for j in range(h):
            Y = y0 + j
            if not (m["top"] <= Y < m["bottom"]) or (Y - m["top"]) % m["row_pitch"]:
                continue
            fv = min(max(((Y + 0.5) / H - m["map_origin_v"]) / m["map_spacing_v"], 0.0), nv - 1)
            for i in range(w):
                X = x0 + i
                if not (m["left"] <= X < m["right"]) or (X - m["left"]) % m["col_pitch"]:
                    continue
                fh = min(max(((X + 0.5) / W - m["map_origin_h"]) / m["map_spacing_h"], 0.0), nh - 1)
                i0, j0 = int(fv), int(fh)
                i1, j1 = min(i0 + 1, nv - 1), min(j0 + 1, nh - 1)
                a, b = fv - i0, fh - j0
                g[j, i] *= ((1 - a) * ((1 - b) * grid[i0, j0] + b * grid[i0, j1])
                            + a * ((1 - b) * grid[i1, j0] + b * grid[i1, j1]))
    return g


def gain_map(top, left, bottom, right, grid, rp=2, cp=2, ov=0.0, oh=0.0, sv=None, sh=None, plane=0, planes=1):
    grid = np.asarray(grid, np.float32)
    if grid.ndim == 2:
        grid = grid[:, :, None]
    nv, nh, mp = grid.shape
    return {"opcode_list": 2, "optional": True, "preview_skip": False, "top": top, "left": left,
            "bottom": bottom, "right": right, "plane": plane, "planes": planes, "row_pitch": rp,
            "col_pitch": cp, "map_points_v": nv, "map_points_h": nh,
            "map_spacing_v": sv if sv is not None else 1.0 / max(nv - 1, 1),
            "map_spacing_h": sh if sh is not None else 1.0 / max(nh - 1, 1),
            "map_origin_v": ov, "map_origin_h": oh, "map_planes": mp, "gain": grid}


# ---------------------------------------------------------------- levels
@pytest.mark.parametrize("kind,pattern,colors", [
    ("bayer", np.array([[1, 0], [2, 3]]), "RGBG"),                     # GRBG
    ("4color", np.array([[0, 1], [3, 2]]), "GMCY"),                    # CYGM (PowerShot G1)
    ("xtrans", np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                         [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]]), "RGBG"),
])
def test_levels_per_cfa_colour_follow_the_phase(kind, pattern, colors):
    black = (60.0, 64.0, 70.0, 66.0)
    img = raw_image(np.zeros((30, 42)), pattern=pattern, colors=colors, black=black, white=1023.0)
    img.cfa = CFA(kind, pattern, colors)
    mosaic = rng.uniform(50, 1030, size=(30, 42)).astype(np.float32)
    roi = ROI(5, 3, 33, 25)  # odd origin: the CFA phase must follow
    out, _ = run_module("rawprepare", img, mosaic[3:28, 5:38], roi_in=roi, roi_out=roi)
    n, m = pattern.shape
    ref = levels_ref(mosaic[3:28, 5:38], 5, 3, lambda yy, xx: np.array(black)[pattern[yy % n, xx % m]], 1023.0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_dng_black_level_pattern_and_user_shift():
    # a 2x4 BlackLevel pattern: per-colour levels cannot express it (two values per colour)
    bmap = np.array([[100, 104, 101, 105], [98, 102, 99, 103]], np.float32)
    means = (100.5, 102.5, 100.5, 102.5)  # what the decoder puts in image.black: per-colour means
    img = raw_image(np.zeros((20, 24)), black=means, white=4000.0)
    img.black_map = bmap
    mosaic = rng.uniform(90, 4100, size=(20, 24)).astype(np.float32)
    roi = ROI(3, 1, 19, 17)
    out, _ = run_module("rawprepare", img, mosaic[1:18, 3:22], roi_in=roi, roi_out=roi)
    ref = levels_ref(mosaic[1:18, 3:22], 3, 1, lambda yy, xx: bmap[yy % 2, xx % 4], 4000.0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # raising red's level by 10 DN shifts the map at the red sites only
    p = RawprepareParams(black_level=[means[0] + 10, means[1], means[2], means[3]], white_point=4000.0)
    out2, _ = run_module("rawprepare", img, mosaic, params=p)
    red = np.zeros((20, 24), bool)
    red[0::2, 0::2] = True
    ref2 = levels_ref(mosaic, 0, 0, lambda yy, xx: bmap[yy % 2, xx % 4] + 10 * red[yy, xx], 4000.0)
    np.testing.assert_allclose(out2, ref2, rtol=1e-5, atol=1e-6)


def test_planar_non_cfa_raw_per_channel_levels():
    data = rng.uniform(0, 65535, size=(3, 9, 13)).astype(np.float32)
    img = raw_image(np.zeros((9, 13)), black=(100, 200, 300, 200), white=60000.0)
    img.cfa = CFA("none", np.array([[2, 1, 0]]), "RGBG")  # channels hold B, G, R
    img.data = data
    out, piece = run_module("rawprepare", img, data, dsc=BufferDesc(3, img.cfa, "raw"))
    assert out.shape == (3, 9, 13) and piece.dsc_out.channels == 3
    black = np.array([300, 200, 100], float)[:, None, None]
    np.testing.assert_allclose(out, (data - black) / (60000.0 - black), rtol=1e-5, atol=1e-6)


def test_kodak_yrgb_planar_raw_real_file():
    from pixelpipe.io.decode import load

    img = load(raw_file("kodak_c330_yrgb.raw"))
    assert img.cfa.kind == "none" and img.data.shape[0] == 3
    roi = ROI(100, 50, 64, 48)
    inp = np.ascontiguousarray(img.data[:, 50:98, 100:164])
    out, _ = run_module("rawprepare", img, inp, roi_in=roi, roi_out=roi, dsc=BufferDesc(3, img.cfa, "raw"))
    np.testing.assert_allclose(out, inp / 65535.0, rtol=1e-6)


# ---------------------------------------------------------------- gain maps
def test_gain_interpolation_helper_matches_loops():
    grid = rng.uniform(1, 2, size=(5, 7))
    fv, fh = rng.uniform(-1, 6, 50), rng.uniform(-1, 8, 50)
    got = interpolate_gain(grid, fv, fh)
    for k in range(50):
        v, h = min(max(fv[k], 0), 4), min(max(fh[k], 0), 6)
        i0, j0 = int(v), int(h)
        i1, j1 = min(i0 + 1, 4), min(j0 + 1, 6)
        a, b = v - i0, h - j0
        ref = (1 - a) * ((1 - b) * grid[i0, j0] + b * grid[i0, j1]) + a * ((1 - b) * grid[i1, j0] + b * grid[i1, j1])
        assert abs(got[k] - ref) < 1e-12


@pytest.mark.parametrize("roi", [ROI(0, 0, 40, 30), ROI(7, 5, 21, 17)])
def test_gain_maps_match_the_dng_formula(roi):
    H, W = 30, 40
    maps = [gain_map(t, l, H, W, rng.uniform(1.0, 2.0, size=(4, 5))) for t in (0, 1) for l in (0, 1)]
    # plus one map on part of the frame with pitch 1, an origin and a spacing of its own
    maps.append(gain_map(4, 6, 25, 33, rng.uniform(0.8, 1.2, size=(3, 3)), rp=1, cp=1,
                         ov=0.2, oh=0.1, sv=0.3, sh=0.35))
    maps.append(gain_map(0, 0, H, W, np.full((2, 2), 3.0), plane=1))  # plane 1: not a mosaic's plane
    img = raw_image(np.zeros((H, W)), black=(64, 64, 64, 64), white=1023.0)
    img.gain_maps = maps
    mosaic = rng.uniform(64, 1023, size=(H, W)).astype(np.float32)
    inp = np.ascontiguousarray(mosaic[roi.y: roi.y + roi.height, roi.x: roi.x + roi.width])
    out, piece = run_module("rawprepare", img, inp, roi_in=roi, roi_out=roi)
    assert "gain5" in registry_variant(piece)
    ref = (inp - 64.0) / (1023.0 - 64.0) * gain_ref(maps, roi.x, roi.y, roi.height, roi.width, H, W)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-6)
    # flat field off: the levels only
    off, _ = run_module("rawprepare", img, inp, roi_in=roi, roi_out=roi,
                        params=RawprepareParams([64.0] * 4, 1023.0, "off"))
    np.testing.assert_allclose(off, (inp - 64.0) / (1023.0 - 64.0), rtol=1e-5, atol=1e-6)


def test_gain_maps_per_plane_of_planar_raw():
    H, W = 12, 16
    grid = np.stack([np.full((2, 2), 1.5), np.full((2, 2), 2.0)], axis=2)  # map planes 0 and 1
    maps = [gain_map(0, 0, H, W, grid, rp=1, cp=1, plane=0, planes=3)]  # plane 2 reads map plane 1
    data = rng.uniform(0, 60000, size=(3, H, W)).astype(np.float32)
    img = raw_image(np.zeros((H, W)), white=65535.0)
    img.cfa = CFA("none", np.array([[0, 1, 2]]), "RGBG")
    img.data, img.gain_maps = data, maps
    out, _ = run_module("rawprepare", img, data, dsc=BufferDesc(3, img.cfa, "raw"))
    np.testing.assert_allclose(out, data / 65535.0 * np.array([1.5, 2.0, 2.0])[:, None, None], rtol=1e-5)


def registry_variant(piece):
    from pixelpipe.modules import registry

    return registry()["rawprepare"]().variant(piece)


@pytest.fixture(scope="module")
def gopro():
    from pixelpipe.io.decode import load

    return load(raw_file(GOPRO))


def test_gopro_gain_maps_brighten_the_corners_as_the_maps_say(gopro):
    maps = gopro.gain_maps
    assert len(maps) == 4 and {(m["top"], m["left"]) for m in maps} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    H, W = gopro.height, gopro.width
    on = RawprepareParams([0.0] * 4, gopro.white, "embedded")
    off = RawprepareParams([0.0] * 4, gopro.white, "off")
    for x0, y0 in ((0, 0), (W - 16, 0), (0, H - 16), (W - 16, H - 16), (W // 2, H // 2)):
        roi = ROI(x0, y0, 16, 16)
        inp = np.ascontiguousarray(gopro.data[y0:y0 + 16, x0:x0 + 16])
        a, _ = run_module("rawprepare", gopro, inp, params=on, roi_in=roi, roi_out=roi)
        b, _ = run_module("rawprepare", gopro, inp, params=off, roi_in=roi, roi_out=roi)
        lit = b > 0.01
        ratio = np.where(lit, a / np.where(lit, b, 1), np.nan)
        ref = gain_ref(maps, x0, y0, 16, 16, H, W)
        np.testing.assert_allclose(ratio[lit], ref[lit], rtol=1e-4)
        if (x0, y0) == (0, 0):
            # at the corner the gain is the first grid point of the map of that CFA position
            assert abs(ref[0, 0] - float(maps[0]["gain"][0, 0, 0])) < 0.01 * ref[0, 0]
            assert ref.min() > 1.5  # the fisheye's corners are strongly shaded
        if (x0, y0) == (W // 2, H // 2):
            assert ref.max() < 1.1


# ---------------------------------------------------------------- robustness
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 100000), (100000, 1)])
def test_tiny_and_long_images_stay_finite(shape):
    img = raw_image(np.zeros(shape), black=(10, 10, 10, 10), white=100.0)
    img.gain_maps = [gain_map(0, 0, shape[0], shape[1], np.full((2, 2), 1.5), rp=1, cp=1)]
    m = rng.uniform(0, 200, size=shape).astype(np.float32)
    out, _ = run_module("rawprepare", img, m)
    assert out.shape == shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, (m - 10) / 90 * 1.5, rtol=1e-5, atol=1e-6)


def test_extreme_levels_stay_finite():
    img = raw_image(np.zeros((4, 4)))
    m = np.array([[0, 65535, 1, 2]] * 4, np.float32)
    for p in (RawprepareParams([65535.0] * 4, 1.0), RawprepareParams([0.0] * 4, 4294967295.0),
              RawprepareParams([100.0] * 4, 100.0)):
        out, _ = run_module("rawprepare", img, m, params=p)
        assert np.isfinite(out).all()


def test_version_1_params_load_with_gain_maps_on():
    p = RawprepareParams.from_dict("rawprepare", {"black_level": [1, 2, 3, 4], "white_point": 100}, version=1)
    assert p.flat_field == "embedded"


def test_raw_stages_fuse_into_one_kernel_with_the_same_result(gopro):
    """rawprepare (with gain maps), temperature and highlights "clip" are point-wise: fused as one kernel
    they give what they give one by one."""
    from pixelpipe.engine.fusion import run_fused
    from pixelpipe.modules import registry
    from pixelpipe.modules.base import Piece
    from pixelpipe.modules.highlights import HighlightsParams

    roi = ROI(3, 1, 64, 48)  # odd origin: CFA phase and gain-map position must follow
    buf = np.ascontiguousarray(gopro.data[1:49, 3:67])
    chain, dsc, x = [], BufferDesc(1, gopro.cfa, "raw"), buf
    for op, params in (("rawprepare", None), ("temperature", None), ("highlights", HighlightsParams(mode="clip"))):
        mod = registry()[op]()
        piece = Piece(op, 0, params or mod.default_params(gopro), gopro, buf_in=(gopro.width, gopro.height),
                      dsc_in=dsc)
        mod.commit(piece)
        assert mod.pointwise
        dsc = piece.dsc_out = mod.output_desc(piece, dsc)
        chain.append((mod, piece))
        x = mod.process(piece, x, roi, roi)
    fused = run_fused(chain, buf, [(roi, roi)] * 3)
    np.testing.assert_allclose(fused, x, rtol=1e-6, atol=1e-7)
