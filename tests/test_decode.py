"""Decoding real raws (facts from data/raw/SOURCES.md) and non-raw inputs."""
from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from pixelpipe.errors import InputError, UnsupportedFormatError
from pixelpipe.io.decode import FLIP_TO_ORIENTATION, load, parse_opcode_list
from pixelpipe.io.source import SourceImage
from pixelpipe.testdata import raw_dir


def raw_file(name: str) -> Path:
    """conftest's ``raw_file`` (not importable by name once tests/ai has its own conftest)."""
    path = raw_dir() / name
    if path.exists():
        return path
    reason = f"raw file {name} not found at {path} (set PIXELPIPE_TESTDATA)"
    if os.environ.get("PIXELPIPE_REQUIRE_TESTDATA", "") not in ("", "0"):
        pytest.fail(reason + " and PIXELPIPE_REQUIRE_TESTDATA is set")
    pytest.skip(reason)

RGGB = [[0, 1], [1, 2]]
GRBG = [[1, 0], [2, 1]]


def letters(src: SourceImage) -> list[str]:
    return ["".join(src.cfa.colors[i] for i in row) for row in src.cfa.pattern]


# --------------------------------------------------------------------------- real raws

def test_canon_d30_crw():
    s = load(raw_file("canon_eos_d30.crw"))
    assert s.kind == "raw" and s.is_raw
    assert s.data.dtype == np.float32 and s.data.shape == (1448, 2176)
    assert s.cfa.kind == "bayer" and s.cfa.rgb_pattern().tolist() == RGGB
    assert s.black == (127.0, 128.0, 128.0, 128.0) and s.white == 4095
    assert s.wb_as_shot is None                      # camera_whitebalance[0] = -1
    assert "no as-shot white balance" in " ".join(s.notices)
    assert s.wb_daylight is not None and s.wb_daylight[1] == 1.0
    assert s.xyz_to_cam_source == "libraw"
    assert s.cam_to_xyz.shape == (3, 3)
    np.testing.assert_allclose(s.cam_to_xyz @ s.xyz_to_cam, np.eye(3), atol=1e-9)
    assert s.orientation == 1
    # sensor units, black not subtracted
    assert 0 <= s.data.min() and s.data.max() <= 4095 and np.median(s.data) > 127
    assert s.exif["maker"] == "Canon" and s.exif["model"] == "EOS D30"
    assert s.exif["iso"] == 100 and s.exif["exposure_time"] == pytest.approx(5, rel=0.01)
    assert s.exif["fnumber"] == pytest.approx(5.6, rel=0.01)
    assert s.exif["datetime"].startswith("2018:01:01")
    assert s.raw_exif_bytes.startswith(b"Exif\x00\x00")
    assert s.crop == (8, 6, 2160, 1440)


def test_magic_lantern_dng():
    s = load(raw_file("canon_550d_magiclantern_colorchart.dng"))
    assert s.data.shape == (1156, 1734)              # ActiveArea 26,152,1182,1886
    assert s.cfa.kind == "bayer" and s.cfa.rgb_pattern().tolist() == RGGB
    assert s.black == (2056.0,) * 4 and s.white == 15000
    # AsShotNeutral 1 / 2.477 / 1.462 -> multipliers normalised to G
    assert s.wb_as_shot == pytest.approx((2.477, 1.0, 2.477 / 1.462, 1.0), rel=1e-4)
    assert s.xyz_to_cam_source == "file" and s.calibration_illuminant == 21
    np.testing.assert_allclose(s.xyz_to_cam[0], [0.6461, -0.1164, -0.0857])
    assert s.exif["software"] == "Magic Lantern"
    # the file's ExposureTime/FNumber are 0: no invented LibRaw defaults
    assert "exposure_time" not in s.exif and "fnumber" not in s.exif and "iso" not in s.exif


def test_gopro_converted_dng():
    s = load(raw_file("gopro_hero6_black_gpr2dng.dng"))
    assert s.data.shape == (3000, 4000)
    assert s.cfa.kind == "bayer" and s.cfa.rgb_pattern().tolist() == RGGB
    assert s.black == (0.0,) * 4 and s.white == 16383
    assert s.orientation == 2                        # mirror horizontal
    assert s.wb_as_shot == pytest.approx((1 / 0.522449, 1.0, 1 / 0.571429, 1.0), rel=1e-5)
    assert s.xyz_to_cam_source == "file"
    assert s.calibration_illuminant == 23            # D50 is nearer D65 than tungsten
    assert s.noise_profile == [pytest.approx((0.000156201, 4.88002e-08), rel=1e-5)]
    assert s.dng_opcodes == {"2": ["GainMap"] * 4}
    assert len(s.gain_maps) == 4
    assert {(g["top"], g["left"]) for g in s.gain_maps} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for g in s.gain_maps:
        assert g["gain"].dtype == np.float32 and g["gain"].shape == (23, 23, 1)
        assert g["row_pitch"] == g["col_pitch"] == 2 and g["plane"] == 0 and g["planes"] == 1
        assert (g["bottom"], g["right"]) == (3000, 4000)
        assert 1.0 <= g["gain"].min() and g["gain"].max() < 2.2
    assert s.exif["maker"] == "GoPro" and s.exif["model"] == "HERO6 Black"
    assert s.exif["iso"] == 100 and s.exif["fnumber"] == pytest.approx(2.8)


