"""Output presets and output names of a batch export.

A preset is one output per input: format, size, quality, bit depth and
(optionally) its own name pattern or suffix. Several presets make several
outputs per input in one pass (the raw is decoded once). Presets come from
``--preset NAME[:key=value,...]`` (built-in names from
``pixelpipe/data/export_presets.toml``) and ``--presets FILE.toml`` (the same
layout); the command's own ``--width``/``--height``/``--hq``/``--bpp``/
``--quality``/``--format`` fill the keys a preset leaves unset. Without any
preset the command's options make the one output.

OUTPUT is either a file name (one input file: exactly that file), a pattern
with darktable variables (``out/$(EXIF.YEAR)/$(FILE.NAME)``, the extension
is the preset's), or a folder (``OUTPUT/$(FILE.SUBFOLDER)/$(FILE.NAME)``:
files found in a folder keep their subfolders). Standard library only.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import OutputError
from . import variables

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: output extension -> format
EXT_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".tif": "tif", ".tiff": "tif"}
FORMAT_EXT = {"jpg": ".jpg", "png": ".png", "tif": ".tif"}
FORMAT_BPP = {"jpg": (8,), "png": (8, 16), "tif": (8, 16, 32)}
_FORMAT_ALIAS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "tif": "tif", "tiff": "tif"}
PRESET_KEYS = ("format", "width", "height", "hq", "bpp", "quality", "pattern", "suffix")


@dataclass
class OutputPreset:
    """One output per input file."""

    name: str = "default"
    format: str = "jpg"
    width: int = 0          # 0: no limit
    height: int = 0
    hq: bool = False
    bpp: int = 8
    quality: int = 95
    pattern: str | None = None
    suffix: str = ""
    #: filled by :func:`plan_outputs`: the full pattern (absolute or relative to cwd), and
    #: whether it is a literal file name (the single-file form) rather than a pattern
    target: str = ""
    literal: bool = False

    @property
    def ext(self) -> str:
        return FORMAT_EXT[self.format]

    def recipe(self) -> dict[str, Any]:
        """What changes the written image (the output-name fields do not)."""
        return {"format": self.format, "width": self.width or 0, "height": self.height or 0,
                "hq": bool(self.hq), "bpp": self.bpp, "quality": self.quality if self.format == "jpg" else None}

    def check(self) -> "OutputPreset":
        where = f"output preset {self.name!r}"
        if self.format not in FORMAT_BPP:
            raise OutputError(f"{where}: unknown format {self.format!r} (use jpg, png or tif)")
        if self.bpp not in FORMAT_BPP[self.format]:
            allowed = "/".join(str(b) for b in FORMAT_BPP[self.format])
            kind = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF"}[self.format]
            raise OutputError(f"{where}: {kind} supports {allowed} bits per sample, not {self.bpp}")
        if not 1 <= int(self.quality) <= 100:
            raise OutputError(f"{where}: JPEG quality must be 1..100, not {self.quality}")
        if self.width < 0 or self.height < 0:
            raise OutputError(f"{where}: width and height must be positive")
        return self


def builtin_presets() -> dict[str, dict]:
    text = resources.files("pixelpipe").joinpath("data/export_presets.toml").read_text(encoding="utf-8")
    return dict(tomllib.loads(text).get("preset", {}))


def load_preset_file(path: str) -> dict[str, dict]:
    """``[preset.NAME]`` tables of a TOML file, in file order."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise OutputError("preset file not found", path=path) from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise OutputError(f"cannot read preset file: {e}", path=path) from None
    table = doc.get("preset")
    if not isinstance(table, dict) or not table:
        raise OutputError("no [preset.NAME] tables", path=path)
    for name, body in table.items():
        if not isinstance(body, dict):
            raise OutputError(f"preset {name!r} must be a table", path=path)
        _check_keys(name, body, where=path)
    return dict(table)


def _check_keys(name: str, body: dict, where: str | None = None) -> None:
    bad = [k for k in body if k not in PRESET_KEYS]
    if bad:
        raise OutputError(f"output preset {name!r}: unknown key {bad[0]!r} (known: {', '.join(PRESET_KEYS)})",
                          path=where)


def _coerce(name: str, key: str, value: Any) -> Any:
    try:
        if key in ("width", "height", "bpp", "quality"):
            return int(value)
        if key == "hq":
            if isinstance(value, str):
                v = value.strip().lower()
                if v not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return v in ("1", "true", "yes", "on")
            return bool(value)
        if key == "format":
            f = _FORMAT_ALIAS.get(str(value).lower().lstrip("."))
            if f is None:
                raise ValueError(value)
            return f
        return str(value)
    except (TypeError, ValueError):
        raise OutputError(f"output preset {name!r}: bad value {value!r} for {key}") from None


