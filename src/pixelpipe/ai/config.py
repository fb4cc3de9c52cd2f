"""A model's ``config.json`` (darktable's manifest), parsed and checked.

Keys as darktable reads them: ``id``* and ``name``* (required), ``description``,
``task`` (default ``general``), ``arch``, ``backend`` (only ``onnx``),
``version``, ``tiling``, ``num_inputs`` (1, or 2 for an FFDNet-style sigma map),
``attributes`` and ``variants``; darktable-ai manifests may also carry the
catalogue keys ``github_asset``, ``checksum`` and ``default``.

Variant settings are read as dotted paths
``variants.<bayer|linear|xtrans>.{onnx, input_kind, input_colorspace, wb_norm,
output_scale, bayer_orientation, edge_pad, target_mean}``; both the nested form
and literal dotted keys (``"variants.bayer.onnx": ...``) are accepted.

``model_card`` (darktable-ai's model-card keys: author, paper, source, license,
training_data, ...) is shown by ``pixelpipe ai models info``; ``attributes`` may
hold model-specific settings beyond darktable's, which are kept as they are.

Policy: a missing required key, a value of the wrong type or outside its
enumeration, a backend other than ONNX and a declared ``input_kind`` that does
not match its variant are errors (:class:`AIError` naming the file); an unknown
key is a warning (kept in :attr:`ModelConfig.warnings` and shown by
``pixelpipe ai models info``), so that newer darktable-ai packages still install.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpipe.errors import AIError
from pixelpipe.prefs import MODEL_ID_RE

KNOWN_KEYS = {
    "id", "name", "description", "task", "arch", "backend", "version", "tiling", "num_inputs",
    "attributes", "variants", "github_asset", "checksum", "default", "model_card",
}
KNOWN_ARCHS = {"", "generic", "sam2", "segnext", "utnet2"}
ATTRIBUTE_TYPES: dict[str, tuple[type, ...]] = {
    "shadow_boost": (bool, int, float),
    "tile_factor": (int, float),
    "color_space": (str,),
    "input_sizes": (list,),
    "coreml_cpu_only": (bool,),
    "min_version": (str,),
    "scale": (int,),
}
VARIANT_KINDS = ("bayer", "linear", "xtrans")
#: the input_kind each variant's loader expects
VARIANT_INPUT_KIND = {"bayer": "bayer_v1", "linear": "linear_v1", "xtrans": "xtrans_v1"}
VARIANT_ENUMS = {
    "input_kind": ("bayer_v1", "xtrans_v1", "linear_v1"),
    "input_colorspace": ("lin_rec2020", "camRGB", "srgb_linear"),
    "wb_norm": ("daylight", "as_shot", "none"),
    "output_scale": ("match_gain", "absolute"),
    "bayer_orientation": ("force_rggb", "native"),
    "edge_pad": ("mirror_cropped", "mirror"),
}
VARIANT_KEYS = {"onnx", "target_mean", *VARIANT_ENUMS}
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.onnx$")


@dataclass
class Variant:
    kind: str
    onnx: str
    input_kind: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    id: str
    name: str
    description: str = ""
    task: str = "general"
    arch: str = ""
    backend: str = "onnx"
    version: str = "1.0"
    tiling: bool = False
    num_inputs: int = 1
    attributes: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Variant] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def attribute(self, dotted: str, default: Any = None) -> Any:
        """A value by dotted path, darktable style: ``attributes.input_sizes``,
        ``variants.bayer.onnx``, ``tiling``."""
        parts = dotted.split(".")
        if parts[0] == "variants" and len(parts) == 3:
            v = self.variants.get(parts[1])
            if v is None:
                return default
            if parts[2] == "onnx":
                return v.onnx
            if parts[2] == "input_kind":
                return v.input_kind
            return v.settings.get(parts[2], default)
        node: Any = self.raw
        for p in parts:
            if not isinstance(node, dict) or p not in node:
                return default
            node = node[p]
        return node


def _err(where: Path | str, msg: str) -> AIError:
    return AIError(msg, path=str(where))


def _variants_tree(raw: dict, where) -> dict:
    """Merge the variant settings from everywhere they may be: ``attributes.variants``
    (where darktable's dotted-path lookup finds them), top-level ``variants``, and literal
    ``"variants.<kind>.<key>"`` keys in either object; later sources win."""
    tree: dict = {}
    attrs = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
    for obj, prefix in ((attrs, "attributes."), (raw, "")):
        nested = obj.get("variants")
        if nested is not None:
            if not isinstance(nested, dict):
                raise _err(where, f"'{prefix}variants' must be an object")
            for kind, sub in nested.items():
                if not isinstance(sub, dict):
                    raise _err(where, f"'{prefix}variants.{kind}' must be an object")
                tree.setdefault(kind, {}).update(sub)
        for key, value in obj.items():
            if key.startswith("variants."):
                parts = key.split(".")
                if len(parts) != 3:
                    raise _err(where, f"bad variant key {prefix}{key!r} (expected variants.<kind>.<key>)")
                tree.setdefault(parts[1], {})[parts[2]] = value
    return tree


def parse(raw: Any, where: Path | str = "config.json") -> ModelConfig:
    """Check a parsed ``config.json`` and return it as a :class:`ModelConfig`."""
    if not isinstance(raw, dict):
        raise _err(where, "config.json must hold a JSON object")
    warnings: list[str] = []
    for k in ("id", "name"):
        if k not in raw:
            raise _err(where, f"missing required key {k!r}")
        if not isinstance(raw[k], str) or not raw[k].strip():
            raise _err(where, f"key {k!r} must be a non-empty string")
    mid = raw["id"]
    if not MODEL_ID_RE.match(mid):
        raise _err(where, f"invalid model id {mid!r} (letters, digits, '-' and '_' only)")
    unknown = sorted(k for k in raw if k not in KNOWN_KEYS and not k.startswith("variants."))
    if unknown:
        warnings.append("unknown key(s) ignored: " + ", ".join(unknown))

    def _str(key: str, default: str) -> str:
        v = raw.get(key, default)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and key == "version":
            v = str(v)
        if not isinstance(v, str):
            raise _err(where, f"key {key!r} must be a string")
        return v

    cfg = ModelConfig(id=mid, name=raw["name"], raw=raw, warnings=warnings)
    cfg.description = _str("description", "")
    cfg.task = _str("task", "general") or "general"
    cfg.arch = _str("arch", "")
    if cfg.arch not in KNOWN_ARCHS:
        warnings.append(f"unknown arch {cfg.arch!r} treated as generic")
    cfg.backend = _str("backend", "onnx")
    if cfg.backend != "onnx":
        raise _err(where, f"unsupported backend {cfg.backend!r} (only 'onnx')")
    cfg.version = _str("version", "1.0")
    tiling = raw.get("tiling", False)
    if not isinstance(tiling, bool):
        raise _err(where, "key 'tiling' must be true or false")
    cfg.tiling = tiling
    n = raw.get("num_inputs", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n not in (1, 2):
        raise _err(where, f"num_inputs must be 1 or 2, not {n!r}")
    cfg.num_inputs = n
    for k in ("github_asset", "checksum"):
        if k in raw and not isinstance(raw[k], str):
            raise _err(where, f"key {k!r} must be a string")
    if "default" in raw and not isinstance(raw["default"], bool):
        raise _err(where, "key 'default' must be true or false")
    if "model_card" in raw and not isinstance(raw["model_card"], dict):
        raise _err(where, "'model_card' must be an object")

    attrs = raw.get("attributes", {})
    if not isinstance(attrs, dict):
        raise _err(where, "'attributes' must be an object")
    for k, v in attrs.items():
        types = ATTRIBUTE_TYPES.get(k)
        if types is None:  # model-specific settings (darktable reads the ones it knows)
            continue
        if isinstance(v, bool) and bool not in types or not isinstance(v, types):
            raise _err(where, f"attribute {k!r} has the wrong type ({type(v).__name__})")
    sizes = attrs.get("input_sizes")
    if sizes is not None and (not sizes or not all(
            isinstance(s, int) and not isinstance(s, bool) and 16 <= s <= 16384 for s in sizes)):
        raise _err(where, "attribute 'input_sizes' must be a list of tile sizes 16..16384")
    cfg.attributes = dict(attrs)

    for kind, sub in _variants_tree(raw, where).items():
        if kind not in VARIANT_KINDS:
            warnings.append(f"unknown variant {kind!r} ignored")
            continue
        extra = sorted(set(sub) - VARIANT_KEYS)
        if extra:
            warnings.append(f"variants.{kind}: unknown key(s) ignored: {', '.join(extra)}")
        onnx = sub.get("onnx", "model.onnx" if kind == "bayer" else f"model_{kind}.onnx")
        if not isinstance(onnx, str) or not _FILE_RE.match(onnx):
            raise _err(where, f"variants.{kind}.onnx must be a plain .onnx file name, not {onnx!r}")
        settings: dict[str, Any] = {}
        for key, choices in VARIANT_ENUMS.items():
            if key in sub:
                if sub[key] not in choices:
                    raise _err(where, f"variants.{kind}.{key} must be one of {', '.join(choices)}, "
                                      f"not {sub[key]!r}")
                settings[key] = sub[key]
        if "target_mean" in sub:
            tm = sub["target_mean"]
            if tm in (None, "null"):
                settings["target_mean"] = None
            elif isinstance(tm, (int, float)) and not isinstance(tm, bool) and 0 < tm <= 1:
                settings["target_mean"] = float(tm)
            else:
                raise _err(where, f"variants.{kind}.target_mean must be a number in (0, 1] or null")
        expected = VARIANT_INPUT_KIND[kind]
        declared = settings.pop("input_kind", None)
        if declared is not None and declared != expected:
            raise _err(where, f"variants.{kind}.input_kind is {declared!r} but the {kind} "
                              f"loader needs {expected!r}")
        cfg.variants[kind] = Variant(kind=kind, onnx=onnx, input_kind=expected, settings=settings)
    return cfg


def load(path: str | Path) -> ModelConfig:
    """Read and check ``config.json`` at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AIError("config.json missing", path=p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise AIError(f"cannot read config.json: {e}", path=p) from None
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise AIError(f"config.json is not valid JSON ({e})", path=p) from None
    return parse(raw, where=p)
