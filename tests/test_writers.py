"""Export writers (JPEG/PNG/TIFF), atomic output and the ICC profiles we embed."""
from __future__ import annotations

import io

import numpy as np
import pytest

from pixelpipe.errors import OutputError
from pixelpipe.io import writers
from pixelpipe.io.atomic import atomic_write
from pixelpipe.io.icc import PROFILE_NAMES, colour_module, colourspace, icc_profile, profile_description
from pixelpipe.io.writers import exif_to_bytes, quantise, write_image

EXIF = {"maker": "Canon", "model": "EOS D30", "iso": 100, "exposure_time": 1 / 250, "fnumber": 5.6,
        "focal_length": 31.0, "datetime": "2018:01:01 13:03:32", "lens": "EF 50mm f/1.8",
        "exposure_bias": -1 / 3}


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    img = rng.random((37, 53, 3), dtype=np.float32)
    img[0, 0] = (-0.2, 1.3, 0.5)  # out of range: clipped for integer formats
    return img


def _pillow_exif(path):
    from PIL import Image

    with Image.open(path) as im:
        ex = im.getexif()
        return dict(ex), dict(ex.get_ifd(0x8769)), im.info.get("icc_profile"), im.size


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("name,bpp", [("o.jpg", 8), ("o.jpeg", 8), ("o.png", 8), ("o16.png", 16),
                                      ("o8.tif", 8), ("o16.tiff", 16), ("o32.tif", 32)])
def test_round_trip(tmp_path, rgb, name, bpp):
    icc = icc_profile("display_p3")
    out = write_image(tmp_path / name, rgb, bpp=bpp, icc=icc, exif=EXIF, metadata={"software": "test"})
    assert out.exists() and [p.name for p in tmp_path.iterdir()] == [name]  # no temp left
    if name.endswith((".tif", ".tiff")):
        import tifffile

        with tifffile.TiffFile(out) as t:
            page = t.pages[0]
            a = page.asarray()
            assert page.tags["InterColorProfile"].value == icc
            ex = page.tags["ExifTag"].value
            assert ex["ExposureTime"] == (1, 250) and ex["ISOSpeedRatings"] == 100
            assert ex["LensModel"] == "EF 50mm f/1.8"
            assert page.tags["Make"].value == "Canon"
        assert a.shape == (37, 53, 3)
        assert a.dtype == {8: np.uint8, 16: np.uint16, 32: np.float32}[bpp]
        if bpp == 32:
            np.testing.assert_array_equal(a, rgb)     # float: not clipped, not quantised
        else:
            np.testing.assert_array_equal(a, quantise(rgb, bpp))
    elif name.endswith(".png"):
        main, sub, got_icc, size = _pillow_exif(out)
        assert got_icc == icc and size == (53, 37)
        assert main[0x010F] == "Canon" and main[0x0112] == 1
        assert sub[0x829A] == pytest.approx(1 / 250)
        if bpp == 16:
            pytest.importorskip("imagecodecs")
            import imagecodecs

            a = imagecodecs.png_decode(out.read_bytes())
            assert a.dtype == np.uint16
            np.testing.assert_array_equal(a, quantise(rgb, 16))
        else:
            from PIL import Image

            np.testing.assert_array_equal(np.asarray(Image.open(out)), quantise(rgb, 8))
    else:
        from PIL import Image

        main, sub, got_icc, size = _pillow_exif(out)
        assert got_icc == icc and size == (53, 37)
        assert main[0x0110] == "EOS D30" and sub[0x8827] == 100
        assert sub[0x9204] == pytest.approx(-1 / 3, abs=1e-3)
        a = np.asarray(Image.open(out)).astype(float)
        assert np.abs(a - quantise(rgb, 8)).mean() < 8.0   # white noise: JPEG's worst case
        yy, xx = np.mgrid[0:64, 0:96] / 100.0
        smooth = np.stack([xx, yy, 0.5 + 0.3 * np.sin(6 * xx)], -1).astype(np.float32)
        write_image(tmp_path / ("s" + name), smooth)
        a = np.asarray(Image.open(tmp_path / ("s" + name))).astype(float)
        assert np.abs(a - quantise(smooth, 8)).max() <= 3   # q95, 4:4:4


def test_rounding():
    x = np.array([[[0.0, 0.5 / 255 - 1e-6, 0.5 / 255 + 1e-6]], [[0.5, 1.0, 2.0]]], dtype=np.float32)
    assert quantise(x, 8).tolist() == [[[0, 0, 1]], [[128, 255, 255]]]
    assert quantise(np.float32([[[-1.0, 1.0, 0.5]]]), 16).tolist() == [[[0, 65535, 32768]]]


