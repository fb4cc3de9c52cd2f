"""Presets (named parameters of one module) and styles (several modules at once).

darktable keeps both in its database; pixelpipe keeps them as JSON files:

* built-in ones are package data: ``pixelpipe/data/presets/<op>.json`` (a list of
  presets for one module, format ``pixelpipe-presets``) and
  ``pixelpipe/data/styles/*.json`` (one style each);
* the user's in :func:`pixelpipe.userdirs.config_dir`: ``presets/<op>/<name>.json``
  (format ``pixelpipe-preset``) and ``styles/<name>.json`` (format
  ``pixelpipe-style``); names are percent-encoded into file names.

A preset holds module parameters (a partial dict is completed with the module's
defaults for the image), the enabled state and optionally blend parameters
(an opaque dict for the blending code). Like darktable's, a preset may be
**auto-applied** to new edits: it then carries a ``match`` (camera maker, model,
lens as SQL-LIKE patterns -- ``%`` and ``_`` wildcards, case-insensitive,
matched anywhere in the EXIF ``maker``/``model`` or LibRaw's normalised
``camera_maker``/``camera_model``; ISO range; formats ``raw``/``non-raw``) and
optionally the workflows it belongs to (darktable applies base curves only in
the display-referred workflow). Per module the winner is a user preset over a
built-in one, then the most specific match (longest model, maker, lens
pattern), as darktable orders them. :func:`auto_apply_presets` is what
``Edit.default_for`` calls.

A style is a list of items ``{op, instance, enabled, params, params_version,
blend, name}``; :func:`apply_style` overwrites the instances it names and
creates missing ones (a new instance goes before the highest existing one,
darktable's rule). Modules this build lacks are skipped with a notice.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from . import userdirs
from .errors import ParamsError, PixelpipeError
from .io.source import SourceImage

PRESETS_FORMAT = "pixelpipe-presets"  # built-in: many presets of one module
PRESET_FORMAT = "pixelpipe-preset"  # user: one preset per file
STYLE_FORMAT = "pixelpipe-style"
FILE_VERSION = 1
FORMATS = ("raw", "non-raw")


class PresetError(PixelpipeError):
    """An unknown, invalid or unreadable preset or style."""

    exit_code = 3


# --------------------------------------------------------------------------- matching
def like(pattern: str, value: str | None) -> bool:
    """SQL LIKE (case-insensitive) of ``%pattern%`` against ``value`` (empty pattern: anything)."""
    if not pattern:
        return True
    if value is None:
        return False
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern.strip())
    return re.search(rx, str(value).strip(), re.IGNORECASE | re.DOTALL) is not None


def image_format(image: SourceImage) -> str:
    return "raw" if image.is_raw else "non-raw"


@dataclass
class Match:
    """What an auto-applied preset is for (empty/None = anything)."""

    maker: str = ""
    model: str = ""
    lens: str = ""
    iso_min: float = 0.0
    iso_max: float | None = None
    formats: tuple[str, ...] = FORMATS

    def matches(self, image: SourceImage) -> bool:
        ex = image.exif or {}
        if not any(like(self.maker, ex.get(k)) for k in ("maker", "camera_maker")):
            return False
        if not any(like(self.model, ex.get(k)) for k in ("model", "camera_model")):
            return False
        if not like(self.lens, ex.get("lens")):
            return False
        try:
            iso = float(ex.get("iso") or 0.0)
        except (TypeError, ValueError):
            iso = 0.0
        if iso < self.iso_min or (self.iso_max is not None and iso > self.iso_max):
            return False
        return image_format(image) in self.formats

    def specificity(self) -> tuple[int, int, int]:
        return len(self.model), len(self.maker), len(self.lens)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"maker": self.maker, "model": self.model, "lens": self.lens,
                             "iso_min": self.iso_min, "formats": list(self.formats)}
        if self.iso_max is not None:
            d["iso_max"] = self.iso_max
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str, path: str | None) -> "Match":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise PresetError(f"{where}: \"match\" must be an object", path=path)
        unknown = sorted(set(d) - {"maker", "model", "lens", "iso_min", "iso_max", "formats"})
        if unknown:
            raise PresetError(f"{where}: unknown match field(s) {', '.join(unknown)}", path=path)
        m = cls()
        for k in ("maker", "model", "lens"):
            v = d.get(k, "")
            if not isinstance(v, str):
                raise PresetError(f"{where}: match.{k} must be a string", path=path)
            setattr(m, k, v)
        for k in ("iso_min", "iso_max"):
            v = d.get(k, 0.0 if k == "iso_min" else None)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v < 0):
                raise PresetError(f"{where}: match.{k} must be a non-negative number", path=path)
            setattr(m, k, None if v is None else float(v))
        fm = d.get("formats", list(FORMATS))
        if not isinstance(fm, list) or not fm or any(f not in FORMATS for f in fm):
            raise PresetError(f"{where}: match.formats must be a non-empty list of {list(FORMATS)}", path=path)
        m.formats = tuple(fm)
        return m


# --------------------------------------------------------------------------- presets
@dataclass
class Preset:
    op: str
    name: str
    params: dict = field(default_factory=dict)
    params_version: int | None = None
    enabled: bool = True
    blend: dict | None = None
    auto_apply: bool = False
    match: Match = field(default_factory=Match)
    workflows: list[str] | None = None
    description: str = ""
    builtin: bool = False
    path: str | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"format": PRESET_FORMAT, "version": FILE_VERSION, "op": self.op, "name": self.name,
                             "description": self.description, "enabled": self.enabled,
                             "params_version": self.params_version, "params": self.params,
                             "auto_apply": self.auto_apply, "match": self.match.to_dict()}
        if self.blend is not None:
            d["blend"] = self.blend
        if self.workflows is not None:
            d["workflows"] = list(self.workflows)
        return d

    def applies_to(self, image: SourceImage, workflow: str | None) -> bool:
        if not self.auto_apply or not self.match.matches(image):
            return False
        if self.workflows is None:
            return True
        from .pipe.history import canonical_workflow

        names = set()
        for w in self.workflows:
            try:
                names.add(canonical_workflow(w))
            except PixelpipeError:
                names.add(w)
        return workflow in names


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise PresetError(f"a {what} needs a non-empty name")
    if any(ord(ch) < 32 for ch in name) or len(name) > 200:
        raise PresetError(f"{what} name {name!r} has control characters or is too long")
    return name


def _preset_from_dict(d: Any, op: str | None, where: str, path: str | None, builtin: bool) -> Preset:
    if not isinstance(d, dict):
        raise PresetError(f"{where}: a preset must be an object", path=path)
    op = d.get("op", op)
    if not isinstance(op, str) or not op:
        raise PresetError(f"{where}: missing module name (\"op\")", path=path)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise PresetError(f"{where}: missing preset name", path=path)
    params = d.get("params", {})
    if not isinstance(params, dict):
        raise PresetError(f"{where} ({op}/{name}): \"params\" must be an object", path=path)
    pv = d.get("params_version")
    if pv is not None and (not isinstance(pv, int) or isinstance(pv, bool)):
        raise PresetError(f"{where} ({op}/{name}): params_version must be an integer", path=path)
    blend = d.get("blend")
    if blend is not None and not isinstance(blend, dict):
        raise PresetError(f"{where} ({op}/{name}): \"blend\" must be an object", path=path)
    wf = d.get("workflows")
    if wf is not None and (not isinstance(wf, list) or not all(isinstance(w, str) for w in wf)):
        raise PresetError(f"{where} ({op}/{name}): \"workflows\" must be a list of names", path=path)
    for k in ("enabled", "auto_apply"):
        if not isinstance(d.get(k, True), bool):
            raise PresetError(f"{where} ({op}/{name}): {k} must be true or false", path=path)
    return Preset(op=op, name=name, params=params, params_version=pv, enabled=d.get("enabled", True),
                  blend=blend, auto_apply=d.get("auto_apply", False),
                  match=Match.from_dict(d.get("match"), f"{where} ({op}/{name})", path), workflows=wf,
                  description=str(d.get("description", "")), builtin=builtin, path=path)


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PresetError(f"cannot read {what} file: {e.__class__.__name__}", path=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PresetError(f"not a valid {what} file (JSON error at line {e.lineno}, column {e.colno}: {e.msg})",
                          path=str(path)) from None


def _data_dir(kind: str):
    return resources.files("pixelpipe").joinpath("data", kind)


def builtin_presets() -> list[Preset]:
    out: list[Preset] = []
    d = _data_dir("presets")
    if not d.is_dir():
        return out
    for f in sorted(d.iterdir(), key=lambda p: p.name):
        if not f.name.endswith(".json"):
            continue
        doc = json.loads(f.read_text(encoding="utf-8"))
        if doc.get("format") != PRESETS_FORMAT:
            raise PresetError(f"built-in presets file is not {PRESETS_FORMAT}", path=str(f))
        for k, p in enumerate(doc.get("presets", [])):
            out.append(_preset_from_dict(p, doc.get("op"), f"presets[{k}]", str(f), True))
    return out


def presets_dir() -> Path:
    return userdirs.config_dir() / "presets"


def styles_dir() -> Path:
    return userdirs.config_dir() / "styles"


def _file_name(name: str) -> str:
    return quote(name, safe=" -_()+,;=@[]{}'!~") + ".json"


def _check_op_name(op: str) -> str:
    if not isinstance(op, str) or not re.fullmatch(r"[a-z0-9_]{1,20}", op):
        raise PresetError(f"bad module name {op!r}")
    return op


def _user_preset_file(op: str, name: str) -> Path:
    return presets_dir() / _check_op_name(op) / _file_name(name)


def load_preset_file(path: str | os.PathLike) -> Preset:
    p = Path(path)
    d = _read_json(p, "preset")
    if not isinstance(d, dict) or d.get("format") != PRESET_FORMAT:
        raise PresetError(f"not a pixelpipe preset (expected \"format\": \"{PRESET_FORMAT}\")", path=str(p))
    if d.get("version") != FILE_VERSION:
        raise PresetError(f"preset file version {d.get('version')!r} is not supported", path=str(p))
    return _preset_from_dict(d, None, "preset", str(p), False)


def user_presets(op: str | None = None, errors: list[str] | None = None) -> list[Preset]:
    """The user's presets; unreadable files raise, or are reported into ``errors`` when given."""
    out: list[Preset] = []
    base = presets_dir()
    if not base.is_dir():
        return out
    dirs = [base / op] if op else sorted(p for p in base.iterdir() if p.is_dir())
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.json")):
            try:
                out.append(load_preset_file(f))
            except PresetError as e:
                if errors is None:
                    raise
                errors.append(str(e))
    return out


