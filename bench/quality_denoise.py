#!/usr/bin/env python3
"""Denoise quality: denoiseprofile on synthetic Poisson-Gaussian raw mosaics.

    . .venv/bin/activate
    python bench/quality_denoise.py [--images 24] [--json bench/out/quality_denoise.json]

Each Kodak24 image (``$PIXELPIPE_TESTDATA/eval/Kodak24``, sRGB decoded to linear,
scaled so white is 0.8 of the raw white) is mosaiced (RGGB) and gets
Poisson-Gaussian noise ``var = a x + b`` at two levels. The mosaic then runs
through the pipe's raw stage (rawprepare, temperature, highlights, demosaic
"mhc") and denoiseprofile with its default parameters, once with the noise
model given as a DNG NoiseProfile and once measured from the raw itself
(no profile). The clean mosaic through the same stage is the reference.

Figures (linear camera RGB, 10-pixel border excluded):
* noise sigma in flat patches: RMS over 16x16 blocks of the within-block std of
  (result - clean), blocks where the clean image minus a fitted plane varies by
  less than 0.2 % of white (std; 0.5 % where an image has fewer than 4 such
  blocks), before and after;
* PSNR against the clean reference;
* edge energy: mean gradient magnitude of the result over the 5 % strongest
  clean edges, divided by the clean one (1 = edges kept, < 1 = blurred);
* slanted edge (5 degrees, 0.1 to 0.5 of white): 10-90 % rise width of the
  edge-spread function (pixels across the edge) and its overshoot (ringing, % of
  the step) for the clean stage, the noisy stage and the denoised noisy edge.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pixelpipe.io.source import CFA, SourceImage  # noqa: E402
from pixelpipe.modules import registry  # noqa: E402
from pixelpipe.modules.base import BufferDesc, Piece, ROI  # noqa: E402
from pixelpipe.testdata import eval_dir  # noqa: E402

RGGB = np.array([[0, 1], [3, 2]])
LEVELS = {"moderate": (1.0e-3, 4.0e-6), "high": (4.0e-3, 2.0e-5)}
BORDER = 10


def srgb_to_linear(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def mosaic(rgb):
    _, h, w = rgb.shape
    lut = np.array([0, 1, 2, 1])[RGGB]
    yy, xx = np.mgrid[0:h, 0:w]
    return np.take_along_axis(rgb, lut[yy % 2, xx % 2][None], axis=0)[0]


def raw_image(data, profile):
    return SourceImage(path="synthetic.dng", kind="raw", data=np.asarray(data, np.float32),
                       cfa=CFA("bayer", RGGB, "RGBG"), black=(0, 0, 0, 0), white=1.0, wb_as_shot=(1, 1, 1, 1),
                       noise_profile=profile)


def run(op, image, buf, params=None, dsc=None):
    mod = registry()[op]()
    p = params if params is not None else mod.default_params(image)
    piece = Piece(op, 0, p, image, pipe="export")
    h, w = buf.shape[-2:]
    piece.buf_in = (w, h)
    piece.dsc_in = dsc
    mod.commit(piece)
    piece.buf_out = (w, h)
    piece.dsc_out = mod.output_desc(piece, dsc)
    roi = ROI(0, 0, w, h, 1.0)
    r = mod.modify_roi_in(piece, roi)
    x0, y0 = max(0, r.x), max(0, r.y)
    r = ROI(x0, y0, min(w, r.x + r.width) - x0, min(h, r.y + r.height) - y0, 1.0)
    out = mod.process(piece, np.ascontiguousarray(buf[..., r.y: r.y + r.height, r.x: r.x + r.width]), r, roi)
    return out, piece


def raw_stage(image):
    dsc = BufferDesc(1, image.cfa, "raw")
    buf = image.data
    for op in ("rawprepare", "temperature", "highlights", "demosaic"):
        buf, piece = run(op, image, buf, dsc=dsc)
        dsc = piece.dsc_out
    return buf, dsc


def denoise(image, buf, dsc):
    out, piece = run("denoiseprofile", image, buf, dsc=dsc)
    return out, piece


def flat_blocks(clean, thr=0.002, block=16):
    """Top-left corners of 16x16 blocks where the clean image is flat: after removing a
    best-fit plane per channel, its std is below ``thr`` (of white)."""
    _, h, w = clean.shape
    yy, xx = np.mgrid[0:block, 0:block]
    A = np.stack([np.ones(block * block), xx.ravel(), yy.ravel()], 1)
    out = []
    for y in range(BORDER, h - BORDER - block, block):
        for x in range(BORDER, w - BORDER - block, block):
            blk = clean[:, y: y + block, x: x + block].reshape(3, -1).T
            res = blk - A @ np.linalg.lstsq(A, blk, rcond=None)[0]
            if res.std(axis=0).max() < thr:
                out.append((y, x))
    return out


def block_sigma(diff, blocks, block=16):
    """RMS over flat blocks of the within-block std of (result - clean), all channels."""
    if not blocks:
        return float("nan")
    v = [diff[:, y: y + block, x: x + block].reshape(3, -1).var(axis=1).mean() for y, x in blocks]
    return float(np.sqrt(np.mean(v)))


def grad(a):
    g = a.mean(0)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = (g[:, 2:] - g[:, :-2]) / 2
    gy[1:-1] = (g[2:] - g[:-2]) / 2
    return np.hypot(gx, gy)


def psnr(a, ref):
    c = (slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    mse = np.mean((a[c] - ref[c]) ** 2)
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def rise_width(img, angle_deg=5.0):
    """(10-90 % width in px, overshoot as a fraction of the step) of the edge-spread
    function of a vertical-ish slanted edge."""
    g = img.mean(0)
    h, w = g.shape
    t = math.tan(math.radians(angle_deg))
    yy, xx = np.mgrid[0:h, 0:w]
    d = (xx + 0.5 - (w / 2 + t * (yy + 0.5 - h / 2))) * math.cos(math.radians(angle_deg))
    sel = (np.abs(d) < 12) & (yy > BORDER) & (yy < h - BORDER)
    bins = np.arange(-12, 12.001, 0.125)
    idx = np.digitize(d[sel], bins)
    esf = np.array([g[sel][idx == i].mean() if np.any(idx == i) else np.nan for i in range(1, len(bins))])
    centres = (bins[:-1] + bins[1:]) / 2
    ok = np.isfinite(esf)
    esf, centres = esf[ok], centres[ok]
    esf = np.convolve(np.pad(esf, 1, mode="edge"), np.ones(3) / 3, mode="valid")  # light smoothing of the bins
    lo, hi = esf[:24].mean(), esf[-24:].mean()
    n = (esf - lo) / (hi - lo)
    def crossing(level):
        i = int(np.argmax(n >= level))
        if i == 0:
            return float(centres[0])
        t = (level - n[i - 1]) / max(n[i] - n[i - 1], 1e-12)
        return float(centres[i - 1] + t * (centres[i] - centres[i - 1]))

    overshoot = max(float(n.max()) - 1.0, -float(n.min()), 0.0)
    return crossing(0.9) - crossing(0.1), overshoot


def slanted_edge(a, b, seed):
    h, w = 256, 256
    t = math.tan(math.radians(5.0))
    yy, xx = np.mgrid[0:h, 0:w]
    ss = 4  # supersampled rendering of the edge
    acc = np.zeros((h, w))
    for j in range(ss):
        for i in range(ss):
            px, py = xx + (i + 0.5) / ss, yy + (j + 0.5) / ss
            acc += px > (w / 2 + t * (py - h / 2))
    lvl = 0.1 + 0.4 * acc / ss ** 2
    clean = np.stack([lvl * 0.9, lvl, lvl * 0.8])
    m = mosaic(clean)
    g = np.random.default_rng(seed)
    noisy = m + np.sqrt(np.maximum(a * m + b, 0)) * g.standard_normal(m.shape)
    c_img = raw_image(m, [(a, b)])
    n_img = raw_image(noisy, [(a, b)])
    cb, _ = raw_stage(c_img)
    nb, dsc = raw_stage(n_img)
    db, _ = denoise(n_img, nb, dsc)
    return rise_width(cb), rise_width(nb), rise_width(db)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "quality_denoise.json"))
    args = ap.parse_args(argv)
    files = sorted((eval_dir() / "Kodak24").glob("kodim*.png"))[: args.images]
    if not files:
        sys.exit(f"no Kodak24 images under {eval_dir()}")
    results = {}
    for level, (a, b) in LEVELS.items():
        for mode in ("profile", "estimated"):
            rows = []
            t0 = time.time()
            for k, f in enumerate(files):
                rgb = np.asarray(Image.open(f).convert("RGB"), np.float64).transpose(2, 0, 1) / 255.0
                clean = 0.8 * srgb_to_linear(rgb)
                m = mosaic(clean)
                g = np.random.default_rng(1000 + k)
                noisy = m + np.sqrt(a * m + b) * g.standard_normal(m.shape)
                prof = [(a, b)] if mode == "profile" else None
                cb, _ = raw_stage(raw_image(m, prof))
                n_img = raw_image(noisy, prof)
                nb, dsc = raw_stage(n_img)
                db, piece = denoise(n_img, nb, dsc)
                fb = flat_blocks(cb)
                if len(fb) < 4:
                    fb = flat_blocks(cb, 0.005)
                s_in = block_sigma(nb - cb, fb)
                s_out = block_sigma(db - cb, fb)
                gc = grad(cb)[BORDER:-BORDER, BORDER:-BORDER]
                top = gc > np.percentile(gc, 95)
                e_ratio = float(grad(db)[BORDER:-BORDER, BORDER:-BORDER][top].mean() / gc[top].mean())
                e_noisy = float(grad(nb)[BORDER:-BORDER, BORDER:-BORDER][top].mean() / gc[top].mean())
                rows.append({"image": f.name, "sigma_noisy": s_in, "sigma_denoised": s_out,
                             "reduction": s_in / max(s_out, 1e-12), "psnr_noisy": psnr(nb, cb),
                             "psnr_denoised": psnr(db, cb), "edge_energy": e_ratio, "edge_energy_noisy": e_noisy,
                             "model": piece.data["source"], "a_used": float(np.mean(piece.data["alpha"])),
                             "flat_blocks": len(fb)})
            sw = slanted_edge(a, b, 7)
            red = np.array([r["reduction"] for r in rows if np.isfinite(r["reduction"])])
            summary = {
                "median_reduction": float(np.median(red)), "min_reduction": float(red.min()),
                "psnr_noisy": float(np.mean([r["psnr_noisy"] for r in rows])),
                "psnr_denoised": float(np.mean([r["psnr_denoised"] for r in rows])),
                "edge_energy": float(np.mean([r["edge_energy"] for r in rows])),
                "edge_energy_noisy": float(np.mean([r["edge_energy_noisy"] for r in rows])),
                "rise_clean": sw[0][0], "rise_noisy": sw[1][0], "rise_denoised": sw[2][0],
                "overshoot_clean": sw[0][1], "overshoot_denoised": sw[2][1],
                "seconds": time.time() - t0}
            results[f"{level}/{mode}"] = {"a": a, "b": b, "summary": summary, "images": rows}
            print(f"{level:9s} {mode:9s} sigma x{summary['median_reduction']:.2f} (min x{summary['min_reduction']:.2f})"
                  f"  PSNR {summary['psnr_noisy']:.2f} -> {summary['psnr_denoised']:.2f} dB"
                  f"  edge energy {summary['edge_energy']:.3f} (noisy {summary['edge_energy_noisy']:.3f})"
                  f"  rise 10-90 % {sw[0][0]:.2f} / {sw[1][0]:.2f} / {sw[2][0]:.2f} px (clean/noisy/denoised),"
                  f" overshoot {100 * sw[0][1]:.1f} / {100 * sw[2][1]:.1f} %", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
