"""darktable's export variables: ``$(FILE_NAME)``, ``$(EXIF.YEAR)``, ``$(SEQUENCE)``, ...

The names and the bash-like string operations follow darktable's
``src/common/variables.c`` (see its manual page "variables"), limited to what
makes sense without a library database: file name/folder/extension, the
capture date and time parts, camera maker/model/lens, exposure values, the
export date, sizes (sensor, after crop, export, maximum), sequence, user
folders. Both spellings darktable accepts are understood (``$(FILE.NAME)``
and the older ``$(FILE_NAME)``). pixelpipe adds ``$(PRESET)`` (the output
preset's name) and ``$(FILE.SUBFOLDER)`` (the file's folder below the folder
given on the command line, empty for files named directly).

Operations, as darktable: ``$(var-default)``, ``$(var+alt)``,
``$(var:offset[:length])``, ``$(var#prefix)``, ``$(var%suffix)``,
``$(var/pattern/repl)``, ``$(var//pattern/repl)``, ``$(var/#pattern/repl)``,
``$(var/%pattern/repl)``, ``$(var^)``, ``$(var^^)``, ``$(var,)``, ``$(var,,)``.

Unlike darktable an unknown variable is an error (a typo would otherwise
silently empty a part of every file name). A ``/`` inside a value that is not
a folder (a lens name, an exposure time) becomes ``_`` so values never add
folders. This module uses only the standard library: the command line plans
a batch before any heavy import.
"""
from __future__ import annotations

import datetime as _dt
import getpass
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import OutputError

#: variables whose values need the decoded image (EXIF) or its planned sizes
IMAGE_VARIABLES = frozenset({
    "EXIF.YEAR", "EXIF.YEAR.SHORT", "EXIF.MONTH", "EXIF.MONTH.LONG", "EXIF.MONTH.SHORT", "EXIF.DAY",
    "EXIF.HOUR", "EXIF.MINUTE", "EXIF.SECOND", "EXIF.MSEC", "EXIF.DATE", "EXIF.DATE.REGIONAL",
    "EXIF.TIME.REGIONAL", "EXIF.ISO", "EXIF.EXPOSURE", "EXIF.EXPOSURE.BIAS", "EXIF.APERTURE",
    "EXIF.FOCAL.LENGTH", "MAKER", "MODEL", "LENS", "WIDTH.SENSOR", "HEIGHT.SENSOR", "WIDTH.RAW",
    "HEIGHT.RAW", "WIDTH.CROP", "HEIGHT.CROP", "WIDTH.EXPORT", "HEIGHT.EXPORT",
})

#: values that are folders: their "/" is kept
FOLDER_VARIABLES = frozenset({"FILE.FOLDER", "FILE.DIRECTORY", "FILE.SUBFOLDER", "FOLDER.HOME",
                              "FOLDER.PICTURES", "FOLDER.DESKTOP"})

#: every spelling -> canonical name (darktable's aliases, longest match wins)
_ALIASES: dict[str, str] = {}


def _names(canonical: str, *aliases: str) -> None:
    _ALIASES[canonical] = canonical
    for a in aliases:
        _ALIASES[a] = canonical


