"""Packaging and checking of darktable-style model packages (``.dtmodel``).

A package is a zip whose members all live under ``<id>/``: ``<id>/config.json``
plus the ONNX files it names.  Beside it the converters write

- ``<id>.json``: the catalogue entry (id, name, description, task,
  github_asset, checksum ``sha256:<hex of the .dtmodel>``, default, licence,
  training_data, source);
- ``<id>.report.json``: what was verified (ONNX Runtime against the PyTorch
  reference, max abs difference per ONNX file, tolerance, versions);
- ``<id>/``: the unpacked folder, installable as is into a models directory.

config.json follows darktable (src/ai/backend_common.c): ``id``, ``name``,
``description``, ``task``, ``arch``, ``backend`` ("onnx"), ``version`` ("1.0"),
``tiling``, ``num_inputs``, ``attributes`` and ``variants``.  darktable reads
the raw-denoise variant keys as dotted paths *inside* ``attributes``
(``variants.bayer.onnx`` is looked up in the ``attributes`` object), so the
variants are written both there and, as the project's manifest expects, at
the top level.  A ``model_card`` object (darktable's model-card keys) carries
the licence and provenance.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

OPSET = 17
SCHEMA_VERSION = "1.0"

CONFIG_KEYS = (
    "id", "name", "description", "task", "arch", "backend", "version",
    "tiling", "num_inputs", "attributes", "variants",
)
CATALOGUE_KEYS = (
    "id", "name", "description", "task", "github_asset", "checksum",
    "default", "licence", "training_data", "source",
)
# darktable's variant keys (restore.c): contract label and pre-processing policy
VARIANT_KEYS = (
    "onnx", "input_kind", "input_colorspace", "wb_norm", "output_scale",
    "bayer_orientation", "edge_pad", "target_mean",
)
INPUT_KINDS = ("bayer_v1", "xtrans_v1", "linear_v1")


class ConversionError(Exception):
    """A conversion could not be done (missing weights, failed check...)."""


# --------------------------------------------------------------------------
# locating inputs

def models_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The shared trained weights: ``explicit``, else ``pixelpipe.testdata.models_dir()``."""
    if explicit:
        return Path(explicit)
    try:
        from pixelpipe.testdata import models_dir as _md
    except ImportError:  # running from a checkout without the package installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from pixelpipe.testdata import models_dir as _md
    return _md()


