"""The four AI tasks (capability slots) and what a model's ONNX files must look like for each.

| task | files | tensors |
|---|---|---|
| ``denoise`` | ``model.onnx`` | ``[1,3,H,W]`` (+ sigma ``[1,1,H,W]`` when ``num_inputs`` is 2) -> ``[1,3,H,W]`` |
| ``upscale`` | ``model_x<S>.onnx`` (or ``model.onnx``) | ``[1,3,H,W]`` -> ``[1,3,S*H,S*W]`` |
| ``rawdenoise`` | ``variants.<kind>.onnx`` (legacy: ``model.onnx`` = bayer) | bayer_v1 ``[1,4,T,T]`` -> ``[1,3,2T,2T]``; linear_v1 ``[1,3,T,T]`` -> ``[1,3,T,T]`` |
| ``mask`` | ``encoder.onnx`` + ``decoder.onnx`` | encoder ``[1,3,1024,1024]``; decoder takes the encoder outputs (by name) and ``point_coords``, ``point_labels`` (+ SAM2 ``mask_input``, ``has_mask_input``; SegNext ``prev_mask``) |

The task implementations live in the submodules (imported on demand, they need
numpy and, to run, ONNX Runtime): :mod:`.denoise`, :mod:`.upscale`,
:mod:`.rawdenoise`, :mod:`.mask` (SAM 2.1 / SegNext), :mod:`.classical_mask`
(no model), :mod:`.postprocess` and :mod:`.vectorize` (object-mask
post-processing and Bézier paths), :mod:`.common` (sessions, colour curves,
rendering through the user's pipe, outputs and group sidecars).

The checks read only the ONNX headers (:mod:`pixelpipe.ai.onnxinfo`), so they
run at install time without ONNX Runtime; a dimension that the file leaves
dynamic is accepted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pixelpipe.errors import AIError
from pixelpipe.prefs import TASKS

from .. import onnxinfo
from ..config import VARIANT_ENUMS, VARIANT_INPUT_KIND, ModelConfig, Variant
from ..onnxinfo import TensorInfo

__all__ = ["TASKS", "ModelFile", "model_files", "check_file", "check_model_dir", "check_tensors"]

FLOAT_TYPES = ("float32", "float16")
MASK_PROMPT_INPUTS = {"point_coords", "point_labels", "mask_input", "has_mask_input", "prev_mask",
                      "orig_im_size"}
_SCALE_FILE = re.compile(r"^model_x(\d+)\.onnx$")


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of a model and its role."""

    role: str          # model | encoder | decoder | variant
    filename: str
    scale: int = 1     # upscale factor
    variant: Variant | None = None

    @property
    def label(self) -> str:
        if self.variant is not None:
            return f"{self.variant.kind} ({self.variant.input_kind})"
        if self.role == "model" and self.scale > 1:
            return f"x{self.scale}"
        return self.role


def resolve_variants(cfg: ModelConfig, model_dir: Path) -> dict[str, Variant]:
    """The rawdenoise variants: declared ones, else inferred from ``model_<kind>.onnx`` files
    (settings from ``attributes.model_<kind>`` as darktable-ai's model.yaml writes them),
    else the legacy single ``model.onnx`` as a bayer_v1 model."""
    if cfg.variants:
        return dict(cfg.variants)
    out: dict[str, Variant] = {}
    for kind, ik in VARIANT_INPUT_KIND.items():
        name = f"model_{kind}.onnx"
        if (model_dir / name).is_file():
            extra = cfg.attributes.get(f"model_{kind}")
            settings = {k: v for k, v in (extra or {}).items()
                        if k in VARIANT_ENUMS and k != "input_kind" and v in VARIANT_ENUMS[k]} \
                if isinstance(extra, dict) else {}
            out[kind] = Variant(kind=kind, onnx=name, input_kind=ik, settings=settings)
    if not out and (model_dir / "model.onnx").is_file():
        out["bayer"] = Variant(kind="bayer", onnx="model.onnx", input_kind="bayer_v1")
    return out


