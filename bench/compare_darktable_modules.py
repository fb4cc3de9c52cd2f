"""pixelpipe's tone mappers against darktable 4.2, one module at a time.

The edited-XMP method (darktable facts §5), so that only the module under test
differs between the two programs:

1. ``darktable-cli RAW base.tif``: darktable's default history; its XMP is taken
   from the TIFF (the XMP packet darktable embeds; no exiftool needed).
2. For module M, two more darktable runs with edited copies of that XMP
   (``darktable:enabled`` switched, a sigmoid entry added where needed):
   * the **input** of M: M (and every tone mapper) off, exported as 32-bit
     float linear Rec.2020 (``--icc-type LIN_REC2020``: darktable's working
     space, so colorout is an identity) -- the shared baseline;
   * the **reference**: M on, exported as 16-bit sRGB (for exposure, whose
     output is scene-referred, linear Rec.2020 float as well).
3. pixelpipe runs only M on the baseline, with M's parameters decoded from
   darktable's own history entry (filmicrgb, exposure) or darktable 4.2's
   defaults (sigmoid, added by this script), then its colorout to sRGB; the
   result is compared with the reference: CIEDE2000 per pixel (mean, 99th
   percentile), colour-science's sRGB -> Lab (D65).
4. For information, the whole default pipe (pixelpipe's own raw stages,
   filmic workflow) against darktable's default export.

Usage::

    python bench/compare_darktable_modules.py [RAW ...] [--width 1600] [--modules filmicrgb,sigmoid,exposure]
        [--work DIR] [--json OUT.json]

``--modules`` also knows ``sigmoid_rgb_ratio`` (sigmoid's "rgb ratio" colour processing) and the
filmic rgb variants of ``FILMIC_VARIANTS`` (other norms, curve types, latitude, contrast, balance,
saturation), whose parameter blobs are written into the XMP for darktable.

Default raws: the GoPro DNG and the ColorChecker DNG of the shared test data.
Needs darktable-cli (Debian 12: darktable 4.2.1). Each darktable call takes
about 3-8 s on 2 cores; the whole run about 2 minutes.
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np

NS = {"x": "adobe:ns:meta/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
      "darktable": "http://darktable.sf.net/"}
DT = "{http://darktable.sf.net/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DEFAULT_RAWS = ["gopro_hero6_black_gpr2dng.dng", "canon_550d_magiclantern_colorchart.dng"]
TONE_MAPPERS = ("filmicrgb", "sigmoid", "filmic", "basecurve", "agx")


# --------------------------------------------------------------------------- darktable
def dt_export(raw: Path, out: Path, work: Path, xmp: Path | None = None, *, icc: str = "SRGB", bpp: int = 16,
              width: int = 0) -> float:
    if out.exists():
        out.unlink()
    cfg = work / "dtconf"
    cfg.mkdir(exist_ok=True)
    cmd = ["darktable-cli", str(raw)] + ([str(xmp)] if xmp else []) + [
        str(out), "--hq", "false", "--icc-type", icc]
    if width:
        cmd += ["--width", str(width), "--height", str(width)]
    cmd += ["--core", "--configdir", str(cfg), "--library", ":memory:",
            "--conf", f"plugins/imageio/format/tiff/bpp={bpp}"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"darktable-cli failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def xmp_of(tif: Path) -> str:
    b = tif.read_bytes()
    i, j = b.find(b"<x:xmpmeta"), b.find(b"</x:xmpmeta>")
    if i < 0 or j < 0:
        raise RuntimeError(f"{tif}: no XMP packet")
    return b[i:j + len(b"</x:xmpmeta>")].decode("utf-8")


def _history(root):
    desc = root.find(".//rdf:Description", NS)
    seq = desc.find("darktable:history/rdf:Seq", NS)
    return desc, seq


def decode_params(s: str) -> bytes:
    if s.startswith("gz"):
        return zlib.decompress(base64.b64decode(s[4:]))
    return bytes.fromhex(s)


def history_params(xmp_text: str) -> dict:
    root = ET.fromstring(xmp_text)
    _, seq = _history(root)
    return {li.get(DT + "operation"): (int(li.get(DT + "modversion")), decode_params(li.get(DT + "params")))
            for li in seq.findall("rdf:li", NS)}


def edit_xmp(xmp_text: str, enable: dict[str, bool], add_sigmoid: bool = False, sigmoid_method: int = 0,
             params: dict[str, bytes] | None = None) -> str:
    for k, v in NS.items():
        ET.register_namespace(k, v)
    root = ET.fromstring(xmp_text)
    desc, seq = _history(root)
    items = seq.findall("rdf:li", NS)
    for li in items:
        op = li.get(DT + "operation")
        if op in enable:
            li.set(DT + "enabled", "1" if enable[op] else "0")
        if params and op in params:
            li.set(DT + "params", params[op].hex())
    if add_sigmoid:
        # darktable 4.2 sigmoid params v1: contrast, skew, white %, black %, colour processing, hue preservation
        blob = struct.pack("<4fif", 1.5, 0.0, 100.0, 0.0152, sigmoid_method, 100.0).hex()
        template = next(li for li in items if li.get(DT + "operation") == "filmicrgb")
        li = ET.SubElement(seq, RDF + "li")
        for k, v in template.attrib.items():
            li.set(k, v)
        li.set(DT + "num", str(len(items)))
        li.set(DT + "operation", "sigmoid")
        li.set(DT + "enabled", "1")
        li.set(DT + "modversion", "1")
        li.set(DT + "params", blob)
        desc.set(DT + "history_end", str(len(items) + 1))
    return ET.tostring(root, encoding="unicode")


def read_tif(path: Path) -> np.ndarray:
    import tifffile

    a = tifffile.imread(str(path))
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return a.astype(np.float32)


#: filmic rgb settings other than darktable's defaults (floats by field index, ints by index after them)
FILMIC_VARIANTS = {
    "filmicrgb_nonorm_safe": {"floats": {13: 20.0, 14: 1.3, 15: 25.0, 16: 10.0}, "ints": {0: 0, 6: 2, 7: 1}},
    "filmicrgb_maxrgb_soft_safe": {"floats": {13: 5.0, 15: -30.0, 16: -15.0}, "ints": {0: 1, 6: 1, 7: 2}},
    "filmicrgb_luminance": {"floats": {14: 0.8}, "ints": {0: 2}},
}


def filmic_variant(blob: bytes, floats: dict, ints: dict) -> bytes:
    f = list(struct.unpack("<18f", blob[:72]))
    i = list(struct.unpack("<11i", blob[72:116]))
    for k, v in floats.items():
        f[k] = v
    for k, v in ints.items():
        i[k] = v
    return struct.pack("<18f", *f) + struct.pack("<11i", *i) + blob[116:]


# --------------------------------------------------------------------------- pixelpipe
def pp_params(op: str, blobs: dict, image):
    """pixelpipe parameters for ``op`` from darktable's history entry (or dt 4.2's defaults)."""
    from pixelpipe.modules import registry

    if op == "filmicrgb":
        from pixelpipe.modules.filmicrgb import FilmicrgbParams

        ver, b = blobs["filmicrgb"]
        assert ver == 6, f"filmicrgb params v{ver} (expected 6, darktable 4.2)"
        f = struct.unpack("<18f", b[:72])
        i = struct.unpack("<11i", b[72:116])
        norms = {0: "none", 1: "max_rgb", 2: "luminance", 3: "power_norm", 5: "euclidean_norm"}
        versions = {3: "v6", 4: "v7"}
        curves = {0: "hard", 1: "soft", 2: "safe"}
        return FilmicrgbParams(grey_point_source=f[0], black_point_source=f[1], white_point_source=f[2],
                               grey_point_target=f[9], black_point_target=f[10], white_point_target=f[11],
                               output_power=f[12], latitude=f[13], contrast=f[14], saturation=f[15],
                               balance=f[16], preserve_color=norms[i[0]], version=versions[i[1]],
                               auto_hardness=False, custom_grey=bool(i[3]), shadows=curves[i[6]],
                               highlights=curves[i[7]],
                               enable_highlight_reconstruction=bool(i[10])).validate("filmicrgb")
    if op == "exposure":
        from pixelpipe.modules.exposure import ExposureParams

        _, b = blobs["exposure"]
        mode, black, ev, _, _, comp = struct.unpack("<ifffii", b[:24])
        return ExposureParams(exposure=ev, black=black, compensate_exposure_bias=bool(comp))
    return registry()[op]().default_params(image)


def pp_run(op: str, params, image, rgb_hw3: np.ndarray) -> np.ndarray:
    from pixelpipe.modules import registry
    from pixelpipe.modules.base import BufferDesc, Piece, ROI

    inp = np.ascontiguousarray(rgb_hw3.transpose(2, 0, 1), dtype=np.float32)
    mod = registry()[op]()
    piece = Piece(op, 0, params, image)
    h, w = inp.shape[1:]
    piece.buf_in = piece.buf_out = (w, h)
    piece.dsc_in = BufferDesc(3, None, "rec2020")
    mod.commit(piece)
    piece.dsc_out = mod.output_desc(piece, piece.dsc_in)
    roi = ROI(0, 0, w, h, 1.0)
    return mod.process(piece, inp, roi, roi).transpose(1, 2, 0)


def to_srgb(lin_rec2020_hw3: np.ndarray, image) -> np.ndarray:
    from pixelpipe.modules.colorout import ColoroutParams

    return pp_run("colorout", ColoroutParams("srgb"), image, lin_rec2020_hw3)


def delta_e(a_srgb: np.ndarray, b_srgb: np.ndarray) -> dict:
    from pixelpipe.io.icc import colour_module

    colour = colour_module()
    la = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(a_srgb, 0, 1)))
    lb = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(b_srgb, 0, 1)))
    de = colour.delta_E(la, lb, method="CIE 2000")
    return {"mean": float(de.mean()), "p99": float(np.percentile(de, 99)), "max": float(de.max())}


# --------------------------------------------------------------------------- main
def compare(raw: Path, modules: list[str], work: Path, width: int) -> dict:
    from pixelpipe.io.decode import load

    image = load(raw)
    stem = raw.stem
    res: dict = {"raw": raw.name, "width": width, "modules": {}}
    base = work / f"{stem}_base.tif"
    res["dt_seconds_default"] = round(dt_export(raw, base, work, width=width), 2)
    xmp = xmp_of(base)
    (work / f"{stem}_base.xmp").write_text(xmp)
    blobs = history_params(xmp)
    res["darktable_history"] = sorted(blobs)
    off = {t: False for t in TONE_MAPPERS}

    def run_dt(name, enable, icc, bpp, add_sigmoid=False, method=0, params=None):
        x = work / f"{stem}_{name}.xmp"
        x.write_text(edit_xmp(xmp, enable, add_sigmoid, method, params))
        out = work / f"{stem}_{name}.tif"
        dt_export(raw, out, work, x, icc=icc, bpp=bpp, width=width)
        return read_tif(out)

    need_base = any(m in ("filmicrgb", "sigmoid", "sigmoid_rgb_ratio") or m in FILMIC_VARIANTS for m in modules)
    if need_base:
        shared = run_dt("no_tonemap_lin", off, "LIN_REC2020", 32)
    for m in modules:
        t0 = time.perf_counter()
        if m == "filmicrgb":
            ref = run_dt("filmic_srgb", {**off, "filmicrgb": True}, "SRGB", 16)
            inp = shared
        elif m == "sigmoid":
            ref = run_dt("sigmoid_srgb", off, "SRGB", 16, add_sigmoid=True)
            inp = shared
        elif m in FILMIC_VARIANTS:
            blobs[m] = (6, filmic_variant(blobs["filmicrgb"][1], **FILMIC_VARIANTS[m]))
            ref = run_dt(m, {**off, "filmicrgb": True}, "SRGB", 16, params={"filmicrgb": blobs[m][1]})
            inp = shared
        elif m == "sigmoid_rgb_ratio":
            ref = run_dt("sigmoid_ratio_srgb", off, "SRGB", 16, add_sigmoid=True, method=1)
            inp = shared
        elif m == "exposure":
            inp = run_dt("noexp_lin", {**off, "exposure": False}, "LIN_REC2020", 32)
            ref_lin = run_dt("exp_lin", {**off, "exposure": True}, "LIN_REC2020", 32)
            ref = to_srgb(ref_lin, image)
        else:
            raise SystemExit(f"no comparison for module {m}")
        op = "sigmoid" if m == "sigmoid_rgb_ratio" else "filmicrgb" if m in FILMIC_VARIANTS else m
        params = pp_params(op, {**blobs, "filmicrgb": blobs[m]} if m in FILMIC_VARIANTS else blobs, image)
        if m == "sigmoid_rgb_ratio":
            params.color_processing = "rgb_ratio"
        ours = to_srgb(pp_run(op, params, image, inp), image)
        if ref.shape != ours.shape:
            raise RuntimeError(f"{m}: darktable {ref.shape} vs pixelpipe {ours.shape}")
        de = delta_e(ours, ref)
        res["modules"][m] = {**{k: round(v, 3) for k, v in de.items()},
                             "params": {k: (round(v, 5) if isinstance(v, float) else v)
                                        for k, v in params.to_dict().items()},
                             "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{raw.name}: {m}: mean dE2000 {de['mean']:.3f}, p99 {de['p99']:.2f}, max {de['max']:.2f}",
              flush=True)
    # informative: the whole default pipe (different raw stages) against darktable's default export
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    dt_full = read_tif(base)
    pipe = Pipe(image, Edit.default_for(image, "scene-referred-filmic"))
    ours = pipe.render(width=dt_full.shape[1], height=dt_full.shape[0]).transpose(1, 2, 0)
    if ours.shape == dt_full.shape:
        de = delta_e(ours, dt_full)
        res["whole_pipe_filmic_workflow"] = {k: round(v, 3) for k, v in de.items()}
        print(f"{raw.name}: whole pipe (filmic workflow): mean dE2000 {de['mean']:.3f}, p99 {de['p99']:.2f}")
    else:
        res["whole_pipe_filmic_workflow"] = f"sizes differ: {ours.shape} vs {dt_full.shape}"
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raws", nargs="*")
    ap.add_argument("--width", type=int, default=1600, help="export size (0 = full); same for both programs")
    ap.add_argument("--modules", default="filmicrgb,sigmoid,exposure")
    ap.add_argument("--work", help="keep darktable's files here (default: a temporary folder)")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    if not shutil.which("darktable-cli"):
        print("darktable-cli not found (Debian: apt-get install darktable)", file=sys.stderr)
        return 2
    from pixelpipe.testdata import raw_dir

    raws = [Path(r) if Path(r).exists() else raw_dir() / r for r in a.raws] or [raw_dir() / n for n in DEFAULT_RAWS]
    ver = subprocess.run(["darktable-cli", "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"darktable-cli (\S+)", ver)
    out = {"darktable": m.group(1) if m else ver.strip(), "results": []}
    tmp = None
    work = Path(a.work) if a.work else Path(tmp := tempfile.mkdtemp(prefix="pp_dtcmp_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for r in raws:
            out["results"].append(compare(r, a.modules.split(","), work, a.width))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
