"""lens: lensfun-based correction (distortion, TCA, vignetting).

Checks: the gridded map against lensfun's own mapping (mean 0.02 px, max 0.1 px), the Newton
inverse (round trip < 0.1 px), pixels against a NumPy resampling reference
(5e-4 absolute on values in [0, 1]), vignetting against lensfun's colour
modification (0.1 %), region equals whole, and a clear no-op when the camera
or lens is unknown.
"""
from __future__ import annotations

import numpy as np
import pytest

lensfunpy = pytest.importorskip("lensfunpy")

from helpers import hostile_inputs, rgb_image, smooth_test_image# noqa: E402
import helpers  # noqa: E402
from pixelpipe.modules import registry  # noqa: E402
from pixelpipe.modules._nbhd import cubic_np  # noqa: E402
from pixelpipe.modules.base import ROI  # noqa: E402
from pixelpipe.modules.lens import LensParams  # noqa: E402

CAMERA, LENS = "Canon EOS 5D Mark II", "Canon EF 16-35mm f/2.8L II USM"
rng = np.random.default_rng(2)


def run_at(*args, **kw):
    return helpers.run_at(*args, space="camera", **kw)  # this module's tests feed camera RGB


def known(data, focal=16.0, fnumber=2.8):
    img = rgb_image(data)
    img.exif.update(maker="Canon", model=CAMERA, camera_maker="Canon", camera_model=CAMERA, lens=LENS,
                    focal_length=focal, fnumber=fnumber)
    return img


def test_unknown_camera_or_lens_is_a_noop_with_notice():
    data = smooth_test_image(30, 40)
    img = rgb_image(data)
    img.exif.update(maker="Nobody", model="Camera 3000", focal_length=20.0)
    out, piece = run_at("lens", img, LensParams(), data)
    np.testing.assert_array_equal(out, data)
    assert any("not in the lensfun database" in n for n in piece.notices)
    mod = registry()["lens"]()
    pts = rng.uniform(0, 30, (5, 2))
    assert np.array_equal(mod.distort_transform(piece, pts), pts)
    assert mod.modify_roi_in(piece, ROI(3, 4, 5, 6)) == ROI(3, 4, 5, 6)
    img = known(data)
    img.exif["lens"] = "Nonexistent 50mm f/1.0"
    out, piece = run_at("lens", img, LensParams(), data)
    np.testing.assert_array_equal(out, data)
    assert any("lens 'Nonexistent" in n for n in piece.notices)


def test_map_agrees_with_lensfun_and_round_trips():
    w, h = 300, 200
    data = smooth_test_image(h, w)
    _, piece = run_at("lens", known(data), LensParams(autoscale=False, vignetting=False), data)
    cam = lensfunpy.Database().find_cameras(None, CAMERA)[0]
    lens = lensfunpy.Database().find_lenses(cam, None, LENS)[0]
    m = lensfunpy.Modifier(lens, cam.crop_factor, w, h)
    m.initialize(16.0, 2.8, 1000.0, scale=1.0, pixel_format=np.float32,
                 flags=lensfunpy.ModifyFlags.DISTORTION | lensfunpy.ModifyFlags.TCA)
    ref = m.apply_subpixel_geometry_distortion()  # (h, w, 3, 2), lensfun pixel-centre coordinates
    mod = registry()["lens"]()
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)  # pixel centres, pixel-edge coordinates
    for ch in range(3):
        got = mod._back(piece.data, pts, ch) - 0.5
        err = np.abs(got - ref[..., ch, :].reshape(-1, 2))
        # lensfun's own per-pixel output jitters by a few hundredths of a pixel (float32 internals)
        assert err.max() < 0.1 and err.mean() < 0.02
    for p in (LensParams(autoscale=False, vignetting=False), LensParams()):
        _, piece = run_at("lens", known(data), p, data)
        q = rng.uniform([-20, -20], [w + 20, h + 20], (500, 2))
        assert np.abs(mod.distort_backtransform(piece, mod.distort_transform(piece, q)) - q).max() < 0.1
        assert np.abs(mod.distort_transform(piece, mod.distort_backtransform(piece, q)) - q).max() < 0.1


