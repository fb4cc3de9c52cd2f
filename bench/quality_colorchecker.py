#!/usr/bin/env python3
"""Colour accuracy on a real ColorChecker: mean CIEDE2000 of the 24 patches per workflow,
beside darktable-cli's and rawtherapee-cli's exports of the same raw.

    . .venv/bin/activate
    python bench/quality_colorchecker.py [--workflows all|name,name] [--peers darktable,rawtherapee]
        [--raw PATH] [--json bench/out/colorchecker.json] [--keep DIR]

The raw is ``canon_550d_magiclantern_colorchart.dng`` (SOURCES.md: an X-Rite
ColorChecker Passport under mixed indoor light). Every export is a
full-resolution sRGB image (pixelpipe: ``Pipe(image, Edit.default_for(image,
workflow)).render()``; darktable-cli 4.2 and rawtherapee-cli 5.9 with their
defaults, 16-bit TIFF):

    darktable-cli IN OUT.tif --core --configdir DIR --library :memory:
                  --conf plugins/imageio/format/tiff/bpp=16
    rawtherapee-cli -q -d -Y -o OUT.tif -tz -b16 -c IN

Patches: the centres below were measured once on pixelpipe's export of the
file (1734x1156, orientation 1: the chart's bottom half holds the 6x4
ColorChecker, dark skin at the top left, white at the bottom left; patches
are ~90 px wide): columns x = 707, 819, 926, 1035, 1143, 1251 and rows
y = 624, 720, 822, 926; each patch is the mean of a 31x31 window at its
centre. Other tools' exports (different crops) are aligned to pixelpipe's
first by the integer shift (within +-16 px) that best correlates their log
luminance over the chart.

Neutralisation (white balance, exposure and tone): each export is decoded
to linear sRGB; per channel, the six grey patches (white 9.5 .. black 2)
define a piecewise-linear map in log-log space from the measured value to
the reference grey's value (linear extrapolation beyond the ends; a grey
whose channel is clipped, encoded >= 0.995, is left out). The same three
maps are applied to all 24 patches, which then go linear sRGB -> XYZ (D65)
-> Bradford to the chart's D50 -> CIE Lab, against colour-science's
"ColorChecker24 - After November 2014" reference (xyY, D50 -> Lab). Reported:
mean CIEDE2000 of the 24 patches, of the 18 coloured ones, and the maximum.
The greys are ~0 by construction; what remains measures the colour rendition
(matrix, chromatic adaptation, gamut and saturation handling of the tone
mapper) independently of the scene's white balance and of each tool's
exposure and tone curve.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

COLUMNS = (707, 819, 926, 1035, 1143, 1251)
ROWS = (624, 720, 822, 926)
HALF = 15
REFERENCE = "ColorChecker24 - After November 2014"


def colour_module():
    from pixelpipe.io.icc import colour_module as cm

    return cm()


def patch_centres():
    return [(x, y) for y in ROWS for x in COLUMNS]


# --------------------------------------------------------------------------- exports
def export_pixelpipe(raw: Path, workflow: str) -> tuple[np.ndarray, list[str]]:
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    img = load(raw)
    edit = Edit.default_for(img, workflow)
    pipe = Pipe(img, edit)
    out = pipe.render().transpose(1, 2, 0)
    return np.clip(out, 0, 1).astype(np.float64), list(edit.notices) + list(pipe.notices)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    a = tifffile.imread(str(path))
    return a.astype(np.float64) / (65535.0 if a.dtype == np.uint16 else 255.0)


def export_darktable(raw: Path, tmp: Path) -> np.ndarray:
    out = tmp / "darktable.tif"
    cfg = tmp / "dtconfig"
    cfg.mkdir()
    subprocess.run(["darktable-cli", str(raw), str(out), "--core", "--configdir", str(cfg), "--library", ":memory:",
                    "--conf", "plugins/imageio/format/tiff/bpp=16"], check=True, capture_output=True, timeout=600)
    return _read_tiff(out)


def export_rawtherapee(raw: Path, tmp: Path) -> np.ndarray:
    out = tmp / "rawtherapee.tif"
    subprocess.run(["rawtherapee-cli", "-q", "-d", "-Y", "-o", str(out), "-tz", "-b16", "-c", str(raw)],
                   check=True, capture_output=True, timeout=600)
    return _read_tiff(out)


# --------------------------------------------------------------------------- measurement
def _log_lum(rgb: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(rgb @ np.array([0.2126, 0.7152, 0.0722]), 1e-4))


def align(img: np.ndarray, ref: np.ndarray, search: int = 16) -> tuple[int, int]:
    """Integer (dx, dy) such that img[y + dy, x + dx] shows ref[y, x] over the chart."""
    x0, x1 = COLUMNS[0] - 60, COLUMNS[-1] + 60
    y0, y1 = ROWS[0] - 60, ROWS[-1] + 60
    r = _log_lum(ref[y0:y1, x0:x1])
    r = (r - r.mean()) / r.std()
    a = _log_lum(img)
    best, arg = -np.inf, (0, 0)
    for dy in range(-search, search + 1, 1):
        for dx in range(-search, search + 1, 1):
            if y0 + dy < 0 or x0 + dx < 0 or y1 + dy > a.shape[0] or x1 + dx > a.shape[1]:
                continue
            w = a[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            score = float(np.mean(r * (w - w.mean()) / (w.std() + 1e-9)))
            if score > best:
                best, arg = score, (dx, dy)
    return arg


def sample(img: np.ndarray, shift=(0, 0)) -> np.ndarray:
    """Mean encoded sRGB of the 24 patches, (24, 3)."""
    dx, dy = shift
    return np.array([img[y + dy - HALF:y + dy + HALF + 1, x + dx - HALF:x + dx + HALF + 1].reshape(-1, 3).mean(0)
                     for x, y in patch_centres()])


def reference_lab() -> tuple[np.ndarray, np.ndarray]:
    """(Lab D50 of the 24 reference patches, their linear sRGB (D65, Bradford))."""
    colour = colour_module()
    cc = colour.CCS_COLOURCHECKERS[REFERENCE]
    xyz_d50 = colour.xyY_to_XYZ(np.array(list(cc.data.values())))
    lab = colour.XYZ_to_Lab(xyz_d50, cc.illuminant)
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    xyz_d65 = colour.chromatic_adaptation(xyz_d50, colour.xy_to_XYZ(cc.illuminant), colour.xy_to_XYZ(d65),
                                          method="Von Kries", transform="Bradford")
    srgb = colour.RGB_COLOURSPACES["sRGB"]
    lin = xyz_d65 @ np.asarray(srgb.matrix_XYZ_to_RGB).T
    return lab, lin


def neutralise(encoded: np.ndarray, ref_lin: np.ndarray) -> np.ndarray:
    """Per-channel log-log piecewise-linear maps from the six measured greys to the reference greys."""
    colour = colour_module()
    lin = colour.cctf_decoding(np.clip(encoded, 0, 1), function="sRGB")
    out = np.empty_like(lin)
    greys = slice(18, 24)
    for ch in range(3):
        m = lin[greys, ch]
        t = ref_lin[greys, ch]
        keep = (encoded[greys, ch] < 0.995) & (m > 0)
        mx, tx = np.log(m[keep]), np.log(t[keep])
        order = np.argsort(mx)
        mx, tx = mx[order], tx[order]
        v = np.log(np.maximum(lin[:, ch], 1e-6))
        y = np.interp(v, mx, tx)
        lo_s = (tx[1] - tx[0]) / (mx[1] - mx[0])
        hi_s = (tx[-1] - tx[-2]) / (mx[-1] - mx[-2])
        y = np.where(v < mx[0], tx[0] + (v - mx[0]) * lo_s, y)
        y = np.where(v > mx[-1], tx[-1] + (v - mx[-1]) * hi_s, y)
        out[:, ch] = np.exp(y)
    return out


def delta_e(encoded: np.ndarray) -> dict:
    colour = colour_module()
    lab_ref, lin_ref = reference_lab()
    lin = neutralise(encoded, lin_ref)
    srgb = colour.RGB_COLOURSPACES["sRGB"]
    xyz_d65 = lin @ np.asarray(srgb.matrix_RGB_to_XYZ).T
    cc = colour.CCS_COLOURCHECKERS[REFERENCE]
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    xyz_d50 = colour.chromatic_adaptation(xyz_d65, colour.xy_to_XYZ(d65), colour.xy_to_XYZ(cc.illuminant),
                                          method="Von Kries", transform="Bradford")
    lab = colour.XYZ_to_Lab(xyz_d50, cc.illuminant)
    de = colour.delta_E(lab, lab_ref, method="CIE 2000")
    return {"mean24": float(de.mean()), "mean18": float(de[:18].mean()), "max": float(de.max()),
            "per_patch": [round(float(v), 2) for v in de]}


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", type=Path, default=None)
    ap.add_argument("--workflows", default="all")
    ap.add_argument("--peers", default="darktable,rawtherapee")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="save every export as PNG here")
    a = ap.parse_args(argv)

    from pixelpipe.pipe.history import workflows
    from pixelpipe.testdata import raw_dir

    raw = a.raw or raw_dir() / "canon_550d_magiclantern_colorchart.dng"
    names = list(workflows()["workflows"]) if a.workflows == "all" else a.workflows.split(",")
    peers = [p for p in a.peers.split(",") if p]
    rows = []
    ref_img = None
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for wf in names:
            t = time.perf_counter()
            img, notices = export_pixelpipe(raw, wf)
            if ref_img is None:
                ref_img = img
            res = delta_e(sample(img))
            res.update(tool=f"pixelpipe {wf}", seconds=round(time.perf_counter() - t, 2), notices=notices)
            rows.append(res)
            if a.keep:
                _save(a.keep / f"pixelpipe-{wf}.png", img)
        for peer in peers:
            if shutil.which(f"{peer}-cli") is None:
                rows.append({"tool": f"{peer}-cli", "error": "not installed"})
                continue
            t = time.perf_counter()
            try:
                img = export_darktable(raw, tmp) if peer == "darktable" else export_rawtherapee(raw, tmp)
            except (subprocess.SubprocessError, OSError) as e:
                rows.append({"tool": f"{peer}-cli", "error": str(e).splitlines()[0]})
                continue
            shift = align(img, ref_img)
            res = delta_e(sample(img, shift))
            res.update(tool=f"{peer}-cli", seconds=round(time.perf_counter() - t, 2), shift=list(shift))
            rows.append(res)
            if a.keep:
                _save(a.keep / f"{peer}.png", img)

    print(f"ColorChecker ({REFERENCE}), {raw.name}: CIEDE2000 after grey-patch neutralisation")
    print("| tool / workflow | mean ΔE00 (24) | mean ΔE00 (18 colours) | max ΔE00 |")
    print("|---|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['tool']} | {r['error']} | | |")
        else:
            print(f"| {r['tool']} | {r['mean24']:.2f} | {r['mean18']:.2f} | {r['max']:.2f} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"raw": str(raw), "reference": REFERENCE, "rows": rows}, indent=2))
    return 0


def _save(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


if __name__ == "__main__":
    sys.exit(main())
