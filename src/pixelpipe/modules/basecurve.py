"""basecurve: darktable's base curve, the display-referred "camera look" tone curve.

Algorithm (darktable's ``basecurve`` without exposure fusion):

* the curve: 2..20 nodes ``(x, y)`` in [0, 1], joined by a monotone cubic
  Hermite spline (Fritsch-Carlson tangents: secant averages, set to zero on
  flat segments and shrunk where ``alpha^2 + beta^2 > 9``) or a natural cubic
  spline; constant beyond the first/last node; tabulated at 65536 points on
  [0, 1]. Above 1 it continues as a power function through the last node,
  ``y = y_n (v / x_n)^g``, with ``g`` the mean of the exponents that the
  curve's values at 0.7, 0.8 and 0.9 x_n give (darktable's unbounded
  extrapolation).
* "preserve colors" = a norm (luminance Y of the working profile, max,
  average, sum, euclidean norm, power norm ``sum v^3 / sum v^2``): the curve is
  applied to the norm ``n`` and every channel is scaled by ``curve(n) / n``
  (hue and saturation kept). "none": the curve on each channel.
* outputs are clamped at 0.

darktable ships per-maker curves ("canon eos like", "nikon like", ...) and a
few measured per-camera curves; pixelpipe keeps them as data
(``pixelpipe/data/presets/basecurve.json``). In the display-referred workflow
the preset of the camera's maker is applied automatically (matched against
EXIF ``maker`` and LibRaw's ``camera_maker``, SQL-LIKE patterns, case
insensitive); "neutral" for makers without a curve. Per-camera curves are
offered as presets but not auto-applied (darktable does so only with a
preference).

Not implemented: exposure fusion (darktable's multi-exposure Laplacian
blending); fusion parameters are not accepted. Region of interest: a point
operation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from ..engine.kernels import f32
from ..errors import ParamsError
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

LUT_SIZE = 0x10000
NORMS = ("none", "luminance", "max", "average", "sum", "norm", "power")
CURVE_TYPES = ("monotone_hermite", "cubic_spline")
MAXNODES = 20


@dataclass
class BasecurveParams(Params):
    """Base curve.

    nodes: 2..20 points [x, y] in [0, 1], x strictly increasing (default: identity).
    curve_type: "monotone_hermite" (darktable's presets) or "cubic_spline".
    preserve_colors: "none", "luminance" (default), "max", "average", "sum", "norm", "power".
    """

    VERSION = 1

    nodes: list = param([[0.0, 0.0], [1.0, 1.0]])
    curve_type: str = param("monotone_hermite", choices=CURVE_TYPES)
    preserve_colors: str = param("luminance", choices=NORMS)

    def validate(self, op: str) -> "BasecurveParams":
        nodes = self.nodes
        where = f"module {op}: parameter 'nodes'"
        if not isinstance(nodes, (list, tuple)) or not 2 <= len(nodes) <= MAXNODES:
            raise ParamsError(f"{where} must be a list of 2..{MAXNODES} [x, y] points")
        prev = -math.inf
        for i, n in enumerate(nodes):
            if (not isinstance(n, (list, tuple)) or len(n) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in n)):
                raise ParamsError(f"{where}[{i}] = {n!r} is not a pair of finite numbers")
            if not (0.0 <= n[0] <= 1.0 and 0.0 <= n[1] <= 1.0):
                raise ParamsError(f"{where}[{i}] = {list(n)} is outside [0, 1]")
            if n[0] <= prev:
                raise ParamsError(f"{where}[{i}]: x must increase strictly from node to node")
            prev = n[0]
        self.nodes = [[float(a), float(b)] for a, b in nodes]
        for name, choices in (("curve_type", CURVE_TYPES), ("preserve_colors", NORMS)):
            if getattr(self, name) not in choices:
                raise ParamsError(f"module {op}: parameter {name!r} = {getattr(self, name)!r} is not one of "
                                  f"{list(choices)}")
        return self

    @classmethod
    def from_dict(cls, op, d, version=None):
        if not isinstance(d, dict):
            raise ParamsError(f"module {op}: parameters must be an object, got {type(d).__name__}")
        if version is not None and version != cls.VERSION:
            raise ParamsError(f"module {op}: parameter version {version!r} is not supported "
                              f"(this build knows up to {cls.VERSION})")
        unknown = sorted(set(d) - {"nodes", "curve_type", "preserve_colors"})
        if unknown:
            raise ParamsError(f"module {op}: unknown parameter(s) {', '.join(map(repr, unknown))}")
        for k in ("curve_type", "preserve_colors"):
            if k in d and not isinstance(d[k], str):
                raise ParamsError(f"module {op}: parameter {k!r} must be a string, got {d[k]!r}")
        p = cls()
        if "nodes" in d:
            p.nodes = d["nodes"]
        for k in ("curve_type", "preserve_colors"):
            if k in d:
                setattr(p, k, d[k])
        return p.validate(op)

    def to_dict(self) -> dict:
        return {"nodes": [list(n) for n in self.nodes], "curve_type": self.curve_type,
                "preserve_colors": self.preserve_colors}


# --------------------------------------------------------------------------- curves
def hermite_tangents(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson monotone tangents."""
    n = len(xs)
    delta = np.diff(ys) / np.diff(xs)
    m = np.empty(n)
    m[0], m[-1] = delta[0], delta[-1]
    m[1:-1] = (delta[:-1] + delta[1:]) / 2.0
    for k in range(n - 1):
        if delta[k] == 0.0:
            m[k] = m[k + 1] = 0.0
            continue
        a, b = m[k] / delta[k], m[k + 1] / delta[k]
        tau = a * a + b * b
        if tau > 9.0:
            t = 3.0 / math.sqrt(tau)
            m[k], m[k + 1] = t * a * delta[k], t * b * delta[k]
    return m


def natural_spline_second_derivatives(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    n = len(xs)
    A = np.zeros((n, n))
    r = np.zeros(n)
    A[0, 0] = A[-1, -1] = 1.0
    for i in range(1, n - 1):
        h0, h1 = xs[i] - xs[i - 1], xs[i + 1] - xs[i]
        A[i, i - 1], A[i, i], A[i, i + 1] = h0 / 6.0, (h0 + h1) / 3.0, h1 / 6.0
        r[i] = (ys[i + 1] - ys[i]) / h1 - (ys[i] - ys[i - 1]) / h0
    return np.linalg.solve(A, r)


def eval_curve(nodes, curve_type: str, v) -> np.ndarray:
    """The curve of ``nodes`` at ``v`` (clamped to the node range), float64."""
    pts = np.asarray(nodes, dtype=np.float64)
    xs, ys = pts[:, 0], pts[:, 1]
    v = np.clip(np.asarray(v, dtype=np.float64), xs[0], xs[-1])
    k = np.clip(np.searchsorted(xs, v, side="right") - 1, 0, len(xs) - 2)
    x0, x1, y0, y1 = xs[k], xs[k + 1], ys[k], ys[k + 1]
    h = x1 - x0
    t = (v - x0) / h
    if curve_type == "cubic_spline":
        d2 = natural_spline_second_derivatives(xs, ys)
        a, b = 1.0 - t, t
        return a * y0 + b * y1 + ((a ** 3 - a) * d2[k] + (b ** 3 - b) * d2[k + 1]) * h * h / 6.0
    m = hermite_tangents(xs, ys)
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * h * m[k] + (-2 * t3 + 3 * t2) * y1
            + (t3 - t2) * h * m[k + 1])


def curve_table(p: BasecurveParams) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The 65536-entry table on [0, 1] and the extrapolation (1/x_n, y_n, g)."""
    table = eval_curve(p.nodes, p.curve_type, np.arange(LUT_SIZE) / (LUT_SIZE - 1.0))
    xm = p.nodes[-1][0]
    xs = np.array([0.7, 0.8, 0.9, 1.0]) * xm
    ys = table[np.clip((xs * LUT_SIZE).astype(int), 0, LUT_SIZE - 1)]
    g, n = 0.0, 0
    for xx, yy in zip(xs[:3] / xs[3], ys[:3] / ys[3] if ys[3] != 0 else np.zeros(3)):
        if yy > 0 and xx > 0 and xx != 1.0:
            g += math.log(yy) / math.log(xx)
            n += 1
    g = g / n if n else 1.0
    return table, (1.0 / xm, float(ys[3]), g)


def apply_reference(rgb: np.ndarray, p: BasecurveParams, lum=None) -> np.ndarray:
    """NumPy version of the module on planar (3, H, W) input (for tests and docs)."""
    table, (ix, y0, g) = curve_table(p)

    def f(v):
        idx = np.clip((v * LUT_SIZE).astype(np.int64), 0, LUT_SIZE - 1)
        with np.errstate(all="ignore"):
            ext = y0 * np.power(np.maximum(v * ix, 0), g)
        return np.where(v < 1.0, table[idx], ext)

    rgb = np.asarray(rgb, dtype=np.float64)
    if p.preserve_colors == "none":
        return np.maximum(f(rgb), 0.0)
    n = norm_np(rgb, p.preserve_colors, lum)
    with np.errstate(all="ignore"):
        ratio = np.where(n > 0, f(n) / np.where(n > 0, n, 1), 1.0)
    return np.maximum(rgb * ratio[None], 0.0)


def norm_np(rgb, kind, lum=None):
    r, g, b = rgb
    if kind == "luminance":
        w = lum if lum is not None else _luminance()
        return w[0] * r + w[1] * g + w[2] * b
    if kind == "max":
        return np.maximum(np.maximum(r, g), b)
    if kind == "average":
        return (r + g + b) / 3.0
    if kind == "sum":
        return r + g + b
    if kind == "norm":
        return np.sqrt(r * r + g * g + b * b)
    sq = r * r + g * g + b * b
    with np.errstate(all="ignore"):
        return np.where(sq > 0, (r ** 3 + g ** 3 + b ** 3) / np.where(sq > 0, sq, 1), 0.0)


def _luminance() -> np.ndarray:
    from .filmicrgb import luminance_coefficients

    return luminance_coefficients("linear_rec2020")


class Basecurve(HalideModule):
    op = "basecurve"
    name = "base curve"
    Params = BasecurveParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    summary = "display-referred camera tone curve (per-maker presets)"
    inputs = (HInput("lut", "buf_f32", 1), HInput("inv_xm"), HInput("y_end"), HInput("g"),
              HInput("lum_r"), HInput("lum_g"), HInput("lum_b"), HInput("norm", "i32"))

    def algorithm(self, rgb, p, piece):
        lut = p["lut"]

        def curve(v):
            idx = hl.clamp(hl.i32(hl.clamp(v, -1.0, 2.0) * float(LUT_SIZE)), 0, LUT_SIZE - 1)
            ext = p["y_end"] * hl.pow(hl.max(v * p["inv_xm"], hl.f32(1e-30)), p["g"])
            return hl.select(v < 1.0, lut[idx], ext)

        def sane(v):  # NaN -> 0, +-Inf -> +-1e6
            return hl.select(hl.is_nan(v), hl.f32(0), hl.clamp(v, -1e6, 1e6))

        r, g, b = sane(rgb[x, y, 0]), sane(rgb[x, y, 1]), sane(rgb[x, y, 2])
        k = p["norm"]
        sq = r * r + g * g + b * b
        n = hl.select(k == 1, p["lum_r"] * r + p["lum_g"] * g + p["lum_b"] * b,
                      k == 2, hl.max(hl.max(r, g), b),
                      k == 3, (r + g + b) / 3.0,
                      k == 4, r + g + b,
                      k == 5, hl.sqrt(sq),
                      hl.select(sq > 0, (r * r * r + g * g * g + b * b * b) / hl.select(sq > 0, sq, hl.f32(1)),
                                hl.f32(0)))
        ratio = hl.select(n > 0, curve(n) / hl.select(n > 0, n, hl.f32(1)), hl.f32(1))
        v = sane(rgb[x, y, c])
        out = hl.Func("based")
        out[x, y, c] = hl.max(hl.select(k == 0, curve(v), ratio * v), 0.0)
        return out

    def schedule(self, out, piece):
        from ..engine.halide_ops import rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))

    def commit(self, piece):
        table, ext = curve_table(piece.params)
        piece.data["lut"] = table
        piece.data["ext"] = ext
        piece.data["lum"] = _luminance()

    def output_desc(self, piece, dsc_in):
        inv_xm, y_end, g = piece.data["ext"]
        m = tuple(float(apply_reference(np.full((3, 1, 1), v), piece.params)[0, 0, 0])
                  for v in dsc_in.processed_maximum)
        return dsc_in.copy(processed_maximum=m)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        d = piece.data
        inv_xm, y_end, g = d["ext"]
        return {"lut": f32(d["lut"]), "inv_xm": inv_xm, "y_end": y_end, "g": g, "lum_r": d["lum"][0],
                "lum_g": d["lum"][1], "lum_b": d["lum"][2], "norm": NORMS.index(piece.params.preserve_colors)}
