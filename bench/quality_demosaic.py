#!/usr/bin/env python3
"""Demosaic quality (CPSNR on Kodak24 and McMaster) and speed (12 MP GoPro DNG).

    . .venv/bin/activate
    python bench/quality_demosaic.py [--sets kodak,mcm] [--methods all|rcd,ppg,...]
        [--xtrans] [--time] [--threads N] [--json bench/out/demosaic.json]

Protocol (the demosaicking papers' and DPIR's tables): each 8-bit RGB image of
``Kodak24/`` (24 images, 768x512) and ``McMaster/`` (18, 500x500) under
``$PIXELPIPE_TESTDATA/eval`` is scaled to [0, 1] (value / 255, no
linearisation), sampled through an RGGB Bayer pattern (R at (0, 0)),
demosaiced by pixelpipe's kernel for the method (the same Halide kernels the
``demosaic`` module runs, on the whole image), rounded to uint8 (clipped to
0..255) and compared with the original: CPSNR = 10 log10(255^2 / MSE) with the
MSE over R, G and B of the image without a 10-pixel border, averaged over the
images of a set. Published references on this protocol: Malvar-He-Cutler
35.78 / 34.43 dB (reproduced here exactly), bilinear about 30.2 / 32.3, the
deep joint method of Gharbi et al. 42.0 / 39.1 (QUALITY.md, "Demosaic").

``--xtrans`` also runs the X-Trans method on the same images sampled through
the 6x6 X-Trans layout (``pixelpipe.io.dng.XTRANS_PATTERN``), with the plain
normalised convolution as its baseline.

``--time``: wall time of each Bayer kernel (best of 5 after one warm-up) on
the 12 MP ``gopro_hero6_black_gpr2dng.dng`` mosaic (black-subtracted and
scaled to [0, 1]), with ``--threads`` Halide threads (``HL_NUM_THREADS``;
default: all cores).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

BAYER = ("bilinear", "mhc", "ppg", "rcd_classic", "rcd", "mlri")
RGGB = np.array([[0, 1], [1, 2]])


def data_dir() -> Path:
    from pixelpipe.testdata import eval_dir, raw_dir

    return eval_dir(), raw_dir()


def load_set(name: str) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    ev, _ = data_dir()
    if name == "kodak":
        files = sorted((ev / "Kodak24").glob("*.png"))
    elif name == "mcm":
        files = sorted((ev / "McMaster").glob("*.tif"), key=lambda p: int(p.stem))
    else:
        raise SystemExit(f"unknown set {name!r}")
    if not files:
        raise SystemExit(f"no images for {name} under {ev}")
    return [(f.name, np.asarray(Image.open(f).convert("RGB")).astype(np.float32) / 255.0) for f in files]


def mosaic(img: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    from pixelpipe.io.sample import mosaic_from_rgb

    return np.ascontiguousarray(mosaic_from_rgb(img, pattern), dtype=np.float32)


def cpsnr(out_chw: np.ndarray, ref_hwc: np.ndarray, border: int = 10) -> float:
    o = np.clip(np.round(out_chw.transpose(1, 2, 0) * 255.0), 0, 255)[border:-border, border:-border]
    r = np.round(ref_hwc * 255.0)[border:-border, border:-border]
    mse = float(np.mean((o - r) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse)


def demosaic(method: str, m: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    from pixelpipe.modules import demosaic as dm

    if method == "markesteijn":
        return dm.run_xtrans(m, pattern)
    if method == "xtrans-nconv":
        return nconv(m, pattern)
    return dm.run_kernel(method, m, pattern)


def nconv(m: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Baseline for any CFA: each colour's samples, Gaussian-weighted (sigma 1 px, 5x5)."""
    h, w = m.shape
    n = pattern.shape[0]
    yy, xx = np.mgrid[0:h, 0:w]
    col = pattern[yy % n, xx % n]
    g = np.exp(-np.arange(-2, 3) ** 2 / 2.0)
    out = np.empty((3, h, w), np.float32)

    def conv(a):
        p = np.pad(a, 2, mode="reflect")
        t = sum(g[i] * p[:, i: i + w] for i in range(5))
        return sum(g[j] * t[j: j + h] for j in range(5))
    for k in range(3):
        mk = (col == k).astype(np.float64)
        out[k] = np.where(mk > 0, m, conv(m * mk) / np.maximum(conv(mk), 1e-9))
    return out


def quality(sets, methods, xt: bool) -> dict:
    from pixelpipe.io.dng import XTRANS_PATTERN

    res: dict = {}
    for s in sets:
        imgs = load_set(s)
        runs = [(mm, RGGB) for mm in methods]
        if xt:
            runs += [("xtrans-nconv", XTRANS_PATTERN), ("markesteijn", XTRANS_PATTERN)]
        for method, pat in runs:
            pat = np.asarray(pat)
            t0 = time.perf_counter()
            per = {name: cpsnr(demosaic(method, mosaic(img, pat), pat), img) for name, img in imgs}
            key = method if pat.shape == (2, 2) else f"{method} (X-Trans)"
            res.setdefault(key, {})[s] = {"cpsnr": float(np.mean(list(per.values()))), "per_image": per,
                                          "seconds": time.perf_counter() - t0}
            print(f"{s:6s} {key:26s} {res[key][s]['cpsnr']:6.2f} dB  ({res[key][s]['seconds']:.1f} s)",
                  flush=True)
    return res


def timing(methods) -> dict:
    from pixelpipe.io.decode import load
    from pixelpipe.modules import demosaic as dm

    _, rd = data_dir()
    img = load(rd / "gopro_hero6_black_gpr2dng.dng")
    m = np.ascontiguousarray((img.data - img.black[0]) / (img.white - img.black[0]), dtype=np.float32)
    pat = img.cfa.rgb_pattern()
    out = {}
    for method in methods:
        dm.run_kernel(method, m, pat)  # compile / load, warm up
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            dm.run_kernel(method, m, pat)
            ts.append(time.perf_counter() - t0)
        out[method] = {"best_s": min(ts), "median_s": float(np.median(ts)), "megapixels": m.size / 1e6}
        print(f"time   {method:10s} best {min(ts):.3f} s  median {np.median(ts):.3f} s  "
              f"({m.shape[1]}x{m.shape[0]})", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="kodak,mcm")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--xtrans", action="store_true")
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.threads:
        os.environ["HL_NUM_THREADS"] = str(a.threads)
    methods = BAYER if a.methods == "all" else tuple(a.methods.split(","))
    result = {"protocol": "RGGB, [0,1] = value/255, uint8 rounding, 10 px border, mean over images",
              "threads": a.threads or os.cpu_count()}
    if not a.no_quality:
        result["quality"] = quality([s for s in a.sets.split(",") if s], methods, a.xtrans)
    if a.time:
        result["timing"] = timing(methods)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