@pytest.mark.parametrize("params", [LensParams(), LensParams(autoscale=False, scale=1.1, vignetting=False),
                                    LensParams(tca=False, distortion=False)])
def test_pixels_match_numpy_resampling(params):
    h, w = 120, 180
    data = smooth_test_image(h, w)
    out, piece = run_at("lens", known(data), params, data)
    mod = registry()["lens"]()
    d = piece.data
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)
    ref = np.zeros((3, h * w))
    v1, v2, v3 = d["vig"]
    for ch in range(3):
        s = mod._back(d, pts, ch)  # source, pixel-edge coordinates
        val = cubic_np(data[ch: ch + 1].astype(np.float64), s[:, 0] - 0.5, s[:, 1] - 0.5)[0]
        r2 = ((s[:, 0] - 0.5 - (w - 1) / 2) ** 2 + (s[:, 1] - 0.5 - (h - 1) / 2) ** 2) * d["vnorm"]
        vig = np.maximum(1 + v1 * r2 + v2 * r2 ** 2 + v3 * r2 ** 3, 0.05)
        inside = (s[:, 0] >= 0) & (s[:, 0] <= w) & (s[:, 1] >= 0) & (s[:, 1] <= h)
        ref[ch] = np.where(inside, val / vig, 0)
    np.testing.assert_allclose(out.reshape(3, -1), ref, atol=5e-4)


def test_vignetting_matches_lensfun():
    h, w = 100, 150
    flat = np.ones((3, h, w), np.float32)
    out, _ = run_at("lens", known(flat, 16.0, 2.8), LensParams(distortion=False, tca=False), flat)
    cam = lensfunpy.Database().find_cameras(None, CAMERA)[0]
    lens = lensfunpy.Database().find_lenses(cam, None, LENS)[0]
    m = lensfunpy.Modifier(lens, cam.crop_factor, w, h)
    m.initialize(16.0, 2.8, 1000.0, scale=1.0, pixel_format=np.float32, flags=lensfunpy.ModifyFlags.VIGNETTING)
    ref = np.ones((h, w, 3), np.float32)
    m.apply_color_modification(ref)
    np.testing.assert_allclose(out.transpose(1, 2, 0), ref, rtol=1e-3)
    assert out[0, 0, 0] > 3.0  # the 16 mm corner at f/2.8 is two stops dark


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_region_equals_whole_image_cut(scale):
    h, w = 160, 240
    data = smooth_test_image(h, w) + 0.05 * rng.standard_normal((3, h, w)).astype(np.float32)
    buf = data if scale == 1.0 else data.reshape(3, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    whole, _ = run_at("lens", known(data), LensParams(), buf, scale)
    for roi in (ROI(40, 30, 50, 33, scale), ROI(0, 0, 31, 20, scale), ROI(int(w * scale) - 40, int(h * scale) - 25,
                                                                         40, 25, scale)):
        part, _ = run_at("lens", known(data), LensParams(), buf, scale, roi_out=roi)
        np.testing.assert_allclose(part, whole[:, roi.y: roi.y + roi.height, roi.x: roi.x + roi.width], atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 2, 2), (3, 1, 100000), (3, 100000, 1)])
def test_never_non_finite(shape):
    for inp in hostile_inputs(shape, rng):
        for p in (LensParams(), LensParams(autoscale=False, scale=4.0), LensParams(autoscale=False, scale=0.1)):
            out, _ = run_at("lens", known(inp), p, inp)
            assert out.shape == shape and np.isfinite(out).all()


@pytest.mark.realdata
def test_real_raw_without_lens_data_is_left_alone():
    from helpers import raw_file
    from pixelpipe.io.decode import load

    image = load(raw_file("canon_eos_d30.crw"))  # no lens in its EXIF: nothing to look up
    data = np.ascontiguousarray(rng.uniform(0, 1, (3, 24, 36)).astype(np.float32))
    out, piece = run_at("lens", image, LensParams(), data)
    np.testing.assert_array_equal(out, data)
    assert any(n.startswith("lens:") for n in piece.notices)
