"""bilat: local contrast, darktable's "bilateral grid" mode.

Parameters: ``detail`` (darktable stores 0.25 for the 125 % slider: 0 leaves the
image as is, -1 gives the bilateral-filtered base, > 0 boosts local contrast),
``sigma_s`` ("coarseness", px at full resolution, default 50), ``sigma_r``
("contrast", L* units, default 20), ``shadows``/``highlights`` (multipliers of
the detail gain for dark and bright surroundings, 0..2, default 1; darktable
shows these for its local-laplacian mode, which is not implemented here).

Algorithm (a bilateral grid in the sense of Chen, Paris and Durand 2007):
* L is the CIE lightness L* of the pixel's Rec.2020 luminance;
* grid cells are ``ss x ss`` pixels (``ss = round(sigma_s * scale)``) aligned to the
  absolute pixel grid at the region's scale, so a region gives the same result
  as the whole image; the range axis has bins of ``sigma_r`` L* (at least 2, at
  most 51 bins as darktable); every pixel adds (L, 1) to its cell, linearly
  split between its two nearest L bins; pixels outside the image add nothing;
* the grid (sums and weights) is blurred with the 5-tap binomial [1 4 6 4 1]/16
  along x, y and L (darktable's grid blur), then sliced trilinearly at
  (x, y, L): ``base = sum / weight``;
* ``L' = L + detail * g * (L - base)`` with ``g = shadows + (highlights - shadows) *
  clamp(base / 100, 0, 1)``; positive L stays >= 0;
* the pixel's RGB is scaled by ``Y(L') / Y`` (chromaticity kept; darktable keeps
  a*, b* in Lab).
The cell size grows when the grid would exceed 2^24 cells for the whole image
(memory bound), as darktable clamps its grid size.
Region of interest: the output region padded by ``4 ss + 2`` pixels (two cells
of blur, one of interpolation, one of splatting).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl

from ..engine.halide_ops import GUARD, VEC, c, clamped, x, y
from ._nbhd import lightness, luminance, luminance_of_lightness, sane, tile_schedule, via_2x2, with_luminance
from .base import Flags, HalideModule, HInput, Module, Params, Piece, ROI, param

MAX_CELLS = 1 << 24
MAX_RANGE_BINS = 50  # darktable's DT_COMMON_BILATERAL_MAX_RES_R


@dataclass
class BilatParams(Params):
    """Local contrast (bilateral grid).

    detail: -1..4 (0.25 = darktable's 125 % default; 0 = unchanged).
    sigma_s: coarseness, px at full resolution, 1..100.
    sigma_r: contrast (edge threshold), L* units, 1..100.
    shadows, highlights: detail multipliers in dark / bright surroundings, 0..2.
    """

    mode: str = param("bilateral", choices=("bilateral",))
    detail: float = param(0.25, min=-1.0, max=4.0)
    sigma_s: float = param(50.0, min=1.0, max=100.0, unit="px")
    sigma_r: float = param(20.0, min=1.0, max=100.0, unit="L*")
    shadows: float = param(1.0, min=0.0, max=2.0)
    highlights: float = param(1.0, min=0.0, max=2.0)


def grid_geometry(p: BilatParams, full_w: int, full_h: int, scale: float) -> tuple[int, float, int]:
    """(cell size ss in px at ``scale``, range bin width in L*, number of range bins)."""
    sr = max(float(p.sigma_r), 100.0 / MAX_RANGE_BINS)
    nz = int(math.ceil(100.0 / sr - 1e-9)) + 1
    w, h = max(1, round(full_w * scale)), max(1, round(full_h * scale))
    ss = max(1, int(round(p.sigma_s * scale)))
    ss = max(ss, int(math.ceil(math.sqrt(w * h * (nz + 4) * 2 / MAX_CELLS))))
    return ss, sr, nz


class Bilat(Module):
    """The module; its pixels are the Halide algorithm of :class:`Bilat.Grid`.

    (The algorithm is not exposed as a HalideModule of the pipe, so GPU chain
    fusion never receives the grid's scatter stages unscheduled.)
    """

    op = "bilat"
    name = "local contrast"
    Params = BilatParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    works_on = "rgb"
    summary = "local contrast (bilateral grid)"

    # -- region rule (next to the algorithm): splat + blur + interpolation reach
    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        ss, _, _ = grid_geometry(piece.params, *piece.buf_in, roi_out.scale)
        return roi_out.padded(4 * ss + 2)

    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        g = self.Grid()
        return via_2x2(lambda i, ri, ro: HalideModule.process(g, piece, i, ri, ro), inp, roi_in, roi_out)


class _Grid(HalideModule):
    op = "bilat"
    pointwise = False
    inputs = (HInput("ss", "i32"), HInput("sr"), HInput("nz", "i32"), HInput("detail"), HInput("shadows"),
              HInput("highlights"), HInput("ox", "i32"), HInput("oy", "i32"))

    def algorithm(self, inp, p, piece):
        src = clamped(inp, p)
        v = hl.Func("sane_in")
        v[x, y, c] = sane(src[x, y, c])
        L = hl.Func("lightness")
        L[x, y] = lightness(luminance(v, x, y))
        ss, sr, nz = p["ss"], p["sr"], p["nz"]
        ox, oy, w, h = p["ox"], p["oy"], p["in_w"], p["in_h"]
        zv, k = hl.Var("z"), hl.Var("k")
        inv_sr = hl.f32(1) / sr

        # splat: cell (x, y) holds the buffer pixels [x ss, x ss + ss) - (ox, oy)
        r = hl.RDom([(0, ss), (0, ss)], "cell")
        xb = x * ss + r.x - ox
        yb = y * ss + r.y - oy
        inside = (xb >= 0) & (xb < w) & (yb >= 0) & (yb < h)
        val = L[hl.clamp(xb, 0, w - 1), hl.clamp(yb, 0, h - 1)]
        zf = hl.clamp(val, hl.f32(0), hl.f32(100)) * inv_sr
        zi = hl.clamp(hl.i32(hl.floor(zf)), 0, nz - 2)
        fz = zf - hl.f32(zi)
        payload = hl.select(k == 0, val, hl.f32(1)) * hl.select(inside, hl.f32(1), hl.f32(0))
        grid = hl.Func("grid")
        grid[x, y, zv, k] = hl.f32(0)
        grid[x, y, zi, k] += payload * (1 - fz)
        grid[x, y, zi + 1, k] += payload * fz

        def blur(f, name, axis):
            g = hl.Func(name)
            idx = []
            for o in (-2, -1, 0, 1, 2):
                a = [x, y, zv, k]
                a[axis] = a[axis] + o
                idx.append(f[tuple(a)])
            g[x, y, zv, k] = (idx[0] + idx[4] + 4 * (idx[1] + idx[3]) + 6 * idx[2]) * hl.f32(1 / 16)
            return g

        bz = blur(grid, "blur_z", 2)
        bx = blur(bz, "blur_x", 0)
        by = blur(bx, "blur_y", 1)

        # slice at the output pixel
        X, Y = x + p["dx"], y + p["dy"]
        gx = (hl.f32(X + ox) + 0.5) / hl.f32(ss) - 0.5
        gy = (hl.f32(Y + oy) + 0.5) / hl.f32(ss) - 0.5
        ix, iy = hl.i32(hl.floor(gx)), hl.i32(hl.floor(gy))
        fx, fy = gx - hl.f32(ix), gy - hl.f32(iy)
        Lp = L[X, Y]
        gz = hl.clamp(Lp, hl.f32(0), hl.f32(100)) * inv_sr
        iz = hl.clamp(hl.i32(hl.floor(gz)), 0, nz - 2)
        fz2 = gz - hl.f32(iz)

        def tri(kk):
            acc = 0
            for dz, wz in ((0, 1 - fz2), (1, fz2)):
                for dyy, wy in ((0, 1 - fy), (1, fy)):
                    for dxx, wx in ((0, 1 - fx), (1, fx)):
                        acc = acc + wx * wy * wz * by[ix + dxx, iy + dyy, iz + dz, kk]
            return acc

        sliced = hl.Func("sliced")
        sliced[x, y, k] = tri(k)
        wsum = sliced[x, y, 1]
        base = hl.select(wsum > hl.f32(1e-6), sliced[x, y, 0] / hl.max(wsum, hl.f32(1e-6)), Lp)
        tone = p["shadows"] + (p["highlights"] - p["shadows"]) * hl.clamp(base * hl.f32(0.01), hl.f32(0), hl.f32(1))
        L2 = Lp + p["detail"] * tone * (Lp - base)
        L2 = hl.select(Lp > 0, hl.max(L2, hl.f32(0)), Lp)
        out = hl.Func("local_contrast")
        out[x, y, c] = with_luminance(v[X, Y, c], luminance(v, X, Y), luminance_of_lightness(L2))
        self._funcs = (L, grid, bz, bx, by, sliced, k, zv, r)
        return out

    def schedule(self, out, piece):
        L, grid, bz, bx, by, sliced, k, zv, r = self._funcs
        L.compute_root().parallel(y, 8, GUARD).vectorize(x, VEC, GUARD)
        grid.compute_root().bound(k, 0, 2).reorder(k, zv, x, y).unroll(k).parallel(y)
        for u in (0, 1):
            grid.update(u).reorder(k, r.x, r.y, x, y).unroll(k).parallel(y)
        for f in (bz, bx, by):
            f.compute_root().bound(k, 0, 2).reorder(k, x, zv, y).unroll(k).parallel(y)
        xo_, _ = tile_schedule(out, 64, 32)
        out.bound(c, 0, 3)
        sliced.compute_at(out, xo_).bound(k, 0, 2).reorder(k, x, y).unroll(k).vectorize(x, VEC, GUARD)

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        ss, sr, nz = grid_geometry(piece.params, *piece.buf_in, roi_out.scale)
        q = piece.params
        return {"ss": ss, "sr": sr, "nz": nz, "detail": q.detail, "shadows": q.shadows,
                "highlights": q.highlights, "ox": roi_in.x, "oy": roi_in.y}


Bilat.Grid = _Grid
del _Grid  # keep the algorithm class out of the module registry's view