def model_files(cfg: ModelConfig, model_dir: Path) -> list[ModelFile]:
    """The ONNX files a model of ``cfg.task`` consists of (the ones that must exist)."""
    d = Path(model_dir)
    if cfg.task == "denoise":
        return [ModelFile("model", "model.onnx")]
    if cfg.task == "upscale":
        files = []
        for p in sorted(d.glob("model_x*.onnx")):
            m = _SCALE_FILE.match(p.name)
            if m and int(m.group(1)) >= 2:
                files.append(ModelFile("model", p.name, scale=int(m.group(1))))
        files.sort(key=lambda f: f.scale)
        if not files:
            scale = cfg.attributes.get("scale", 2)
            files = [ModelFile("model", "model.onnx", scale=int(scale))]
        return files
    if cfg.task == "rawdenoise":
        variants = resolve_variants(cfg, d)
        if not variants:
            return [ModelFile("variant", "model.onnx",
                              variant=Variant("bayer", "model.onnx", "bayer_v1"))]
        return [ModelFile("variant", v.onnx, variant=v) for v in variants.values()]
    if cfg.task == "mask":
        return [ModelFile("encoder", "encoder.onnx"), ModelFile("decoder", "decoder.onnx")]
    return [ModelFile("model", p.name) for p in sorted(d.glob("*.onnx"))]


# --------------------------------------------------------------------------- checks

class _Fail(Exception):
    pass


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise _Fail(msg)


def _image(t: TensorInfo, channels: int | None, what: str) -> None:
    _need(t.rank == 4, f"{what} '{t.name}' must be 4-D [1,{channels or 'C'},H,W], found {t}")
    _need(t.dim(0) in (None, 1), f"{what} '{t.name}' must have batch 1, found {t}")
    if channels is not None:
        _need(t.dim(1) in (None, channels), f"{what} '{t.name}' must have {channels} channels, found {t}")
    _need(t.dtype in FLOAT_TYPES, f"{what} '{t.name}' must be float32 or float16, found {t.dtype}")


def _ratio(i: TensorInfo, o: TensorInfo, scale: int | None, what: str) -> None:
    for k in (2, 3):
        a, b = i.dim(k), o.dim(k)
        if a is not None and b is not None and scale is not None:
            _need(b == a * scale, f"{what}: output {o} is not {scale}x input {i}")


def _names(ts: list[TensorInfo]) -> str:
    return ", ".join(str(t) for t in ts) or "none"


