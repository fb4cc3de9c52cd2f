"""Blend parameters of one module instance (darktable's ``dt_develop_blend_params_t``).

Stored in the sidecar under the module's ``"blend"`` key and hashed into the
module's cache key, like its parameters. Fields (units and ranges):

* ``mask_mode``: "off", "uniform", "drawn", "parametric", "drawn+parametric", "raster".
* ``colorspace``: "auto", "raw", "rgb_display", "rgb_scene", "lab" (see modes.py).
* ``mode``: blend mode name (see modes.py); ``reverse``: swap input and output.
* ``opacity``: global opacity, % 0..100. ``fulcrum``: blend fulcrum, EV -8..8 (RGB scene).
* ``combine``: "exclusive" (masks multiplied) or "inclusive" (1 - product of 1 - masks);
  ``invert``: invert the combined mask (darktable's "... & inverted").
* ``forms``: the drawn mask group (:class:`~pixelpipe.blend.forms.MaskGroup`) or None;
  ``drawn_inverted``: the drawn mask's polarity.
* ``parametric``: {"<channel>_in"|"<channel>_out": {"range": [x0, x1, x2, x3],
  "invert": bool, "boost": EV 0..18}} — a trapezoid: 0 below x0, rising to 1 at x1,
  1 up to x2, falling to 0 at x3 (0 <= x0 <= x1 <= x2 <= x3 <= 1 in the channel's scaled
  units; boost divides the channel's value by 2^boost, scene-referred channels).
* ``raster_source``: label ("op" or "op#N") of an earlier module whose final mask
  is used in "raster" mode; ``raster_inverted``: its polarity.
* refinement: ``feather_radius`` px 0..250 (guided filter), ``feather_guide``
  ("input_after_blur", "output_after_blur", "input_before_blur", "output_before_blur"),
  ``blur_radius`` px 0..100 (Gaussian sigma), ``brightness`` -1..1 and ``contrast``
  -1..1 of the mask (0 and 1 stay 0 and 1). Radii are in full-resolution pixels.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParamsError
from . import modes as M
from .forms import MaskGroup, _bool, _choice, _num, group_from_dict

VERSION = 1

FIELDS = ("version", "mask_mode", "colorspace", "mode", "reverse", "opacity", "fulcrum", "combine", "invert",
          "drawn_inverted", "forms", "parametric", "raster_source", "raster_inverted", "feather_radius",
          "feather_guide", "blur_radius", "brightness", "contrast")


@dataclass
class Channel:
    """One parametric channel: trapezoid ``range`` (x0..x3), ``invert``, ``boost`` (EV)."""

    range: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    invert: bool = False
    boost: float = 0.0

    def to_dict(self) -> dict:
        return {"range": list(self.range), "invert": self.invert, "boost": self.boost}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "Channel":
        if isinstance(d, (list, tuple)):
            d = {"range": d}
        if not isinstance(d, dict):
            raise ParamsError(f"{where} must be an object with a \"range\"")
        unknown = sorted(set(d) - {"range", "invert", "boost"}, key=str)
        if unknown:
            raise ParamsError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        r = d.get("range", [0.0, 0.0, 1.0, 1.0])
        if not isinstance(r, (list, tuple)) or len(r) != 4:
            raise ParamsError(f"{where}.range must be four numbers [x0, x1, x2, x3]")
        r = tuple(_num(v, f"{where}.range[{k}]", 0.0, 1.0) for k, v in enumerate(r))
        if not (r[0] <= r[1] <= r[2] <= r[3]):
            raise ParamsError(f"{where}.range must be ordered x0 <= x1 <= x2 <= x3, got {list(r)}")
        return cls(r, _bool(d.get("invert", False), f"{where}.invert"),
                   _num(d.get("boost", 0.0), f"{where}.boost", 0.0, 18.0))

    def factor(self, v):
        """NumPy reference of the trapezoid (for tests and tools)."""
        import numpy as np

        x0, x1, x2, x3 = self.range
        s = 2.0 ** self.boost
        v = np.asarray(v, dtype=np.float64) / s
        up = (v - x0) / (x1 - x0) if x1 > x0 else np.where(v >= x0, 1.0, 0.0)
        down = (x3 - v) / (x3 - x2) if x3 > x2 else np.where(v <= x3, 1.0, 0.0)
        f = np.clip(np.minimum(up, down), 0.0, 1.0)
        return 1.0 - f if self.invert else f


def _channel_key(k: Any, where: str) -> str:
    if not isinstance(k, str) or "_" not in k:
        raise ParamsError(f"{where}: parametric channel {k!r} must be named <channel>_in or <channel>_out")
    name, _, side = k.rpartition("_")
    if side not in ("in", "out") or name not in M.ALL_CHANNELS:
        raise ParamsError(f"{where}: unknown parametric channel {k!r} (channels: {', '.join(M.ALL_CHANNELS)}; "
                          "suffix _in or _out)")
    return k


@dataclass
class BlendParams:
    mask_mode: str = "uniform"
    colorspace: str = "auto"
    mode: str = "normal"
    reverse: bool = False
    opacity: float = 100.0
    fulcrum: float = 0.0
    combine: str = "exclusive"
    invert: bool = False
    drawn_inverted: bool = False
    forms: MaskGroup | None = None
    parametric: dict[str, Channel] = field(default_factory=dict)
    raster_source: str = ""
    raster_inverted: bool = False
    feather_radius: float = 0.0
    feather_guide: str = "input_after_blur"
    blur_radius: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    # ---- state
    @property
    def active(self) -> bool:
        return self.mask_mode != "off"

    def __bool__(self) -> bool:  # an instance with blending off fuses like one without
        return self.active

    @property
    def uses_drawn(self) -> bool:
        return self.mask_mode in ("drawn", "drawn+parametric")

    @property
    def uses_parametric(self) -> bool:
        return self.mask_mode in ("parametric", "drawn+parametric")

    # ---- editing helpers
    def channel(self, key: str, x0: float, x1: float, x2: float, x3: float, *, invert: bool = False,
                boost: float = 0.0) -> "BlendParams":
        """Set a parametric channel (e.g. ``"gray_in"``) and validate."""
        self.parametric[_channel_key(key, "parametric")] = Channel.from_dict(
            {"range": [x0, x1, x2, x3], "invert": invert, "boost": boost}, f"parametric.{key}")
        return self

    def add_group(self, group: MaskGroup, *, op: str = "union", opacity: float = 1.0,
                  inverted: bool = False) -> MaskGroup:
        """Add ``group`` (or a single form) to the drawn mask; switches on drawn masking."""
        if self.forms is None:
            self.forms = MaskGroup([], "")
        self.forms.add(group, op, opacity=opacity, inverted=inverted)
        if self.mask_mode in ("off", "uniform", "raster"):
            self.mask_mode = "drawn"
        elif self.mask_mode == "parametric":
            self.mask_mode = "drawn+parametric"
        return self.forms

    # ---- (de)serialisation
    def to_dict(self) -> dict:
        return {
            "version": VERSION, "mask_mode": self.mask_mode, "colorspace": self.colorspace, "mode": self.mode,
            "reverse": self.reverse, "opacity": self.opacity, "fulcrum": self.fulcrum, "combine": self.combine,
            "invert": self.invert, "drawn_inverted": self.drawn_inverted,
            "forms": self.forms.to_dict() if self.forms is not None else None,
            "parametric": {k: v.to_dict() for k, v in sorted(self.parametric.items())},
            "raster_source": self.raster_source, "raster_inverted": self.raster_inverted,
            "feather_radius": self.feather_radius, "feather_guide": self.feather_guide,
            "blur_radius": self.blur_radius, "brightness": self.brightness, "contrast": self.contrast,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "blend") -> "BlendParams":
        if not isinstance(d, dict):
            raise ParamsError(f"{where} must be an object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(FIELDS), key=str)
        if unknown:
            raise ParamsError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        v = d.get("version", VERSION)
        if v != VERSION or isinstance(v, bool):
            raise ParamsError(f"{where}: version {v!r} is not supported (expected {VERSION})")
        p = cls()
        p.mask_mode = _choice(d.get("mask_mode", p.mask_mode), f"{where}.mask_mode", M.MASK_MODES)
        p.colorspace = _choice(d.get("colorspace", p.colorspace), f"{where}.colorspace", M.SPACE_CHOICES)
        p.mode = _choice(d.get("mode", p.mode), f"{where}.mode", M.MODES)
        if p.colorspace != "auto" and p.mode not in M.MODES_BY_SPACE[p.colorspace]:
            raise ParamsError(f"{where}: blend mode {p.mode!r} is not available in {M.space_names()[p.colorspace]} "
                              f"(available: {', '.join(M.MODES_BY_SPACE[p.colorspace])})")
        p.reverse = _bool(d.get("reverse", False), f"{where}.reverse")
        p.opacity = _num(d.get("opacity", 100.0), f"{where}.opacity", 0.0, 100.0)
        p.fulcrum = _num(d.get("fulcrum", 0.0), f"{where}.fulcrum", -8.0, 8.0)
        p.combine = _choice(d.get("combine", p.combine), f"{where}.combine", M.COMBINE)
        p.invert = _bool(d.get("invert", False), f"{where}.invert")
        p.drawn_inverted = _bool(d.get("drawn_inverted", False), f"{where}.drawn_inverted")
        forms = d.get("forms")
        p.forms = group_from_dict(forms, f"{where}.forms") if forms is not None else None
        par = d.get("parametric", {})
        if not isinstance(par, dict):
            raise ParamsError(f"{where}.parametric must be an object")
        p.parametric = {_channel_key(k, f"{where}.parametric"): Channel.from_dict(c, f"{where}.parametric.{k}")
                        for k, c in par.items()}
        rs = d.get("raster_source", "")
        if not isinstance(rs, str) or len(rs) > 64:
            raise ParamsError(f"{where}.raster_source must be a module label such as \"exposure\" or \"exposure#1\"")
        if rs:
            from ..pipe.history import parse_label

            parse_label(rs)
        p.raster_source = rs
        p.raster_inverted = _bool(d.get("raster_inverted", False), f"{where}.raster_inverted")
        p.feather_radius = _num(d.get("feather_radius", 0.0), f"{where}.feather_radius", 0.0, 250.0)
        p.feather_guide = _choice(d.get("feather_guide", p.feather_guide), f"{where}.feather_guide", M.FEATHER_GUIDES)
        p.blur_radius = _num(d.get("blur_radius", 0.0), f"{where}.blur_radius", 0.0, 100.0)
        p.brightness = _num(d.get("brightness", 0.0), f"{where}.brightness", -1.0, 1.0)
        p.contrast = _num(d.get("contrast", 0.0), f"{where}.contrast", -1.0, 1.0)
        if p.mask_mode == "raster" and not p.raster_source:
            raise ParamsError(f"{where}: raster mask mode needs a raster_source (the label of an earlier module)")
        return p

    def validate(self, where: str = "blend") -> "BlendParams":
        """Check every field (after editing in Python); returns self."""
        BlendParams.from_dict(self.to_dict(), where)
        return self

    def digest(self) -> str:
        """Hash of everything that changes pixels (part of the module's cache key)."""
        return hashlib.sha256(json.dumps(_as_floats(self.to_dict()), sort_keys=True).encode()).hexdigest()

    def copy(self) -> "BlendParams":
        return BlendParams.from_dict(json.loads(json.dumps(self.to_dict())))


def _as_floats(v):
    """Numbers as floats (45 and 45.0 are the same angle), recursively."""
    if isinstance(v, dict):
        return {k: _as_floats(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_as_floats(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def from_sidecar(module_cls, op: str, d: Any) -> BlendParams | None:
    """The ``"blend"`` entry of a sidecar module (None when absent); ParamsError when invalid."""
    if d is None:
        return None
    from ..modules.base import Flags

    if not (module_cls.flags & Flags.SUPPORTS_BLENDING):
        raise ParamsError(f"module {op} does not support blending (its \"blend\" entry must be null)")
    return BlendParams.from_dict(d, f"module {op}: blend")
