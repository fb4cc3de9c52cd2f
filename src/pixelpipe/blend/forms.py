"""Drawn mask forms: circle, ellipse, gradient, path (Bézier) and brush, and groups of them.

Coordinates are stored in *normalised input-image space*: ``(x, y)`` with
``(0, 0)`` the top-left and ``(1, 1)`` the bottom-right corner of the pipe's
input image (the raw's active area or the decoded file, as stored, before any
orientation, crop or rotation). Sizes (radii, feather widths, brush widths)
are fractions of the input image's shorter side, so a circle stays round.
Forms are rendered by :mod:`pixelpipe.blend.render` after being carried
through every distorting module before (and including) the module they mask.

Every form has a ``density`` (its own strength, 0..1); a group member adds an
``opacity`` (0..1), an ``inverted`` flag and a combination ``op``:

* ``union``: ``acc = max(acc, v)``
* ``intersection``: ``acc = min(acc, v)``
* ``difference``: ``acc = acc * (1 - v)``
* ``exclusion``: ``acc = acc + v - 2 acc v``

where ``v = opacity * (1 - value if inverted else value)`` and the first
member starts ``acc`` whatever its ``op`` (as darktable's mask groups).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from ..errors import ParamsError

COORD_LIMIT = 100.0  # normalised coordinates must stay within ±100 image sizes
SIZE_LIMIT = 100.0
MAX_NODES = 100_000
MAX_DEPTH = 8
GROUP_OPS = ("union", "intersection", "difference", "exclusion")


# --------------------------------------------------------------------------- validation helpers

def _num(v: Any, where: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise ParamsError(f"{where} must be a finite number, got {v!r}")
    v = float(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ParamsError(f"{where} = {v} is outside [{lo}, {hi}]")
    return v


def _pt(v: Any, where: str) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ParamsError(f"{where} must be a point [x, y], got {v!r}")
    return (_num(v[0], f"{where}[0]", -COORD_LIMIT, COORD_LIMIT),
            _num(v[1], f"{where}[1]", -COORD_LIMIT, COORD_LIMIT))


def _obj(d: Any, where: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(d, dict):
        raise ParamsError(f"{where} must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed - {"type"}, key=str)
    if unknown:
        raise ParamsError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    missing = sorted(required - set(d))
    if missing:
        raise ParamsError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
    return d


def _choice(v: Any, where: str, choices) -> str:
    if v not in choices:
        raise ParamsError(f"{where} = {v!r} is not one of {list(choices)}")
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise ParamsError(f"{where} must be true or false, got {v!r}")
    return v


# --------------------------------------------------------------------------- shapes

class Form:
    """Base of the shapes."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict:
        raise NotImplementedError

    def validate(self, where: str = "form") -> "Form":
        form_from_dict(self.to_dict(), where)
        return self


@dataclass
class Circle(Form):
    """A disc: full strength within ``radius``, falling linearly to 0 over ``feather``."""

    type: ClassVar[str] = "circle"
    center: tuple[float, float] = (0.5, 0.5)
    radius: float = 0.1
    feather: float = 0.05
    density: float = 1.0

    def to_dict(self) -> dict:
        return {"type": self.type, "center": list(self.center), "radius": self.radius,
                "feather": self.feather, "density": self.density}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Circle":
        _obj(d, where, {"center", "radius", "feather", "density"}, {"center"})
        return cls(_pt(d["center"], f"{where}.center"), _num(d.get("radius", 0.1), f"{where}.radius", 0, SIZE_LIMIT),
                   _num(d.get("feather", 0.05), f"{where}.feather", 0, SIZE_LIMIT),
                   _num(d.get("density", 1.0), f"{where}.density", 0, 1))