def parse_preset_option(spec: str, known: dict[str, dict]) -> tuple[str, dict]:
    """``NAME`` or ``NAME:key=value,key=value`` -> (name, keys). A known NAME is the base."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", name):
        raise OutputError(f"--preset {spec!r}: a preset name is letters, digits, _ . + - (e.g. web:width=1024)")
    body = dict(known.get(name, {}))
    if not rest and name not in known:
        raise OutputError(f"--preset {name!r}: no such preset (built-in: {', '.join(builtin_presets())}); "
                          "define one with NAME:key=value,... or --presets FILE.toml")
    # commas separate keys; a comma inside a value (a pattern) stays when no "key=" follows it
    for item in re.split(r",(?=\s*[a-z_]+\s*=)", rest) if rest else []:
        k, eq, v = item.partition("=")
        k = k.strip()
        if not eq:
            raise OutputError(f"--preset {spec!r}: expected key=value, got {item!r}")
        _check_keys(name, {k: v})
        body[k] = v
    return name, body


def make_presets(specs: list[str], files: list[str], cli: dict[str, Any]) -> list[OutputPreset]:
    """The output presets of a command: files first, then ``--preset`` options; ``cli`` values
    (None when not given) fill what a preset leaves unset."""
    known = builtin_presets()
    chosen: list[tuple[str, dict]] = []
    for path in files:
        table = load_preset_file(path)
        known.update(table)
        chosen += list(table.items())
    for spec in specs:
        chosen.append(parse_preset_option(spec, known))
    if not chosen:
        chosen = [("default", {})]
    names = [n for n, _ in chosen]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise OutputError(f"output preset {dup!r} is given twice")
    out = []
    for name, body in chosen:
        kw: dict[str, Any] = {}
        for k in PRESET_KEYS:
            v = body.get(k)
            if v is None:
                v = cli.get(k)
            if v is not None:
                kw[k] = _coerce(name, k, v)
        out.append(OutputPreset(name=name, **kw))  # checked by plan_outputs, once the format is known
    return out


# --------------------------------------------------------------------------- output names

def output_mode(inputs: list[str], output: str, cwd: str) -> str:
    """"single" (one file in, OUTPUT a file name), "pattern" (OUTPUT has variables) or "folder"."""
    if "$(" in output:
        return "pattern"
    full = os.path.join(cwd, output)
    ext = os.path.splitext(output)[1].lower()
    if ext in EXT_FORMAT and not os.path.isdir(full):
        if len(inputs) == 1 and not os.path.isdir(os.path.join(cwd, inputs[0])):
            return "single"
        raise OutputError("several inputs need an output folder or a pattern, not a file name", path=output)
    return "folder"


def plan_outputs(mode: str, output: str, presets: list[OutputPreset], cwd: str) -> list[OutputPreset]:
    """Set each preset's ``target`` pattern (without extension, except in the single-file form)."""
    if mode == "single":
        if len(presets) > 1 or presets[0].name != "default":
            raise OutputError("--preset needs an output folder or pattern, not a file name", path=output)
        p = presets[0]
        p.format = EXT_FORMAT[os.path.splitext(output)[1].lower()]
        p.check()
        p.target, p.literal = output, True
        return presets
    if mode == "pattern":
        base, ext = os.path.splitext(output)
        if ext.lower() in EXT_FORMAT:  # OUT/$(FILE_NAME).png: the extension is the default format
            for p in presets:
                if p.name == "default":
                    p.format = EXT_FORMAT[ext.lower()]
        else:
            base = output
        variables.variables_in(base)  # syntax and names, before any work
        folder = os.path.dirname(base)
    else:
        base = os.path.join(output, "$(FILE.SUBFOLDER)", "$(FILE.NAME)")
        folder = output
    for p in presets:
        if p.pattern:
            variables.variables_in(p.pattern)
            p.target = p.pattern if os.path.isabs(p.pattern) else os.path.join(folder, p.pattern)
        else:
            p.target = base + p.suffix
    # presets that would write the same names: in a folder, one subfolder per preset
    by_name: dict[tuple[str, str], list[OutputPreset]] = {}
    for p in presets:
        by_name.setdefault((p.target, p.ext), []).append(p)
    for (target, _), group in by_name.items():
        if len(group) > 1:
            if mode != "folder":
                raise OutputError(f"output presets {', '.join(p.name for p in group)} would write the same "
                                  "files; give each a pattern or suffix, or use $(PRESET) in the pattern",
                                  path=output)
            for p in group:
                if not p.pattern:
                    p.target = os.path.join(output, p.name, "$(FILE.SUBFOLDER)", "$(FILE.NAME)") + p.suffix
    for p in presets:
        p.check()
    return presets


@dataclass
class Resolved:
    """One output of one input: where it goes."""

    preset: str
    display: str   # as the user would write it (relative when OUTPUT was)
    path: str      # absolute


def resolve(preset: OutputPreset, ctx: variables.Context, cwd: str) -> Resolved:
    """The output file of ``preset`` for the input in ``ctx``."""
    if preset.literal:
        name = preset.target
    else:
        ctx.preset = preset.name
        ctx.max_width, ctx.max_height = preset.width or 0, preset.height or 0
        name = os.path.normpath(variables.expand(preset.target, ctx))
        if not os.path.basename(name) or os.path.basename(name) in (".", ".."):
            raise OutputError(f"the output pattern gives an empty file name ({name!r})", path=preset.target)
        name += preset.ext
    return Resolved(preset.name, name, os.path.normpath(os.path.join(cwd, name)))


__all__ = ["OutputPreset", "make_presets", "output_mode", "plan_outputs", "resolve", "Resolved",
           "builtin_presets", "EXT_FORMAT"]
