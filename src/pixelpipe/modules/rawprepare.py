"""rawprepare: subtract the sensor's black levels, scale to the white level, apply DNG gain maps.

Algorithm, per photosite at full-image position (X, Y) (or per channel of a
planar non-CFA raw):

* ``out = (in - black(X, Y)) / (white - black(X, Y)) * gain(X, Y)``, so [0, 1]
  spans black to sensor saturation before the gain maps;
* ``black(X, Y)``: the black level of the CFA colour at (X, Y)
  (``black_level[cfa(X, Y)]``), or, where the decoder found a DNG BlackLevel
  pattern that per-colour levels cannot express (``SourceImage.black_map``,
  phase at the top-left of the active area), ``black_map[Y % rows, X % cols]``
  shifted by the user's change of that colour's level from the file's
  (``black_level[k] - image.black[k]``: zero with the defaults). The look-up
  table covers the least common period of the CFA and the map, so Bayer,
  X-Trans and four-colour (CYGM) mosaics all work;
* ``gain(X, Y)``: the product of the DNG ``GainMap`` opcodes of OpcodeList2
  that cover (X, Y) (DNG 1.3+ spec, Adobe's reference semantics). A map covers
  the rows ``top <= Y < bottom`` with ``(Y - top) % row_pitch == 0`` and the
  columns likewise; its planes ``plane .. plane + planes - 1`` (a mosaic has
  the one plane 0; a planar raw's channel c is plane c, reading map plane
  ``min(c, map_planes - 1)``). Its value is the bilinear interpolation of the
  map grid at ``v = ((Y + 0.5) / H - map_origin_v) / map_spacing_v`` (and
  ``h`` likewise with X, W), each clamped to the grid; H, W are the active
  area's size (the decoded buffer, whose origin is the active area's). Unlike
  Adobe's SDK the result is not clamped to 1.0: the pipe is scene-referred,
  and a corner brightened by a gain of 2 keeps its range (darktable does not
  clamp either). ``flat_field = "off"`` ignores the maps.

Non-CFA (planar, ``cfa.kind == "none"``) raws arrive as (3, H, W): channel c
holds colour ``cfa.pattern[0, c]`` and gets that colour's black level. The
layout is a structural choice (``variant``), as is the presence of gain maps.

Region of interest: a point operation (roi_in = roi_out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y
from ..engine.kernels import f32
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

FLAT_FIELD = ("embedded", "off")


@dataclass
class RawprepareParams(Params):
    """Sensor levels.

    black_level: per CFA colour (indices as the file's colour string, e.g. R, G, B, G2
                 for "RGBG" or G, M, C, Y for "GMCY"), sensor units (DN), 0..65535.
    white_point: sensor saturation level, sensor units (DN), 1..4294967295.
    flat_field: "embedded" applies the file's DNG GainMap opcodes (lens shading /
                flat-field correction), "off" ignores them (darktable's "flat field
                correction").
    """

    VERSION = 2

    black_level: list = param([0.0, 0.0, 0.0, 0.0], min=0.0, max=65535.0, unit="DN")
    white_point: float = param(65535.0, min=1.0, max=4294967295.0, unit="DN")
    flat_field: str = param("embedded", choices=FLAT_FIELD)

    @classmethod
    def migrate(cls, version: int, d: dict) -> dict:
        return d  # version 1 had no flat_field: the default (embedded) applies


def is_planar(piece: Piece) -> bool:
    """The buffer is planar (C, H, W) non-CFA raw data rather than a mosaic."""
    if piece.dsc_in is not None:
        return piece.dsc_in.channels == 3
    cfa = piece.image.cfa
    return cfa is not None and cfa.kind == "none"


# --------------------------------------------------------------------------- kernel calls

def at_least_2(a: np.ndarray) -> np.ndarray:
    """``a`` with every axis at least 2 long (edge-repeated).

    A compiled kernel cannot tell the axis order of a NumPy array with an axis
    of length 1 (it is C- and Fortran-contiguous at once) and rejects it, so
    small tables are widened; kernels only read the leading entries.
    """
    a = np.asarray(a)
    pad = [(0, max(0, 2 - n)) for n in a.shape]
    return np.ascontiguousarray(np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a)


# --------------------------------------------------------------------------- levels

def level_tables(image, p: RawprepareParams, planar: bool) -> tuple[np.ndarray, np.ndarray]:
    """(black, 1 / (white - black)) look-up tables, indexed [row phase, column phase].

    Mosaic: shape (Ly, Lx), one period of the CFA and the black map together.
    Planar: shape (1, C), one value per channel.
    """
    bl = np.asarray(p.black_level, dtype=np.float64)
    pat = np.asarray(image.cfa.pattern) if image.cfa is not None else np.zeros((2, 2), int)
    if planar:
        black = bl[np.clip(pat.reshape(1, -1), 0, 3)]
    else:
        bmap = image.black_map
        if bmap is not None and bmap.ndim == 2 and bmap.size:
            ly, lx = math.lcm(pat.shape[0], bmap.shape[0]), math.lcm(pat.shape[1], bmap.shape[1])
        else:
            bmap = None
            ly, lx = pat.shape
        jj, ii = np.mgrid[0:ly, 0:lx]
        colour = np.clip(pat[jj % pat.shape[0], ii % pat.shape[1]], 0, 3)
        black = bl[colour]
        if bmap is not None:
            file_black = np.asarray(image.black, dtype=np.float64)
            black = np.asarray(bmap, np.float64)[jj % bmap.shape[0], ii % bmap.shape[1]] \
                + (bl[colour] - file_black[colour])
    inv = 1.0 / np.maximum(p.white_point - black, 1e-6)
    return f32(at_least_2(black)), f32(at_least_2(inv))


# --------------------------------------------------------------------------- gain maps

def gain_entries(image, planar: bool) -> list[tuple[int, dict, np.ndarray]]:
    """The (channel, map, grid) triples that apply to this buffer layout.

    A mosaic is the single plane 0; a planar raw's channel c is plane c and reads
    map plane min(c, map_planes - 1), as the DNG SDK does.
    """
    out = []
    nch = int(image.data.shape[0]) if planar and image.data.ndim == 3 else 1
    for m in image.gain_maps or ():
        g = np.asarray(m["gain"], dtype=np.float64)
        if g.ndim != 3 or g.size == 0 or m["map_spacing_v"] <= 0 or m["map_spacing_h"] <= 0 \
                or m["row_pitch"] < 1 or m["col_pitch"] < 1:
            continue
        for ch in range(m["plane"], m["plane"] + m["planes"]):
            if ch >= nch:
                break
            out.append((ch, m, g[:, :, min(ch, g.shape[2] - 1)]))
    return out


def gain_axis(n0: int, n: int, start: int, stop: int, pitch: int, origin: float, spacing: float,
              points: int, size: int) -> np.ndarray:
    """Continuous map index along one axis for positions n0 .. n0+n-1, or -1 where not covered.

    ``size`` is the active area's extent on this axis (H or W): the position's
    relative coordinate is (pos + 0.5) / size.
    """
    pos = np.arange(n0, n0 + n, dtype=np.float64)
    idx = ((pos + 0.5) / size - origin) / spacing
    idx = np.clip(idx, 0.0, max(points - 1, 0))
    covered = (pos >= start) & (pos < stop) & (((pos - start) % pitch) == 0)
    return np.where(covered, idx, -1.0)


def gain_inputs(image, planar: bool, roi: ROI) -> dict:
    """Kernel inputs for the gain maps over buffer ``roi`` (full-image coordinates at scale 1)."""
    entries = gain_entries(image, planar)
    H, W = image.height, image.width
    nv = max(g.shape[0] for _, _, g in entries) + 1
    nh = max(g.shape[1] for _, _, g in entries) + 1
    grids = np.empty((len(entries), nv, nh), np.float64)
    gx = np.empty((len(entries), roi.width), np.float64)
    gy = np.empty((len(entries), roi.height), np.float64)
    chans = np.empty(len(entries), np.int32)
    for k, (ch, m, g) in enumerate(entries):
        # edge-replicated to a common size: index i0 + 1 is always readable (with weight 0 at the edge)
        grids[k] = np.pad(g, ((0, nv - g.shape[0]), (0, nh - g.shape[1])), mode="edge")
        gx[k] = gain_axis(roi.x, roi.width, m["left"], m["right"], m["col_pitch"], m["map_origin_h"],
                          m["map_spacing_h"], g.shape[1], W)
        gy[k] = gain_axis(roi.y, roi.height, m["top"], m["bottom"], m["row_pitch"], m["map_origin_v"],
                          m["map_spacing_v"], g.shape[0], H)
        chans[k] = ch
    return {"gains": f32(at_least_2(grids)), "gx": f32(at_least_2(gx)), "gy": f32(at_least_2(gy)), "gch": chans}


def interpolate_gain(grid: np.ndarray, fv: np.ndarray, fh: np.ndarray) -> np.ndarray:
    """Bilinear value of ``grid`` at continuous indices (fv rows, fh columns), clamped (NumPy)."""
    fv = np.clip(fv, 0, grid.shape[0] - 1)
    fh = np.clip(fh, 0, grid.shape[1] - 1)
    i0 = np.minimum(np.floor(fv).astype(int), grid.shape[0] - 1)
    j0 = np.minimum(np.floor(fh).astype(int), grid.shape[1] - 1)
    i1, j1 = np.minimum(i0 + 1, grid.shape[0] - 1), np.minimum(j0 + 1, grid.shape[1] - 1)
    tv, th = fv - i0, fh - j0
    top = grid[i0, j0] * (1 - th) + grid[i0, j1] * th
    bottom = grid[i1, j0] * (1 - th) + grid[i1, j1] * th
    return top * (1 - tv) + bottom * tv


# --------------------------------------------------------------------------- the module

class Rawprepare(HalideModule):
    op = "rawprepare"
    name = "raw black/white point"
    Params = RawprepareParams
    flags = Flags.ONE_INSTANCE | Flags.HIDDEN | Flags.ALLOW_TILING
    default_enabled = True
    works_on = "raw"
    summary = "per-channel black/white levels, DNG black-level pattern and gain maps"
    channels_in = channels_out = 1
    inputs = (HInput("black", "buf_f32", 2), HInput("inv_range", "buf_f32", 2),
              HInput("ox", "i32"), HInput("oy", "i32"),
              HInput("gains", "buf_f32", 3), HInput("gx", "buf_f32", 2), HInput("gy", "buf_f32", 2),
              HInput("gch", "buf_i32", 1))

    def variant(self, piece: Piece) -> str:
        parts = ["planar"] if is_planar(piece) else []
        n = self._n_gains(piece)
        if n:
            parts.append(f"gain{n}")
        return "_".join(parts)

    def _n_gains(self, piece: Piece) -> int:
        """How many gain-map entries apply (0 with flat_field "off"): structural, one kernel per count."""
        if piece.params.flat_field != "embedded":
            return 0
        return len(gain_entries(piece.image, is_planar(piece)))

    # -- algorithm: black and range per CFA position (phase ox, oy of the buffer), then the gain maps
    def algorithm(self, raw, p, piece):
        planar = is_planar(piece)
        black, inv = p["black"], p["inv_range"]
        if planar:
            level = (raw[x, y, c] - black[c, 0]) * inv[c, 0]
        else:
            i = (x + p["ox"]) % black.dim(0).extent()
            j = (y + p["oy"]) % black.dim(1).extent()
            level = (raw[x, y] - black[i, j]) * inv[i, j]
        # the product of the gain-map entries covering this photosite (and channel); the count is
        # structural, so the product is an inline expression and the module stays fusable.
        # Bilinear in two steps: each map row interpolated at every buffer column first (a small
        # table, columns x map rows), then the two rows around the photosite's row: the same
        # arithmetic as the direct formula, but contiguous loads instead of four gathers per map.
        gain = hl.f32(1)
        g = p["gains"]
        self._tables = []
        for k in range(self._n_gains(piece)):
            fx, fy = p["gx"][x, k], p["gy"][y, k]
            i0 = hl.clamp(hl.i32(hl.floor(fx)), 0, g.dim(0).extent() - 2)
            j0 = hl.clamp(hl.i32(hl.floor(fy)), 0, g.dim(1).extent() - 2)
            tx, ty = fx - hl.f32(i0), fy - hl.f32(j0)
            along_x = hl.Func(f"gain_rows_{k}")  # [buffer column, map row]
            along_x[x, y] = g[i0, y, k] * (1 - tx) + g[i0 + 1, y, k] * tx
            self._tables.append(along_x)
            top, bottom = along_x[x, j0], along_x[x, j0 + 1]
            covered = (fx >= 0) & (fy >= 0)
            if planar:
                covered = covered & (p["gch"][k] == c)
            gain = gain * hl.select(covered, top * (1 - ty) + bottom * ty, hl.f32(1))
        prepared = hl.Func("prepared")
        prepared[(x, y, c) if planar else (x, y)] = level * gain
        return prepared

    def schedule(self, out, piece):
        super().schedule(out, piece)
        for f in self._tables:  # once per call: columns x map rows
            f.compute_root().vectorize(x, VEC, GUARD)

    # -- metadata
    def commit(self, piece):
        planar = is_planar(piece)
        self.channels_in = self.channels_out = 3 if planar else 1

    def default_params(self, image):
        return RawprepareParams(black_level=[float(b) for b in image.black], white_point=float(image.white))

    def output_desc(self, piece, dsc_in):
        return dsc_in.copy(processed_maximum=(1.0, 1.0, 1.0))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        p: RawprepareParams = piece.params
        planar = is_planar(piece)
        black, inv = level_tables(piece.image, p, planar)
        vals = {"black": black, "inv_range": inv, "ox": roi_in.x, "oy": roi_in.y}
        if self._n_gains(piece):
            vals.update(gain_inputs(piece.image, planar, roi_in))
        else:
            vals.update({"gains": np.ones((2, 2, 2), np.float32), "gx": -np.ones((2, 2), np.float32),
                         "gy": -np.ones((2, 2), np.float32), "gch": np.zeros(2, np.int32)})
        return vals