def require(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise ConversionError(f"{what} not found: path={path}")
    return Path(path)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# ONNX export and the ORT-vs-PyTorch check

def export_onnx(module, example_inputs: tuple, path: Path, input_names: list[str],
                output_names: list[str], dynamic_axes: Mapping[str, Mapping[int, str]]) -> Path:
    """Export ``module`` with the TorchScript exporter at opset 17, then run onnx.checker."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic
            torch.onnx.export(
                module, tuple(example_inputs), str(path),
                opset_version=OPSET, dynamo=False, do_constant_folding=True,
                input_names=list(input_names), output_names=list(output_names),
                dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
            )
    model = onnx.load(str(path))
    fixed = False
    for o in model.graph.output:  # batch is 1: do not leave the exporter's symbolic name
        dims = o.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
            fixed = True
    if fixed:
        onnx.save(model, str(path))
    onnx.checker.check_model(model)
    if model.opset_import[0].version != OPSET:
        raise ConversionError(f"exported opset {model.opset_import[0].version}, wanted {OPSET}: path={path}")
    return path


def ort_session(path: str | os.PathLike, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, feeds: Mapping[str, Any]):
    sess = path_or_session if hasattr(path_or_session, "run") else ort_session(path_or_session)
    return sess.run(None, {k: v for k, v in feeds.items()})


def compare_with_ort(module, onnx_path: Path, feed_sets: list[Mapping[str, Any]],
                     tolerance: float) -> dict:
    """Run ``module`` (PyTorch) and the ONNX file on each feed set; max abs difference.

    Each feed set maps input names (in the module's argument order) to
    float32 arrays.  Different shapes per set exercise the dynamic axes.
    Raises ConversionError if the difference exceeds ``tolerance``.
    """
    import numpy as np
    import torch

    sess = ort_session(onnx_path)
    worst = 0.0
    shapes = []
    for feeds in feed_sets:
        with torch.no_grad():
            ref = module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()])
        ref = ref.numpy()
        got = sess.run(None, dict(feeds))[0]
        if got.shape != ref.shape:
            raise ConversionError(
                f"ONNX output shape {got.shape} != PyTorch {ref.shape}: path={onnx_path}")
        diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
        worst = max(worst, diff)
        shapes.append({k: list(v.shape) for k, v in feeds.items()})
    if not worst <= tolerance:
        raise ConversionError(
            f"ONNX Runtime differs from PyTorch by {worst:.3g} > {tolerance:g}: path={onnx_path}")
    return {"file": Path(onnx_path).name, "max_abs_diff": worst, "tolerance": tolerance,
            "input_shapes": shapes}


def versions() -> dict:
    out = {}
    for mod in ("torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - informative only
            pass
    return out


# --------------------------------------------------------------------------
# config.json and packaging

def make_config(*, model_id: str, name: str, description: str, task: str, arch: str = "generic",
                tiling: bool = True, num_inputs: int = 1, attributes: dict | None = None,
                variants: dict | None = None, model_card: dict | None = None) -> dict:
    attributes = dict(attributes or {})
    variants = dict(variants or {})
    if variants:
        attributes["variants"] = variants  # where darktable looks them up
    cfg = {
        "id": model_id, "name": name, "description": description, "task": task,
        "arch": arch, "backend": "onnx", "version": SCHEMA_VERSION, "tiling": bool(tiling),
        "num_inputs": int(num_inputs), "attributes": attributes, "variants": variants,
    }
    if model_card:
        cfg["model_card"] = dict(model_card)
    return cfg


def onnx_files_named(config: Mapping) -> list[str]:
    """ONNX files darktable (or pixelpipe) will open for this config.

    Variant packages name theirs under ``variants.<v>.onnx``; denoise models
    use ``model.onnx``; upscalers ``model_x2.onnx`` / ``model_x4.onnx``
    (restore.c), listed in ``attributes.scales``.
    """
    names = []
    for v in (config.get("variants") or {}).values():
        if isinstance(v, Mapping) and v.get("onnx"):
            names.append(v["onnx"])
    for v in ((config.get("attributes") or {}).get("extra_graphs") or {}).values():
        names.append(v["onnx"])
    if config.get("task") == "upscale":
        for s in (config.get("attributes") or {}).get("scales", []):
            names.append(f"model_x{int(s)}.onnx")
    elif not names:
        names.append("model.onnx")
    return sorted(set(names))


def validate_config(config: Mapping) -> None:
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise ConversionError(f"config.json of {config.get('id')!r} lacks keys {missing}")
    if config["backend"] != "onnx" or config["version"] != SCHEMA_VERSION:
        raise ConversionError(f"config.json of {config['id']!r}: backend/version wrong")
    for name, v in (config.get("variants") or {}).items():
        kind = v.get("input_kind")
        if kind is not None and kind not in INPUT_KINDS:
            raise ConversionError(f"variant {name} of {config['id']!r}: unknown input_kind {kind}")
        if name in ("bayer", "xtrans", "linear") and kind not in (None, f"{name}_v1"):
            raise ConversionError(f"variant {name} of {config['id']!r} declares {kind}")


def write_json(path: Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def package(out_dir: Path, config: dict, *, default: bool, licence: str, training_data: str,
            source: str, report: dict | None = None) -> dict:
    """Zip ``out_dir/<id>/`` into ``out_dir/<id>.dtmodel``; write the catalogue entry.

    The ONNX files must already be in ``out_dir/<id>/``; config.json is
    written here.  Returns the catalogue entry.
    """
    validate_config(config)
    out_dir = Path(out_dir)
    model_id = config["id"]
    stage = out_dir / model_id
    write_json(stage / "config.json", config)
    members = ["config.json"] + onnx_files_named(config)
    for m in members:
        require(stage / m, f"package member {m}")
    dtmodel = out_dir / f"{model_id}.dtmodel"
    fd, tmp = tempfile.mkstemp(prefix=f".{model_id}.", suffix=".dtmodel.tmp", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for m in members:
                # fixed timestamp: the same inputs give the same bytes (and checksum)
                info = zipfile.ZipInfo(f"{model_id}/{m}", date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, (stage / m).read_bytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dtmodel)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    entry = {
        "id": model_id, "name": config["name"], "description": config["description"],
        "task": config["task"], "github_asset": dtmodel.name,
        "checksum": "sha256:" + sha256_file(dtmodel), "default": bool(default),
        "licence": licence, "training_data": training_data, "source": source,
    }
    write_json(out_dir / f"{model_id}.json", entry)
    if report is not None:
        report = dict(report, id=model_id, checksum=entry["checksum"], versions=versions())
        write_json(out_dir / f"{model_id}.report.json", report)
    return entry


def check_package(dtmodel: Path, entry: Mapping | None = None) -> dict:
    """Check a .dtmodel: layout, config keys, named ONNX present and loadable, checksum.

    Returns the parsed config.json.  Raises ConversionError on any problem.
    """
    import onnx

    dtmodel = Path(dtmodel)
    model_id = dtmodel.name[: -len(".dtmodel")]
    with zipfile.ZipFile(dtmodel) as z:
        names = z.namelist()
        bad = [n for n in names if not n.startswith(model_id + "/") or ".." in n.split("/")]
        if bad:
            raise ConversionError(f"members outside {model_id}/: {bad}: path={dtmodel}")
        if f"{model_id}/config.json" not in names:
            raise ConversionError(f"no {model_id}/config.json: path={dtmodel}")
        config = json.loads(z.read(f"{model_id}/config.json"))
        validate_config(config)
        if config["id"] != model_id:
            raise ConversionError(f"config id {config['id']!r} != file name: path={dtmodel}")
        for f in onnx_files_named(config):
            if f"{model_id}/{f}" not in names:
                raise ConversionError(f"config names {f} but the zip lacks it: path={dtmodel}")
            onnx.checker.check_model(onnx.load_from_string(z.read(f"{model_id}/{f}")))
    if entry is not None:
        for k in CATALOGUE_KEYS:
            if k not in entry:
                raise ConversionError(f"catalogue entry lacks {k}: path={dtmodel}")
        if entry["checksum"] != "sha256:" + sha256_file(dtmodel):
            raise ConversionError(f"checksum mismatch: path={dtmodel}")
        if entry["github_asset"] != dtmodel.name or entry["id"] != model_id:
            raise ConversionError(f"catalogue entry does not name this file: path={dtmodel}")
    return config


def stage_dir(out_dir: Path, model_id: str) -> Path:
    """A fresh ``out_dir/<id>/`` to export ONNX files into."""
    stage = Path(out_dir) / model_id
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def log(msg: str) -> None:
    print(msg, flush=True)


Converter = Callable[..., list]
