#!/usr/bin/env python3
"""Quality and speed of the AI tasks, through pixelpipe's own ONNX Runtime sessions.

    python bench/quality_ai.py [--models build/models] [--subsample N] SECTION...

Sections (results are printed and merged into bench/out/quality_ai.json):

* ``ffdnet``   FFDNet colour, sigma 25 (Gaussian noise added in float with a fixed
               seed, not clipped), untiled, on Kodak24_ffdnet500 / CBSD68 / McMaster;
               the output clipped to [0, 1] and rounded to 8 bits, PSNR on RGB
               (published 32.13 / 31.21 / 32.35 dB).
* ``rlfn``     RLFN x2 / x4, untiled, on the MATLAB-bicubic LR images of Set5 / Set14;
               output rounded to 8 bits, PSNR on Y (MATLAB's rgb2ycbcr, not rounded),
               border crop = scale (published x2 Set5 38.07, x4 Set5 32.24, x4 Set14 28.62).
* ``tiled``    tiled (darktable's overlaps: 64 px denoise, 16 px upscale) against untiled:
               FFDNet sigma 25 and RLFN x2 on Kodak24 (768x512, tile 256 forced so each
               image is several tiles), and FFDNet on a 24 MP image (Kodak24 tiled to
               6000x4000; the untiled run needs about 6 GB).
* ``demosaic`` demosaicnet (demosaic-demosaicnet's bayer_v1 graph, untiled) on Kodak24 and
               McMaster mosaicked RGGB from the linearised sRGB images; PSNR on sRGB with a
               10 px border (targets >= 41.5 / 38.5 dB).
* ``noc``      the classical click-to-mask method (no model): NoC@85 and NoC@90 with a
               20-click cap on GrabCut (50) and Berkeley (100); each next click at the
               point of the largest error (FN or FP) farthest from its boundary (the
               standard protocol's "centre" of the error, RITM's implementation), GrabCut's
               128 band ignored; the mask.object.* defaults for post-processing. Beside it,
               plain GrabCut (OpenCV's cv2.grabCut seeded by the same clicks) when cv2 imports.
* ``speed``    seconds per 24 MP image on this machine: denoise (FFDNet, tiled, 6000x4000),
               upscale x2 / x4 (RLFN, a 24 MP output: from 3000x2000 / 1500x1000), raw
               denoise (demosaicnet on bench/out/gopro_hero6_24mp.dng when present, made by
               bench/make_24mp.py). The GPU counterpart is bench/bench_ai_gpu.py.
* ``dng``      raw denoise of the 550D DNG, the result opened by rawpy and rendered by
               darktable-cli (when installed).

The models come from ``--models`` (a folder of .dtmodel packages, e.g. the output of
``python tools/convert_all.py --out build/models``), installed into a temporary
pixelpipe data folder with AI switched on.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "bench" / "out" / "quality_ai.json"


def setup(models: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pp-quality-ai-"))
    for k in ("CONFIG", "DATA", "CACHE"):
        os.environ[f"XDG_{k}_HOME"] = str(tmp / k.lower())
    from pixelpipe import ai, prefs

    prefs.put("ai.enabled", True)
    for mid in ("denoise-ffdnet", "upscale-rlfn", "rawdenoise-demosaicnet", "demosaic-demosaicnet"):
        pkg = models / f"{mid}.dtmodel"
        if pkg.is_file():
            m = ai.install_package(pkg)
            if m.task in prefs.TASKS:
                ai.activate(m.id)


def eval_dir() -> Path:
    from pixelpipe.testdata import eval_dir as e

    return e()


def load_rgb(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def psnr(a, b, peak=255.0) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(peak * peak / mse)) if mse > 0 else float("inf")


def q8(x) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255)


def save(section: str, data) -> None:
    """Merge one section into OUT (under a lock: several runs may share the file)."""
    import fcntl

    global OUT
    if os.environ.get("PIXELPIPE_QUALITY_AI_JSON"):
        OUT = Path(os.environ["PIXELPIPE_QUALITY_AI_JSON"])

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        allres = json.loads(OUT.read_text()) if OUT.exists() else {}
        allres[section] = data
        tmp = OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(allres, indent=2))
        os.replace(tmp, OUT)


def _session(task, **kw):
    from pixelpipe.ai.tasks import common

    return common.session_for(common.require_model(task), **kw)


# --------------------------------------------------------------------------- FFDNet

FFDNET_SETS = {"Kodak24_ffdnet500": 32.13, "CBSD68": 31.21, "McMaster": 32.35}


def _numeric_key(p):
    s = Path(p).stem
    return (0, int(s)) if s.isdigit() else (1, s)


def section_ffdnet(a) -> dict:
    from pixelpipe.ai.tasks.denoise import denoise_encoded

    s = _session("denoise")
    res = {}
    for name, published in FFDNET_SETS.items():
        files = sorted(glob.glob(str(eval_dir() / name / "*")), key=_numeric_key)
        files = [f for f in files if f.lower().endswith((".png", ".tif", ".tiff"))]
        rng = np.random.default_rng(0)
        vals = []
        t0 = time.time()
        for f in files:
            gt = load_rgb(f)
            x = np.moveaxis(gt.astype(np.float32) / 255, 2, 0)
            noisy = x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(25 / 255)
            y = denoise_encoded(s, noisy, 25.0, tiled=False)
            vals.append(psnr(np.moveaxis(q8(y), 0, 2), gt))
        res[name] = {"images": len(files), "psnr": round(float(np.mean(vals)), 3), "published": published,
                     "delta": round(float(np.mean(vals)) - published, 3), "seconds": round(time.time() - t0, 1)}
        print(f"ffdnet sigma 25 {name}: {res[name]}", flush=True)
    save("ffdnet", res)
    return res


# --------------------------------------------------------------------------- RLFN

RLFN_PUBLISHED = {("Set5", 2): 38.07, ("Set5", 4): 32.24, ("Set14", 4): 28.62, ("Set14", 2): 33.72}


def y_channel(rgb_u8) -> np.ndarray:
    x = np.asarray(rgb_u8, np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def section_rlfn(a) -> dict:
    from pixelpipe.ai.tasks.upscale import upscale_encoded

    res = {}
    for (name, scale), published in RLFN_PUBLISHED.items():
        s = _session("upscale", scale=scale)
        vals = []
        for hr_path in sorted(glob.glob(str(eval_dir() / name / f"x{scale}" / "*_HR.png"))):
            hr = load_rgb(hr_path)
            lr = load_rgb(hr_path.replace("_HR.png", "_LR.png"))
            x = np.moveaxis(lr.astype(np.float32) / 255, 2, 0)
            sr = np.moveaxis(q8(upscale_encoded(s, x, scale, tiled=False)), 0, 2)
            sr = sr[:hr.shape[0], :hr.shape[1]]
            b = scale
            vals.append(psnr(y_channel(sr)[b:-b, b:-b], y_channel(hr)[b:-b, b:-b]))
        v = float(np.mean(vals))
        res[f"{name}_x{scale}"] = {"images": len(vals), "psnr_y": round(v, 3), "published": published,
                                   "delta": round(v - published, 3)}
        print(f"rlfn x{scale} {name}: {res[f'{name}_x{scale}']}", flush=True)
    save("rlfn", res)
    return res


# --------------------------------------------------------------------------- tiled vs untiled

def _kodak():
    return sorted(glob.glob(str(eval_dir() / "Kodak24" / "*.png")))


def section_tiled(a) -> dict:
    from PIL import Image

    from pixelpipe.ai.tasks.denoise import denoise_encoded
    from pixelpipe.ai.tasks.upscale import upscale_encoded

    res = {}
    sd = _session("denoise")
    rng = np.random.default_rng(0)
    pt, pu, diffs = [], [], []
    for f in _kodak():
        gt = load_rgb(f)
        x = np.moveaxis(gt.astype(np.float32) / 255, 2, 0)
        noisy = x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(25 / 255)
        yu = denoise_encoded(sd, noisy, 25.0, tiled=False)
        yt = denoise_encoded(sd, noisy, 25.0, tile=256)
        pu.append(psnr(np.moveaxis(q8(yu), 0, 2), gt))
        pt.append(psnr(np.moveaxis(q8(yt), 0, 2), gt))
        diffs.append((float(np.abs(yu - yt).max()), float(np.abs(yu - yt)[:, 64:-64, 64:-64].max())))
    res["ffdnet_kodak24_tile256"] = {"untiled": round(float(np.mean(pu)), 3), "tiled": round(float(np.mean(pt)), 3),
                                     "delta": round(float(np.mean(pt) - np.mean(pu)), 4),
                                     "max_abs_diff": max(d[0] for d in diffs),
                                     "max_abs_diff_64px_inside": max(d[1] for d in diffs)}
    print("tiled ffdnet kodak24:", res["ffdnet_kodak24_tile256"], flush=True)
    su = _session("upscale", scale=2)
    pt, pu, diffs = [], [], []
    for f in _kodak():
        gt = load_rgb(f)
        lr = np.asarray(Image.fromarray(gt).resize((gt.shape[1] // 2, gt.shape[0] // 2), Image.BICUBIC))
        x = np.moveaxis(lr.astype(np.float32) / 255, 2, 0)
        yu = upscale_encoded(su, x, 2, tiled=False)
        yt = upscale_encoded(su, x, 2, tile=192)
        pu.append(psnr(y_channel(np.moveaxis(q8(yu), 0, 2))[2:-2, 2:-2], y_channel(gt)[2:-2, 2:-2]))
        pt.append(psnr(y_channel(np.moveaxis(q8(yt), 0, 2))[2:-2, 2:-2], y_channel(gt)[2:-2, 2:-2]))
        diffs.append((float(np.abs(yu - yt).max()), float(np.abs(yu - yt)[:, 32:-32, 32:-32].max())))
    res["rlfn_x2_kodak24_tile192"] = {"untiled": round(float(np.mean(pu)), 3), "tiled": round(float(np.mean(pt)), 3),
                                      "delta": round(float(np.mean(pt) - np.mean(pu)), 4),
                                      "max_abs_diff": max(d[0] for d in diffs),
                                      "max_abs_diff_32px_inside": max(d[1] for d in diffs)}
    print("tiled rlfn x2 kodak24:", res["rlfn_x2_kodak24_tile192"], flush=True)
    if not a.skip_24mp:
        big = mosaic_24mp()
        rng = np.random.default_rng(1)
        x = np.moveaxis(big.astype(np.float32) / 255, 2, 0)
        noisy = x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(25 / 255)
        del x
        t0 = time.time()
        yt = denoise_encoded(sd, noisy, 25.0)
        tt = time.time() - t0
        tile = sd.tile  # before the untiled run frees it
        from pixelpipe.ai.tiling import LADDER_X1

        t0 = time.time()
        yu = denoise_encoded(sd, noisy, 25.0, tiled=False)
        tu = time.time() - t0
        del noisy
        d = np.abs(yu - yt)
        res["ffdnet_24mp"] = {"size": [big.shape[1], big.shape[0]],
                              "untiled": round(psnr(np.moveaxis(q8(yu), 0, 2), big), 3),
                              "tiled": round(psnr(np.moveaxis(q8(yt), 0, 2), big), 3),
                              "max_abs_diff": float(d.max()), "max_abs_diff_64px_inside": float(d[:, 64:-64, 64:-64].max()),
                              "tile": tile, "seconds_tiled": round(tt, 1), "seconds_untiled": round(tu, 1),
                              "ladder": list(LADDER_X1)}
        res["ffdnet_24mp"]["delta"] = round(res["ffdnet_24mp"]["tiled"] - res["ffdnet_24mp"]["untiled"], 4)
        print("tiled ffdnet 24 MP:", res["ffdnet_24mp"], flush=True)
    save("tiled", res)
    return res


def mosaic_24mp(w: int = 6000, h: int = 4000) -> np.ndarray:
    """Kodak24 images (landscape ones, alternately mirrored) tiled to w x h, uint8 HWC."""
    tiles = [load_rgb(f) for f in _kodak()]
    tiles = [t for t in tiles if t.shape[1] > t.shape[0]]
    th, tw = tiles[0].shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    k = 0
    for y in range(0, h, th):
        for x in range(0, w, tw):
            t = tiles[k % len(tiles)]
            if (k // len(tiles)) % 2:
                t = t[:, ::-1]
            k += 1
            out[y:y + th, x:x + tw] = t[:min(th, h - y), :min(tw, w - x)]
    return out


# --------------------------------------------------------------------------- demosaicnet

def section_demosaic(a) -> dict:
    from pixelpipe import ai
    from pixelpipe.ai import registry
    from pixelpipe.ai.tasks import common

    m = registry.require_installed("demosaic-demosaicnet")
    s = ai.load_session(m, variant="bayer")
    res = {}
    for name, target in (("Kodak24", 41.5), ("McMaster", 38.5)):
        vals = []
        files = sorted(glob.glob(str(eval_dir() / name / "*")), key=_numeric_key)
        for f in files:
            gt = load_rgb(f)
            lin = common.srgb_decode(np.moveaxis(gt.astype(np.float32) / 255, 2, 0))
            H, W = (gt.shape[0] // 2) * 2, (gt.shape[1] // 2) * 2
            lin = lin[:, :H, :W]
            packed = np.stack([lin[0, 0::2, 0::2], lin[1, 0::2, 1::2], lin[1, 1::2, 0::2], lin[2, 1::2, 1::2]])[None]
            s.pin_tile(None)
            out = s.run({s.inputs[0].name: packed})[s.outputs[0].name][0]
            enc = common.srgb_encode(np.clip(out, 0, 1))
            b = 10
            vals.append(psnr(np.moveaxis(q8(enc), 0, 2)[b:-b, b:-b], gt[:H, :W][b:-b, b:-b]))
        v = float(np.mean(vals))
        res[name] = {"images": len(vals), "psnr": round(v, 3), "target": target, "ok": v >= target}
        print(f"demosaicnet RGGB {name}: {res[name]}", flush=True)
    save("demosaic", res)
    return res


# --------------------------------------------------------------------------- NoC

def load_grabcut():
    out = []
    from PIL import Image

    for f in sorted(glob.glob(str(eval_dir() / "GrabCut" / "data_GT" / "*"))):
        n = Path(f).stem
        g = np.asarray(Image.open(eval_dir() / "GrabCut" / "boundary_GT" / f"{n}.bmp").convert("L"))
        gt = (g > 128).astype(np.int8)
        gt[g == 128] = -1
        out.append((n, f, gt))
    return out


def load_berkeley():
    out = []
    from PIL import Image

    for f in sorted(glob.glob(str(eval_dir() / "Berkeley" / "masks" / "*.png"))):
        n = Path(f).stem
        im = glob.glob(str(eval_dir() / "Berkeley" / "images" / f"{n}.*"))[0]
        g = np.asarray(Image.open(f).convert("RGB"))[..., 0]
        out.append((n, im, (g > 128).astype(np.int8)))
    return out


def noc_sets(a):
    """{set name: [(name, image, gt)]}: images as paths, or uint8 arrays from ``--noc-data``
    (GrabCut.npz / Berkeley.npz written by ``--export-noc-data``: numpy only where it runs)."""
    if a.noc_data:
        out = {}
        for name in ("GrabCut", "Berkeley"):
            with np.load(Path(a.noc_data) / f"{name}.npz") as z:
                names = [str(n) for n in z["names"]]
                out[name] = [(n, z[f"img_{n}"], z[f"gt_{n}"]) for n in names]
        return out
    return {"GrabCut": load_grabcut(), "Berkeley": load_berkeley()}


def export_noc_data(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, loader in (("GrabCut", load_grabcut), ("Berkeley", load_berkeley)):
        arrays = {"names": np.array([n for n, _, _ in loader()])}
        for n, img, gt in loader():
            arrays[f"img_{n}"] = load_rgb(img)
            arrays[f"gt_{n}"] = gt
        np.savez_compressed(dest / f"{name}.npz", **arrays)
        print(f"{name}: {len(arrays) // 2} images -> {dest / (name + '.npz')}", flush=True)


def next_click(pred: np.ndarray, gt: np.ndarray):
    """RITM's protocol: the error (FN or FP) point farthest from the error's boundary."""
    from pixelpipe.ai.tasks.postprocess import edt_sq

    valid = gt >= 0
    fn = (gt == 1) & ~pred & valid
    fp = (gt == 0) & pred & valid
    dfn = edt_sq(np.pad(fn, 1))[1:-1, 1:-1]
    dfp = edt_sq(np.pad(fp, 1))[1:-1, 1:-1]
    pos = dfn.max() > dfp.max()
    d = dfn if pos else dfp
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    return x + 0.5, y + 0.5, bool(pos)


def iou(pred, gt) -> float:
    v = gt >= 0
    g = gt == 1
    return float((pred & g & v).sum()) / max(float(((pred | g) & v).sum()), 1.0)


GRABCUT_RADIUS = 5     # px: the seed disk of a click (plain GrabCut)
GRABCUT_ITERS = 5


def grabcut_masker(rgb: np.ndarray):
    """Plain GrabCut (OpenCV's cv2.grabCut, no post-processing) seeded by the clicks: every
    pixel starts as probable background, each click is a disk of GRABCUT_RADIUS px fixed to
    foreground (positive) or background (negative); GRABCUT_ITERS iterations from scratch
    with all clicks so far; the mask is definite + probable foreground."""
    import cv2

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    yy, xx = np.mgrid[0:rgb.shape[0], 0:rgb.shape[1]]

    def mask(clicks):
        m = np.full(rgb.shape[:2], cv2.GC_PR_BGD, np.uint8)
        for x, y, pos in clicks:
            disk = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= GRABCUT_RADIUS ** 2
            m[disk] = cv2.GC_FGD if pos else cv2.GC_BGD
        if not (m == cv2.GC_FGD).any():
            return np.zeros(rgb.shape[:2], bool)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(bgr, m, None, bgd, fgd, GRABCUT_ITERS, cv2.GC_INIT_WITH_MASK)
        return (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)
    return mask


def noc_one(img_path, gt, cap=20, method="classical"):
    rgb = img_path if isinstance(img_path, np.ndarray) else load_rgb(img_path)
    if method == "grabcut":
        predict = grabcut_masker(rgb)
    else:
        from pixelpipe.ai.tasks.mask import ClassicalMasker, MaskPrefs, target_from_rgb

        predict = ClassicalMasker(target_from_rgb(rgb), prefs=MaskPrefs()).mask
    pred = np.zeros(gt.shape, bool)
    clicks, ious = [], []
    for _ in range(cap):
        clicks.append(next_click(pred, gt))
        pred = predict(clicks)
        ious.append(iou(pred, gt))
        if ious[-1] >= 0.9:
            break
    return ious


def _noc_job(job):
    img, gt, method = job
    return noc_one(img, gt, method=method)


def noc(ious, t, cap=20) -> int:
    for k, v in enumerate(ious):
        if v >= t:
            return k + 1
    return cap


def section_noc(a) -> dict:
    methods = ["classical"]
    try:
        import cv2  # noqa: F401

        methods.append("grabcut")
    except ImportError:
        print("noc: opencv (cv2) is not installed: the plain GrabCut baseline is left out", flush=True)
    if a.noc_method:
        methods = [m for m in methods if m in a.noc_method]
    key = "noc" if not a.subsample else f"noc_sub{a.subsample}"
    prev = json.loads(OUT.read_text()).get(key, {}) if OUT.exists() else {}
    res = {k: v for k, v in prev.items() if isinstance(v, dict)}
    sets = noc_sets(a)
    for method in methods:
        res[method] = {}
        for name, data in sets.items():
            if a.subsample:
                data = data[::a.subsample]
            r85, r90, clicks = [], [], 0
            t0 = time.time()
            jobs = [(img, gt, method) for _, img, gt in data]
            if a.workers > 1:
                import multiprocessing as mp

                with mp.get_context("fork").Pool(a.workers) as pool:
                    all_ious = pool.map(_noc_job, jobs, chunksize=1)
            else:
                all_ious = map(_noc_job, jobs)
            for (n, _, _), ious in zip(data, all_ious):
                clicks += len(ious)
                r85.append(noc(ious, 0.85))
                r90.append(noc(ious, 0.90))
                print(f"  {method} {name} {n}: NoC85 {r85[-1]} NoC90 {r90[-1]} first IoU {ious[0]:.3f}", flush=True)
            res[method][name] = {"images": len(data), "NoC85": round(float(np.mean(r85)), 2),
                                 "NoC90": round(float(np.mean(r90)), 2), "NoF90": int(sum(v >= 20 for v in r90)),
                                 "seconds_per_click": round((time.time() - t0) * max(a.workers, 1)
                                                            / max(clicks, 1), 2),
                                 "workers": max(a.workers, 1)}
            print(f"noc {method} {name}: {res[method][name]}", flush=True)
            save(key, res)  # after every set: a long run keeps what it has
    res["methods"] = {"classical": "pixelpipe's classical click-to-mask (random walker + colour priors, "
                                   "pixelpipe.ai.tasks.classical_mask) with the mask.object.* defaults",
                      "grabcut": f"plain GrabCut, OpenCV cv2.grabCut, clicks as {GRABCUT_RADIUS} px seed disks, "
                                 f"{GRABCUT_ITERS} iterations, no post-processing"}
    res["subsample"] = a.subsample or 1
    save(key, res)
    return res


# --------------------------------------------------------------------------- speed

def section_speed(a) -> dict:
    """Seconds per 24 MP image through the task functions (tiled as the runtime tiles,
    ladder sizes chosen by the memory estimate): denoise on a 6000x4000 image, upscale
    x2 from 3000x2000 and x4 from 1500x1000 (a 24 MP output), raw denoise of a 24 MP DNG."""
    from pixelpipe.ai.tasks.denoise import denoise_encoded
    from pixelpipe.ai.tasks.upscale import upscale_encoded

    res = {"cpu_count": os.cpu_count(), "loadavg_start": round(os.getloadavg()[0], 2),
           "note": "shared machine: other processes were running; figures are upper bounds"}
    big = mosaic_24mp()
    x = np.moveaxis(big.astype(np.float32) / 255, 2, 0)
    sd = _session("denoise")
    t0 = time.time()
    denoise_encoded(sd, x, 25.0)
    res["denoise_ffdnet_24mp_s"] = round(time.time() - t0, 1)
    res["denoise_tile"] = sd.tile
    print("speed:", res, flush=True)
    del x
    from PIL import Image

    for scale in (2, 4):
        lr = np.asarray(Image.fromarray(big).resize((6000 // scale, 4000 // scale), Image.BICUBIC))
        x = np.moveaxis(lr.astype(np.float32) / 255, 2, 0)
        su = _session("upscale", scale=scale)
        t0 = time.time()
        upscale_encoded(su, x, scale)
        res[f"upscale_rlfn_x{scale}_24mp_out_s"] = round(time.time() - t0, 1)
        res[f"upscale_x{scale}_tile"] = su.tile
        print("speed:", res, flush=True)
        del x
    del big
    dng = REPO / "bench" / "out" / "gopro_hero6_24mp.dng"
    if dng.exists() and not a.skip_raw:
        from pixelpipe.ai.tasks import rawdenoise

        out = Path(tempfile.mkdtemp()) / "rd.dng"
        t0 = time.time()
        rawdenoise.rawdenoise_file(dng, out)
        res["rawdenoise_demosaicnet_24mp_s"] = round(time.time() - t0, 1)
        shutil.rmtree(out.parent, ignore_errors=True)
    res["loadavg_end"] = round(os.getloadavg()[0], 2)
    print("speed:", res, flush=True)
    save("speed", res)
    return res


# --------------------------------------------------------------------------- DNG readers

def section_dng(a) -> dict:
    import rawpy

    from pixelpipe.ai.tasks import rawdenoise
    from pixelpipe.testdata import raw_dir

    src = raw_dir() / "canon_550d_magiclantern_colorchart.dng"
    work = Path(tempfile.mkdtemp(prefix="pp-dng-"))
    out = work / "ml_rawdenoised.dng"
    t0 = time.time()
    rawdenoise.rawdenoise_file(src, out)
    res = {"source": src.name, "seconds": round(time.time() - t0, 1)}
    with rawpy.imread(str(src)) as r0, rawpy.imread(str(out)) as r1:
        res["rawpy"] = {"opens": True, "pattern": r1.raw_pattern.tolist(), "black": list(r1.black_level_per_channel),
                        "white": int(r1.white_level), "size": list(r1.raw_image_visible.shape),
                        "mean_ratio_postprocess": round(float(r1.postprocess(half_size=True, use_camera_wb=True).mean()
                                                              / r0.postprocess(half_size=True, use_camera_wb=True).mean()), 4)}
    dt = shutil.which("darktable-cli")
    if dt:
        def render(inp, name):
            cfg = work / f"cfg-{name}"
            cfg.mkdir()
            dst = work / f"{name}.jpg"
            p = subprocess.run([dt, str(inp), str(dst), "--core", "--configdir", str(cfg), "--library", ":memory:"],
                               capture_output=True, text=True, timeout=600)
            return p.returncode, dst
        rc0, j0 = render(src, "source")
        rc1, j1 = render(out, "denoised")
        d = {"returncode": rc1, "wrote": j1.exists()}
        if j0.exists() and j1.exists():
            a0, a1 = load_rgb(j0).astype(np.float64), load_rgb(j1).astype(np.float64)
            d["size"] = list(a1.shape[:2])
            d["mean_source"] = round(float(a0.mean()), 2)
            d["mean_denoised"] = round(float(a1.mean()), 2)
            if a0.shape == a1.shape:
                d["psnr_vs_source_render"] = round(psnr(a0, a1), 2)
        res["darktable_cli"] = d
    shutil.rmtree(work, ignore_errors=True)
    print("dng:", res, flush=True)
    save("dng", res)
    return res


SECTIONS = {"ffdnet": section_ffdnet, "rlfn": section_rlfn, "tiled": section_tiled, "demosaic": section_demosaic,
            "noc": section_noc, "speed": section_speed, "dng": section_dng}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sections", nargs="*", help=f"{', '.join(SECTIONS)} or all")
    ap.add_argument("--models", default=str(REPO / "build" / "models"), help="folder of .dtmodel packages")
    ap.add_argument("--subsample", type=int, default=0, help="NoC: every N-th image only")
    ap.add_argument("--noc-method", action="append", choices=["classical", "grabcut"],
                    help="NoC: only this method (repeatable; default both)")
    ap.add_argument("--skip-24mp", action="store_true", help="tiled: leave out the 24 MP untiled run (6 GB)")
    ap.add_argument("--skip-raw", action="store_true", help="speed: leave out the 24 MP raw denoise")
    ap.add_argument("--noc-data", help="NoC: read the sets from GrabCut.npz / Berkeley.npz in this folder")
    ap.add_argument("--export-noc-data", metavar="DIR", help="write those .npz files to DIR and stop")
    ap.add_argument("--workers", type=int, default=1, help="NoC: images in parallel processes")
    a = ap.parse_args(argv)
    if a.export_noc_data:
        export_noc_data(Path(a.export_noc_data))
        return 0
    bad = [n for n in a.sections if n not in SECTIONS and n != "all"]
    if bad or not a.sections:
        ap.error(f"name sections among {', '.join(SECTIONS)}, all" + (f" (not {', '.join(bad)})" if bad else ""))
    names = list(SECTIONS) if "all" in a.sections else a.sections
    if names != ["noc"]:  # the NoC needs no model (and, from --noc-data, nothing but numpy)
        setup(Path(a.models))
    for n in names:
        t0 = time.time()
        SECTIONS[n](a)
        print(f"[{n}: {time.time() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