def test_powershot_g1_cygm():
    s = load(raw_file("canon_powershot_g1_cygm.crw"))
    assert s.data.shape == (1550, 2088)
    assert s.cfa.kind == "4color" and s.cfa.colors == "GMCY"
    assert letters(s) == ["GM", "YC"]
    assert s.black == (31.0,) * 4 and s.white == 1023
    assert s.wb_as_shot is not None and s.wb_as_shot[0] == 1.0      # normalised to G
    assert s.wb_as_shot == pytest.approx((1.0, 1221 / 1281, 849 / 1281, 882 / 1281))
    assert s.xyz_to_cam.shape == (4, 3) and s.cam_to_xyz.shape == (3, 4)


def test_kodak_dc50_kdc():
    s = load(raw_file("kodak_dc50.kdc"))
    assert s.data.shape == (512, 768)
    assert s.cfa.kind == "bayer" and s.cfa.rgb_pattern().tolist() == GRBG
    assert s.black == (0.0,) * 4 and s.white == 16383
    assert s.wb_as_shot is None and s.wb_daylight is None   # all 1.0 in the file
    assert s.cam_to_xyz is None and s.xyz_to_cam_source is None
    assert s.exif["model"] == "Kodak Digital Science DC50 Zoom Camera"   # TIFF IFD0
    assert s.exif["camera_model"] == "DC50"                             # LibRaw's name
    assert s.exif["exposure_time"] == pytest.approx(0.00435)


def test_kodak_c330_stack_is_not_a_cfa():
    s = load(raw_file("kodak_c330_yrgb.raw"))
    assert s.kind == "raw" and s.cfa.kind == "none"
    assert s.data.shape == (3, 912, 1216) and s.data.dtype == np.float32
    assert s.cfa.pattern.tolist() == [[0, 1, 2]]
    assert s.white == 65535 and s.black == (0.0,) * 4
    assert s.wb_as_shot is None                      # camera_whitebalance = [0, 1, 0, 0]


@pytest.mark.parametrize("name", ["gopro_hero6_black.gpr", "gopro_hero7_black.gpr"])
def test_gpr_unsupported(name):
    with pytest.raises(UnsupportedFormatError) as ei:
        load(raw_file(name))
    msg = str(ei.value)
    assert name in msg and "LibRaw cannot read" in msg and "VC-5" in msg


def test_gpr_renamed_still_explained(tmp_path):
    dst = tmp_path / "renamed.dng"
    shutil.copy(raw_file("gopro_hero6_black.gpr"), dst)
    with pytest.raises(UnsupportedFormatError, match="GoPro VC-5"):
        load(dst)


@pytest.mark.parametrize("name", ["canon_eos_d30.crw", "canon_550d_magiclantern_colorchart.dng",
                                  "gopro_hero6_black_gpr2dng.dng", "canon_powershot_g1_cygm.crw",
                                  "kodak_c330_yrgb.raw"])
def test_truncated_raw_is_an_input_error(tmp_path, name):
    src = raw_file(name)
    dst = tmp_path / name
    dst.write_bytes(src.read_bytes()[:100_000])
    with pytest.raises(InputError) as ei:
        load(dst)
    assert str(dst) in str(ei.value)


def test_orientation_map():
    assert [FLIP_TO_ORIENTATION[f] for f in (0, 3, 5, 6)] == [1, 3, 8, 6]


def test_every_real_file_decodes_or_explains(raws):
    for f in sorted(raws.iterdir()):
        if f.suffix == ".md":
            continue
        try:
            s = load(f)
        except UnsupportedFormatError:
            assert f.suffix == ".gpr"
            continue
        assert s.kind == "raw" and s.data.dtype == np.float32 and np.isfinite(s.data).all()


# --------------------------------------------------------------------------- bad inputs

def test_missing_directory_empty_text(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load(tmp_path / "nope.cr2")
    with pytest.raises(InputError, match="directory"):
        load(tmp_path)
    empty = tmp_path / "empty.nef"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load(empty)
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image\n" * 50)
    with pytest.raises(InputError) as ei:
        load(text)
    assert str(text) in str(ei.value)
    fake_raw = tmp_path / "fake.nef"
    fake_raw.write_text("not a raw either\n" * 50)
    with pytest.raises(InputError):
        load(fake_raw)


def test_truncated_jpeg(tmp_path):
    from PIL import Image

    p = tmp_path / "a.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(p)
    q = tmp_path / "b.jpg"
    q.write_bytes(p.read_bytes()[:600])
    with pytest.raises(InputError):
        load(q)


# --------------------------------------------------------------------------- non-raw inputs

def test_jpeg_srgb_orientation_icc_exif(tmp_path):
    from PIL import Image

    from pixelpipe.io.icc import icc_profile

    rgb = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x010F] = "Maker"
    p = tmp_path / "x.jpg"
    Image.fromarray(rgb).save(p, quality=100, subsampling=0, exif=ex.tobytes(),
                              icc_profile=icc_profile("srgb"))
    s = load(p)
    assert s.kind == "rgb" and not s.is_raw and s.cfa is None
    assert s.data.shape == (3, 40, 60) and s.data.dtype == np.float32
    assert s.encoding == "srgb" and s.orientation == 6
    assert s.icc_profile == icc_profile("srgb")
    assert s.exif["maker"] == "Maker" and s.raw_exif_bytes
    assert np.abs(np.moveaxis(s.data, 0, 2) * 255 - rgb).mean() < 3