for _c, *_a in (
    ("YEAR", "DATE.LONG_YEAR"), ("YEAR.SHORT", "SHORT_YEAR", "DATE.SHORT_YEAR"),
    ("MONTH", "DATE.MONTH"), ("MONTH.LONG", "DATE.LONG_MONTH"), ("MONTH.SHORT", "DATE.SHORT_MONTH"),
    ("DAY", "DATE.DAY"), ("HOUR", "DATE.HOUR"), ("HOUR.AMPM", "DATE.HOUR_AMPM"),
    ("MINUTE", "DATE.MINUTE"), ("SECOND", "DATE.SECOND"), ("MSEC",), ("DATE",),
    ("EXIF.YEAR", "EXIF_YEAR", "EXIF.DATE.LONG_YEAR"), ("EXIF.YEAR.SHORT", "EXIF.DATE.SHORT_YEAR"),
    ("EXIF.MONTH", "EXIF_MONTH", "EXIF.DATE.MONTH"), ("EXIF.MONTH.LONG", "EXIF.DATE.LONG_MONTH"),
    ("EXIF.MONTH.SHORT", "EXIF.DATE.SHORT_MONTH"), ("EXIF.DAY", "EXIF_DAY", "EXIF.DATE.DAY"),
    ("EXIF.HOUR", "EXIF_HOUR", "EXIF.DATE.HOUR"), ("EXIF.MINUTE", "EXIF_MINUTE", "EXIF.DATE.MINUTE"),
    ("EXIF.SECOND", "EXIF_SECOND", "EXIF.DATE.SECOND"), ("EXIF.MSEC", "EXIF_MSEC"),
    ("EXIF.DATE", "EXIF_DATE"), ("EXIF.DATE.REGIONAL",), ("EXIF.TIME.REGIONAL",),
    ("EXIF.ISO", "EXIF_ISO"), ("EXIF.EXPOSURE", "EXIF_EXPOSURE"),
    ("EXIF.EXPOSURE.BIAS", "EXIF_EXPOSURE_BIAS"), ("EXIF.APERTURE", "EXIF_APERTURE"),
    ("EXIF.FOCAL.LENGTH", "EXIF_FOCAL_LENGTH"),
    ("MAKER", "EXIF.MAKER"), ("MODEL", "EXIF.MODEL"), ("LENS", "EXIF.LENS"),
    ("VERSION",), ("VERSION.IF_MULTI", "VERSION_IF_MULTI"), ("JOBCODE",),
    ("ROLL.NAME", "ROLL_NAME"), ("FILE.FOLDER", "FILE_FOLDER"), ("FILE.DIRECTORY", "FILE_DIRECTORY"),
    ("FILE.NAME", "FILE_NAME", "IMAGE.BASENAME"), ("IMAGE.FILENAME",),
    ("FILE.EXTENSION", "FILE_EXTENSION"), ("FILE.SUBFOLDER", "FILE_SUBFOLDER"),
    ("SEQUENCE",), ("USERNAME",), ("FOLDER.HOME", "HOME_FOLDER", "HOME"),
    ("FOLDER.PICTURES", "PICTURES_FOLDER"), ("FOLDER.DESKTOP", "DESKTOP_FOLDER", "DESKTOP"),
    ("WIDTH.MAX", "MAX_WIDTH"), ("HEIGHT.MAX", "MAX_HEIGHT"),
    ("WIDTH.SENSOR", "SENSOR_WIDTH"), ("HEIGHT.SENSOR", "SENSOR_HEIGHT"),
    ("WIDTH.RAW", "RAW_WIDTH"), ("HEIGHT.RAW", "RAW_HEIGHT"),
    ("WIDTH.CROP", "CROP_WIDTH"), ("HEIGHT.CROP", "CROP_HEIGHT"),
    ("WIDTH.EXPORT", "EXPORT_WIDTH"), ("HEIGHT.EXPORT", "EXPORT_HEIGHT"),
    ("PRESET",),
):
    _names(_c, *_a)

_BY_LENGTH = sorted(_ALIASES, key=len, reverse=True)
_MONTHS_LONG = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December"]


@dataclass
class Context:
    """What the variables are computed from (one input file, one output preset)."""

    path: str                      # the input file (absolute)
    sequence: int = 1              # 1-based position in the batch
    subfolder: str = ""            # folder below the command-line folder it was found in
    preset: str = ""
    now: _dt.datetime = field(default_factory=_dt.datetime.now)
    max_width: int = 0
    max_height: int = 0
    exif: dict[str, Any] | None = None          # SourceImage.exif (None: not decoded yet)
    sensor_size: tuple[int, int] | None = None  # decoded image size
    crop_size: tuple[int, int] | None = None    # after the pipe's crops/rotation, before resizing
    export_size: tuple[int, int] | None = None  # the written image


