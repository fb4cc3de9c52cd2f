"""pixelpipe's raw-stage modules against darktable 4.2, one module at a time.

The raw-stage modules (rawprepare, temperature, highlights, demosaic, colorin)
work on the mosaic, before darktable's first point where an image can be
exported, so the tone mappers' method (export darktable's input of the module,
run pixelpipe's module on it) works only for colorin. The method here:

* **Raw-stage history.** darktable-cli exports the raw once with its defaults;
  the XMP it embeds is edited (facts §5) so that everything after colorin is
  off (exposure, filmicrgb): the history is then rawprepare, temperature,
  highlights, demosaic, flip, colorin, colorout, gamma, exported as 32-bit
  float linear Rec.2020 (darktable's working space, so colorout is an
  identity), full size (no resampling). pixelpipe renders the same file with
  exactly these modules (``--workflow none``, order v3.0) and parameters
  decoded from darktable's history entries, to linear Rec.2020 float.
* **A ladder**, one module added per step, so that at each step only that
  module's implementation differs from a step already measured:

  1. ``demosaic``: temperature with darktable's *own* coefficients (decoded
     from its history), highlights off, colorin set to "linear Rec.2020" in
     both programs (an identity: the output is white-balanced camera RGB).
     rawprepare and the multiplication by four coefficients are exact
     arithmetic, so what differs is RCD (and rawprepare's crop/levels).
  2. ``temperature``: as 1, but pixelpipe finds the as-shot coefficients
     itself (its "as-shot" preset); the coefficients are printed side by side.
  3. ``highlights``: as 2, with highlight reconstruction on in both
     (darktable 4.2's default "inpaint opposed", clip threshold from its
     history); pixelpipe's opposed method with its saturation detection on
     (its default) and off (darktable's rule). Also "clip" in both. Figures
     for the whole frame and for the pixels that the module changed (where
     darktable's step-3 output differs from its step-2 output).
  4. ``colorin``: the shared-baseline method of the tone mappers: darktable's
     step-3 export (camera RGB) is the input, pixelpipe's colorin (camera
     matrix) runs on it alone; the reference is darktable's export with its
     default colorin (the DNG's embedded matrix).
  5. ``raw stages``: pixelpipe's own defaults for all of them (as-shot,
     opposed, RCD, camera matrix) against darktable's raw-stage history:
     the raw-stage part of the whole-pipe difference.

  For information also RCD against darktable's PPG (to scale the demosaic
  figure: what changing the method alone does).

* **Measure.** Both images are linear Rec.2020 (white-balanced white =
  1, 1, 1); negatives are clipped to 0 in both, then XYZ (D65) and CIELAB
  with Y = 1 as white (no tone curve, so highlights above 1 keep their
  differences), CIEDE2000 per pixel: mean, 99th percentile, max. A 16-pixel
  border is left out (the demosaic borders differ by design in every program
  and are not what the module is about). If darktable's frame differs from
  pixelpipe's (raw crop), the overlap is found by matching the luminance of
  the two images over small integer shifts before measuring.

Usage::

    python bench/compare_darktable_rawstage.py [RAW ...] [--work DIR] [--json OUT.json] [--png DIR]

Default raws: the GoPro DNG and the ColorChecker DNG. Needs darktable-cli 4.2
(Debian 12 package ``darktable``). About 10 darktable exports per raw, 5-15 s
each on 2 cores, plus pixelpipe's full-size renders: 5-10 minutes in all.
"""
from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_darktable_modules as cdm  # noqa: E402

DEFAULT_RAWS = cdm.DEFAULT_RAWS
BORDER = 16
HEADROOM = 4  # EV, see pp_render
#: darktable's dt_colorspaces_color_profile_type_t
DT_LIN_REC2020 = 4
#: darktable's highlights modes (dt_iop_highlights_mode_t) and demosaic methods
DT_HL_CLIP, DT_HL_OPPOSED = 0, 5
DT_DEMOSAIC = {0: "ppg", 1: "amaze", 2: "vng4", 5: "rcd", 6: "lmmse"}


# --------------------------------------------------------------------------- darktable's blobs
def colorin_blob(blob: bytes, profile_type: int) -> bytes:
    return struct.pack("<i", profile_type) + blob[4:]


def highlights_mode_blob(blob: bytes, mode: int) -> bytes:
    return struct.pack("<i", mode) + blob[4:]


def highlights_clip(blob: bytes) -> float:
    # v4: mode, blendL, blendC, strength, clip, ...
    return struct.unpack("<i4f", blob[:20])[4]


def demosaic_blob(blob: bytes, method: int) -> bytes:
    f = list(struct.unpack("<iiiiif", blob[:24]))
    f[3] = method
    return struct.pack("<iiiiif", *f) + blob[24:]


