"""What every processing module is: the contract between a module and the pipe.

A module file defines one darktable operation:

* ``op``: darktable's operation name; ``Params``: a versioned dataclass whose
  fields carry units and ranges (see :func:`param`);
* ``flags`` and ``tags`` as darktable's ``flags()``/``operation_tags()``;
* the region-of-interest rules ``modify_roi_out``/``modify_roi_in`` and, for
  distorting modules, ``distort_transform``/``distort_backtransform``;
* ``process``: the pixel algorithm, written as Halide Funcs in the module file.

The pipe hands each module a :class:`Piece` (its parameters, the image's
metadata, the pipe kind, full buffer sizes) and never looks inside a module;
a module never reaches into the pipe.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import ParamsError
from ..io.source import CFA, SourceImage


class Flags(enum.IntFlag):
    """darktable's ``dt_iop_flags_t`` bits, plus pixelpipe's EXPENSIVE."""

    NONE = 0
    INCLUDE_IN_STYLES = 1 << 0
    SUPPORTS_BLENDING = 1 << 1
    ALLOW_TILING = 1 << 4
    HIDDEN = 1 << 5
    TILING_FULL_ROI = 1 << 6
    ONE_INSTANCE = 1 << 7
    NO_HISTORY_STACK = 1 << 9
    NO_MASKS = 1 << 10
    FENCE = 1 << 11
    ALLOW_FAST_PIPE = 1 << 12
    WRITE_RASTER = 1 << 19
    #: has a fast path taken in the cut-down (fast) pipe; darktable tests
    #: dt_pipe_is_fast() inside such modules (diffuse, denoiseprofile, ...)
    EXPENSIVE = 1 << 24


class Tags(enum.IntFlag):
    """darktable's operation tags."""

    NONE = 0
    DISTORT = 1
    DECORATION = 2
    CROPPING = 4
    GEOMETRY = 8


# --------------------------------------------------------------------------- parameters