def uses_image(pattern: str) -> bool:
    """Whether ``pattern`` needs the decoded image (EXIF values or sizes)."""
    return bool(variables_in(pattern) & IMAGE_VARIABLES)


def variables_in(pattern: str) -> set[str]:
    """Canonical names of the variables ``pattern`` uses (OutputError for unknown ones)."""
    found: set[str] = set()
    expand(pattern, None, _collect=found)
    return found


def expand(pattern: str, ctx: Context | None, *, _collect: set | None = None) -> str:
    """``pattern`` with every ``$(...)`` replaced; ``ctx=None`` only checks the syntax."""
    p = _Parser(pattern, ctx, _collect)
    out = p.text(stop="")
    if p.i < len(pattern):  # an unbalanced ")" is literal text, as in darktable
        out += pattern[p.i:]
    return out


class _Parser:
    def __init__(self, s: str, ctx: Context | None, collect: set | None):
        self.s, self.i, self.ctx, self.collect = s, 0, ctx, collect

    def error(self, msg: str) -> OutputError:
        return OutputError(f"output pattern {self.s!r}: {msg}")

    def text(self, stop: str) -> str:
        out = []
        s = self.s
        while self.i < len(s):
            ch = s[self.i]
            if stop and ch in stop:
                break
            if s.startswith("$(", self.i):
                self.i += 2
                out.append(self.variable())
            else:
                out.append(ch)
                self.i += 1
        return "".join(out)

    def expect(self, ch: str) -> None:
        if self.i >= len(self.s) or self.s[self.i] != ch:
            raise self.error(f"expected {ch!r} at position {self.i}")
        self.i += 1

    def variable(self) -> str:
        s, start = self.s, self.i
        name = next((n for n in _BY_LENGTH if s.startswith(n, start)), None)
        if name is None:
            word = re.match(r"[A-Za-z0-9_.]*", s[start:]).group(0)
            raise self.error(f"unknown variable $({word}); see `pixelpipe export --help-variables`")
        canonical = _ALIASES[name]
        self.i += len(name)
        digits, first = 4, 1
        if canonical == "SEQUENCE":
            m = re.match(r"\[(\d+)(?:,(\d+))?\]|(\d)", s[self.i:])
            if m:
                if m.group(3):
                    digits = int(m.group(3))
                else:
                    digits = int(m.group(1))
                    first = int(m.group(2)) if m.group(2) else 1
                self.i += len(m.group(0))
        if self.i < len(s) and s[self.i] not in "-+:#%/^,)":
            word = re.match(r"[A-Za-z0-9_.]*", s[start:]).group(0)
            raise self.error(f"unknown variable $({word}); see `pixelpipe export --help-variables`")
        if self.collect is not None:
            self.collect.add(canonical)
        base = self.value(canonical, digits, first)
        if canonical not in FOLDER_VARIABLES:
            base = base.replace("/", "_").replace(os.sep, "_").replace("\0", "")
        return self.operation(base)

    def operation(self, base: str) -> str:
        s = self.s
        if self.i >= len(s):
            raise self.error("missing ')'")
        op = s[self.i]
        self.i += 1
        if op == ")":
            return base
        if op in "-+":
            alt = self.text(")")
            self.expect(")")
            if op == "-":
                return base if base else alt
            return alt if base else ""
        if op == ":":
            m = re.match(r"(-?\d+)(?::(-?\d+))?", s[self.i:])
            if not m:
                raise self.error("expected a number after ':'")
            self.i += len(m.group(0))
            self.expect(")")
            off = int(m.group(1))
            start = max(0, len(base) + off) if off < 0 else min(off, len(base))
            rest = base[start:]
            if m.group(2) is None:
                return rest
            ln = int(m.group(2))
            return rest[:ln] if ln >= 0 else rest[:max(0, len(rest) + ln)]
        if op in "#%":
            pat = self.text(")")
            self.expect(")")
            if op == "#" and pat and base.startswith(pat):
                return base[len(pat):]
            if op == "%" and pat and base.endswith(pat):
                return base[: len(base) - len(pat)]
            return base
        if op == "/":
            mode = ""
            if self.i < len(s) and s[self.i] in "/#%":
                mode = s[self.i]
                self.i += 1
            pat = self.text("/)")
            repl = ""
            if self.i < len(s) and s[self.i] == "/":
                self.i += 1
                repl = self.text(")")
            self.expect(")")
            if not pat:
                return base
            if mode == "/":
                return base.replace(pat, repl)
            if mode == "#":
                return repl + base[len(pat):] if base.startswith(pat) else base
            if mode == "%":
                return base[: len(base) - len(pat)] + repl if base.endswith(pat) else base
            return base.replace(pat, repl, 1)
        if op in "^,":
            both = self.i < len(s) and s[self.i] == op
            if both:
                self.i += 1
            self.expect(")")
            f: Callable[[str], str] = str.upper if op == "^" else str.lower
            return f(base) if both else (f(base[:1]) + base[1:])
        raise self.error(f"unknown operation {op!r} after a variable")

    # ------------------------------------------------------------------ values
    def value(self, name: str, digits: int, first: int) -> str:
        ctx = self.ctx
        if ctx is None:
            return ""
        path = ctx.path
        if name == "SEQUENCE":
            return f"{ctx.sequence - 1 + first:0{digits}d}"
        if name in ("FILE.FOLDER", "FILE.DIRECTORY"):
            return os.path.dirname(path)
        if name == "ROLL.NAME":
            return os.path.basename(os.path.dirname(path))
        if name == "FILE.NAME":
            base = os.path.basename(path)
            return base.rsplit(".", 1)[0] if "." in base else base
        if name == "IMAGE.FILENAME":
            return path
        if name == "FILE.EXTENSION":
            base = os.path.basename(path)
            return base.rsplit(".", 1)[1] if "." in base else ""
        if name == "FILE.SUBFOLDER":
            return ctx.subfolder
        if name == "PRESET":
            return ctx.preset
        if name == "VERSION":
            return "0"  # no duplicates without a library: every image is version 0
        if name == "VERSION.IF_MULTI":
            return ""
        if name == "JOBCODE":
            return "export"
        if name == "USERNAME":
            try:
                return getpass.getuser()
            except Exception:  # noqa: BLE001 - no user name known
                return ""
        if name == "FOLDER.HOME":
            return os.path.expanduser("~")
        if name in ("FOLDER.PICTURES", "FOLDER.DESKTOP"):
            return _xdg_user_dir("PICTURES" if name == "FOLDER.PICTURES" else "DESKTOP")
        if name == "WIDTH.MAX":
            return str(ctx.max_width or 0)
        if name == "HEIGHT.MAX":
            return str(ctx.max_height or 0)
        if name in ("YEAR", "YEAR.SHORT", "MONTH", "MONTH.LONG", "MONTH.SHORT", "DAY", "HOUR", "HOUR.AMPM",
                    "MINUTE", "SECOND", "MSEC", "DATE"):
            return _date_part(name, ctx.now)
        # ---- from the decoded image
        if name.startswith(("WIDTH.", "HEIGHT.")):
            size = {"SENSOR": ctx.sensor_size, "RAW": ctx.sensor_size, "CROP": ctx.crop_size,
                    "EXPORT": ctx.export_size}[name.split(".", 1)[1]]
            if size is None:
                return ""
            return str(size[0] if name.startswith("WIDTH") else size[1])
        exif = ctx.exif or {}
        if name.startswith("EXIF.") and name not in ("EXIF.ISO", "EXIF.EXPOSURE", "EXIF.EXPOSURE.BIAS",
                                                     "EXIF.APERTURE", "EXIF.FOCAL.LENGTH"):
            when = _exif_datetime(exif.get("datetime"))
            if when is None:
                return ""
            if name == "EXIF.DATE":
                return when.strftime("%Y:%m:%d %H:%M:%S")
            if name == "EXIF.DATE.REGIONAL":
                return when.strftime("%x")
            if name == "EXIF.TIME.REGIONAL":
                return when.strftime("%X")
            return _date_part(name[5:], when)
        if name == "EXIF.ISO":
            v = exif.get("iso")
            return f"{int(round(float(v)))}" if v else ""
        if name == "EXIF.EXPOSURE":
            v = exif.get("exposure_time")
            return format_exposure(float(v)) if v else ""
        if name == "EXIF.EXPOSURE.BIAS":
            v = exif.get("exposure_bias")
            return f"{float(v):+.2f}" if v is not None else ""
        if name == "EXIF.APERTURE":
            v = exif.get("fnumber")
            return f"{float(v):.1f}" if v else ""
        if name == "EXIF.FOCAL.LENGTH":
            v = exif.get("focal_length")
            return f"{int(float(v))}" if v else ""
        if name == "MAKER":
            return str(exif.get("camera_maker") or exif.get("maker") or "")
        if name == "MODEL":
            return str(exif.get("camera_model") or exif.get("model") or "")
        if name == "LENS":
            return str(exif.get("lens") or "")
        raise self.error(f"variable $({name}) has no value here")  # pragma: no cover - table and code agree