def temperature_coeffs(blob: bytes) -> tuple[float, float, float, float]:
    r, g, b, g2 = struct.unpack("<4f", blob[:16])
    return r, g, b, (g if not np.isfinite(g2) else g2)


# --------------------------------------------------------------------------- pixelpipe
def pp_render(image, setup: dict) -> np.ndarray:
    """Full-size linear Rec.2020 render (H, W, 3) with ``setup``: op -> params dict, or False (off)."""
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    edit = Edit.default_for(image, "none", order="v30")
    # pixelpipe's last module (gamma) clamps to [0, 1], darktable's float export does not: an
    # exposure of -HEADROOM EV (exact scaling, linear, so it commutes with colorin) keeps the
    # highlights below 1 and the result is scaled back
    setup = {"colorout": {"profile": "linear_rec2020"},
             "exposure": {"exposure": -HEADROOM, "black": 0.0, "compensate_exposure_bias": False}, **setup}
    for op, values in setup.items():
        if values is False:
            inst = edit.find(op)
            if inst is not None:
                inst.enabled = False
        else:
            edit.set_params(op, image, **values)
    out = Pipe(image, edit).render()
    return np.ascontiguousarray(out.transpose(1, 2, 0)) * np.float32(2.0 ** HEADROOM)


# --------------------------------------------------------------------------- measure
def align(a: np.ndarray, b: np.ndarray, search: int = 12, *, shift: tuple[int, int] | None = None,
          other: np.ndarray | None = None):
    """Crop ``a`` and ``b`` to their common frame: (a', b', (dy, dx)) with b[y, x] ~ a[y + dy, x + dx].

    With ``shift`` given (a previous result) and ``other`` (an array in ``a``'s frame, e.g. a
    mask), only ``other`` cropped like ``a`` is returned.
    """
    if shift is not None:
        dy, dx = shift
        y0b, x0b = max(0, -dy), max(0, -dx)
        y0a, x0a = y0b + dy, x0b + dx
        hh = min(a.shape[0] - y0a, b.shape[0] - y0b)
        ww = min(a.shape[1] - x0a, b.shape[1] - x0b)
        return other[y0a:y0a + hh, x0a:x0a + ww]
    if a.shape == b.shape:
        return a, b, (0, 0)

    def lum(im):
        y = np.log2(np.clip(im @ np.array([0.2627, 0.678, 0.0593], np.float32), 1e-4, None))
        return y

    la, lb = lum(a), lum(b)
    h, w = min(la.shape[0], lb.shape[0]) - 2 * search, min(la.shape[1], lb.shape[1]) - 2 * search
    cy, cx = slice(search, search + h, 4), slice(search, search + w, 4)
    best = None
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            ya, xa = search + dy, search + dx
            if ya < 0 or xa < 0 or ya + h > la.shape[0] or xa + w > la.shape[1]:
                continue
            d = np.abs(la[ya:ya + h:4, xa:xa + w:4] - lb[cy, cx]).mean()
            if best is None or d < best[0]:
                best = (d, dy, dx)
    _, dy, dx = best
    y0b, x0b = max(0, -dy), max(0, -dx)
    y0a, x0a = y0b + dy, x0b + dx
    hh = min(a.shape[0] - y0a, b.shape[0] - y0b)
    ww = min(a.shape[1] - x0a, b.shape[1] - x0b)
    return a[y0a:y0a + hh, x0a:x0a + ww], b[y0b:y0b + hh, x0b:x0b + ww], (dy, dx)


def lab_linear_rec2020(rgb: np.ndarray) -> np.ndarray:
    from pixelpipe.io.icc import colour_module

    colour = colour_module()
    cs = colour.RGB_COLOURSPACES["ITU-R BT.2020"]
    xyz = np.clip(rgb.astype(np.float64), 0, None) @ cs.matrix_RGB_to_XYZ.T
    return colour.XYZ_to_Lab(xyz, cs.whitepoint)