def param(default: Any, *, min: float | None = None, max: float | None = None, unit: str = "",
          choices: tuple | None = None, doc: str = "") -> Any:
    """A parameter field with its range, unit and allowed values (validated)."""
    meta = {"min": min, "max": max, "unit": unit, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict, tuple)) and not isinstance(default, str):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Params:
    """Base of every module's parameter dataclass.

    ``VERSION`` is the parameter layout version; ``migrate`` upgrades older
    dicts (darktable's legacy_params).
    """

    VERSION: ClassVar[int] = 1

    def validate(self, op: str) -> "Params":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            where = f"module {op}: parameter {f.name!r}"
            if m.get("choices") is not None and v not in m["choices"]:
                raise ParamsError(f"{where} = {v!r} is not one of {list(m['choices'])}")
            if isinstance(f.default, bool) or f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise ParamsError(f"{where} must be true or false, got {v!r}")
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if not math.isfinite(float(v)):
                    raise ParamsError(f"{where} = {v!r} is not a finite number")
                lo, hi = m.get("min"), m.get("max")
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    unit = f" {m['unit']}" if m.get("unit") else ""
                    raise ParamsError(f"{where} = {v}{unit} is outside [{lo}, {hi}]")
            elif isinstance(v, (list, tuple)):
                lo, hi = m.get("min"), m.get("max")
                for i, e in enumerate(v):
                    if not isinstance(e, (int, float)) or isinstance(e, bool) or not math.isfinite(float(e)):
                        raise ParamsError(f"{where}[{i}] = {e!r} is not a finite number")
                    if (lo is not None and e < lo) or (hi is not None and e > hi):
                        raise ParamsError(f"{where}[{i}] = {e} is outside [{lo}, {hi}]")
        return self

    def to_dict(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def migrate(cls, version: int, d: dict) -> dict:
        """Upgrade a dict written by an older ``VERSION`` (default: unchanged)."""
        return d

    @classmethod
    def from_dict(cls, op: str, d: Any, version: int | None = None) -> "Params":
        if not isinstance(d, dict):
            raise ParamsError(f"module {op}: parameters must be an object, got {type(d).__name__}")
        if version is not None and version != cls.VERSION:
            if not isinstance(version, int) or version > cls.VERSION or version < 1:
                raise ParamsError(f"module {op}: parameter version {version!r} is not supported "
                                  f"(this build knows up to {cls.VERSION})")
            d = cls.migrate(version, dict(d))
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ParamsError(f"module {op}: unknown parameter(s) {', '.join(map(repr, unknown))}")
        kw = {}
        for k, v in d.items():
            default = getattr(cls(), k)
            if isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ParamsError(f"module {op}: parameter {k!r} must be true or false, got {v!r}")
            elif isinstance(default, (int, float)):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ParamsError(f"module {op}: parameter {k!r} must be a number, got {v!r}")
                if isinstance(default, int) and not isinstance(default, bool):
                    if isinstance(v, float) and not v.is_integer():
                        raise ParamsError(f"module {op}: parameter {k!r} must be an integer, got {v!r}")
                    v = int(v)
                else:
                    v = float(v)
            elif isinstance(default, str):
                if not isinstance(v, str):
                    raise ParamsError(f"module {op}: parameter {k!r} must be a string, got {v!r}")
            elif isinstance(default, (list, tuple)):
                if not isinstance(v, (list, tuple)) or (len(default) and len(v) != len(default)):
                    raise ParamsError(f"module {op}: parameter {k!r} must be a list of {len(default)} numbers")
                v = type(default)(v)
            kw[k] = v
        return cls(**kw).validate(op)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- regions

@dataclass(frozen=True)
class ROI:
    """A region: x, y, width, height in the module's scaled buffer, and scale.

    ``scale`` is relative to the full-resolution input of the pipe, as
    darktable's ``dt_iop_roi_t``.
    """

    x: int
    y: int
    width: int
    height: int
    scale: float = 1.0

    def with_(self, **kw) -> "ROI":
        return dataclasses.replace(self, **kw)

    @property
    def area(self) -> int:
        return self.width * self.height

    def padded(self, pad: int) -> "ROI":
        return ROI(self.x - pad, self.y - pad, self.width + 2 * pad, self.height + 2 * pad, self.scale)


@dataclass
class BufferDesc:
    """What flows between modules (darktable's dt_iop_buffer_dsc_t).

    ``channels`` 1 (mosaic) or 3 (planar RGB); ``cfa`` of the full buffer's
    (0, 0) for mosaics; ``space`` names the colour encoding of the values:
    "raw", "camera", "rec2020" (linear working space), "display".
    ``processed_maximum`` is the per-channel maximum a clipped pixel reaches.
    ``wb_coeffs``: the white-balance multipliers (R, G, B, G2) the temperature
    module applied upstream, None where none ran (darktable's
    ``dt_dev_chroma_t`` hand-over to color calibration).
    """

    channels: int
    cfa: CFA | None = None
    space: str = "raw"
    processed_maximum: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output_profile: str | None = None
    wb_coeffs: tuple[float, ...] | None = None

    def copy(self, **kw) -> "BufferDesc":
        return dataclasses.replace(self, **kw)


@dataclass
class Piece:
    """One module instance in one pipe run: what the module may read.

    ``buf_in``/``buf_out``: full-resolution (scale 1) input/output sizes;
    ``pipe``: the pipe kind name ("export", "full", "preview", "preview2",
    "thumbnail"); ``fast``: the cut-down pipe flag; ``hq``: late scaling.
    ``data``: whatever the module's ``commit`` precomputes.
    """

    op: str
    instance: int
    params: Params
    image: SourceImage
    pipe: str = "export"
    fast: bool = False
    hq: bool = False
    device: str = "cpu"
    #: this instance is the module focused in a darkroom pipe
    focused: bool = False
    buf_in: tuple[int, int] = (0, 0)
    buf_out: tuple[int, int] = (0, 0)
    dsc_in: BufferDesc | None = None
    dsc_out: BufferDesc | None = None
    data: dict = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the module

class Module:
    """Base class of a processing module (one instance's behaviour is stateless)."""

    op: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    flags: ClassVar[Flags] = Flags.NONE
    tags: ClassVar[Tags] = Tags.NONE
    #: enabled in every new edit regardless of workflow (darktable default_enabled)
    default_enabled: ClassVar[bool] = False
    #: "raw" works on the mosaic, "rgb" on RGB, "any" on both
    works_on: ClassVar[str] = "rgb"
    #: one-line summary for `pixelpipe modules`
    summary: ClassVar[str] = ""
    #: while this module is focused in a darkroom pipe, later modules whose
    #: tags match are bypassed (darktable's operation_tags_filter)
    tags_filter: ClassVar[Tags] = Tags.NONE

    # ---- parameters
    def default_params(self, image: SourceImage) -> Params:
        """Defaults for this image (darktable's reload_defaults)."""
        return self.Params()

    def commit(self, piece: Piece) -> None:
        """Precompute per-run data into ``piece.data`` (darktable's commit_params)."""

    def output_desc(self, piece: Piece, dsc_in: BufferDesc) -> BufferDesc:
        return dsc_in.copy()

    # ---- regions of interest (default: a point operation)
    def modify_roi_out(self, piece: Piece, roi_in: ROI) -> ROI:
        return roi_in

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        return roi_out

    # ---- distortion (default: identity); points are (N, 2) x, y at scale 1
    def distort_transform(self, piece: Piece, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, dtype=np.float64)

    def distort_backtransform(self, piece: Piece, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, dtype=np.float64)

    # ---- pixels
    def process(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        raise NotImplementedError

    def process_fast(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        """The cut-down pipe's path for EXPENSIVE modules (default: pass through)."""
        if roi_in == roi_out:
            return inp
        return self.process(piece, inp, roi_in, roi_out)

    # ---- helpers
    def is_distorting(self) -> bool:
        return bool(self.tags & Tags.DISTORT)

    def __repr__(self) -> str:
        return f"<module {self.op}>"


def cfa_at(cfa: CFA | None, x: int, y: int) -> CFA | None:
    """The CFA as seen from a buffer whose (0, 0) sits at (x, y) of the full mosaic."""
    if cfa is None:
        return None
    n, m = cfa.pattern.shape
    pat = np.roll(np.roll(cfa.pattern, -(y % n), axis=0), -(x % m), axis=1)
    return CFA(cfa.kind, pat, cfa.colors)


def window(inp: np.ndarray, roi_in: ROI, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The (x, y, w, h) window of a buffer that covers ``roi_in`` (same scale), edges repeated."""
    ox, oy = x - roi_in.x, y - roi_in.y
    H, W = inp.shape[-2], inp.shape[-1]
    if 0 <= ox and 0 <= oy and ox + w <= W and oy + h <= H:
        return inp[..., oy: oy + h, ox: ox + w]
    ys = np.clip(np.arange(oy, oy + h), 0, H - 1)
    xs = np.clip(np.arange(ox, ox + w), 0, W - 1)
    return inp[..., ys[:, None], xs[None, :]]


# --------------------------------------------------------------------------- Halide modules

@dataclass(frozen=True)
class HInput:
    """A runtime input of a module's Halide algorithm.

    kind: "f32" or "i32" scalar (hl.Param), or "buf_f32"/"buf_i32" with ``dims``
    (hl.ImageParam, e.g. a small CFA look-up table or a curve LUT).
    """

    name: str
    kind: str = "f32"
    dims: int = 0


class HalideModule(Module):
    """A module whose pixels are one Halide algorithm.

    Subclasses declare ``inputs`` and write ``algorithm(inp, p, piece)``: ``inp``
    is a Func over (x, y) for mosaics or (x, y, c) for planar RGB, ``p`` maps
    input names to Params/ImageParams (plus the built-ins ``in_w``, ``in_h``:
    the input buffer's size, and ``dx``, ``dy``: where the output's (0, 0) sits
    in the input buffer). ``values(piece, roi_in, roi_out)`` gives their runtime
    values. ``pointwise`` algorithms (output pixel from the same input pixel
    only) may be fused with their neighbours by the export pipe. ``variant``
    names structurally different builds (e.g. a method choice); everything else
    is a runtime value, so parameter changes never recompile. ``staged``
    algorithms are point-wise but built from intermediate per-pixel Funcs that
    ``algorithm`` lists in ``self._stages`` (the schedule places them; inlined,
    chains of cross-channel steps grow exponentially). Per-call tables (a Func
    the pixels read many times, e.g. rawprepare's gain-map rows) are listed in
    ``self._tables``; every schedule computes them once, before the pixels.
    """

    inputs: ClassVar[tuple[HInput, ...]] = ()
    pointwise: ClassVar[bool] = True
    staged: ClassVar[bool] = False
    channels_in: ClassVar[int] = 3
    channels_out: ClassVar[int] = 3

    def variant(self, piece: Piece) -> str:
        return ""

    def pointwise_for(self, piece: Piece) -> bool:
        """``pointwise`` for this piece's parameters (a module may be point-wise for some)."""
        return self.pointwise

    def built_stages(self) -> list:
        """The per-pixel stages (``_stages``) of the last ``algorithm`` build of a staged module."""
        return list(getattr(self, "_stages", [])) if self.staged else []

    def built_tables(self) -> list:
        """The per-call tables (``_tables``) of the last ``algorithm`` build."""
        return list(getattr(self, "_tables", []))

    def gathers_for(self, piece: Piece) -> bool:
        """Each output pixel is one input pixel, fetched from another place in the same-sized
        buffer (a mirror): such a module may start a fused run, reading the run's input."""
        return False

    def algorithm(self, inp, p: dict, piece: Piece):  # -> hl.Func
        raise NotImplementedError

    def schedule(self, out, piece: Piece) -> None:
        from ..engine.halide_ops import rows

        if out.dimensions() == 3:
            from ..engine.halide_ops import c, x, y

            out.reorder(x, y, c)
        rows(out)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        return {}

    def output_shape(self, piece: Piece, roi_out: ROI) -> tuple[int, ...]:
        n = self.channels_out
        return (roi_out.height, roi_out.width) if n == 1 else (n, roi_out.height, roi_out.width)

    # -- the kernel of this module alone
    def kernel(self, piece: Piece):
        from ..engine.kernels import get_kernel, source_tag_of

        variant = self.variant(piece)
        dims_in = 2 if self.channels_in == 1 else 3

        def build():
            from ..engine import halide_ops as ho

            hl = ho.hl
            src = hl.ImageParam(hl.Float(32), dims_in, "input")
            p = ho.declare_inputs(self.inputs)
            inp = hl.Func("in")
            inp[tuple(ho.XYC[:dims_in])] = src[tuple(ho.XYC[:dims_in])]
            out = self.algorithm(inp, p, piece)
            if piece.device == "cpu":
                self.schedule(out, piece)
            else:
                from ..engine.fusion import schedule_gpu

                schedule_gpu(out, self.built_stages())
            return out, [src] + [p[i.name] for i in self.inputs] + [p[n] for n in ho.BUILTINS]

        return get_kernel(f"{self.op}{('_' + variant) if variant else ''}", build, variant=variant,
                          device=piece.device, source_tag=source_tag_of(type(self)))

    def runtime_args(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> list:
        """The values of ``inputs``, converted for the kernel, in declaration order."""
        from ..engine.kernels import f32

        vals = self.values(piece, roi_in, roi_out)
        args = []
        for i in self.inputs:
            v = vals[i.name]
            if i.kind == "buf_f32":
                v = f32(v)
            elif i.kind == "buf_i32":
                v = np.ascontiguousarray(v, dtype=np.int32)
            elif i.kind == "i32":
                v = int(v)
            else:
                v = float(v)
            args.append(v)
        return args

    def process(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        from ..engine.kernels import widen

        h, w = inp.shape[-2:]
        if min(h, w, roi_out.width, roi_out.height) < 2:
            # Halide's Python glue swaps the axes of an array with at most one axis longer
            # than 1: the buffer and the output are widened to 2 by repeating their edge; the
            # kernel still gets the true input size, so neighbourhood algorithms (and a
            # mosaic's CFA phase) never take the repeated pixels for real ones; cropped back.
            def at_least_2(r):
                return r.with_(width=max(2, r.width), height=max(2, r.height))
            out = self._process(piece, widen(inp), at_least_2(roi_in), at_least_2(roi_out), size=(w, h))
            return np.ascontiguousarray(out[..., :roi_out.height, :roi_out.width])
        return self._process(piece, inp, roi_in, roi_out)

    def _process(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI,
                 size: tuple[int, int] | None = None) -> np.ndarray:
        from ..engine.buffers import empty
        from ..engine.kernels import f32

        args = [f32(inp)] + self.runtime_args(piece, roi_in, roi_out)
        w, h = size or (inp.shape[-1], inp.shape[-2])
        sx = roi_out.x - int(round(roi_in.x * roi_out.scale / roi_in.scale))
        sy = roi_out.y - int(round(roi_in.y * roi_out.scale / roi_in.scale))
        args += [w, h, sx, sy]
        out = empty(self.output_shape(piece, roi_out), np.float32)
        self.kernel(piece)(*args, out)
        return out
