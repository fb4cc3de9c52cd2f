"""rgbcurve: tone curves on RGB, linked (one curve, optionally colour-preserving) or per channel.

Algorithm (darktable's rgb curve):

* the curve nodes (x, y in [0, 1], 2..20 per curve, x increasing) are
  interpolated with a monotone cubic (Fritsch-Carlson Hermite, darktable's
  default "monotonic spline"), a natural cubic spline ("cubic spline") or a
  Catmull-Rom cubic with finite-difference tangents (darktable's
  "centripetal spline" entry); left of the first node the curve is the first
  node's y, and values are kept in [0, 1];
* the curve is baked into a 65537-entry table over [0, 1] (a buffer input of
  the kernel, read with linear interpolation; darktable truncates to the
  lower entry); from the last node's x upwards the curve is extended by
  darktable's power law ``y0 (x / x0)^g`` through the last node, ``g`` averaged
  from the curve at 0.7, 0.8 and 0.9 of x0 (unbounded scene-referred input);
* mode "linked": the first curve on all channels; with ``preserve_colors``
  the curve is applied to a norm of the pixel (luminance of the working space,
  max, average, sum, Euclidean norm or "basic power" ``sum(v^3) / sum(v^2)``)
  and the three channels are scaled by ``curve(norm) / norm`` (norm <= 0: left
  unchanged); "none" applies it per channel;
* mode "independent": curve_r, curve_g, curve_b per channel;
* ``compensate_middle_grey``: the nodes are given in CIE L*/100 (middle grey
  at 0.5) and converted to linear luminance first.

Defaults ((0, 0), (1, 1), monotone, linked, luminance) are an identity.
Region of interest: a point operation.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..errors import ParamsError
from ..io.icc import colour_module
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param
from .channelmixerrgb import SmallImageSafe, finite, planar, working_to_xyz

#: darktable's dt_iop_rgb_norms_t, in order
PRESERVE_COLORS = ("none", "luminance", "max", "average", "sum", "norm", "power")
INTERPOLATIONS = ("monotone", "cubic", "catmull_rom")
LUT_SIZE = 0x10000
MAX_NODES = 20
IDENTITY_NODES = ((0.0, 0.0), (1.0, 1.0))
_NODE_FIELDS = ("curve_r", "curve_g", "curve_b")


# --------------------------------------------------------------------------- shared colour helpers

def luminance_coefficients() -> np.ndarray:
    """Y of working RGB (the "luminance" norm): the Y row of Rec.2020 -> XYZ."""
    return working_to_xyz()[1].copy()


def norm_index(preserve_colors: str) -> int:
    """The runtime code of a preserve-colors choice (-1: per channel)."""
    return PRESERVE_COLORS.index(preserve_colors) - 1


def rgb_norm(r, g, b, method, lum):
    """darktable's RGB norms as a Halide Expr; ``method`` as :func:`norm_index` (0..5), ``lum`` Y weights."""
    r2, g2, b2 = r * r, g * g, b * b
    sq = r2 + g2 + b2
    power = hl.select(sq > 0, (r * r2 + g * g2 + b * b2) / hl.select(sq > 0, sq, 1.0), 0.0)
    return hl.select(method == 0, lum[0] * r + lum[1] * g + lum[2] * b,
                     method == 1, hl.max(hl.max(r, g), b),
                     method == 2, (r + g + b) / 3.0,
                     method == 3, r + g + b,
                     method == 4, hl.sqrt(sq),
                     power)


# --------------------------------------------------------------------------- curve maths (NumPy)

def _hermite(xs, ys, ms, t):
    """Evaluate the cubic Hermite interpolant with node tangents ``ms`` at ``t`` (inside the nodes)."""
    k = np.clip(np.searchsorted(xs, t, side="right") - 1, 0, len(xs) - 2)
    h = xs[k + 1] - xs[k]
    s = (t - xs[k]) / h
    h00, h10 = 2 * s ** 3 - 3 * s ** 2 + 1, s ** 3 - 2 * s ** 2 + s
    h01, h11 = -2 * s ** 3 + 3 * s ** 2, s ** 3 - s ** 2
    return h00 * ys[k] + h10 * h * ms[k] + h01 * ys[k + 1] + h11 * h * ms[k + 1]


def monotone_tangents(xs, ys) -> np.ndarray:
    """Fritsch-Carlson tangents: the interpolant is monotone wherever the nodes are."""
    d = np.diff(ys) / np.diff(xs)
    n = len(xs)
    m = np.empty(n)
    m[0], m[-1] = d[0], d[-1]
    for i in range(1, n - 1):
        m[i] = 0.0 if d[i - 1] * d[i] <= 0 else (d[i - 1] + d[i]) / 2
    for i in range(n - 1):
        if d[i] == 0.0:
            m[i] = m[i + 1] = 0.0
            continue
        a, b = m[i] / d[i], m[i + 1] / d[i]
        r = a * a + b * b
        if r > 9.0:
            tau = 3.0 / math.sqrt(r)
            m[i], m[i + 1] = tau * a * d[i], tau * b * d[i]
    return m