def delta_e_linear(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """CIEDE2000 between two linear Rec.2020 images (H, W, 3), border left out, in row chunks."""
    from pixelpipe.io.icc import colour_module

    colour = colour_module()
    a = a[BORDER:-BORDER, BORDER:-BORDER]
    b = b[BORDER:-BORDER, BORDER:-BORDER]
    if mask is not None:
        mask = mask[BORDER:-BORDER, BORDER:-BORDER]
    parts = []
    for y0 in range(0, a.shape[0], 256):
        de = colour.delta_E(lab_linear_rec2020(a[y0:y0 + 256]), lab_linear_rec2020(b[y0:y0 + 256]),
                            method="CIE 2000")
        parts.append(de if mask is None else de[mask[y0:y0 + 256]])
    de = np.concatenate([p.ravel() for p in parts])
    if de.size == 0:
        return {"mean": 0.0, "p99": 0.0, "max": 0.0, "pixels": 0}
    return {"mean": float(de.mean()), "p99": float(np.percentile(de, 99)), "max": float(de.max()),
            "pixels": int(de.size)}


def preview_png(path: Path, a: np.ndarray, b: np.ndarray, ev: float = 0.0) -> None:
    """darktable | pixelpipe | 4x difference, sRGB-encoded, 1200 px wide each."""
    from PIL import Image

    step = max(1, a.shape[1] // 1200)

    def enc(im):
        im = np.clip(im[::step, ::step] * 2.0 ** ev, 0, 1)
        return np.where(im <= 0.0031308, 12.92 * im, 1.055 * im ** (1 / 2.4) - 0.055)

    diff = np.clip(np.abs(a[::step, ::step] - b[::step, ::step]) * 4 * 2.0 ** ev, 0, 1)
    img = np.concatenate([enc(a), enc(b), diff ** (1 / 2.2)], axis=1)
    Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(path)


# --------------------------------------------------------------------------- main
def compare(raw: Path, work: Path, png: Path | None) -> dict:
    from pixelpipe.io.decode import load
    from pixelpipe.modules.colorin import ColorinParams

    image = load(raw)
    stem = raw.stem
    res: dict = {"raw": raw.name, "steps": {}}
    base = work / f"{stem}_base.tif"
    cdm.dt_export(raw, base, work, width=0)
    xmp = cdm.xmp_of(base)
    blobs = cdm.history_params(xmp)
    dt_coeffs = temperature_coeffs(blobs["temperature"][1])
    hl_clip = highlights_clip(blobs["highlights"][1])
    dt_method = struct.unpack("<iiiiif", blobs["demosaic"][1][:24])[3]
    res["darktable"] = {"temperature": [round(v, 5) for v in dt_coeffs], "highlights_clip": hl_clip,
                        "highlights_mode": struct.unpack("<i", blobs["highlights"][1][:4])[0],
                        "demosaic": DT_DEMOSAIC.get(dt_method, dt_method),
                        "colorin_type": struct.unpack("<i", blobs["colorin"][1][:4])[0]}
    from pixelpipe.modules.temperature import TemperatureParams, coefficients

    pp_coeffs, _ = coefficients(image, TemperatureParams("as-shot"))
    res["pixelpipe_as_shot"] = [round(float(v), 5) for v in pp_coeffs]
    print(f"{raw.name}: white balance darktable {res['darktable']['temperature']} "
          f"pixelpipe {res['pixelpipe_as_shot']}", flush=True)
    cam_rgb = colorin_blob(blobs["colorin"][1], DT_LIN_REC2020)
    tail_off = {"exposure": False, "filmicrgb": False}

    cache: dict[str, np.ndarray] = {}

    def dt(name, enable, params=None):
        if name not in cache:
            x = work / f"{stem}_{name}.xmp"
            x.write_text(cdm.edit_xmp(xmp, {**tail_off, **enable}, params=params))
            out = work / f"{stem}_{name}.tif"
            cdm.dt_export(raw, out, work, x, icc="LIN_REC2020", bpp=32, width=0)
            cache[name] = cdm.read_tif(out)[..., :3]
            out.unlink()
        return cache[name]

    user_wb = {"preset": "user", "red": dt_coeffs[0], "green": dt_coeffs[1], "blue": dt_coeffs[2],
               "g2": dt_coeffs[3]}
    cam = {"colorin": {"profile": "linear_rec2020"}}
    opposed = {"mode": "opposed", "clip": hl_clip}

    def record(step, ref, ours, t0, mask=None, **extra):
        ref_a, ours_a, shift = align(ref, ours)
        de = cdm_round(delta_e_linear(ours_a, ref_a))
        entry = {**de, "shift": list(shift), **extra}
        if mask is not None:
            mask_a = align(ref, ours, shift=shift, other=mask)
            entry["changed_pixels"] = cdm_round(delta_e_linear(ours_a, ref_a, mask_a))
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        res["steps"][step] = entry
        msg = f"{raw.name}: {step}: mean dE2000 {de['mean']:.3f}, p99 {de['p99']:.2f}, max {de['max']:.2f}"
        if "changed_pixels" in entry:
            c = entry["changed_pixels"]
            msg += f"; changed pixels ({c['pixels']}): mean {c['mean']:.3f}, p99 {c['p99']:.2f}"
        print(msg + (f" (shift {shift})" if shift != (0, 0) else ""), flush=True)
        if png is not None:
            preview_png(png / f"rawstage_{stem}_{step}.png", ref_a, ours_a, ev=1.0)

    # 1. demosaic (RCD): darktable's coefficients, highlights off, camera RGB out
    t0 = time.perf_counter()
    ref1 = dt("demosaic", {"highlights": False}, {"colorin": cam_rgb})
    ours = pp_render(image, {"temperature": user_wb, "highlights": False, **cam, "demosaic": {"method": "rcd"}})
    record("demosaic_rcd", ref1, ours, t0)
    # for scale: darktable's PPG against its own RCD, and pixelpipe's PPG against darktable's PPG
    t0 = time.perf_counter()
    ref_ppg = dt("demosaic_ppg", {"highlights": False},
                 {"colorin": cam_rgb, "demosaic": demosaic_blob(blobs["demosaic"][1], 0)})
    record("darktable_ppg_vs_rcd", ref1, ref_ppg, t0)
    ours_ppg = pp_render(image, {"temperature": user_wb, "highlights": False, **cam, "demosaic": {"method": "ppg"}})
    record("demosaic_ppg", ref_ppg, ours_ppg, t0)
    del ref_ppg, ours_ppg
    cache.pop("demosaic_ppg", None)
    # 2. temperature: pixelpipe's own as-shot coefficients
    t0 = time.perf_counter()
    ours = pp_render(image, {"temperature": {"preset": "as-shot"}, "highlights": False, **cam})
    record("temperature", ref1, ours, t0)
    # 3. highlights
    t0 = time.perf_counter()
    ref3 = dt("highlights", {"highlights": True}, {"colorin": cam_rgb})
    changed = np.abs(ref3 - ref1).max(axis=-1) > 1e-6
    res["highlights_changed_fraction"] = float(changed.mean())
    ours = pp_render(image, {"temperature": {"preset": "as-shot"}, **cam,
                             "highlights": {**opposed, "detect_saturation": False}})
    record("highlights_opposed", ref3, ours, t0, mask=changed)
    t0 = time.perf_counter()
    ours = pp_render(image, {"temperature": {"preset": "as-shot"}, **cam,
                             "highlights": {**opposed, "detect_saturation": True}})
    record("highlights_opposed_detect_saturation", ref3, ours, t0, mask=changed)
    t0 = time.perf_counter()
    ref_clip = dt("highlights_clip", {"highlights": True},
                  {"colorin": cam_rgb, "highlights": highlights_mode_blob(blobs["highlights"][1], DT_HL_CLIP)})
    changed_clip = np.abs(ref_clip - ref1).max(axis=-1) > 1e-6
    ours = pp_render(image, {"temperature": {"preset": "as-shot"}, **cam,
                             "highlights": {"mode": "clip", "clip": hl_clip}})
    record("highlights_clip", ref_clip, ours, t0, mask=changed_clip)
    del ref_clip, changed_clip, ref1
    cache.pop("highlights_clip", None)
    cache.pop("demosaic", None)
    # 4. colorin on darktable's own camera RGB (shared baseline)
    t0 = time.perf_counter()
    ref5 = dt("rawstages", {})
    ours = cdm.pp_run("colorin", ColorinParams("camera"), image, ref3)
    record("colorin", ref5, ours, t0)
    # 5. pixelpipe's own raw stages (defaults) against darktable's
    t0 = time.perf_counter()
    ours = pp_render(image, {})
    record("raw_stages_defaults", ref5, ours, t0)
    t0 = time.perf_counter()
    ours = pp_render(image, {"highlights": {"mode": "opposed", "detect_saturation": False}})
    record("raw_stages_no_saturation_detection", ref5, ours, t0)
    return res


def cdm_round(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raws", nargs="*")
    ap.add_argument("--work", help="keep darktable's files here (default: a temporary folder)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--png", help="write darktable | pixelpipe | difference previews into this folder")
    a = ap.parse_args(argv)
    if not shutil.which("darktable-cli"):
        print("darktable-cli not found (Debian: apt-get install darktable)", file=sys.stderr)
        return 2
    from pixelpipe.testdata import raw_dir

    raws = [Path(r) if Path(r).exists() else raw_dir() / r for r in a.raws] or [raw_dir() / n for n in DEFAULT_RAWS]
    ver = subprocess.run(["darktable-cli", "--version"], capture_output=True, text=True, timeout=60).stdout
    out = {"darktable": ver.split("\n")[0].strip(), "results": []}
    tmp = None
    work = Path(a.work) if a.work else Path(tmp := tempfile.mkdtemp(prefix="pp_dtraw_"))
    work.mkdir(parents=True, exist_ok=True)
    png = Path(a.png) if a.png else None
    if png:
        png.mkdir(parents=True, exist_ok=True)
    try:
        for r in raws:
            out["results"].append(compare(r, work, png))
            if a.json:
                Path(a.json).write_text(json.dumps(out, indent=2))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
