"""The whole default pipe of pixelpipe against darktable 4.2's default export.

For every raw of the test data that darktable 4.2 and LibRaw both read and
that has an as-shot white balance:

* darktable-cli exports it with its defaults (fresh configuration: the
  shipped darktablerc's scene-referred workflow with filmic rgb and the
  "legacy" chromatic adaptation, facts §5), 16-bit sRGB TIFF, full size;
* ``pixelpipe export RAW OUT.tif --workflow scene-referred-filmic --order v30
  --chromatic-adaptation legacy --bpp 16`` exports it (the same workflow,
  module order and chromatic-adaptation preference: darktable 4.2's shipped
  darktablerc says "legacy", i.e. as-shot white balance in temperature and no
  color calibration; ``--chromatic-adaptation modern`` changes the main row),
  and, for the breakdown, the same pipe with variants (``--variants``):

  - ``modern``: pixelpipe's own default for the workflow (camera reference
    white balance + color calibration, what darktable applies when that
    preference says "modern");
  - ``no-satdetect``: the main row's edit (as a sidecar) with the highlights
    module's saturation detection off (darktable's clip rule: opposed
    inpainting starts at the file's white point);

* the two images are aligned (darktable crops a row or column on some files:
  the overlap is found by matching luminance over small integer shifts) and
  compared per pixel: CIEDE2000 (colour-science, sRGB -> XYZ -> CIELAB D65)
  mean and 95th percentile (99th and max for information), the mean signed
  Lab difference (a cast shows there), and two region checks:

  - **clipping**: pixels with a channel at the top (>= 254.5/255) in one
    image and no channel above 240/255 in the other, and the same for the
    bottom (all channels <= 0.5/255 in one, > 8/255 in the other); fractions
    of the frame;
  - **colour shift**: the frame is cut into 64x64-pixel blocks; a block whose
    mean colours differ by more than 5 CIEDE2000 (its mean Lab, not the mean
    of per-pixel differences, so noise and demosaic texture do not count) is
    a shifted region; the fraction of such blocks and the worst one are given.

``--png DIR`` writes darktable | pixelpipe | CIEDE2000 map (white = 10) side by
side, 900 px wide each, for looking at.

Usage::

    python bench/compare_darktable_pipe.py [RAW ...] [--chromatic-adaptation legacy|modern]
        [--variants modern,no-satdetect] [--work DIR] [--json OUT.json] [--png DIR]

Default: every raw in the test data's raw folder (those that one of the two
programs cannot read, or that have no as-shot white balance, are listed with
the reason and skipped).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_darktable_modules as cdm  # noqa: E402
from compare_darktable_rawstage import align  # noqa: E402

WORKFLOW, ORDER = "scene-referred-filmic", "v30"
VARIANTS = ("modern", "no-satdetect")
BLOCK = 64


def variant_sidecar(raw: Path, variant: str, dest: Path, ca: str) -> Path:
    """The workflow's default edit for ``raw`` (chromatic adaptation ``ca``) with ``variant``
    applied, saved as a sidecar."""
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit

    image = load(raw)
    edit = Edit.default_for(image, WORKFLOW, order=ORDER, chromatic_adaptation=ca)
    if variant == "no-satdetect":
        edit.set_params("highlights", image, detect_saturation=False)
    else:
        raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    edit.save(dest)
    return dest


def pp_export(raw: Path, out: Path, sidecar: Path | None = None, ca: str | None = None) -> float:
    if out.exists():
        out.unlink()
    exe = shutil.which("pixelpipe") or str(Path(sys.executable).with_name("pixelpipe"))
    cmd = [exe, "export", str(raw), str(out), "--workflow", WORKFLOW,
           "--order", ORDER, "--bpp", "16", "--no-server", "-q", "--no-progress"]
    if sidecar:
        cmd += ["--sidecar", str(sidecar)]
    elif ca:
        cmd += ["--chromatic-adaptation", ca]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"pixelpipe export failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    from pixelpipe.io.icc import colour_module

    colour = colour_module()
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(rgb.astype(np.float64), 0, 1)))


def measure(dt: np.ndarray, pp: np.ndarray) -> tuple[dict, np.ndarray]:
    from pixelpipe.io.icc import colour_module

    colour = colour_module()
    de = np.empty(dt.shape[:2], np.float32)
    lab_dt = np.empty(dt.shape, np.float32)
    lab_pp = np.empty(dt.shape, np.float32)
    for y0 in range(0, dt.shape[0], 256):
        a, b = srgb_to_lab(dt[y0:y0 + 256]), srgb_to_lab(pp[y0:y0 + 256])
        lab_dt[y0:y0 + 256], lab_pp[y0:y0 + 256] = a, b
        de[y0:y0 + 256] = colour.delta_E(b, a, method="CIE 2000")
    res = {"mean": float(de.mean()), "p95": float(np.percentile(de, 95)), "p99": float(np.percentile(de, 99)),
           "max": float(de.max()),
           "mean_dLab_pp_minus_dt": [round(float(v), 3) for v in (lab_pp - lab_dt).reshape(-1, 3).mean(0)]}
    # clipping in one and not the other
    hi_dt, hi_pp = dt.max(-1) >= 254.5 / 255, pp.max(-1) >= 254.5 / 255
    lo_dt, lo_pp = dt.max(-1) <= 0.5 / 255, pp.max(-1) <= 0.5 / 255
    res["clipped_top"] = {"darktable": float(hi_dt.mean()), "pixelpipe": float(hi_pp.mean()),
                          "darktable_only": float((hi_dt & (pp.max(-1) <= 240 / 255)).mean()),
                          "pixelpipe_only": float((hi_pp & (dt.max(-1) <= 240 / 255)).mean())}
    res["clipped_bottom"] = {"darktable": float(lo_dt.mean()), "pixelpipe": float(lo_pp.mean()),
                             "darktable_only": float((lo_dt & (pp.max(-1) > 8 / 255)).mean()),
                             "pixelpipe_only": float((lo_pp & (dt.max(-1) > 8 / 255)).mean())}
    # colour shift per block (difference of block means)
    hb, wb = dt.shape[0] // BLOCK, dt.shape[1] // BLOCK

    def blocks(lab):
        return lab[:hb * BLOCK, :wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK, 3).mean(axis=(1, 3))

    bde = colour.delta_E(blocks(lab_pp).astype(np.float64), blocks(lab_dt).astype(np.float64), method="CIE 2000")
    worst = np.unravel_index(int(np.argmax(bde)), bde.shape)
    res["blocks_shifted_over_5"] = float((bde > 5).mean())
    res["worst_block"] = {"dE00": float(bde[worst]), "y": int(worst[0] * BLOCK), "x": int(worst[1] * BLOCK),
                          "lab_darktable": [round(float(v), 1) for v in blocks(lab_dt)[worst]],
                          "lab_pixelpipe": [round(float(v), 1) for v in blocks(lab_pp)[worst]]}
    return res, de


def side_by_side(path: Path, dt: np.ndarray, pp: np.ndarray, de: np.ndarray) -> None:
    from PIL import Image

    step = max(1, dt.shape[1] // 900)
    heat = np.clip(de[::step, ::step] / 10.0, 0, 1)[..., None].repeat(3, -1)
    img = np.concatenate([dt[::step, ::step], pp[::step, ::step], heat], axis=1)
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def readable(raw: Path, work: Path) -> tuple[str | None, Path | None]:
    """(reason to skip or None, darktable's default export)."""
    try:
        from pixelpipe.io.decode import load

        image = load(raw)
    except Exception as e:  # noqa: BLE001 - any decoder failure means "LibRaw cannot read it"
        return f"LibRaw/pixelpipe cannot read it ({type(e).__name__}: {str(e)[:120]})", None
    if not image.is_raw:
        return "not a raw", None
    if image.wb_as_shot is None:
        return "no as-shot white balance", None
    out = work / f"{raw.stem}_dt.tif"
    try:
        cdm.dt_export(raw, out, work, icc="SRGB", bpp=16, width=0)
    except Exception as e:  # noqa: BLE001
        return f"darktable 4.2 cannot read it ({str(e).strip().splitlines()[-1][:160]})", None
    return None, out


def compare(raw: Path, work: Path, variants: list[str], png: Path | None, ca: str = "legacy") -> dict:
    res: dict = {"raw": raw.name}
    skip, dt_tif = readable(raw, work)
    if skip:
        res["skipped"] = skip
        print(f"{raw.name}: skipped: {skip}", flush=True)
        return res
    dt = cdm.read_tif(dt_tif)[..., :3]
    res["darktable_history"] = sorted(cdm.history_params(cdm.xmp_of(dt_tif)))
    for v in ["workflow"] + variants:
        out = work / f"{raw.stem}_pp_{v}.tif"
        side = (variant_sidecar(raw, v, work / f"{raw.stem}_{v}.pixelpipe.json", ca)
                if v not in ("workflow", "modern") else None)
        secs = pp_export(raw, out, side, "modern" if v == "modern" else ca)
        pp = cdm.read_tif(out)[..., :3]
        a, b, shift = align(dt, pp)
        m, de = measure(a, b)
        m.update(shift=list(shift), darktable_size=list(dt.shape[:2]), pixelpipe_size=list(pp.shape[:2]),
                 pixelpipe_seconds=round(secs, 1))
        res[v] = m
        print(f"{raw.name}: {v}: mean dE2000 {m['mean']:.2f}, p95 {m['p95']:.2f}, p99 {m['p99']:.2f}; "
              f"dLab {m['mean_dLab_pp_minus_dt']}; clipped top dt-only {m['clipped_top']['darktable_only']:.4f} "
              f"pp-only {m['clipped_top']['pixelpipe_only']:.4f}; blocks > 5: {m['blocks_shifted_over_5']:.4f} "
              f"(worst {m['worst_block']['dE00']:.1f})" + (f"; shift {shift}" if shift != (0, 0) else ""),
              flush=True)
        if png is not None:
            side_by_side(png / f"pipe_{raw.stem}_{v}.png", a, b, de)
        out.unlink()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raws", nargs="*")
    ap.add_argument("--chromatic-adaptation", default="legacy", choices=("legacy", "modern"),
                    help="pixelpipe's preference for the main row (darktable 4.2 ships legacy)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; '' for none")
    ap.add_argument("--work", help="keep the exports here (default: a temporary folder)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--png", help="write darktable | pixelpipe | difference images into this folder")
    a = ap.parse_args(argv)
    if not shutil.which("darktable-cli"):
        print("darktable-cli not found (Debian: apt-get install darktable)", file=sys.stderr)
        return 2
    from pixelpipe.testdata import raw_dir

    raws = ([Path(r) if Path(r).exists() else raw_dir() / r for r in a.raws]
            or sorted(p for p in raw_dir().iterdir() if p.is_file() and not p.name.startswith(".")
                      and not p.name.endswith((".xmp", ".json", ".md"))))
    ver = subprocess.run(["darktable-cli", "--version"], capture_output=True, text=True, timeout=60).stdout
    out = {"darktable": ver.split("\n")[0].strip(), "workflow": WORKFLOW, "order": ORDER,
           "chromatic_adaptation": a.chromatic_adaptation, "results": []}
    tmp = None
    work = Path(a.work) if a.work else Path(tmp := tempfile.mkdtemp(prefix="pp_dtpipe_"))
    work.mkdir(parents=True, exist_ok=True)
    png = Path(a.png) if a.png else None
    if png:
        png.mkdir(parents=True, exist_ok=True)
    variants = [v for v in a.variants.split(",") if v]
    os.environ.setdefault("PIXELPIPE_NO_SERVER", "1")
    try:
        for r in raws:
            out["results"].append(compare(r, work, variants, png, a.chromatic_adaptation))
            if a.json:
                Path(a.json).write_text(json.dumps(out, indent=2))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