def list_presets(op: str | None = None, errors: list[str] | None = None) -> list[Preset]:
    """Built-in then user presets (of ``op`` when given)."""
    b = [p for p in builtin_presets() if op is None or p.op == op]
    return b + user_presets(op, errors)


def get_preset(op: str, name: str) -> Preset:
    f = _user_preset_file(op, name) if isinstance(name, str) and name else None
    if f is not None and f.exists():
        p = load_preset_file(f)
        if p.op != op or p.name != name:
            raise PresetError(f"the file holds preset {p.op}/{p.name!r}, not {op}/{name!r}", path=str(f))
        return p
    for p in builtin_presets():
        if p.op == op and p.name == name:
            return p
    known = sorted({p.name for p in list_presets(op, errors=[])})
    hint = f"; known: {', '.join(repr(k) for k in known)}" if known else ""
    raise PresetError(f"unknown preset {name!r} for module {op}{hint}")


def save_preset(preset: Preset, overwrite: bool = False) -> Path:
    _check_name(preset.name, "preset")
    _check_op_name(preset.op)
    if any(p.op == preset.op and p.name == preset.name for p in builtin_presets()):
        raise PresetError(f"{preset.op}/{preset.name!r} is a built-in preset; choose another name")
    _validate_params(preset.op, preset.params, preset.params_version, f"preset {preset.name!r}")
    f = _user_preset_file(preset.op, preset.name)
    if f.exists() and not overwrite:
        raise PresetError(f"preset {preset.op}/{preset.name!r} exists (use overwrite to replace it)", path=str(f))
    _write_json(f, preset.to_dict())
    preset.path = str(f)
    return f


