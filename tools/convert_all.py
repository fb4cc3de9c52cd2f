"""Convert every model (or one) into ``.dtmodel`` packages plus a catalogue.

    python tools/convert_all.py --out build/models [--only ID] [--smoke]

For each model: rebuild the architecture in PyTorch, load the shared weights
(``--models``, default ``pixelpipe.testdata.models_dir()``, i.e.
$PIXELPIPE_MODELS or ../shared/models), export ONNX (opset 17), compare ONNX
Runtime with PyTorch on random inputs of two sizes (the max abs difference is
printed and recorded in ``<id>.report.json``), write ``<id>/config.json`` and
``<id>.dtmodel`` and the catalogue entry ``<id>.json``, then re-open the
package and check its layout and checksum.  ``catalogue.json`` gathers the
entries found in the output folder whose task is one of darktable's, in
darktable's ai_models.json shape (``{"version": 1, "models": [...]}``).  ``--smoke`` also runs the quality
checks of ``tools.smoke`` on Kodak24 (``--eval``, default
``pixelpipe.testdata.eval_dir()``) and records them in the report.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import dtmodel  # noqa: E402

# id -> (module, function)
CONVERTERS = {
    "denoise-ffdnet": ("tools.convert_ffdnet", "convert"),
    "upscale-rlfn": ("tools.convert_rlfn", "convert"),
    "demosaic-demosaicnet": ("tools.convert_demosaicnet", "convert_demosaic"),
    "rawdenoise-demosaicnet": ("tools.convert_demosaicnet", "convert_rawdenoise"),
    "rawdenoise-pmrid-demosaicnet": ("tools.convert_pmrid", "convert"),
}
MODEL_IDS = tuple(CONVERTERS)
# catalogue.json holds darktable's tasks only (demosaic-demosaicnet, task "demosaic", is a
# building block for PMRID and pixelpipe's own use; its entry stays in its <id>.json)
DARKTABLE_TASKS = ("mask", "denoise", "rawdenoise", "upscale")


def convert_one(model_id: str, out_dir: Path, models: Path | None = None, **opts) -> list[dict]:
    mod, fn = CONVERTERS[model_id]
    results = getattr(importlib.import_module(mod), fn)(out_dir, models, **opts)
    for r in results:
        dtmodel.check_package(r["dtmodel"], r["entry"])
    return results


def write_catalogue(out_dir: Path) -> Path:
    entries = []
    for p in sorted(Path(out_dir).glob("*.json")):
        if p.name == "catalogue.json" or p.name.endswith(".report.json"):
            continue
        e = json.loads(p.read_text())
        if (isinstance(e, dict) and e.get("id") in CONVERTERS and e.get("task") in DARKTABLE_TASKS
                and (Path(out_dir) / e["github_asset"]).exists()):
            entries.append(e)
    entries.sort(key=lambda e: MODEL_IDS.index(e["id"]))
    path = Path(out_dir) / "catalogue.json"
    dtmodel.write_json(path, {"version": 1, "models": entries})
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Convert the shared weights into .dtmodel packages.")
    ap.add_argument("--out", default="build/models", help="output folder (default build/models)")
    ap.add_argument("--only", choices=MODEL_IDS, help="convert one model id")
    ap.add_argument("--models", default=None, help="shared weights folder")
    ap.add_argument("--sigma", type=float, default=None,
                    help="noise sigma baked into rawdenoise-demosaicnet (sRGB-encoded, default 0.02)")
    ap.add_argument("--pmrid-iso", type=float, default=None,
                    help="PMRID noise model baked at this ISO of its sensor (default 1600)")
    ap.add_argument("--smoke", action="store_true", help="also run the Kodak24 quality checks")
    ap.add_argument("--eval", default=None, help="evaluation data folder (for --smoke)")
    a = ap.parse_args(argv)

    try:
        import torch  # noqa: F401
    except ImportError:
        print("model conversion needs PyTorch (CPU): pip install torch==2.13.0", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    models = Path(a.models) if a.models else None
    opts = {}
    if a.sigma is not None:
        opts["sigma"] = a.sigma
    if a.pmrid_iso is not None:
        opts["pmrid_iso"] = a.pmrid_iso
    ids = [a.only] if a.only else list(MODEL_IDS)
    if a.smoke and "rawdenoise-pmrid-demosaicnet" in ids and "demosaic-demosaicnet" in ids:
        ids.remove("demosaic-demosaicnet")  # convert it first: pmrid's smoke check compares with it
        ids.insert(0, "demosaic-demosaicnet")
    failed = []
    rows = []
    for model_id in ids:
        t0 = time.time()
        try:
            results = convert_one(model_id, out, models, **opts)
        except dtmodel.ConversionError as e:
            print(f"{model_id}: FAILED: {e}", file=sys.stderr)
            failed.append(model_id)
            continue
        for r in results:
            for c in r["checks"]:
                rows.append((r["id"], c["file"], c["max_abs_diff"], c["tolerance"]))
            if a.smoke:
                from tools import smoke
                from pixelpipe.testdata import eval_dir
                q = smoke.run(r["id"], out, Path(a.eval) if a.eval else eval_dir())
                print(f"{r['id']}: quality {q}")
                rep_path = out / f"{r['id']}.report.json"
                rep = json.loads(rep_path.read_text())
                rep["quality"] = q
                dtmodel.write_json(rep_path, rep)
            print(f"{r['id']}: {r['dtmodel']} {r['entry']['checksum']} ({time.time() - t0:.1f}s)")
    cat = write_catalogue(out)
    print(f"catalogue: {cat}")
    print("max |ORT - PyTorch| on random inputs:")
    for mid, f, d, tol in rows:
        print(f"  {mid:30s} {f:26s} {d:.2e}  (tolerance {tol:g})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