def _date_part(name: str, t: _dt.datetime) -> str:
    if name == "YEAR":
        return f"{t.year:04d}"
    if name == "YEAR.SHORT":
        return f"{t.year % 100:02d}"
    if name == "MONTH":
        return f"{t.month:02d}"
    if name == "MONTH.LONG":
        return _MONTHS_LONG[t.month - 1]
    if name == "MONTH.SHORT":
        return _MONTHS_LONG[t.month - 1][:3]
    if name == "DAY":
        return f"{t.day:02d}"
    if name == "HOUR":
        return f"{t.hour:02d}"
    if name == "HOUR.AMPM":
        return f"{(t.hour % 12) or 12:02d} {'AM' if t.hour < 12 else 'PM'}"
    if name == "MINUTE":
        return f"{t.minute:02d}"
    if name == "SECOND":
        return f"{t.second:02d}"
    if name == "MSEC":
        return f"{t.microsecond // 1000:03d}"
    if name == "DATE":
        return t.strftime("%Y:%m:%d %H:%M:%S")
    raise KeyError(name)


def _exif_datetime(v: Any) -> _dt.datetime | None:
    if isinstance(v, _dt.datetime):
        return v
    if not isinstance(v, str):
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S.%f", "%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return _dt.datetime.strptime(v.strip(), fmt)
        except ValueError:
            continue
    return None


