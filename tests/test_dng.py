"""DNG writer: LibRaw (rawpy) must read back what we write; the synthetic sample."""
from __future__ import annotations

import numpy as np
import pytest
import rawpy

from pixelpipe.errors import OutputError
from pixelpipe.io.decode import load
from pixelpipe.io.dng import XTRANS_PATTERN, cfa_pattern, write_cfa_dng, write_linear_dng
from pixelpipe.io.sample import (CAMERA_XYZ_TO_CAM, SAMPLE_BLACK, SAMPLE_WHITE, camera_neutral,
                                 make_sample_dng, mosaic_from_rgb, sample_scene)

CM = CAMERA_XYZ_TO_CAM
NEUTRAL = (0.5, 1.0, 0.7)
EXIF = {"iso": 400, "exposure_time": 0.01, "fnumber": 4.0, "focal_length": 50.0,
        "datetime": "2020:01:02 03:04:05"}


def _mosaic(h=64, w=96, seed=1):
    return np.random.default_rng(seed).integers(512, 16383, (h, w)).astype(np.uint16)


def _rgb_pattern(r: rawpy.RawPy) -> list:
    desc = r.color_desc.decode()
    return [["RGB".index(desc[c]) for c in row] for row in r.raw_pattern]


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "BGGR", "GBRG", "XTRANS"])
@pytest.mark.parametrize("with_preview", [False, True])
def test_libraw_reads_back(tmp_path, pattern, with_preview):
    m = _mosaic()
    preview = np.full((16, 24, 3), 0.5, np.float32) if with_preview else None
    p = write_cfa_dng(tmp_path / "a.dng", m, pattern, 512, 16383, CM, NEUTRAL, orientation=6,
                      make="Canon", model="EOS 5D Mark II", exif=EXIF, noise_profile=(1e-4, 1e-7),
                      preview_rgb=preview)
    assert [x.name for x in tmp_path.iterdir()] == ["a.dng"]
    with rawpy.imread(str(p)) as r:
        assert r.raw_type == rawpy.RawType.Flat
        np.testing.assert_array_equal(r.raw_image_visible, m)
        assert _rgb_pattern(r) == cfa_pattern(pattern).tolist()
        assert r.raw_pattern.shape == ((6, 6) if pattern == "XTRANS" else (2, 2))
        assert r.black_level_per_channel == [512] * 4 and r.white_level == 16383
        wb = r.camera_whitebalance
        assert wb[:3] == pytest.approx([2.0, 1.0, 1 / 0.7], rel=1e-5)
        assert r.sizes.flip == 6
        assert r.other.iso_speed == 400 and r.other.aperture == pytest.approx(4.0)
        assert r.other.shutter_speed == pytest.approx(0.01)
        np.testing.assert_allclose(r.rgb_xyz_matrix[:3], CM, atol=1e-4)

    s = load(p)
    assert s.cfa.kind == ("xtrans" if pattern == "XTRANS" else "bayer")
    assert s.cfa.rgb_pattern().tolist() == cfa_pattern(pattern).tolist()
    assert s.wb_as_shot == pytest.approx((2.0, 1.0, 1 / 0.7, 1.0), rel=1e-5)
    assert s.orientation == 6 and s.xyz_to_cam_source == "file"
    np.testing.assert_allclose(s.xyz_to_cam, CM, atol=1e-4)
    assert s.noise_profile == [pytest.approx((1e-4, 1e-7))]
    assert s.exif["iso"] == 400 and s.exif["datetime"] == "2020:01:02 03:04:05"
    assert s.exif["camera_maker"] == "Canon"


def test_per_cell_black_and_active_area(tmp_path):
    m = _mosaic(70, 100)
    p = write_cfa_dng(tmp_path / "b.dng", m, "RGGB", [500, 510, 520, 530], 16383, CM, NEUTRAL,
                      active_area=(2, 4, 66, 96), default_crop=(2, 2, 80, 60))
    with rawpy.imread(str(p)) as r:
        # cells (0,0)=R (0,1)=G (1,0)=G2 (1,1)=B; rawpy lists R, G, B, G2
        assert r.black_level_per_channel == [500, 510, 530, 520]
        np.testing.assert_array_equal(r.raw_image_visible, m[2:66, 4:96])
    s = load(p)
    assert s.data.shape == (64, 92) and s.black == (500.0, 510.0, 530.0, 520.0)
    assert s.black_map is None


def test_black_pattern_not_per_colour(tmp_path):
    """A 6x6 BlackLevel on X-Trans: LibRaw keeps only the common part; we keep the map."""
    m = _mosaic(60, 72)
    b = (np.arange(36) + 500).reshape(6, 6)
    p = write_cfa_dng(tmp_path / "x.dng", m, "XTRANS", b.ravel().tolist(), 16383, CM, NEUTRAL)
    s = load(p)
    np.testing.assert_array_equal(s.black_map, b)
    for c in range(3):
        assert s.black[c] == pytest.approx(b[XTRANS_PATTERN == c].mean())