@dataclass
class Ellipse(Form):
    """An ellipse with radii (rx, ry) rotated by ``rotation`` degrees (clockwise on screen).

    feather_mode "proportional": the soft edge ends at ``(1 + feather)`` times the
    radii; "equidistant": at the distance ``feather`` (shorter-side units) outside.
    """

    type: ClassVar[str] = "ellipse"
    center: tuple[float, float] = (0.5, 0.5)
    radii: tuple[float, float] = (0.2, 0.1)
    rotation: float = 0.0
    feather: float = 0.05
    feather_mode: str = "equidistant"
    density: float = 1.0

    def to_dict(self) -> dict:
        return {"type": self.type, "center": list(self.center), "radii": list(self.radii),
                "rotation": self.rotation, "feather": self.feather, "feather_mode": self.feather_mode,
                "density": self.density}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Ellipse":
        _obj(d, where, {"center", "radii", "rotation", "feather", "feather_mode", "density"}, {"center"})
        r = d.get("radii", [0.2, 0.1])
        if not isinstance(r, (list, tuple)) or len(r) != 2:
            raise ParamsError(f"{where}.radii must be [rx, ry], got {r!r}")
        return cls(_pt(d["center"], f"{where}.center"),
                   (_num(r[0], f"{where}.radii[0]", 0, SIZE_LIMIT), _num(r[1], f"{where}.radii[1]", 0, SIZE_LIMIT)),
                   _num(d.get("rotation", 0.0), f"{where}.rotation", -3600, 3600),
                   _num(d.get("feather", 0.05), f"{where}.feather", 0, SIZE_LIMIT),
                   _choice(d.get("feather_mode", "equidistant"), f"{where}.feather_mode",
                           ("equidistant", "proportional")),
                   _num(d.get("density", 1.0), f"{where}.density", 0, 1))


@dataclass
class Gradient(Form):
    """A linear gradient through ``anchor``: 0.5 on the line, 0 at ``-feather`` and 1 at
    ``+feather`` along its normal. rotation 0: the value grows downwards (towards +y);
    90: towards -x. ``curvature`` bends the line (offset = curvature * t^2 along the
    normal, t the distance along the line, in shorter-side units)."""

    type: ClassVar[str] = "gradient"
    anchor: tuple[float, float] = (0.5, 0.5)
    rotation: float = 0.0
    feather: float = 0.1
    curvature: float = 0.0
    density: float = 1.0

    def to_dict(self) -> dict:
        return {"type": self.type, "anchor": list(self.anchor), "rotation": self.rotation,
                "feather": self.feather, "curvature": self.curvature, "density": self.density}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Gradient":
        _obj(d, where, {"anchor", "rotation", "feather", "curvature", "density"}, {"anchor"})
        return cls(_pt(d["anchor"], f"{where}.anchor"),
                   _num(d.get("rotation", 0.0), f"{where}.rotation", -3600, 3600),
                   _num(d.get("feather", 0.1), f"{where}.feather", 0, SIZE_LIMIT),
                   _num(d.get("curvature", 0.0), f"{where}.curvature", -10, 10),
                   _num(d.get("density", 1.0), f"{where}.density", 0, 1))


@dataclass
class PathNode:
    """A path/brush node: corner ``p``, incoming handle ``c1``, outgoing handle ``c2``
    (absent handles: a sharp corner), and the node's feather (path) or
    width/hardness (brush)."""

    p: tuple[float, float]
    c1: tuple[float, float] | None = None
    c2: tuple[float, float] | None = None
    feather: float = 0.02
    width: float = 0.02
    hardness: float = 0.5

    def handles(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.c1 if self.c1 is not None else self.p), (self.c2 if self.c2 is not None else self.p)


def _node_to_dict(n: PathNode, brush: bool) -> dict:
    d: dict[str, Any] = {"p": list(n.p)}
    if n.c1 is not None:
        d["c1"] = list(n.c1)
    if n.c2 is not None:
        d["c2"] = list(n.c2)
    if brush:
        d["width"], d["hardness"] = n.width, n.hardness
    else:
        d["feather"] = n.feather
    return d