def test_png_grey_and_alpha(tmp_path):
    from PIL import Image

    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    s = load(tmp_path / "g.png")
    assert s.data.shape == (3, 16, 16)
    assert np.array_equal(s.data[0], s.data[2]) and s.data[1, 0, 1] == pytest.approx(1 / 255)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    s = load(tmp_path / "a.png")
    assert s.data.shape == (3, 8, 8) and s.data[0].min() == 1.0 and s.data[1].max() == 0.0


def test_png16_and_tiffs(tmp_path):
    import tifffile

    pytest.importorskip("imagecodecs")
    from pixelpipe.io.writers import write_png16

    rng = np.random.default_rng(2)
    u16 = rng.integers(0, 65536, (30, 20, 3), dtype=np.uint16)
    write_png16(tmp_path / "a.png", u16)
    s = load(tmp_path / "a.png")
    assert s.encoding == "srgb"
    np.testing.assert_array_equal(np.round(np.moveaxis(s.data, 0, 2) * 65535).astype(np.uint16), u16)

    tifffile.imwrite(tmp_path / "a16.tif", u16, photometric="rgb")
    s = load(tmp_path / "a16.tif")
    assert s.kind == "rgb" and s.encoding == "srgb"
    np.testing.assert_allclose(np.moveaxis(s.data, 0, 2), u16 / 65535, atol=1e-7)

    f32 = rng.random((30, 20, 3), dtype=np.float32) * 2
    tifffile.imwrite(tmp_path / "f.tif", f32, photometric="rgb")
    s = load(tmp_path / "f.tif")
    assert s.encoding == "linear"
    np.testing.assert_array_equal(np.moveaxis(s.data, 0, 2), f32)

    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(u16, 2, 0), photometric="rgb",
                     planarconfig="separate")
    s = load(tmp_path / "planar.tif")
    np.testing.assert_allclose(np.moveaxis(s.data, 0, 2), u16 / 65535, atol=1e-7)

    # a 16-bit grey TIFF: LibRaw would take it for a monochrome raw; content says image
    tifffile.imwrite(tmp_path / "grey.tif", u16[..., 0], photometric="minisblack")
    s = load(tmp_path / "grey.tif")
    assert s.kind == "rgb" and s.data.shape == (3, 30, 20)


def test_non_srgb_icc_is_flagged(tmp_path):
    from PIL import Image

    from pixelpipe.io.icc import icc_profile

    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "p3.png", icc_profile=icc_profile("display_p3"))
    s = load(tmp_path / "p3.png")
    assert s.encoding == "icc" and s.icc_profile == icc_profile("display_p3")


def test_dng_with_tif_extension_is_raw(tmp_path):
    from pixelpipe.io.sample import make_sample_dng

    p = make_sample_dng(tmp_path / "chart.tif", 240, 160)
    s = load(p)
    assert s.kind == "raw" and s.cfa.kind == "bayer"


# --------------------------------------------------------------------------- DNG opcode parser

def test_parse_gain_map_opcode():
    gains = np.linspace(1.0, 2.0, 3 * 4 * 2, dtype=np.float32)
    params = struct.pack(">10I", 2, 4, 100, 200, 1, 2, 2, 2, 3, 4)
    params += struct.pack(">4d", 0.5, 0.25, 0.0, 0.125) + struct.pack(">I", 2)
    params += gains.astype(">f4").tobytes()
    other = struct.pack(">IIII", 4, 0x01030000, 1, 4) + b"\0\0\0\0"      # FixBadPixelsConstant
    buf = struct.pack(">I", 2) + struct.pack(">IIII", 9, 0x01030000, 0, len(params)) + params + other
    names, maps = parse_opcode_list(buf, 2)
    assert names == ["GainMap", "FixBadPixelsConstant"]
    (g,) = maps
    assert (g["top"], g["left"], g["bottom"], g["right"]) == (2, 4, 100, 200)
    assert (g["plane"], g["planes"], g["row_pitch"], g["col_pitch"]) == (1, 2, 2, 2)
    assert (g["map_spacing_v"], g["map_spacing_h"], g["map_origin_h"]) == (0.5, 0.25, 0.125)
    assert g["gain"].shape == (3, 4, 2) and g["gain"].dtype == np.float32
    np.testing.assert_array_equal(g["gain"].ravel(), gains)
    assert not g["optional"]