def catmull_rom_tangents(xs, ys) -> np.ndarray:
    n = len(xs)
    m = np.empty(n)
    m[0] = (ys[1] - ys[0]) / (xs[1] - xs[0])
    m[-1] = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    for i in range(1, n - 1):
        m[i] = (ys[i + 1] - ys[i - 1]) / (xs[i + 1] - xs[i - 1])
    return m


def natural_cubic(xs, ys, t) -> np.ndarray:
    """Natural cubic spline (zero second derivative at both ends) through the nodes, at ``t``."""
    n = len(xs)
    h = np.diff(xs)
    a = np.zeros((n, n))
    rhs = np.zeros(n)
    a[0, 0] = a[-1, -1] = 1.0
    for i in range(1, n - 1):
        a[i, i - 1], a[i, i], a[i, i + 1] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        rhs[i] = 6 * ((ys[i + 1] - ys[i]) / h[i] - (ys[i] - ys[i - 1]) / h[i - 1])
    mm = np.linalg.solve(a, rhs)
    k = np.clip(np.searchsorted(xs, t, side="right") - 1, 0, n - 2)
    hk = h[k]
    u, v = xs[k + 1] - t, t - xs[k]
    return (mm[k] * u ** 3 + mm[k + 1] * v ** 3) / (6 * hk) + (ys[k] / hk - mm[k] * hk / 6) * u \
        + (ys[k + 1] / hk - mm[k + 1] * hk / 6) * v