def _nodes_from(v: Any, where: str, brush: bool) -> list[PathNode]:
    if not isinstance(v, list):
        raise ParamsError(f"{where} must be a list of nodes")
    if len(v) > MAX_NODES:
        raise ParamsError(f"{where} has {len(v)} nodes (at most {MAX_NODES})")
    out = []
    for k, nd in enumerate(v):
        w = f"{where}[{k}]"
        allowed = {"p", "c1", "c2"} | ({"width", "hardness"} if brush else {"feather"})
        _obj(nd, w, allowed, {"p"})
        n = PathNode(_pt(nd["p"], f"{w}.p"),
                     _pt(nd["c1"], f"{w}.c1") if nd.get("c1") is not None else None,
                     _pt(nd["c2"], f"{w}.c2") if nd.get("c2") is not None else None)
        if brush:
            n.width = _num(nd.get("width", 0.02), f"{w}.width", 0, SIZE_LIMIT)
            n.hardness = _num(nd.get("hardness", 0.5), f"{w}.hardness", 0, 1)
        else:
            n.feather = _num(nd.get("feather", 0.02), f"{w}.feather", 0, SIZE_LIMIT)
        out.append(n)
    return out


def _pts(seq, where: str) -> list[tuple[float, float]]:
    return [_pt(list(p), f"{where}[{k}]") for k, p in enumerate(seq)]