def test_xtrans_pattern_is_xtrans():
    x = XTRANS_PATTERN
    assert (x == 1).sum() == 20 and (x == 0).sum() == 8 and (x == 2).sum() == 8
    for line in list(x) + list(x.T):  # every row and column has R and B
        assert {0, 2} <= set(line.tolist())


def test_linear_dng(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 65535, (40, 50, 3)).astype(np.uint16)
    p = write_linear_dng(tmp_path / "l.dng", rgb, black=0, white=65535, as_shot_neutral=(0.8, 1, 0.9))
    with rawpy.imread(str(p)) as r:
        assert r.raw_type == rawpy.RawType.Stack
        np.testing.assert_array_equal(r.raw_image_visible[..., :3], rgb)
    s = load(p)
    assert s.kind == "raw" and s.cfa.kind == "none" and s.data.shape == (3, 40, 50)
    np.testing.assert_array_equal(np.moveaxis(s.data, 0, 2), rgb.astype(np.float32))
    assert s.wb_as_shot == pytest.approx((1.25, 1.0, 1 / 0.9, 1.0))
    f = rng.random((30, 32, 3)).astype(np.float32)  # LibRaw rejects sides < 22 px
    p2 = write_linear_dng(tmp_path / "f.dng", f)
    s2 = load(p2)
    np.testing.assert_allclose(np.moveaxis(s2.data, 0, 2) / 65535, f, atol=1 / 65535)


def test_refusals(tmp_path):
    m = _mosaic()
    write_cfa_dng(tmp_path / "a.dng", m, "RGGB", 0, 16383, CM, NEUTRAL)
    with pytest.raises(OutputError, match="exists"):
        write_cfa_dng(tmp_path / "a.dng", m, "RGGB", 0, 16383, CM, NEUTRAL)
    with pytest.raises(OutputError):
        write_cfa_dng(tmp_path / "b.dng", m.astype(np.float32), "RGGB", 0, 16383, CM, NEUTRAL)
    with pytest.raises(ValueError):
        write_cfa_dng(tmp_path / "c.dng", m, [[0, 1, 2]], 0, 16383, CM, NEUTRAL)
    assert [x.name for x in tmp_path.iterdir()] == ["a.dng"]


# --------------------------------------------------------------------------- the sample

def test_sample_dng(tmp_path):
    p = make_sample_dng(tmp_path / "sample.dng")
    s = load(p)
    assert s.kind == "raw" and s.data.shape == (800, 1200)
    assert s.cfa.kind == "bayer" and s.cfa.rgb_pattern().tolist() == [[0, 1], [1, 2]]
    assert s.black == (SAMPLE_BLACK,) * 4 and s.white == SAMPLE_WHITE
    mul = 1 / camera_neutral()
    assert s.wb_as_shot == pytest.approx((mul[0], 1.0, mul[2], 1.0), rel=1e-5)
    assert s.xyz_to_cam_source == "file" and s.calibration_illuminant == 21
    assert (s.data >= SAMPLE_WHITE).any()                  # the ramp clips
    assert s.data.min() < SAMPLE_BLACK + 20                # the step wedge reaches black
    # noise on a flat background patch matches the NoiseProfile (green sites)
    (scale, offset), = s.noise_profile
    patch = s.data[780:796:2, 1000:1160:2] - SAMPLE_BLACK   # R sites? rows even, cols even: R
    g = s.data[780:796:2, 1001:1161:2] - SAMPLE_BLACK        # G sites
    x = g.mean() / (SAMPLE_WHITE - SAMPLE_BLACK)
    want_sd = np.sqrt(scale * x + offset) * (SAMPLE_WHITE - SAMPLE_BLACK)
    assert g.std() == pytest.approx(want_sd, rel=0.2)
    assert patch.mean() < g.mean()                           # unbalanced: R below G on grey
    # identical bytes from the same seed
    q = make_sample_dng(tmp_path / "again.dng")
    assert np.array_equal(load(q).data, s.data)
    with pytest.raises(OutputError):
        make_sample_dng(p)


def test_mosaic_from_rgb():
    rgb = np.random.default_rng(5).random((13, 19, 3)).astype(np.float32)
    for name in ("RGGB", "GRBG", "XTRANS"):
        pat = cfa_pattern(name)
        m = mosaic_from_rgb(rgb, name)
        assert m.shape == (13, 19) and m.dtype == np.float32
        for y in range(13):
            for x in range(19):
                assert m[y, x] == rgb[y, x, pat[y % pat.shape[0], x % pat.shape[1]]]
    scene = sample_scene(240, 160)
    assert scene.shape == (160, 240, 3) and 0 <= scene.min() and scene[..., 1].max() <= 2.0