def curve_values(nodes, method: str, t) -> np.ndarray:
    """The curve through ``nodes`` at ``t`` (flat outside the nodes, clamped to [0, 1])."""
    xs = np.array([n[0] for n in nodes], dtype=np.float64)
    ys = np.array([n[1] for n in nodes], dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    tc = np.clip(t, xs[0], xs[-1])
    if len(xs) == 2:
        v = ys[0] + (tc - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
    elif method == "cubic":
        v = natural_cubic(xs, ys, tc)
    elif method == "catmull_rom":
        v = _hermite(xs, ys, catmull_rom_tangents(xs, ys), tc)
    else:
        v = _hermite(xs, ys, monotone_tangents(xs, ys), tc)
    return np.clip(v, 0.0, 1.0)


def uncompensate_middle_grey(v) -> np.ndarray:
    """CIE L*/100 -> linear luminance (compensate_middle_grey nodes)."""
    colour = colour_module()
    return np.asarray(colour.colorimetry.luminance_CIE1976(100.0 * np.asarray(v, dtype=np.float64)),
                      dtype=np.float64) / 100.0


def extrapolation(nodes, method: str) -> np.ndarray:
    """darktable's power-law extension beyond the last node: (x0, y0, g)."""
    x0 = float(nodes[-1][0])
    xs = np.array([0.7, 0.8, 0.9]) * x0
    ys = curve_values(nodes, method, xs)
    y0 = float(curve_values(nodes, method, [x0])[0])
    gs = [math.log(yk / y0) / math.log(xk / x0) for xk, yk in zip(xs, ys)
          if y0 > 0 and xk > 0 and yk / y0 > 0 and xk / x0 > 0]
    g = float(np.mean(gs)) if gs else 1.0
    return np.array([x0, y0, g])


# --------------------------------------------------------------------------- parameters

def _check_nodes(op: str, name: str, nodes) -> tuple:
    where = f"module {op}: parameter {name!r}"
    if not isinstance(nodes, (list, tuple)) or not 2 <= len(nodes) <= MAX_NODES:
        raise ParamsError(f"{where} must be a list of 2..{MAX_NODES} [x, y] nodes")
    out = []
    for i, n in enumerate(nodes):
        if not isinstance(n, (list, tuple)) or len(n) != 2:
            raise ParamsError(f"{where}[{i}] must be an [x, y] pair, got {n!r}")
        for v in n:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise ParamsError(f"{where}[{i}] = {n!r} is not a pair of finite numbers")
            if not 0.0 <= float(v) <= 1.0:
                raise ParamsError(f"{where}[{i}] = {list(n)} is outside [0, 1]")
        out.append((float(n[0]), float(n[1])))
    for i in range(1, len(out)):
        if out[i][0] <= out[i - 1][0]:
            raise ParamsError(f"{where}: node x values must increase ({out[i - 1][0]} then {out[i][0]})")
    return tuple(out)


@dataclass
class RgbcurveParams(Params):
    """RGB curve.

    mode: "linked" (curve_r on all channels) or "independent" (curve_r/g/b).
    preserve_colors: linked mode's norm: none, luminance, max, average, sum, norm, power.
    interpolation: "monotone" (default), "cubic" or "catmull_rom".
    compensate_middle_grey: nodes in CIE L*/100 instead of linear values.
    curve_r, curve_g, curve_b: [[x, y], ...] nodes, 2..20, x increasing, in [0, 1].
    """

    mode: str = param("linked", choices=("linked", "independent"))
    preserve_colors: str = param("luminance", choices=PRESERVE_COLORS)
    interpolation: str = param("monotone", choices=INTERPOLATIONS)
    compensate_middle_grey: bool = param(False)
    curve_r: tuple = param(IDENTITY_NODES)
    curve_g: tuple = param(IDENTITY_NODES)
    curve_b: tuple = param(IDENTITY_NODES)

    def validate(self, op: str) -> "RgbcurveParams":
        flat = {}
        for name in _NODE_FIELDS:
            nodes = _check_nodes(op, name, getattr(self, name))
            object.__setattr__(self, name, nodes)
            flat[name] = [v for n in nodes for v in n]
        Params.validate(dataclasses.replace(self, **flat), op)
        return self

    def to_dict(self) -> dict:
        d = super().to_dict()
        for name in _NODE_FIELDS:
            d[name] = [list(n) for n in getattr(self, name)]
        return d

    @classmethod
    def from_dict(cls, op: str, d, version: int | None = None) -> "RgbcurveParams":
        if not isinstance(d, dict):
            return super().from_dict(op, d, version)
        d = dict(d)
        nodes = {k: _check_nodes(op, k, d.pop(k)) for k in _NODE_FIELDS if k in d}
        p = super().from_dict(op, d, version)
        for k, v in nodes.items():
            object.__setattr__(p, k, v)
        return p.validate(op)


def curve_tables(p: RgbcurveParams) -> tuple[np.ndarray, np.ndarray]:
    """(LUT (3, LUT_SIZE + 1) over [0, 1], extrapolation (3, [x0, y0, g])) per output channel."""
    curves = [p.curve_r] * 3 if p.mode == "linked" else [p.curve_r, p.curve_g, p.curve_b]
    t = np.arange(LUT_SIZE + 1) / LUT_SIZE
    luts, exts = [], []
    cache = {}
    for nodes in curves:
        if nodes not in cache:
            nn = nodes
            if p.compensate_middle_grey:
                xs = uncompensate_middle_grey([n[0] for n in nodes])
                ys = uncompensate_middle_grey([n[1] for n in nodes])
                nn = tuple(zip(xs.tolist(), ys.tolist()))
            cache[nodes] = (curve_values(nn, p.interpolation, t), extrapolation(nn, p.interpolation))
        lut, ext = cache[nodes]
        luts.append(lut)
        exts.append(ext)
    return np.stack(luts), np.stack(exts)


# --------------------------------------------------------------------------- Halide

def apply_curve(v, ch, lut, ext):
    """Curve of channel ``ch`` at ``v``: the table (linear interpolation) below x0, the power law above."""
    pos = hl.clamp(v, 0.0, 1.0) * LUT_SIZE
    i0 = hl.clamp(hl.cast(hl.Int(32), hl.floor(pos)), 0, LUT_SIZE - 1)
    f = pos - hl.cast(hl.Float(32), i0)
    table = lut[i0, ch] * (1.0 - f) + lut[i0 + 1, ch] * f
    x0, y0, g = ext[0, ch], ext[1, ch], ext[2, ch]
    power = y0 * hl.pow(hl.max(v / x0, 0.0), g)
    return hl.select(v < x0, table, power)


class Rgbcurve(SmallImageSafe, HalideModule):
    op = "rgbcurve"
    name = "rgb curve"
    Params = RgbcurveParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    summary = "RGB tone curves (linked with colour preservation, or per channel)"
    inputs = (HInput("lut", "buf_f32", 2), HInput("ext", "buf_f32", 2), HInput("norm", "i32"),
              HInput("lum_r"), HInput("lum_g"), HInput("lum_b"))

    # -- algorithm
    def algorithm(self, rgb, p, piece):
        lut, ext, method = p["lut"], p["ext"], p["norm"]
        v = [finite(rgb[x, y, k]) for k in range(3)]
        per_channel = [apply_curve(v[k], k, lut, ext) for k in range(3)]
        n = rgb_norm(v[0], v[1], v[2], method, (p["lum_r"], p["lum_g"], p["lum_b"]))
        ratio = hl.select(n > 0, apply_curve(n, 0, lut, ext) / hl.select(n > 0, n, 1.0), 1.0)
        preserved = [ratio * e for e in v]
        curved = hl.Func("curved")
        curved[x, y, c] = finite(hl.select(method < 0, planar(*per_channel), planar(*preserved)))
        return curved

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    def commit(self, piece):
        p = piece.params
        lut, ext = curve_tables(p)
        piece.data["lut"], piece.data["ext"] = lut, ext
        piece.data["norm"] = -1 if p.mode == "independent" else norm_index(p.preserve_colors)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        lum = luminance_coefficients()
        d = piece.data
        return {"lut": d["lut"], "ext": d["ext"], "norm": d["norm"],
                "lum_r": lum[0], "lum_g": lum[1], "lum_b": lum[2]}