def test_integer_input_is_rescaled(tmp_path):
    from PIL import Image

    u8 = np.random.default_rng(9).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", u8)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), u8)


def test_exif_bytes_orientation_forced_to_1(tmp_path, rgb):
    from PIL import Image

    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x010F] = "Maker"
    write_image(tmp_path / "a.jpg", rgb, exif=ex.tobytes())
    main, *_ = _pillow_exif(tmp_path / "a.jpg")
    assert main[0x0112] == 1 and main[0x010F] == "Maker"
    assert exif_to_bytes(None) is None


def test_xmp_embedded(tmp_path, rgb):
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    write_image(tmp_path / "a.tif", rgb, xmp=xmp)
    write_image(tmp_path / "a.jpg", rgb, xmp=xmp)
    import tifffile
    from PIL import Image

    with tifffile.TiffFile(tmp_path / "a.tif") as t:
        assert t.pages[0].tags["XMP"].value == xmp.encode()
    assert Image.open(tmp_path / "a.jpg").info["xmp"] == xmp.encode()


# --------------------------------------------------------------------------- refusals

def test_overwrite_refused_then_allowed(tmp_path, rgb):
    p = tmp_path / "a.png"
    write_image(p, rgb)
    before = p.read_bytes()
    with pytest.raises(OutputError) as ei:
        write_image(p, rgb * 0.5)
    assert "exists (use --overwrite)" in str(ei.value) and str(p) in str(ei.value)
    assert p.read_bytes() == before
    write_image(p, rgb * 0.5, overwrite=True)
    assert p.read_bytes() != before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("name,bpp", [("a.jpg", 16), ("a.jpg", 32), ("a.png", 32), ("a.tif", 12)])
def test_unsupported_bpp(tmp_path, rgb, name, bpp):
    with pytest.raises(OutputError, match="bits per sample"):
        write_image(tmp_path / name, rgb, bpp=bpp)
    assert not any(tmp_path.iterdir())


def test_unknown_extension_and_bad_shape(tmp_path, rgb):
    with pytest.raises(OutputError, match="unknown output format"):
        write_image(tmp_path / "a.webp", rgb)
    with pytest.raises(OutputError, match="unknown output format"):
        write_image(tmp_path / "noext", rgb)
    with pytest.raises(OutputError):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 5), np.float32))
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "missing" / "a.png", rgb)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_no_temp_file_left_after_failure(tmp_path, rgb, monkeypatch, exc):
    def boom(tmp, *a, **k):
        tmp.write_bytes(b"partial")
        raise exc

    monkeypatch.setattr(writers, "_write_tiff", boom)
    with pytest.raises(type(exc)):
        write_image(tmp_path / "a.tif", rgb)
    assert not any(tmp_path.iterdir())


def test_atomic_write_directly(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"ok")
        assert not target.exists()
    assert target.read_bytes() == b"ok"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"ok" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]


# --------------------------------------------------------------------------- ICC profiles

def _chart() -> np.ndarray:
    rng = np.random.default_rng(3)
    ramp = np.repeat(np.stack([np.arange(256)] * 3, -1)[None], 8, 0)
    cube = np.stack(np.meshgrid(*[np.linspace(0, 255, 8)] * 3, indexing="ij"), -1).reshape(8, 64, 3)
    cube = np.concatenate([cube] * 4, axis=1)
    return np.concatenate([rng.integers(0, 256, (48, 256, 3)), ramp, cube], 0).astype(np.uint8)


@pytest.mark.parametrize("version", [2, 4])
def test_srgb_profile_matches_lcms_builtin(version):
    from PIL import Image, ImageCms

    chart = Image.fromarray(_chart())
    ours = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile("srgb", version)))
    builtin = ImageCms.createProfile("sRGB")
    to_ours = ImageCms.buildTransform(builtin, ours, "RGB", "RGB", renderingIntent=1)
    a = np.asarray(ImageCms.applyTransform(chart, to_ours)).astype(int)
    assert np.abs(a - _chart()).max() <= 1                  # ~identity
    back = ImageCms.buildTransform(ours, builtin, "RGB", "RGB", renderingIntent=1)
    b = np.asarray(ImageCms.applyTransform(Image.fromarray(a.astype(np.uint8)), back)).astype(int)
    assert np.abs(b - _chart()).max() <= 1
    # our profile as source and destination: identity
    same = ImageCms.buildTransform(ours, ours, "RGB", "RGB")
    assert np.array_equal(np.asarray(ImageCms.applyTransform(chart, same)), _chart())