def delete_preset(op: str, name: str) -> Path:
    f = _user_preset_file(op, name)
    if not f.exists():
        if any(p.op == op and p.name == name for p in builtin_presets()):
            raise PresetError(f"{op}/{name!r} is a built-in preset and cannot be deleted")
        raise PresetError(f"unknown user preset {name!r} for module {op}")
    f.unlink()
    return f


def _write_json(path: Path, data: dict) -> None:
    from .io.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------- styles
@dataclass
class StyleItem:
    op: str
    instance: int = 0
    enabled: bool = True
    params: dict | None = None
    params_version: int | None = None
    blend: dict | None = None
    name: str = ""

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"op": self.op, "instance": self.instance, "enabled": self.enabled,
                             "name": self.name, "params_version": self.params_version, "params": self.params}
        if self.blend is not None:
            d["blend"] = self.blend
        return d


@dataclass
class Style:
    name: str
    items: list[StyleItem] = field(default_factory=list)
    description: str = ""
    builtin: bool = False
    path: str | None = None

    def to_dict(self) -> dict:
        return {"format": STYLE_FORMAT, "version": FILE_VERSION, "name": self.name,
                "description": self.description, "items": [i.to_dict() for i in self.items]}


def _style_from_dict(d: Any, path: str | None, builtin: bool) -> Style:
    if not isinstance(d, dict) or d.get("format") != STYLE_FORMAT:
        raise PresetError(f"not a pixelpipe style (expected \"format\": \"{STYLE_FORMAT}\")", path=path)
    if d.get("version") != FILE_VERSION:
        raise PresetError(f"style file version {d.get('version')!r} is not supported", path=path)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise PresetError("the style has no name", path=path)
    items = d.get("items")
    if not isinstance(items, list):
        raise PresetError(f"style {name!r}: \"items\" must be a list", path=path)
    out = []
    seen = set()
    for k, it in enumerate(items):
        where = f"style {name!r} items[{k}]"
        if not isinstance(it, dict) or not isinstance(it.get("op"), str) or not it["op"]:
            raise PresetError(f"{where} must be an object with an \"op\" name", path=path)
        inst = it.get("instance", 0)
        if not isinstance(inst, int) or isinstance(inst, bool) or not 0 <= inst <= 1000:
            raise PresetError(f"{where} ({it['op']}): instance must be an integer 0..1000", path=path)
        if (it["op"], inst) in seen:
            raise PresetError(f"{where}: {it['op']}#{inst} appears twice", path=path)
        seen.add((it["op"], inst))
        en = it.get("enabled", True)
        if not isinstance(en, bool):
            raise PresetError(f"{where} ({it['op']}): enabled must be true or false", path=path)
        params = it.get("params")
        if params is not None and not isinstance(params, dict):
            raise PresetError(f"{where} ({it['op']}): params must be an object or null", path=path)
        blend = it.get("blend")
        if blend is not None and not isinstance(blend, dict):
            raise PresetError(f"{where} ({it['op']}): blend must be an object", path=path)
        pv = it.get("params_version")
        if pv is not None and (not isinstance(pv, int) or isinstance(pv, bool)):
            raise PresetError(f"{where} ({it['op']}): params_version must be an integer", path=path)
        out.append(StyleItem(it["op"], inst, en, params, pv, blend, str(it.get("name", ""))))
    return Style(name=name, items=out, description=str(d.get("description", "")), builtin=builtin, path=path)