def check_tensors(task: str, mf: ModelFile, cfg: ModelConfig, inputs: list[TensorInfo],
                  outputs: list[TensorInfo], *, encoder_outputs: list[TensorInfo] | None = None) -> None:
    """Raise ``_Fail`` (internal) unless the tensors fit ``task``'s contract."""
    if task == "denoise":
        n = cfg.num_inputs
        _need(len(inputs) == n, f"a denoise model with num_inputs={n} takes {n} input(s) "
                                f"([1,3,H,W]{' + sigma [1,1,H,W]' if n == 2 else ''}); "
                                f"this one has {len(inputs)}: {_names(inputs)}")
        img = inputs[0]
        if n == 2:
            sig = next((t for t in inputs if t.name == "sigma"), inputs[1])
            img = next(t for t in inputs if t is not sig)
            _image(sig, 1, "sigma input")
        _image(img, 3, "image input")
        _need(len(outputs) >= 1, "no output")
        _image(outputs[0], 3, "output")
        _ratio(img, outputs[0], 1, "denoise")
    elif task == "upscale":
        _need(len(inputs) == 1, f"an upscale model takes one input [1,3,H,W]; this one has "
                                f"{len(inputs)}: {_names(inputs)}")
        _image(inputs[0], 3, "input")
        _image(outputs[0], 3, "output")
        _ratio(inputs[0], outputs[0], mf.scale, f"x{mf.scale} upscale")
    elif task == "rawdenoise":
        v = mf.variant
        kind = v.input_kind if v is not None else "bayer_v1"
        _need(len(inputs) == 1, f"a rawdenoise {kind} model takes one input; this one has "
                                f"{len(inputs)}: {_names(inputs)}")
        if kind == "bayer_v1":
            _image(inputs[0], 4, "bayer_v1 input (packed R,G1,G2,B)")
            _image(outputs[0], 3, "output")
            _ratio(inputs[0], outputs[0], 2, "bayer_v1")
        elif kind == "linear_v1":
            _image(inputs[0], 3, "linear_v1 input")
            _image(outputs[0], 3, "output")
            _ratio(inputs[0], outputs[0], 1, "linear_v1")
        else:
            _image(inputs[0], None, f"{kind} input")
            _image(outputs[0], 3, "output")
    elif task == "mask":
        if mf.role == "encoder":
            _need(len(inputs) == 1, f"a mask encoder takes one image input [1,3,1024,1024]; this one "
                                    f"has {len(inputs)}: {_names(inputs)}")
            _image(inputs[0], 3, "encoder input")
            for k in (2, 3):
                _need(inputs[0].dim(k) in (None, 1024),
                      f"encoder input must be 1024x1024, found {inputs[0]}")
        else:
            names = {t.name for t in inputs}
            need = {"point_coords", "point_labels"}
            if cfg.arch == "sam2":
                need |= {"mask_input", "has_mask_input"}
            elif cfg.arch == "segnext":
                need |= {"prev_mask"}
            missing = sorted(need - names)
            _need(not missing, f"the {cfg.arch or 'mask'} decoder lacks input(s) "
                               f"{', '.join(missing)}; it has {_names(inputs)}")
            onames = {t.name for t in outputs}
            want = {"sam2": {"masks", "iou_predictions"}, "segnext": {"mask"}}.get(cfg.arch, set())
            missing = sorted(want - onames)
            _need(not missing, f"the {cfg.arch} decoder lacks output(s) {', '.join(missing)}; "
                               f"it has {_names(outputs)}")
            if encoder_outputs is not None:
                enc = [t.name for t in encoder_outputs]
                for t in inputs:
                    if t.name in MASK_PROMPT_INPUTS:
                        continue
                    ok = t.name in enc or any(e in t.name or t.name in e for e in enc)
                    _need(ok, f"decoder input '{t.name}' matches no encoder output "
                              f"({', '.join(enc)})")


def check_file(cfg: ModelConfig, model_dir: Path, mf: ModelFile,
               encoder_outputs: list[TensorInfo] | None = None) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Check one ONNX file of a model against its task; returns its (inputs, outputs)."""
    path = Path(model_dir) / mf.filename
    if not path.is_file():
        raise AIError(f"model {cfg.id}: ONNX file {mf.filename} missing (a {cfg.task} model needs "
                      f"{', '.join(f.filename for f in model_files(cfg, model_dir))})", path=path)
    inputs, outputs = onnxinfo.read_io(path)
    if cfg.task in TASKS:
        try:
            check_tensors(cfg.task, mf, cfg, inputs, outputs, encoder_outputs=encoder_outputs)
        except _Fail as e:
            raise AIError(f"model {cfg.id} does not fit task {cfg.task}: {e}", path=path) from None
    return inputs, outputs


def check_model_dir(cfg: ModelConfig, model_dir: Path) -> dict[str, tuple[list[TensorInfo], list[TensorInfo]]]:
    """Check every ONNX file of a model; returns {filename: (inputs, outputs)}."""
    out: dict[str, tuple[list[TensorInfo], list[TensorInfo]]] = {}
    files = model_files(cfg, model_dir)
    if not files:
        raise AIError(f"model {cfg.id}: no ONNX file", path=model_dir)
    enc_out = None
    for mf in files:
        io = check_file(cfg, model_dir, mf, encoder_outputs=enc_out)
        if mf.role == "encoder":
            enc_out = io[1]
        out[mf.filename] = io
    return out