def format_exposure(t: float) -> str:
    """darktable's exposure text (dt_util_format_exposure), "/" already made "_" for file names."""
    if t >= 1.0:
        s = f"{t:.0f}″" if abs(t - round(t)) < 1e-6 else f"{t:.1f}″"
    elif t < 0.29 or abs(1.0 / t - round(1.0 / t)) < 1e-3:
        s = f"1/{1.0 / t:.0f}"
    else:
        s = f"{t:.1f}″"
    return s.replace("/", "_")


def _xdg_user_dir(kind: str) -> str:
    """$XDG_<KIND>_DIR from user-dirs.dirs, else ~/Pictures or ~/Desktop."""
    home = os.path.expanduser("~")
    cfg = os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "user-dirs.dirs")
    try:
        with open(cfg, encoding="utf-8") as f:
            for line in f:
                m = re.match(rf'\s*XDG_{kind}_DIR="(.*)"', line)
                if m:
                    return m.group(1).replace("$HOME", home)
    except OSError:
        pass
    return os.path.join(home, "Pictures" if kind == "PICTURES" else "Desktop")


def help_text() -> str:
    """The variables, one per line, for ``--help-variables``."""
    seen: dict[str, list[str]] = {}
    for alias, canonical in _ALIASES.items():
        if alias != canonical:
            seen.setdefault(canonical, []).append(alias)
        else:
            seen.setdefault(canonical, [])
    lines = []
    for c in sorted(seen):
        extra = f"  (also {', '.join('$(' + a + ')' for a in seen[c])})" if seen[c] else ""
        lines.append(f"$({c}){extra}")
    return "\n".join(lines)