@pytest.mark.parametrize("version", [2, 4])
@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_agree_with_colour_science(name, version):
    """sRGB -> profile through lcms equals the colour-science computation within 1/255."""
    from PIL import Image, ImageCms

    colour = colour_module()
    data = icc_profile(name, version)
    assert data[36:40] == b"acsp" and int.from_bytes(data[:4], "big") == len(data)
    prof = ImageCms.ImageCmsProfile(io.BytesIO(data))
    assert name.replace("_", " ").split()[-1][:3].lower() in ImageCms.getProfileDescription(prof).lower()
    assert profile_description(data).startswith(colourspace(name).description)
    t = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), prof, "RGB", "RGB", renderingIntent=1)
    chart = _chart()
    got = np.asarray(ImageCms.applyTransform(Image.fromarray(chart), t)).astype(float)
    spec = colourspace(name)
    lin = colour.models.eotf_sRGB(chart / 255.0)
    rgb = colour.RGB_to_RGB(lin, colour.RGB_COLOURSPACES["sRGB"], spec.colourspace,
                            chromatic_adaptation_transform="Bradford")
    want = np.clip(spec.encode(np.clip(rgb, 0, 1)), 0, 1) * 255
    # near 0 a pure power curve has an infinite slope: there compare linear light
    # (a 5e-5 matrix rounding difference is 2.8 code values in Adobe RGB)
    steep = np.abs(rgb) < 1e-3
    assert np.abs(got - want)[~steep].max() <= 1.0
    step = spec.decode((got + 1) / 255) - spec.decode(got / 255)   # one code value, linear
    err = np.abs(spec.decode(got / 255) - np.clip(rgb, 0, 1)) - step
    assert err[steep].max(initial=0) < 5e-4


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_transfer_functions(name):
    spec = colourspace(name)
    x = np.linspace(-0.5, 2.0, 1001)
    np.testing.assert_allclose(spec.decode(spec.encode(x)), x, atol=1e-9)
    if spec.linear:
        np.testing.assert_allclose(spec.encode(x), x)
    colour = colour_module()
    y = np.linspace(0, 1, 257)
    ref = spec.colourspace.cctf_encoding(y) if not spec.linear else y
    tol = 2e-4 if spec.colourspace_name.startswith("ITU-R") else 1e-6  # BT.2020 12-bit constants
    np.testing.assert_allclose(spec.encode(y), ref, atol=tol)
    assert colour is not None


def test_profile_facts():
    assert {"srgb", "display_p3", "adobe_rgb", "rec2020", "linear_srgb", "linear_rec2020"} <= set(PROFILE_NAMES)
    assert icc_profile("sRGB") == icc_profile("srgb")          # names are case-insensitive
    with pytest.raises(KeyError):
        icc_profile("cmyk")
    with pytest.raises(ValueError):
        icc_profile("srgb", version=3)
    # the colorant columns sum to the D50 PCS white, as lcms expects
    m = colourspace("adobe_rgb").matrix_rgb_to_xyz_d50
    np.testing.assert_allclose(m.sum(axis=1), [0.9642, 1.0, 0.8249], atol=2e-4)




@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape", [(3, 2, 2), (3, 37, 301), (3, 1, 5)])
def test_planar_kernel_quantises_exactly_like_numpy(bits, shape):
    """The Halide edge conversion (planar float -> interleaved integers) equals ``quantise``."""
    from pixelpipe.engine.convert import fast_path, quantise_planar
    from pixelpipe.io.writers import quantise

    rng = np.random.default_rng(bits)
    planar = rng.uniform(-0.2, 1.2, shape).astype(np.float32)
    top = (1 << bits) - 1
    planar.flat[:6] = [0.0, 1.0, 0.5 / top, 1.5 / top, 1.0 - 0.5 / top, 0.25]  # rounding boundaries
    planar.flat[-3:] = [np.nan, np.inf, -np.inf]  # as the writers treat them: 0, white, black
    hwc = planar.transpose(1, 2, 0)
    assert fast_path(np.ascontiguousarray(hwc)) is None  # not a view of a planar buffer
    if min(shape[1:]) < 2:
        assert fast_path(hwc) is None  # tiny images take NumPy's path
        return
    assert fast_path(hwc) is not None
    want = quantise(np.nan_to_num(hwc, nan=0.0, posinf=1.0, neginf=0.0), bits)
    np.testing.assert_array_equal(quantise_planar(planar, bits), want)