def builtin_styles() -> list[Style]:
    out = []
    d = _data_dir("styles")
    if d.is_dir():
        for f in sorted(d.iterdir(), key=lambda p: p.name):
            if f.name.endswith(".json"):
                out.append(_style_from_dict(json.loads(f.read_text(encoding="utf-8")), str(f), True))
    return out


def load_style_file(path: str | os.PathLike) -> Style:
    p = Path(path)
    return _style_from_dict(_read_json(p, "style"), str(p), False)


def user_styles(errors: list[str] | None = None) -> list[Style]:
    out = []
    d = styles_dir()
    if d.is_dir():
        for f in sorted(d.glob("*.json")):
            try:
                out.append(load_style_file(f))
            except PresetError as e:
                if errors is None:
                    raise
                errors.append(str(e))
    return out


def list_styles(errors: list[str] | None = None) -> list[Style]:
    return builtin_styles() + user_styles(errors)


def get_style(name: str) -> Style:
    if isinstance(name, str) and name:
        f = styles_dir() / _file_name(name)
        if f.exists():
            s = load_style_file(f)
            if s.name != name:
                raise PresetError(f"the file holds style {s.name!r}, not {name!r}", path=str(f))
            return s
    for s in builtin_styles():
        if s.name == name:
            return s
    known = sorted({s.name for s in list_styles(errors=[])})
    hint = f"; known: {', '.join(repr(k) for k in known)}" if known else " (there are none yet)"
    raise PresetError(f"unknown style {name!r}{hint}")