@dataclass
class Path(Form):
    """A closed path of cubic Bézier segments (node k to node k+1, the last back to the
    first): full strength inside (non-zero winding, so a path that crosses itself is
    filled where it loops), falling to 0 over each node's ``feather`` outside."""

    type: ClassVar[str] = "path"
    nodes: list[PathNode] = field(default_factory=list)
    density: float = 1.0

    def to_dict(self) -> dict:
        return {"type": self.type, "density": self.density, "nodes": [_node_to_dict(n, False) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Path":
        _obj(d, where, {"nodes", "density"}, {"nodes"})
        return cls(_nodes_from(d["nodes"], f"{where}.nodes", False),
                   _num(d.get("density", 1.0), f"{where}.density", 0, 1))

    @classmethod
    def from_cubics(cls, cubics, feather: float = 0.0, density: float = 1.0) -> "Path":
        """A closed path from cubic segments ``[(p0, c1, c2, p1), ...]`` in normalised
        input coordinates (each segment's p1 is the next one's p0; potrace's curves)."""
        cubics = list(cubics)
        nodes = []
        for k, seg in enumerate(cubics):
            p0, c1, c2, _ = _pts(seg, f"cubics[{k}]")
            prev_c2 = _pts(cubics[k - 1], f"cubics[{k - 1}]")[2]
            nodes.append(PathNode(p0, c1=prev_c2, c2=c1, feather=float(feather)))
        return cls(nodes, float(density)).validate("path")

    @classmethod
    def from_polygon(cls, points, feather: float = 0.0, density: float = 1.0) -> "Path":
        """A closed path of straight segments through ``points`` (normalised input coordinates)."""
        nodes = [PathNode(p, feather=float(feather)) for p in _pts(points, "points")]
        return cls(nodes, float(density)).validate("path")


@dataclass
class Brush(Form):
    """An open brush stroke along Bézier segments: full strength within ``hardness * width``
    of the stroke's centre line, falling to 0 at ``width`` (per node, interpolated); round ends."""

    type: ClassVar[str] = "brush"
    nodes: list[PathNode] = field(default_factory=list)
    density: float = 1.0

    def to_dict(self) -> dict:
        return {"type": self.type, "density": self.density, "nodes": [_node_to_dict(n, True) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "Brush":
        _obj(d, where, {"nodes", "density"}, {"nodes"})
        return cls(_nodes_from(d["nodes"], f"{where}.nodes", True),
                   _num(d.get("density", 1.0), f"{where}.density", 0, 1))

    @classmethod
    def stroke(cls, points, width: float = 0.02, hardness: float = 0.5, density: float = 1.0) -> "Brush":
        """A stroke of straight segments through ``points``."""
        return cls([PathNode(p, width=float(width), hardness=float(hardness)) for p in _pts(points, "points")],
                   float(density)).validate("brush")


# --------------------------------------------------------------------------- groups

@dataclass
class Member:
    """A form (or a nested group) in a group, with its combination."""

    form: "Union[Form, MaskGroup]"
    op: str = "union"
    inverted: bool = False
    opacity: float = 1.0

    def to_dict(self) -> dict:
        return {"op": self.op, "inverted": self.inverted, "opacity": self.opacity, "form": self.form.to_dict()}


@dataclass
class MaskGroup:
    """Forms combined in order (see the module docstring); may nest."""

    type: ClassVar[str] = "group"
    members: list[Member] = field(default_factory=list)
    name: str = ""

    @classmethod
    def of(cls, forms, ops=None, name: str = "", opacity: float = 1.0) -> "MaskGroup":
        """A group of ``forms`` combined with ``ops`` (default: all "union")."""
        forms = list(forms)
        ops = list(ops) if ops is not None else ["union"] * len(forms)
        if len(ops) != len(forms):
            raise ParamsError("a mask group needs one op per form")
        g = cls([Member(f, op, False, float(opacity)) for f, op in zip(forms, ops)], str(name))
        return g.validate()

    def add(self, form, op: str = "union", *, opacity: float = 1.0, inverted: bool = False) -> Member:
        m = Member(form, op, inverted, float(opacity))
        self.members.append(m)
        self.validate()
        return m

    def to_dict(self) -> dict:
        return {"type": self.type, "name": self.name, "members": [m.to_dict() for m in self.members]}

    def validate(self, where: str = "forms") -> "MaskGroup":
        group_from_dict(self.to_dict(), where)
        return self

    def walk(self):
        """Every shape in the group and its sub-groups."""
        for m in self.members:
            if isinstance(m.form, MaskGroup):
                yield from m.form.walk()
            else:
                yield m.form

    def __len__(self) -> int:
        return len(self.members)


FORM_TYPES = {c.type: c for c in (Circle, Ellipse, Gradient, Path, Brush)}


def form_from_dict(d: Any, where: str = "form", depth: int = 0):
    if not isinstance(d, dict):
        raise ParamsError(f"{where} must be an object, got {type(d).__name__}")
    t = d.get("type")
    if t == "group":
        return group_from_dict(d, where, depth + 1)
    if not isinstance(t, str) or t not in FORM_TYPES:
        raise ParamsError(f"{where}: unknown form type {t!r} (one of {sorted(FORM_TYPES) + ['group']})")
    return FORM_TYPES[t].from_dict(d, where)


def group_from_dict(d: Any, where: str = "forms", depth: int = 0) -> MaskGroup:
    if depth > MAX_DEPTH:
        raise ParamsError(f"{where}: mask groups nest deeper than {MAX_DEPTH} levels")
    _obj(d, where, {"name", "members"}, {"members"})
    if d.get("type", "group") != "group":
        raise ParamsError(f"{where} must be a group (\"type\": \"group\")")
    name = d.get("name", "")
    if not isinstance(name, str):
        raise ParamsError(f"{where}.name must be a string")
    mems = d["members"]
    if not isinstance(mems, list):
        raise ParamsError(f"{where}.members must be a list")
    if len(mems) > MAX_NODES:
        raise ParamsError(f"{where} has too many members")
    out = []
    for k, m in enumerate(mems):
        w = f"{where}.members[{k}]"
        _obj(m, w, {"op", "inverted", "opacity", "form"}, {"form"})
        out.append(Member(form_from_dict(m["form"], f"{w}.form", depth),
                          _choice(m.get("op", "union"), f"{w}.op", GROUP_OPS),
                          _bool(m.get("inverted", False), f"{w}.inverted"),
                          _num(m.get("opacity", 1.0), f"{w}.opacity", 0, 1)))
    return MaskGroup(out, name)
