#!/usr/bin/env python3
"""Lens quality: a synthetic grid distorted with lensfun's own model, corrected by pixelpipe.

    . .venv/bin/activate
    python bench/quality_lens.py [--width 3000] [--json bench/out/quality_lens.json]

For each camera/lens pair below (real lensfun database entries), an ideal
grid of dark lines (Gaussian profile, sigma 1.2 px, every 100 px, on a 0.8
background) is rendered through lensfun's *reverse* modifier (distortion, TCA
and vignetting: what the lens does to a straight-lined scene), giving the
"photograph". pixelpipe's lens module (autoscale off, scale 1, so its output
frame is the ideal frame) corrects it.

Figures, on the corrected image (lines whose samples fall inside the frame):
* straight-line residual: each line's sub-pixel centre (darkness centroid, per
  row or column every 4 px, green channel, away from crossings) is fitted by a straight line; max and
  RMS distance to the fit, over all lines;
* position error: max distance of those centres from the ideal line;
* lateral colour (TCA) residual: max |centre(R) - centre(B)|;
* vignetting residual: spread (max/min - 1) of the background level over the frame;
the same figures for the uncorrected photograph for comparison (straightness
and colour there are measured around the lines' distorted positions).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import lensfunpy  # noqa: E402

from pixelpipe.io.source import SourceImage  # noqa: E402
from pixelpipe.modules import registry  # noqa: E402
from pixelpipe.modules.base import BufferDesc, Piece, ROI  # noqa: E402
from pixelpipe.modules.lens import LensParams  # noqa: E402

PAIRS = [
    ("Canon", "Canon EOS 5D Mark II", "Canon EF 16-35mm f/2.8L II USM", 16.0, 2.8),
    ("Canon", "Canon EOS 550D", "Canon EF-S 18-55mm f/3.5-5.6 IS", 18.0, 3.5),
]
SPACING, SIGMA, BG, DEPTH = 100, 1.2, 0.8, 0.6


def ideal(px, py):
    """The ideal grid at pixel-edge coordinates."""
    dx = (px - SPACING / 2) % SPACING - SPACING / 2
    dy = (py - SPACING / 2) % SPACING - SPACING / 2
    line = np.maximum(np.exp(-dx * dx / (2 * SIGMA ** 2)), np.exp(-dy * dy / (2 * SIGMA ** 2)))
    return BG - DEPTH * line


def photograph(cam, lens, w, h, focal, aperture):
    m = lensfunpy.Modifier(lens, cam.crop_factor, w, h)
    m.initialize(focal, aperture, 1000.0, scale=1.0, pixel_format=np.float32, reverse=True,
                 flags=lensfunpy.ModifyFlags.DISTORTION | lensfunpy.ModifyFlags.TCA)
    img = np.empty((3, h, w), np.float32)
    band = 200
    for y0 in range(0, h, band):  # whole rows: lensfun's own per-row evaluation
        hh = min(band, h - y0)
        coords = m.apply_subpixel_geometry_distortion(0, y0, w, hh)
        for ch in range(3):
            img[ch, y0: y0 + hh] = ideal(coords[..., ch, 0] + 0.5, coords[..., ch, 1] + 0.5)
    mv = lensfunpy.Modifier(lens, cam.crop_factor, w, h)
    mv.initialize(focal, aperture, 1000.0, scale=1.0, pixel_format=np.float32, reverse=True,
                  flags=lensfunpy.ModifyFlags.VIGNETTING)
    hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
    mv.apply_color_modification(hwc)
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


def correct(data, maker, model, lens_name, focal, aperture, params):
    img = SourceImage(path="synthetic.tif", kind="rgb", data=data, encoding="linear")
    img.exif.update(maker=maker, model=model, camera_maker=maker, camera_model=model, lens=lens_name,
                    focal_length=focal, fnumber=aperture)
    mod = registry()["lens"]()
    piece = Piece("lens", 0, params, img)
    h, w = data.shape[1:]
    piece.buf_in = piece.buf_out = (w, h)
    piece.dsc_in = BufferDesc(3, None, "camera")
    mod.commit(piece)
    piece.dsc_out = mod.output_desc(piece, piece.dsc_in)
    roi = ROI(0, 0, w, h, 1.0)
    r = mod.modify_roi_in(piece, roi)
    x0, y0 = max(0, r.x), max(0, r.y)
    r = ROI(x0, y0, min(w, r.x + r.width) - x0, min(h, r.y + r.height) - y0, 1.0)
    out = mod.process(piece, np.ascontiguousarray(data[:, r.y: r.y + r.height, r.x: r.x + r.width]), r, roi)
    return out, piece, mod


def centre(profile, pos):
    """Darkness centroid of a 1-D profile around index ``pos`` (window +-5 px), or nan."""
    i = int(round(pos))
    if i - 6 < 0 or i + 7 > len(profile):
        return np.nan
    seg = profile[i - 6: i + 7]
    if (seg <= 1e-6).any():  # black (outside the frame)
        return np.nan
    bg = max(seg[0], seg[-1])
    wgt = np.clip(bg - seg, 0, None)
    if wgt.sum() < 1e-3:
        return np.nan
    return float((np.arange(i - 6, i + 7) * wgt).sum() / wgt.sum()) + 0.5  # pixel-edge coordinates


def measure(img, locate):
    """Straightness, position and colour figures. ``locate(kind, L, t)`` gives the expected
    line position (pixel-edge) of line L at coordinate t along it."""
    _, h, w = img.shape
    res, pos_err, tca = [], [], []
    for kind, n_lines, length in (("v", w, h), ("h", h, w)):
        for L in range(SPACING, n_lines - SPACING // 2, SPACING):
            ts, cs = [], []
            for t in range(20, length - 20, 4):
                if abs((t + 0.5 + SPACING / 2) % SPACING - SPACING / 2) < 12:
                    continue  # a crossing line would pull the centroid
                guess = locate(kind, L, t + 0.5)
                row = (lambda ch: img[ch, t, :]) if kind == "v" else (lambda ch: img[ch, :, t])
                cg = centre(row(1), guess - 0.5)
                if np.isfinite(cg):
                    ts.append(t + 0.5)
                    cs.append(cg)
                    cr, cb = centre(row(0), guess - 0.5), centre(row(2), guess - 0.5)
                    if np.isfinite(cr) and np.isfinite(cb):
                        tca.append(abs(cr - cb))
                    pos_err.append(cg - L)
            if len(ts) < 20:
                continue
            ts, cs = np.array(ts), np.array(cs)
            A = np.stack([np.ones_like(ts), ts], 1)
            fit = A @ np.linalg.lstsq(A, cs, rcond=None)[0]
            res.extend(np.abs(cs - fit))
    res, pos_err, tca = np.array(res), np.abs(np.array(pos_err)), np.array(tca)
    return {"line_residual_max": float(res.max()), "line_residual_rms": float(np.sqrt((res ** 2).mean())),
            "position_error_max": float(pos_err.max()), "tca_max": float(tca.max()) if tca.size else float("nan"),
            "tca_rms": float(np.sqrt((tca ** 2).mean())) if tca.size else float("nan"), "samples": int(res.size)}


def background_spread(img):
    g = img[1]
    h, w = g.shape
    vals = []
    for y in range(SPACING // 2, h - 10, SPACING):
        for x in range(SPACING // 2, w - 10, SPACING):
            v = g[y - 3: y + 4, x - 3: x + 4]
            if (v > 1e-6).all():
                vals.append(v.mean())
    vals = np.array(vals)
    return float(vals.max() / vals.min() - 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=3000)
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "quality_lens.json"))
    args = ap.parse_args(argv)
    w = args.width
    h = w * 2 // 3
    db = lensfunpy.Database()
    results = {}
    for maker, model, lens_name, focal, aperture in PAIRS:
        cam = db.find_cameras(None, model)[0]
        lens = db.find_lenses(cam, None, lens_name)[0]
        t0 = time.time()
        photo = photograph(cam, lens, w, h, focal, aperture)
        out, piece, mod = correct(photo, maker, model, lens_name, focal, aperture,
                                  LensParams(autoscale=False, scale=1.0))
        t_corr = time.time() - t0

        def on_ideal(kind, L, t):
            return float(L)

        def on_photo(kind, L, t):
            p = np.array([[L, t]]) if kind == "v" else np.array([[t, L]])
            q = mod.distort_backtransform(piece, p)[0]
            return float(q[0] if kind == "v" else q[1])

        after = measure(out, on_ideal)
        before = measure(photo, on_photo)
        before.pop("position_error_max")
        after["background_spread"] = background_spread(out)
        before["background_spread"] = background_spread(photo)
        _, auto, _ = correct(photo, maker, model, lens_name, focal, aperture, LensParams())
        key = f"{model} + {lens_name} @ {focal:g} mm f/{aperture:g}"
        results[key] = {"size": [w, h], "corrected": after, "uncorrected": before,
                        "autoscale": auto.data["k"], "seconds": t_corr}
        print(f"{key}: corrected lines residual max {after['line_residual_max']:.3f} px "
              f"(rms {after['line_residual_rms']:.3f}), position max {after['position_error_max']:.3f} px, "
              f"TCA max {after['tca_max']:.3f} px, background spread {100 * after['background_spread']:.2f} %"
              f" | uncorrected: residual max {before['line_residual_max']:.2f} px, TCA max "
              f"{before['tca_max']:.2f} px, background spread {100 * before['background_spread']:.1f} %"
              f" | autoscale {auto.data['k']:.4f}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
