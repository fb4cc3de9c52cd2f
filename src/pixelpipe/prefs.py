"""User preferences: ``prefs.toml`` in :func:`pixelpipe.userdirs.config_dir`.

darktable keeps its AI and object-mask settings in ``darktablerc`` under
``plugins/ai/...`` and ``plugins/darkroom/masks/object/...``; pixelpipe keeps
the same keys, in its own dotted namespace (``ai.enabled``,
``mask.object.threshold``, ...), in a TOML file.

Every key is declared below with a type, a default and a range; a value that
does not fit and a key that is not declared raise :class:`PrefsError`. A few
keys are templates with a variable part (``ai.models.active.<task>``,
``ai.tile_cache.<model>.<scale>.<provider>``).

The file is read on every call (it is tiny) and written atomically (a
temporary file in the same folder, then a rename). Nothing here touches the
network or imports ONNX Runtime.
"""
from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pixelpipe import userdirs
from pixelpipe.errors import ParamsError

try:  # Python 3.11+
    import tomllib as _toml_reader
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml_reader  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml_reader = None  # type: ignore[assignment]


class PrefsError(ParamsError):
    """An unknown preference key, a value of the wrong type or out of range, or an unreadable prefs.toml."""


#: The AI tasks (capability slots), as darktable names them.
TASKS: tuple[str, ...] = ("mask", "denoise", "rawdenoise", "upscale")
#: Execution providers a user can ask for; ``auto`` picks one.
PROVIDERS: tuple[str, ...] = (
    "auto", "cpu", "cuda", "tensorrt", "rocm", "migraphx", "openvino", "coreml", "directml",
)
#: A model id: darktable-ai's ``<task>-<model>[-<size>]``; no dots, no slashes.
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _check_repo(v: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", v) or ".." in v:
        return "must be OWNER/NAME of a GitHub repository"
    return None


def _check_version(v: str) -> str | None:
    if not re.fullmatch(r"\d+\.\d+\.\d+", v):
        return "must be a version X.Y.Z (e.g. 5.6.0)"
    return None


def _check_url(v: str) -> str | None:
    if not re.fullmatch(r"https?://[^\s]+", v):
        return "must be an http:// or https:// URL"
    return None


def _check_active(v: str) -> str | None:
    if v == "none" or MODEL_ID_RE.match(v):
        return None
    return "must be a model id or 'none'"


@dataclass(frozen=True)
class Pref:
    """One declared preference (or a template of keys)."""

    key: str
    kind: str  # bool | int | float | str | enum | path
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    check: Callable[[str], str | None] | None = None

    @property
    def is_template(self) -> bool:
        return "<" in self.key

    def describe_range(self) -> str:
        if self.kind == "bool":
            return "true|false"
        if self.kind == "enum":
            return "|".join(self.choices)
        if self.lo is not None or self.hi is not None:
            return f"{self.kind} {_fmt_num(self.lo)}..{_fmt_num(self.hi)}"
        return self.kind


def _fmt_num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


_MiB = 1 << 20

PREFS: tuple[Pref, ...] = (
    Pref("ai.enabled", "bool", False,
         "Use AI features (opt-in). While false ONNX Runtime is never imported."),
    Pref("ai.provider", "enum", "auto",
         "ONNX Runtime execution provider; auto tries what this build offers, then CPU.",
         choices=PROVIDERS),
    Pref("ai.repository", "str", "darktable-org/darktable-ai",
         "GitHub repository whose releases hold the model packages.", check=_check_repo),
    Pref("ai.compat_version", "str", "5.6.0",
         "darktable version whose model release is used (release tag X.Y.Z or X.Y.Z.N).",
         check=_check_version),
    Pref("ai.models_dir", "path", "",
         "Folder of installed models; empty = <data dir>/models."),
    Pref("ai.api_base", "str", "https://api.github.com",
         "Base URL of the GitHub releases API.", check=_check_url),
    Pref("ai.download_base", "str", "https://github.com",
         "Base URL of release downloads (<base>/<repo>/releases/download/<tag>/<asset>).",
         check=_check_url),
    Pref("ai.max_download_mb", "int", 4096,
         "Largest model archive a download or install accepts (MiB).", lo=1, hi=1 << 20),
    Pref("ai.max_unpacked_mb", "int", 8192,
         "Largest total uncompressed size of a model package (MiB).", lo=1, hi=1 << 20),
    Pref("ai.models.active.<task>", "str", None,
         "Active model of a task; 'none' disables the task; unset = first installed default model.",
         check=_check_active),
    Pref("ai.tile_cache.<model>.<scale>.<provider>", "int", None,
         "Last tile size that worked for this model, scale and provider.", lo=16, hi=16384),
    Pref("mask.object.threshold", "float", 0.5,
         "Object mask: probability threshold.", lo=0.0, hi=1.0),
    Pref("mask.object.refine_passes", "int", 2,
         "Object mask: refinement passes (previous mask fed back).", lo=0, hi=10),
    Pref("mask.object.morph_radius", "int", 1,
         "Object mask: morphological open/close radius.", lo=0, hi=5),
    Pref("mask.object.edge_refine", "float", 0.5,
         "Object mask: strength of the edge-aware threshold.", lo=0.0, hi=1.0),
    Pref("mask.object.cleanup", "int", 10,
         "Object mask: vectorisation clean-up (speckle removal).", lo=0, hi=100),
    Pref("mask.object.smoothing", "float", 0.5,
         "Object mask: vectorisation smoothing.", lo=0.0, hi=1.3),
    Pref("mask.object.persist_model", "bool", False,
         "Object mask: keep the model loaded between masks."),
)

_SCALE_RE = r"[1-9][0-9]?"
_TEMPLATE_PARTS = {
    "<task>": "(" + "|".join(TASKS) + ")",
    "<model>": MODEL_ID_RE.pattern[1:-1],
    "<scale>": _SCALE_RE,
    "<provider>": "(" + "|".join(p for p in PROVIDERS if p != "auto") + ")",
}


def _template_regex(key: str) -> re.Pattern[str]:
    out = ""
    for part in key.split("."):
        out += ("\\." if out else "") + _TEMPLATE_PARTS.get(part, re.escape(part))
    return re.compile("^" + out + "$")


_BY_KEY = {p.key: p for p in PREFS if not p.is_template}
_TEMPLATES = [(p, _template_regex(p.key)) for p in PREFS if p.is_template]


def path() -> Path:
    """The preferences file."""
    return userdirs.config_dir() / "prefs.toml"


def describe(key: str) -> Pref:
    """The declaration of ``key``; :class:`PrefsError` if it is unknown."""
    p = _BY_KEY.get(key)
    if p is not None:
        return p
    for p, rx in _TEMPLATES:
        if rx.match(key):
            return p
    hint = ""
    close = [k for k in list(_BY_KEY) + [p.key for p, _ in _TEMPLATES]
             if k.split(".")[0] == key.split(".")[0]]
    if close:
        hint = " (known keys: " + ", ".join(close) + ")"
    raise PrefsError(f"unknown preference key {key!r}{hint}; see 'pixelpipe prefs list'")


def parse_value(key: str, value: Any) -> Any:
    """``value`` (a string from the command line, or a TOML value) as the key's type; validated."""
    p = describe(key)
    return _coerce(p, key, value)


def _bad(key: str, value: Any, why: str) -> PrefsError:
    return PrefsError(f"invalid value {value!r} for {key}: {why}")


def _coerce(p: Pref, key: str, value: Any) -> Any:
    if p.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _bad(key, value, "expected true or false")
    if p.kind in ("int", "float"):
        if isinstance(value, bool):
            raise _bad(key, value, f"expected {'an integer' if p.kind == 'int' else 'a number'}")
        v: int | float
        try:
            if p.kind == "int":
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                    v = int(value)
                else:
                    v = int(str(value).strip(), 10) if isinstance(value, str) else int(value)
            else:
                v = float(value)
        except (TypeError, ValueError):
            raise _bad(key, value, f"expected {'an integer' if p.kind == 'int' else 'a number'}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise _bad(key, value, "expected a finite number")
        if (p.lo is not None and v < p.lo) or (p.hi is not None and v > p.hi):
            raise _bad(key, value, f"out of range {_fmt_num(p.lo)}..{_fmt_num(p.hi)}")
        return v
    if not isinstance(value, str):
        raise _bad(key, value, "expected a string")
    v = value.strip()
    if p.kind == "enum":
        v = v.lower()
        if v not in p.choices:
            raise _bad(key, value, "expected one of " + ", ".join(p.choices))
        return v
    if p.kind == "path":
        return os.path.abspath(os.path.expanduser(v)) if v else ""
    if p.check is not None:
        why = p.check(v)
        if why:
            raise _bad(key, value, why)
    return v


# --------------------------------------------------------------------------- file

def _flatten(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            yield from _flatten(v, key)
        else:
            yield key, v


def _unflatten(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key in sorted(flat):
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):  # a scalar and a table of the same name: keep the scalar
                break
            node = nxt
        else:
            node[parts[-1]] = flat[key]
    return out


_warned_unknown: set[tuple[str, str]] = set()


def _read() -> tuple[dict[str, Any], dict[str, Any]]:
    """(known values, unknown keys kept as they are) from the file; {} if absent."""
    f = path()
    try:
        data = f.read_bytes()
    except FileNotFoundError:
        return {}, {}
    except OSError as e:
        raise PrefsError(f"cannot read preferences: {e.strerror}", path=f) from None
    if _toml_reader is None:  # pragma: no cover
        raise PrefsError("reading TOML needs Python 3.11 or the 'tomli' package", path=f)
    try:
        doc = _toml_reader.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise PrefsError(f"not valid TOML ({e}); fix or delete the file", path=f) from None
    known: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, value in _flatten(doc):
        try:
            p = describe(key)
        except PrefsError:
            unknown[key] = value
            if (str(f), key) not in _warned_unknown:
                _warned_unknown.add((str(f), key))
                print(f"pixelpipe: warning: {f}: unknown preference key {key!r} ignored",
                      file=sys.stderr)
            continue
        try:
            known[key] = _coerce(p, key, value)
        except PrefsError as e:
            raise PrefsError(f"{e}; fix it with 'pixelpipe prefs set' or 'pixelpipe prefs unset'",
                             path=f) from None
    return known, unknown


def _write(values: dict[str, Any], unknown: dict[str, Any]) -> None:
    import tomli_w

    f = path()
    f.parent.mkdir(parents=True, exist_ok=True)
    doc = _unflatten({**unknown, **values})
    text = "# pixelpipe preferences; edit with 'pixelpipe prefs set KEY VALUE'\n" + tomli_w.dumps(doc)
    fd, tmp = tempfile.mkstemp(prefix=".prefs-", suffix=".toml.tmp", dir=f.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, f)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------- API

def load() -> dict[str, Any]:
    """The values set in the file (validated), without defaults."""
    return _read()[0]


def get(key: str) -> Any:
    """The value of ``key``: the file's, else the default (``None`` for unset template keys)."""
    p = describe(key)
    values = _read()[0]
    return values[key] if key in values else p.default


def is_set(key: str) -> bool:
    describe(key)
    return key in _read()[0]


def put(key: str, value: Any) -> Any:
    """Validate ``value`` (string or typed) and store it; returns the typed value."""
    v = parse_value(key, value)
    values, unknown = _read()
    values[key] = v
    _write(values, unknown)
    return v


def unset(key: str) -> bool:
    """Remove ``key`` from the file (back to its default); True if it was set."""
    describe(key)
    values, unknown = _read()
    if key not in values:
        return False
    del values[key]
    _write(values, unknown)
    return True


def unset_matching(pred: Callable[[str], bool]) -> int:
    """Remove every set key for which ``pred(key)`` is true; returns how many."""
    values, unknown = _read()
    gone = [k for k in values if pred(k)]
    if gone:
        for k in gone:
            del values[k]
        _write(values, unknown)
    return len(gone)


def items() -> list[tuple[str, Any, bool]]:
    """(key, value, is_set) for every plain key and every template key set in the file."""
    values = _read()[0]
    out = [(p.key, values.get(p.key, p.default), p.key in values) for p in PREFS if not p.is_template]
    out += sorted((k, v, True) for k, v in values.items() if k not in _BY_KEY)
    return out


def format_value(value: Any) -> str:
    """A value as the CLI prints it (``true``/``false``, numbers, bare strings)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