def save_style(style: Style, overwrite: bool = False) -> Path:
    _check_name(style.name, "style")
    if any(s.name == style.name for s in builtin_styles()):
        raise PresetError(f"{style.name!r} is a built-in style; choose another name")
    for it in style.items:
        if it.params is not None:
            _validate_params(it.op, it.params, it.params_version, f"style {style.name!r}", missing_ok=True)
    f = styles_dir() / _file_name(style.name)
    if f.exists() and not overwrite:
        raise PresetError(f"style {style.name!r} exists (use overwrite to replace it)", path=str(f))
    _write_json(f, style.to_dict())
    style.path = str(f)
    return f


def delete_style(name: str) -> Path:
    f = styles_dir() / _file_name(name)
    if not f.exists():
        if any(s.name == name for s in builtin_styles()):
            raise PresetError(f"{name!r} is a built-in style and cannot be deleted")
        raise PresetError(f"unknown user style {name!r}")
    f.unlink()
    return f


# --------------------------------------------------------------------------- applying
def _validate_params(op: str, params: dict, version: int | None, where: str, missing_ok: bool = False):
    from .modules import registry

    cls = registry().get(op)
    if cls is None:
        if missing_ok:
            return None
        raise PresetError(f"{where}: unknown module {op!r}")
    try:
        return cls.Params.from_dict(op, {**cls.Params().to_dict(), **params}, version)
    except ParamsError as e:
        raise PresetError(f"{where}: {e}") from None


def resolve_params(op: str, image: SourceImage, params: dict | None, version: int | None, where: str):
    """Module params from a (possibly partial) dict, completed with the module's defaults for ``image``."""
    from .modules import registry

    cls = registry()[op]
    base = cls().default_params(image).to_dict()
    if not params:
        return cls.Params.from_dict(op, base)
    try:
        if version is not None and version != cls.Params.VERSION:
            full = cls.Params.from_dict(op, params, version).to_dict()  # migrate first
            return cls.Params.from_dict(op, {**base, **{k: full[k] for k in params if k in full}})
        return cls.Params.from_dict(op, {**base, **params})
    except ParamsError as e:
        raise PresetError(f"{where}: {e}") from None


def _set_blend(inst, blend: dict | None) -> None:
    if blend is not None:
        inst.blend = dict(blend)


def apply_preset(edit, image: SourceImage, op_label: str, name: str):
    """Apply preset ``name`` of the module to instance ``op_label`` (``op`` or ``op#N``)."""
    from .modules import registry
    from .pipe.history import ModuleInstance, parse_label

    op, n = parse_label(op_label)
    if op not in registry():
        raise PresetError(f"unknown module {op!r}")
    preset = get_preset(op, name)
    params = resolve_params(op, image, preset.params, preset.params_version, f"preset {op}/{name!r}")
    inst = edit.find(op, n)
    if inst is None:
        if n != 0:
            raise PresetError(f"the edit has no module instance {op_label}; add it first")
        inst = ModuleInstance(op, 0, True, None)
        edit.instances.append(inst)
    inst.params = params
    inst.enabled = preset.enabled
    _set_blend(inst, preset.blend)
    return inst


def apply_style(edit, image: SourceImage, name: str | Style):
    """Apply a style to ``edit``: overwrite the instances it names, create the missing ones."""
    from .modules import registry
    from .pipe.history import ModuleInstance

    style = name if isinstance(name, Style) else get_style(name)
    reg = registry()
    # validate everything first, so a bad item leaves the edit untouched
    plan = []
    for it in style.items:
        if it.op not in reg:
            edit.notices.append(f"style {style.name!r}: module {it.op} is not available in this version and "
                                "was skipped")
            continue
        params = resolve_params(it.op, image, it.params, it.params_version,
                                f"style {style.name!r} ({it.op}#{it.instance})")
        plan.append((it, params))
    mapping: dict[tuple[str, int], int] = {}
    for it, params in plan:
        inst = edit.find(it.op, it.instance)
        if inst is None:
            if it.instance == 0 and (it.op, 0) in edit.order:
                inst = ModuleInstance(it.op, 0, True, None)
                edit.instances.append(inst)
            else:
                if not any(i.op == it.op for i in edit.instances) and (it.op, 0) in edit.order:
                    inst = ModuleInstance(it.op, 0, True, None)
                    edit.instances.append(inst)
                else:
                    inst = edit.add_instance(it.op)
        mapping[(it.op, it.instance)] = inst.instance
        inst.params = params
        inst.enabled = it.enabled
        if it.name:
            inst.name = it.name
        _set_blend(inst, it.blend)
    return mapping


def auto_apply_presets(edit, image: SourceImage, workflow: str | None) -> list[Preset]:
    """Apply the auto-apply presets matching ``image`` (and ``workflow``); returns those applied."""
    from .modules import registry
    from .pipe.history import ModuleInstance

    reg = registry()
    best: dict[str, Preset] = {}
    errors: list[str] = []
    for p in list_presets(errors=errors):
        if p.op not in reg or not p.applies_to(image, workflow):
            continue
        key = (not p.builtin, p.match.specificity())
        cur = best.get(p.op)
        if cur is None or key >= (not cur.builtin, cur.match.specificity()):
            best[p.op] = p
    for e in errors:
        edit.notices.append(f"preset skipped: {e}")
    applied = []
    for op, p in best.items():
        try:
            params = resolve_params(op, image, p.params, p.params_version, f"preset {op}/{p.name!r}")
        except PresetError as e:
            edit.notices.append(f"auto-applied preset skipped: {e}")
            continue
        inst = edit.find(op, 0)
        if inst is None:
            inst = ModuleInstance(op, 0, True, None)
            edit.instances.append(inst)
        inst.params, inst.enabled = params, p.enabled
        _set_blend(inst, p.blend)
        applied.append(p)
    return applied


# --------------------------------------------------------------------------- from an edit
def preset_from_edit(edit, op_label: str, name: str, *, description: str = "", auto_apply: bool = False,
                     match: Match | None = None, workflows: list[str] | None = None,
                     image: SourceImage | None = None) -> Preset:
    from .modules import registry

    inst = edit.get(op_label)
    cls = registry()[inst.op]
    if inst.params is not None:
        params = inst.params.to_dict()
    elif image is not None:
        params = cls().default_params(image).to_dict()
    else:
        params = {}
    return Preset(op=inst.op, name=_check_name(name, "preset"), params=params,
                  params_version=cls.Params.VERSION, enabled=inst.enabled,
                  blend=getattr(inst, "blend", None), auto_apply=auto_apply, match=match or Match(),
                  workflows=workflows, description=description)


def style_from_edit(edit, name: str, *, ops: Iterable[str] | None = None, description: str = "",
                    image: SourceImage | None = None) -> Style:
    """A style of the edit's instances: those named in ``ops`` (``op`` or ``op#N``), else every
    instance of a module flagged "include in styles"."""
    from .modules import registry
    from .modules.base import Flags
    from .pipe.history import parse_label

    reg = registry()
    wanted = None
    if ops is not None:
        wanted = set()
        for lab in ops:
            op, n = parse_label(lab)
            if op not in reg:
                raise PresetError(f"unknown module {op!r}")
            wanted.add((op, n) if "#" in lab else (op, None))
    items = []
    for inst in edit.instances:
        cls = reg.get(inst.op)
        if cls is None:
            continue
        if wanted is None:
            if not cls.flags & Flags.INCLUDE_IN_STYLES:
                continue
        elif (inst.op, inst.instance) not in wanted and (inst.op, None) not in wanted:
            continue
        if inst.params is not None:
            params = inst.params.to_dict()
        elif image is not None:
            params = cls().default_params(image).to_dict()
        else:
            params = None
        items.append(StyleItem(inst.op, inst.instance, inst.enabled, params, cls.Params.VERSION,
                               getattr(inst, "blend", None), inst.name))
    if wanted is not None:
        have = {(i.op, i.instance) for i in items} | {(i.op, None) for i in items}
        missing = [f"{o}#{n}" if n else o for o, n in wanted if (o, n) not in have]
        if missing:
            raise PresetError(f"the edit has no module instance {', '.join(sorted(missing))}")
    if not items:
        raise PresetError("the style would be empty (no module of the edit is included)")
    return Style(name=_check_name(name, "style"), items=items, description=description)
