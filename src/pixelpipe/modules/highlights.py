"""highlights: reconstruct clipped sensor values so highlights stay plausible, never magenta.

Works on the white-balanced mosaic (after rawprepare and temperature): a
colour c saturates at ``coeff[c]`` = ``processed_maximum[c]``.

Method "clip" (darktable's "clip highlights"): every sample is limited to
``clip * min(processed_maximum)``, so a saturated pixel ends neutral after white
balance. Point-wise.

Method "opposed" (darktable's default "inpaint opposed", the default here): a
photosite of colour c is clipped when ``v >= clips[c] = clip * min(0.987,
saturation[c]) * coeff[c]`` (0.987: darktable's margin for this method).
Its value is estimated from the *opposed* colours around it:

0. ``saturation[c]`` (``detect_saturation``, on by default; 1 when off or not
   found): where a colour's photosites pile up against a ceiling below the
   file's white point, that ceiling (see :func:`saturation_level`). Real files
   do this: the GoPro HERO6 DNG says 16383 but its green saturates at 0.951
   and its blue at 0.922 of that, the Canon D30 at 0.926. darktable's rule
   then misses the clipped green, and green lower than red and blue is
   magenta; darktable leaves the fix to the user's "clipping threshold";
1. in the 3x3 photosites centred on it, the mean of each colour (negative
   values counted as 0; photosites outside the image are left out) is taken
   to the cube root; the reference for colour c is the mean of the two other
   colours' cube roots, cubed back: ``ref = ((r_a + r_b) / 2)^3``;
2. a chrominance offset per colour, ``chroma[c]``: the mean of ``v - ref``
   over the unclipped photosites of colour c with ``v > 0.2 * clips[c]`` that
   lie close to clipped data of that colour (within about 9 photosites: the
   clipped mask on a grid of 3x3-photosite blocks, dilated by a disc of
   radius 3 blocks); it is 0 unless more than 100 photosites contribute.
   This carries the colour of the surroundings into the clipped area, so a
   blown sky takes the sky's colour, or stays neutral;
3. clipped photosites become ``max(v, ref + chroma[c])``; all others ``max(v, 0)``.

Why a NumPy step: the chrominance is a whole-image statistic (darktable
expands this module's region of interest to the full image for it), but a
module here sees only its region of interest. So it is computed once per
image and settings from the whole decoded mosaic, prepared as rawprepare does
with the file's levels and gain maps and balanced with the coefficients the
pipe passes on (``processed_maximum``), and cached (the saturation levels
too, from the file's values). The per-photosite work
(the reference of step 1, for the statistic as for the output) is Halide;
the mask dilation and the masked means are a cheap NumPy pass over the
whole mosaic. A user change of rawprepare's levels is not seen by the
statistic (it then uses the file's levels): a small difference in the offset
only. The result does not depend on the region of interest, so a darkroom
crop equals the export.

Which white the reconstruction aims at (``scene_scale``): a blown highlight
is, as far as anyone can tell, lit by the scene's illuminant, so it should
come out with the colour of that illuminant, the colour a white surface has
elsewhere in the frame. With as-shot (or any user) white balance the applied
coefficients define that white and nothing changes. With the camera
reference (D65) coefficients of the "modern" chromatic adaptation, white
balance is only a technical step and color calibration later adapts from the
as-shot illuminant: reconstructing towards the D65 neutral would then be
warmed (pink under a bluish sky) by that adaptation. So when the applied
coefficients are the camera reference and the file has an as-shot white
balance, every step above runs on the data rescaled to the as-shot balance
(``u = v * s[c]``, ``s = as_shot / applied``: the clip levels, the
references, the chrominance), and the reconstructed photosites are scaled
back (``/ s[c]``). Which photosites count as clipped does not change (the
same sensor level either way), and unclipped photosites pass untouched;
the result equals legacy white balance's reconstruction, rescaled. "clip"
does the same: its limit, ``clip * min(as_shot)`` in the as-shot balance,
becomes a limit per colour.

Non-CFA (planar) raws use the same rule per pixel with the pixel's own other
channels as the reference (darktable's linear variant), so that path is
point-wise. Four-colour (CYGM) and monochrome mosaics, and the cut-down
(fast) pipe, use "clip".

Region of interest: "opposed" on a mosaic needs one photosite of context on
each side (the 3x3 neighbourhood): ``modify_roi_in`` pads the region by 1;
"clip" is a point operation.
"""
from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, clamped, rows, x, y, yi, yo
from ..engine.kernels import f32, get_kernel, source_tag_of
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

MODES = ("opposed", "clip")
#: darktable's clipping margin for inpaint opposed (highlights_clip_magics)
OPPOSED_MARGIN = 0.987
#: the chrominance needs more photosites than this, else it is 0
MIN_SAMPLES = 100
#: unclipped photosites below this fraction of the clip level do not contribute to the chrominance
LOW_FRACTION = 0.2
#: mask grid: blocks of BLOCK x BLOCK photosites, dilated by a disc of radius 3 blocks
BLOCK = 3
PAD = 1  # the 3x3 neighbourhood


@dataclass
class HighlightsParams(Params):
    """Highlight reconstruction.

    mode: "opposed" (inpaint opposed, darktable's default) or "clip".
    clip: clipping threshold relative to sensor saturation (times the white-balance
          coefficient of each colour), 0..2.
    detect_saturation: "opposed" only: find each colour's real saturation level in the
          image when it lies below the file's white point (see the module docstring).
    """

    VERSION = 2

    mode: str = param("opposed", choices=MODES)
    clip: float = param(1.0, min=0.0, max=2.0)
    detect_saturation: bool = param(True)

    @classmethod
    def migrate(cls, version: int, d: dict) -> dict:
        # version 1 knew only "clip" and stored it: an old edit keeps clipping
        d.setdefault("mode", "clip")
        return d


def _planar(piece: Piece) -> bool:
    if piece.dsc_in is not None:
        return piece.dsc_in.channels == 3
    cfa = piece.image.cfa
    return cfa is not None and cfa.kind == "none"


def _per_channel(piece: Piece, rgb: np.ndarray) -> np.ndarray:
    """Values per R, G, B as the buffer has them: per R, G, B (mosaic) or per channel (planar)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    cfa = piece.image.cfa
    if _planar(piece) and cfa is not None:
        ch = np.clip(cfa.rgb_pattern().reshape(-1)[:3], 0, 2)
        if len(ch) == 3:
            return rgb[ch]
    return rgb


def _channel_coeffs(piece: Piece) -> np.ndarray:
    """White-balance coefficient per R, G, B (mosaic) or per channel (planar: channel c's colour)."""
    return _per_channel(piece, piece.dsc_in.processed_maximum)


def scene_scale_rgb(image, applied) -> np.ndarray:
    """Per R, G, B: ``s = as_shot / applied`` (both normalised to green) when the ``applied``
    coefficients are the camera reference (D65) and the file has an as-shot white balance
    and a colour matrix; 1, 1, 1 otherwise (the applied coefficients then define the white).
    See the module docstring."""
    ones = np.ones(3)
    cfa = image.cfa
    if cfa is None or cfa.kind in ("4color", "mono") or getattr(image, "wb_as_shot", None) is None:
        return ones
    from .temperature import TemperatureParams, _xyz_to_cam, camera_reference, coefficients

    if not _xyz_to_cam(image)[1]:
        return ones
    app = np.asarray(applied, dtype=np.float64)[:3]
    ref = np.asarray(camera_reference(image), dtype=np.float64)[:3]
    if not (np.isfinite(app).all() and (app > 0).all() and (ref > 0).all()):
        return ones
    app, ref = app / app[1], ref / ref[1]
    if not np.allclose(app, ref, rtol=1e-4, atol=0):
        return ones  # as shot, or the user's own white: that is the white
    shot = coefficients(image, TemperatureParams(preset="as-shot"))[0][:3]
    if not (np.isfinite(shot).all() and (shot > 0).all()):
        return ones
    out = (shot / shot[1]) / app
    return out if np.isfinite(out).all() and (out > 0).all() else ones


def scene_scale(piece: Piece) -> np.ndarray:
    """:func:`scene_scale_rgb` for this piece, per R, G, B (mosaic) or per channel (planar); cached."""
    if "scale" not in piece.data:
        piece.data["scale"] = _per_channel(piece, scene_scale_rgb(piece.image, piece.dsc_in.processed_maximum))
    return piece.data["scale"]


def _rescaled(piece: Piece) -> bool:
    return not np.array_equal(scene_scale(piece), np.ones(3))


def clip_limits(piece: Piece) -> np.ndarray:
    """"clip": the limit per R, G, B (mosaic) or channel (planar): ``clip * min(applied * s) / s``."""
    s = scene_scale(piece)
    return piece.params.clip * float(np.min(_channel_coeffs(piece) * s)) / s


def effective_mode(piece: Piece) -> str:
    """The method that runs: "opposed" needs an RGB CFA (Bayer/X-Trans) or planar RGB, and a full pipe."""
    if piece.params.mode == "clip" or piece.fast:
        return "clip"
    if _planar(piece):
        return "opposed"
    cfa = piece.image.cfa
    if cfa is None or cfa.kind not in ("bayer", "xtrans") or (cfa.rgb_pattern() < 0).any():
        return "clip"
    return "opposed"


# --------------------------------------------------------------------------- Halide algorithms

def _cube_root(v):
    """``v^(1/3)`` for v > 0 (the opposed means' cube-root domain, darktable's HL_POWERF = 3),
    else 0, without ``pow`` (three per photosite make pow this module's main cost).

    First guess from the float's bits (exponent and mantissa divided by 3: within 3.3 %),
    then two Halley steps (cubic convergence): within 2.4e-7 relative for v in [1e-8, 100],
    as close as float32 ``pow`` gets.
    """
    u = hl.max(v, hl.f32(1e-30))
    r = hl.reinterpret(hl.Float(32), hl.reinterpret(hl.UInt(32), u) / 3 + hl.u32(0x2A5137A0))
    for _ in range(2):
        r3 = r * r * r
        r = r * (r3 + 2 * u) / (2 * r3 + u)
    return hl.select(v > 0, r, hl.f32(0))


def period_of(pattern: np.ndarray) -> int:
    """The look-up period used by the kernel: 6 covers Bayer (2) and X-Trans (6) with a constant modulo."""
    ny, nx = np.asarray(pattern).shape
    return 6 if 6 % ny == 0 and 6 % nx == 0 else int(np.lcm(ny, nx))


def tiled_lut(pattern: np.ndarray) -> np.ndarray:
    """The RGB colour pattern (0 R, 1 G, 2 B) tiled to period x period, as int32 [row phase, column phase]."""
    pat = np.asarray(pattern)
    n = period_of(pat)
    return np.ascontiguousarray(np.tile(pat, (n // pat.shape[0], n // pat.shape[1])), dtype=np.int32)


def _reference(src, p, period: int, scale=None):
    """Funcs over buffer coordinates: the value (>= 0), its colour and the opposed reference.

    The colour is -1 outside the buffer, so neighbours beyond the image are left
    out of the means (the padded region of interest makes the buffer edge the
    image edge wherever it matters). ``scale`` (a buffer per colour): the
    values are multiplied by it first (the rescaling to the scene's white). The period of the colour look-up is a
    compile-time constant: a modulo by a runtime value costs much compile time.
    """
    lut = p["lut"]
    inside = (x >= 0) & (x < p["in_w"]) & (y >= 0) & (y < p["in_h"])
    colour = hl.Func("colour")
    colour[x, y] = hl.select(inside, hl.clamp(lut[(x + p["ox"]) % period, (y + p["oy"]) % period], 0, 2), -1)
    value = hl.Func("value")
    if scale is None:
        value[x, y] = hl.max(src[x, y], hl.f32(0))
    else:
        value[x, y] = hl.max(src[x, y], hl.f32(0)) * scale[hl.clamp(colour[x, y], 0, 2)]
    # one-hot sums (c = 0..2) and counts (c = 3..5) per colour over 3x3, separably
    onehot = hl.Func("onehot")
    onehot[x, y, c] = hl.select(colour[x, y] == c % 3, hl.select(c < 3, value[x, y], hl.f32(1)), hl.f32(0))
    across = hl.Func("across")
    across[x, y, c] = onehot[x - 1, y, c] + onehot[x, y, c] + onehot[x + 1, y, c]
    box = hl.Func("box")
    box[x, y, c] = across[x, y - 1, c] + across[x, y, c] + across[x, y + 1, c]
    root = hl.Func("root")  # cube root of each colour's mean
    root[x, y, c] = _cube_root(box[x, y, c] / hl.max(box[x, y, c + 3], hl.f32(1)))
    k = hl.Expr(colour[x, y])
    r0, r1, r2 = (hl.Expr(root[x, y, i]) for i in range(3))
    opp = (r0 + r1 + r2 - hl.select(k == 0, r0, k == 1, r1, r2)) * hl.f32(0.5)
    ref = hl.Func("ref")
    ref[x, y] = opp * opp * opp
    return {"value": value, "colour": colour, "across": across, "ref": ref}


def _store_reference_at(funcs, out, strip) -> None:
    """The reference's colours, values and horizontal sums, stored per ``strip`` of ``out``."""
    funcs["colour"].compute_at(out, strip).vectorize(x, VEC, GUARD)
    funcs["value"].compute_at(out, strip).vectorize(x, VEC, GUARD)
    funcs["across"].compute_at(out, strip).reorder(x, y, c).bound(c, 0, 6).unroll(c).vectorize(x, VEC, GUARD)


def _schedule_reference(out, funcs):
    """Strips of 16 rows in parallel; per strip the colours, values and horizontal sums are stored."""
    out.split(y, yo, yi, 16, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    _store_reference_at(funcs, out, yo)


# --------------------------------------------------------------------------- the whole-image statistics
# Both run as Halide reductions over the whole mosaic; NumPy only sees small
# results (a histogram, a grid of 3x3-photosite blocks).

#: histogram of the saturation search: bins of 1/1024 from 0.5 up to the last edge <= 1.1
HIST_LO, HIST_STEP = 0.5, 1.0 / 1024
HIST_BINS = int((1.1 + 1e-9 - HIST_LO) / HIST_STEP)  # 614
HIST_LAST_EDGE = HIST_LO + HIST_BINS * HIST_STEP
#: per colour: the bins, then "above the last edge" (counted in n only), then one unused slot
HIST_SLOTS = HIST_BINS + 2
HIST_ROWS = 64  # rows per partial histogram (one parallel task each)
BLOCK_ROWS = 8  # block rows per parallel strip of the block statistics


def _build_histogram(period: int):
    """Kernel: per strip of HIST_ROWS rows, the histogram slots of every colour (3 x HIST_SLOTS, + 1 unused)."""
    data = hl.ImageParam(hl.Float(32), 2, "data")
    colour = hl.ImageParam(hl.Int(32), 2, "colour")  # [column phase, row phase]: 0..2, or -1 (not counted)
    black = hl.ImageParam(hl.Float(64), 2, "black")
    white_range = hl.ImageParam(hl.Float(64), 2, "white_range")
    strip = hl.Var("strip")
    H, W = data.dim(1).extent(), data.dim(0).extent()
    px, py = x % period, y % period
    # float64 like the NumPy definition, so the bin edges fall exactly where np.histogram puts them
    norm = hl.Func("norm")
    norm[x, y] = hl.cast(hl.Float(32), (hl.cast(hl.Float(64), data[x, hl.min(y, H - 1)]) - black[px, py])
                         / white_range[px, py])
    u = norm[x, y]
    k = colour[px, py]
    slot = hl.Func("slot")
    slot[x, y] = hl.select(k < 0, 3 * HIST_SLOTS,
                           hl.clamp(k, 0, 2) * HIST_SLOTS
                           + hl.select(u > hl.f32(HIST_LAST_EDGE), HIST_BINS,
                                       hl.clamp(hl.cast(hl.Int(32), hl.floor((u - hl.f32(HIST_LO)) * hl.f32(1024))),
                                                0, HIST_BINS - 1)))
    r = hl.RDom([(0, W), (0, HIST_ROWS)], "r")
    # most photosites lie below 0.5 (or are not numbers): they are skipped, not counted
    r.where((strip * HIST_ROWS + r.y < H) & (norm[r.x, strip * HIST_ROWS + r.y] >= hl.f32(HIST_LO)))
    hist = hl.Func("hist")
    b = hl.Var("b")
    hist[b, strip] = 0
    hist[hl.clamp(slot[r.x, strip * HIST_ROWS + r.y], 0, 3 * HIST_SLOTS), strip] += 1
    hist.update().parallel(strip)
    return hist, [data, colour, black, white_range]


def _histograms(image) -> np.ndarray:
    """(3, HIST_SLOTS) counts per R, G, B of a mosaic's values normalised by the file's levels."""
    d = image.data
    pat, rgb = np.asarray(image.cfa.pattern), np.asarray(image.cfa.rgb_pattern())
    n = period_of(pat)
    reps = (n // pat.shape[0], n // pat.shape[1])
    black_c = np.asarray(image.black, np.float64)
    black = np.tile(black_c[pat], reps)
    white_range = np.maximum(float(image.white) - black, 1e-6)
    colour = np.tile(np.where((rgb >= 0) & (rgb <= 2), rgb, -1), reps).astype(np.int32)
    k = get_kernel("highlights_histogram", lambda: _build_histogram(n), variant=f"p{n}",
                   source_tag=source_tag_of(_build_histogram))
    # at least two (empty) strips: an array with one row is read with its axes swapped (engine/kernels.widen)
    strips = max(2, -(-d.shape[0] // HIST_ROWS))
    out = np.empty((strips, 3 * HIST_SLOTS + 1), np.int32)
    if min(d.shape) < 2:  # a thin array would be read with its axes swapped; NaN photosites are not counted
        d = np.pad(f32(d), ((0, max(0, 2 - d.shape[0])), (0, max(0, 2 - d.shape[1]))), constant_values=np.nan)
    k(f32(d), colour, np.ascontiguousarray(black), np.ascontiguousarray(white_range), out)
    return out.sum(axis=0, dtype=np.int64)[:3 * HIST_SLOTS].reshape(3, HIST_SLOTS)


#: how far (in blocks, along either axis) the disc of :func:`_dilate_disc` reaches
NEAR_BLOCKS = 3


def _dilate_along(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Boolean dilation of ``a`` by ``r`` cells either way along ``axis``."""
    out = a.copy()
    for s in range(1, min(r, a.shape[axis] - 1) + 1):
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(s, None), slice(None, -s)
        out[tuple(lo)] |= a[tuple(hi)]
        out[tuple(hi)] |= a[tuple(lo)]
    return out


def _dilate_disc(m: np.ndarray) -> np.ndarray:
    """Dilation of a boolean grid by the disc dx^2 + dy^2 <= 13 (a 7x7 square without its corners).

    The disc is the union of a 7x5 and a 5x7 rectangle, each dilated separably.
    """
    r = NEAR_BLOCKS
    return _dilate_along(_dilate_along(m, r, 1), r - 1, 0) | _dilate_along(_dilate_along(m, r - 1, 1), r, 0)


def _statistic_inputs():
    """The whole-image statistic kernels' inputs: the prepared mosaic, the colour look-up,
    the per-colour balance and clip levels."""
    return (hl.ImageParam(hl.Float(32), 2, "prepared"), hl.ImageParam(hl.Int(32), 2, "lut"),
            hl.ImageParam(hl.Float(32), 1, "coeff"), hl.ImageParam(hl.Float(32), 1, "clips"))


def _build_block_stats(period: int):
    """Kernel: per 3x3-photosite block and colour k, (clipped?, sum of v - ref, count) over the samples.

    The mosaic is balanced in the kernel (``prepared * coeff[colour]``); a
    sample is an unclipped photosite of colour k with ``v > LOW_FRACTION * clips[k]``.
    Output [bx, by, j]: j = k (1 when a photosite of colour k is clipped), 3 + k (sum), 6 + k (count).
    """
    prepared, lut, coeff, clips = _statistic_inputs()
    row0 = hl.Param(hl.Int(32), "row0")  # the block row the output's row 0 is
    W, H = prepared.dim(0).extent(), prepared.dim(1).extent()
    p = {"lut": lut, "in_w": W, "in_h": H, "ox": 0, "oy": 0}
    src = hl.BoundaryConditions.repeat_edge(prepared)
    balanced = hl.Func("balanced")
    balanced[x, y] = src[x, y] * coeff[hl.clamp(lut[x % period, y % period], 0, 2)]
    f = _reference(balanced, p, period)
    colour = f["colour"]  # -1 outside the image
    thr = clips[hl.clamp(colour[x, y], 0, 2)]
    kind = hl.Func("kind")  # 0 not counted, 1 clipped, 2 a sample
    kind[x, y] = hl.select(colour[x, y] < 0, 0, balanced[x, y] >= thr, 1,
                           balanced[x, y] > hl.f32(LOW_FRACTION) * thr, 2, 0)
    diff = hl.Func("diff")
    diff[x, y] = f["value"][x, y] - f["ref"][x, y]
    bx, by, j = hl.Var("bx"), hl.Var("by"), hl.Var("j")
    # per photosite the nine contributions (clipped / sample value / sample count, per colour),
    # summed over the block's three columns, then its three rows
    k = j % 3
    own = colour[x, y] == k
    term = hl.Func("block_term")  # inline
    term[x, y, j] = hl.select(own & (kind[x, y] == 1) & (j < 3), hl.f32(1),
                              own & (kind[x, y] == 2) & (j >= 3), hl.select(j < 6, diff[x, y], hl.f32(1)),
                              hl.f32(0))
    across = hl.Func("block_across")  # [bx, y, j]
    across[bx, y, j] = sum((term[BLOCK * bx + i, y, j] for i in range(BLOCK)), hl.f32(0))
    stats = hl.Func("block_stats")
    stats[bx, by, j] = sum((across[bx, BLOCK * (by + row0) + i, j] for i in range(BLOCK)), hl.f32(0))
    byo = hl.Var("byo")
    stats.bound(j, 0, 9).reorder(j, bx, by).unroll(j).split(by, byo, by, BLOCK_ROWS, GUARD).parallel(byo) \
        .vectorize(bx, VEC // 2, GUARD)
    across.compute_at(stats, byo).bound(j, 0, 9).reorder(j, bx, y).unroll(j).vectorize(bx, VEC // 2, GUARD)
    _store_reference_at(f, stats, byo)
    for g in (kind, diff):
        g.compute_at(stats, byo).vectorize(x, VEC, GUARD)
    return stats, [prepared, lut, coeff, clips, row0]


def _build_clipped_blocks(period: int):
    """Kernel: per 3x3-photosite block, 1 when a photosite in it is clipped (as the statistics
    count it: ``prepared * coeff[colour] >= clips[colour]``), else 0. One cheap pass that
    tells the block statistics which rows they can leave out."""
    prepared, lut, coeff, clips = _statistic_inputs()
    W, H = prepared.dim(0).extent(), prepared.dim(1).extent()
    k = hl.clamp(lut[x % period, y % period], 0, 2)
    v = prepared[hl.min(x, W - 1), hl.min(y, H - 1)] * coeff[k]
    hit = hl.Func("hit")
    hit[x, y] = hl.select((x < W) & (y < H) & (v >= clips[k]), hl.u8(1), hl.u8(0))
    bx, by, byo = hl.Var("bx"), hl.Var("by"), hl.Var("byo")
    flags = hl.Func("clipped_blocks")
    flags[bx, by] = functools.reduce(hl.max, [hit[BLOCK * bx + i, BLOCK * by + j]
                                              for i in range(BLOCK) for j in range(BLOCK)])
    flags.split(by, byo, by, 4 * BLOCK_ROWS, GUARD).parallel(byo).vectorize(bx, VEC, GUARD)
    return flags, [prepared, lut, coeff, clips]


def _block_stats(prepared: np.ndarray, rgb_pattern: np.ndarray, coeff, clips) -> np.ndarray:
    """(9, rows, block columns): see :func:`_build_block_stats`, for the block rows within
    ``NEAR_BLOCKS`` of a block with a clipped photosite, in order. Other rows cannot take part
    in the statistic, so they are not computed; the rows kept are NEAR_BLOCKS or more either
    side of every clipped block, so the disc dilation of the kept rows, stacked, reaches no
    farther than on the whole grid."""
    n = period_of(rgb_pattern)
    lut, coeff, clips = tiled_lut(rgb_pattern), f32(coeff), f32(clips)
    prepared = f32(prepared)
    H, W = prepared.shape
    hb, wb = -(-H // BLOCK), -(-W // BLOCK)
    find = get_kernel("highlights_clipped_blocks", lambda: _build_clipped_blocks(n), variant=f"p{n}",
                      source_tag=source_tag_of(_build_clipped_blocks))
    # outputs at least 2 x 2 (engine/kernels.widen: thin arrays are read with their axes swapped)
    flags = np.empty((max(hb, 2), max(wb, 2)), np.uint8)
    find(prepared, lut, coeff, clips, flags)
    near = _dilate_along(flags[:hb, :wb].any(axis=1), NEAR_BLOCKS, 0)
    k = get_kernel("highlights_block_stats", lambda: _build_block_stats(n), variant=f"p{n}",
                   source_tag=source_tag_of(_build_block_stats))
    parts = [np.zeros((9, 0, wb), np.float32)]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], near.view(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        part = np.empty((9, max(b - a, 2), wb), np.float32)
        k(prepared, lut, coeff, clips, int(a), part)
        parts.append(part[:, :b - a])
    return np.concatenate(parts, axis=1)


def chrominance(mosaic: np.ndarray, rgb_pattern: np.ndarray, clips: np.ndarray, coeff=None) -> np.ndarray:
    """The per-colour chrominance offset of inpaint opposed over a whole mosaic balanced by ``coeff``."""
    H, W = mosaic.shape
    if min(H, W) < 3 or H * W <= MIN_SAMPLES:
        return np.zeros(3)  # no 3x3 neighbourhoods, or too few photosites for the statistic
    stats = _block_stats(mosaic, rgb_pattern, np.ones(3) if coeff is None else coeff, clips)
    out = np.zeros(3)
    for k in range(3):
        blocks = stats[k] > 0
        if not blocks.any():
            continue
        near = _dilate_disc(blocks)
        count = float(stats[6 + k][near].sum(dtype=np.float64))
        if count > MIN_SAMPLES:
            out[k] = float(stats[3 + k][near].sum(dtype=np.float64)) / count
    return out


def chrominance_planar(rgb: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """The same statistic for planar (3, H, W) data, the reference from each pixel's other channels."""
    v = np.maximum(rgb.astype(np.float64), 0)
    thr = np.asarray(clips, np.float64)[:, None, None]
    clipped = v >= thr
    if not clipped.any():
        return np.zeros(3)
    root = np.cbrt(v)
    ref = ((root.sum(0)[None] - root) * 0.5) ** 3
    H, W = v.shape[1:]
    hb, wb = -(-H // BLOCK), -(-W // BLOCK)
    out = np.zeros(3)
    for k in range(3):
        m = np.zeros((hb * BLOCK, wb * BLOCK), bool)
        m[:H, :W] = clipped[k]
        near = np.repeat(np.repeat(_dilate_disc(m.reshape(hb, BLOCK, wb, BLOCK).any(axis=(1, 3))),
                                   BLOCK, 0), BLOCK, 1)[:H, :W]
        sel = ~clipped[k] & (v[k] > LOW_FRACTION * thr[k]) & near
        if sel.sum() > MIN_SAMPLES:
            out[k] = float((v[k] - ref[k])[sel].mean())
    return out


_cache_lock = threading.Lock()
_cache: dict[tuple, tuple] = {}


def _whole_prepared(piece: Piece) -> np.ndarray:
    """The whole image as rawprepare makes it with the file's levels (before white balance)."""
    from .base import BufferDesc
    from .rawprepare import Rawprepare

    img = piece.image
    rp = Rawprepare()
    rpiece = Piece("rawprepare", 0, rp.default_params(img), img, pipe=piece.pipe, device=piece.device)
    rpiece.buf_in = (img.width, img.height)
    rpiece.dsc_in = BufferDesc(3 if _planar(piece) else 1, img.cfa, "raw")
    rp.commit(rpiece)
    whole = ROI(0, 0, img.width, img.height, 1.0)
    return rp.process(rpiece, np.ascontiguousarray(img.data), whole, whole)


def saturation_level(u: np.ndarray) -> float | None:
    """Where a colour's photosites pile up against a hard ceiling below the white point, or None.

    ``u``: the colour's values normalised by the file's levels (1 = white point,
    before gain maps). Sensor saturation shows as a spike at the top of the
    histogram (bins of 1/1024) with the unclipped continuum below it and
    almost nothing above; a bright flat surface instead has a bump with
    flanks on both sides. Detected when the fullest bin above 0.75 holds at
    least 50 photosites and 1e-4 of them, is 8 times the median count 10..40
    bins lower, and the bins 6..40 higher hold less than a quarter of the
    plateau (peak +-3 bins) and less than 0.8 of the bins 6..40 lower (the
    asymmetry of a ceiling; lossy raw codecs such as GoPro's VC-5 spread it
    into a short upper tail). The level is the plateau's lower edge (bins down to a tenth of the
    peak), less 0.5 % for its noise.
    """
    u = u[u >= HIST_LO]
    h, _ = np.histogram(u, _HIST_EDGES)
    return level_from_histogram(h, u.size)


_HIST_EDGES = np.arange(HIST_LO, 1.1 + 1e-9, HIST_STEP)


def level_from_histogram(h: np.ndarray, n: int) -> float | None:
    """:func:`saturation_level` from the histogram ``h`` (HIST_BINS bins) of the ``n`` values >= 0.5."""
    if n < 50:
        return None
    edges = _HIST_EDGES
    first = int(np.searchsorted(edges, 0.75))
    p = first + int(np.argmax(h[first:]))
    peak = h[p]
    below = h[max(0, p - 40): max(0, p - 10)]
    trend = float(np.median(below)) if below.size else 0.0
    mass_below = h[max(0, p - 40): max(0, p - 5)].sum()
    mass_above = h[p + 6: p + 41].sum()
    plateau = h[max(0, p - 3): p + 4].sum()
    if peak < max(50, 1e-4 * n) or peak < 8 * max(trend, 1.0) \
            or mass_above > 0.25 * plateau or mass_above > 0.8 * mass_below:
        return None
    b = p
    while b > 0 and p - b < 40 and h[b - 1] >= 0.1 * peak:
        b -= 1
    return float(edges[b]) * 0.995


def saturation_levels(image, planar: bool) -> np.ndarray:
    """Per R, G, B (or planar channel): the detected saturation (fraction of the white point), 1 if none."""
    d = image.data
    out = np.ones(3)
    black = np.asarray(image.black, np.float64)
    rng = max(float(image.white) - float(black.mean()), 1e-6)
    if planar:
        rgb = image.cfa.rgb_pattern().reshape(-1) if image.cfa is not None else np.arange(3)
        for ch in range(min(3, d.shape[0])):
            k = int(np.clip(rgb[ch], 0, 2)) if ch < len(rgb) else ch
            lv = saturation_level((d[ch] - black[k]) / rng)
            out[ch] = lv if lv is not None else 1.0
        return out
    hist, rgb = _histograms(image), image.cfa.rgb_pattern()
    for k in range(3):
        h = hist[k]
        if (rgb == k).any():
            lv = level_from_histogram(h[:HIST_BINS], int(h[:HIST_BINS + 1].sum()))
            out[k] = lv if lv is not None else 1.0
    return out


def image_statistics(piece: Piece) -> tuple[np.ndarray, np.ndarray]:
    """(clip levels per colour, chrominance offsets) for this image and settings, computed once and cached.

    The clip level of colour c is ``clip * min(0.987, saturation_c) * coeff[c]``, ``coeff``
    the applied coefficients times :func:`scene_scale` (both in the rescaled domain).
    """
    img = piece.image
    planar = _planar(piece)
    coeff = _channel_coeffs(piece) * scene_scale(piece)  # the balance whose white is the scene's
    p = piece.params
    key = (id(img), id(img.data), tuple(np.round(coeff, 9)), float(p.clip), bool(p.detect_saturation), planar,
           tuple(np.asarray(img.black, float)), float(img.white))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0]() is img.data:
            return hit[1], hit[2]
    sat = saturation_levels(img, planar) if p.detect_saturation else np.ones(3)
    clips = p.clip * np.minimum(OPPOSED_MARGIN, sat) * coeff
    prepared = _whole_prepared(piece)
    if planar:
        chroma = chrominance_planar(prepared * f32(coeff)[:, None, None], clips)
    else:
        chroma = chrominance(prepared, img.cfa.rgb_pattern(), clips, coeff)
    with _cache_lock:
        if len(_cache) >= 8:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (weakref.ref(img.data), clips, chroma)
    return clips, chroma


# --------------------------------------------------------------------------- the module

class Highlights(HalideModule):
    op = "highlights"
    name = "highlight reconstruction"
    Params = HighlightsParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING
    default_enabled = True
    works_on = "raw"
    summary = "reconstruct clipped highlights (inpaint opposed) or clip them neutral"
    channels_in = channels_out = 1
    inputs = (HInput("limit"), HInput("lut", "buf_i32", 2), HInput("clips", "buf_f32", 1),
              HInput("chroma", "buf_f32", 1), HInput("scale", "buf_f32", 1), HInput("limits", "buf_f32", 1),
              HInput("ox", "i32"), HInput("oy", "i32"))

    def variant(self, piece: Piece) -> str:
        mode = effective_mode(piece)
        if _planar(piece):
            return mode + "_planar"
        if mode == "opposed":
            n = period_of(piece.image.cfa.rgb_pattern())
            return mode if n == 6 else f"{mode}_p{n}"
        if _rescaled(piece):  # a limit per colour
            n = period_of(piece.image.cfa.rgb_pattern())
            return f"clip_wb_p{n}"
        return mode

    # -- algorithms
    def algorithm(self, raw, p, piece):
        planar = _planar(piece)
        out = hl.Func("reconstructed")
        scale = p["scale"]
        if effective_mode(piece) == "clip":
            if planar:
                out[x, y, c] = hl.min(raw[x, y, c], p["limits"][c])
            elif _rescaled(piece):
                n = period_of(piece.image.cfa.rgb_pattern())
                k = hl.clamp(p["lut"][(x + p["ox"]) % n, (y + p["oy"]) % n], 0, 2)
                out[x, y] = hl.min(raw[x, y], p["limits"][k])
            else:
                out[x, y] = hl.min(raw[x, y], p["limit"])
            return out
        clips, chroma = p["clips"], p["chroma"]
        if planar:
            # linear variant: the reference of channel c from this pixel's two other channels,
            # on the values rescaled to the scene's white (u = v * scale)
            v = hl.max(raw[x, y, c], hl.f32(0))
            u = v * scale[c]
            r = [_cube_root(hl.max(raw[x, y, k], hl.f32(0)) * scale[k]) for k in range(3)]
            mine = hl.select(c == 0, r[0], c == 1, r[1], r[2])
            opp = (r[0] + r[1] + r[2] - mine) * hl.f32(0.5)
            ref = opp * opp * opp
            out[x, y, c] = hl.select(u >= clips[c], hl.max(u, ref + chroma[c]) / scale[c], v)
            return out
        src = clamped(raw, p)
        f = _reference(src, p, period_of(piece.image.cfa.rgb_pattern()), scale)
        X, Y = x + p["dx"], y + p["dy"]
        u, k = hl.Expr(f["value"][X, Y]), hl.clamp(hl.Expr(f["colour"][X, Y]), 0, 2)
        out[x, y] = hl.select(u >= clips[k], hl.max(u, f["ref"][X, Y] + chroma[k]) / scale[k],
                              hl.max(src[X, Y], hl.f32(0)))
        self._funcs = f
        return out

    def schedule(self, out, piece):
        if effective_mode(piece) == "opposed" and not _planar(piece):
            _schedule_reference(out, self._funcs)
            return
        if _planar(piece):
            rows(out.reorder(x, y, c))
        else:
            rows(out)

    # -- regions of interest: one photosite of context for the 3x3 neighbourhood
    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        if effective_mode(piece) != "opposed" or _planar(piece):
            return roi_out
        w, h = piece.buf_in
        x0, y0 = max(0, roi_out.x - PAD), max(0, roi_out.y - PAD)
        x1 = min(w, roi_out.x + roi_out.width + PAD) if w else roi_out.x + roi_out.width + PAD
        y1 = min(h, roi_out.y + roi_out.height + PAD) if h else roi_out.y + roi_out.height + PAD
        return ROI(x0, y0, x1 - x0, y1 - y0, roi_out.scale)

    # -- metadata
    def commit(self, piece):
        piece.data.pop("scale", None)  # recomputed from this input's coefficients
        planar = _planar(piece)
        self.channels_in = self.channels_out = 3 if planar else 1
        mode = effective_mode(piece)
        # the mosaic "opposed" reads neighbours; everything else is point-wise (fusable)
        self.pointwise = not (mode == "opposed" and not planar)
        if piece.params.mode == "opposed" and mode == "clip" and not piece.fast:
            kind = piece.image.cfa.kind if piece.image.cfa is not None else "unknown"
            piece.notices.append(f"highlights: inpaint opposed needs an RGB colour filter array; "
                                 f"{kind} raws are clipped instead")

    def output_desc(self, piece, dsc_in):
        if effective_mode(piece) == "opposed":
            return dsc_in.copy()
        if _rescaled(piece):
            lim = clip_limits(piece)
            if _planar(piece):  # back to R, G, B
                ch = np.clip(piece.image.cfa.rgb_pattern().reshape(-1)[:3], 0, 2)
                rgb = np.ones(3)
                rgb[ch] = lim
                lim = rgb
            return dsc_in.copy(processed_maximum=tuple(float(v) for v in lim))
        m = min(dsc_in.processed_maximum) * piece.params.clip
        return dsc_in.copy(processed_maximum=(m, m, m))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        vals = {"limit": piece.params.clip * min(piece.dsc_in.processed_maximum),
                "lut": np.zeros((2, 2), np.int32), "clips": np.ones(3, np.float32),
                "chroma": np.zeros(3, np.float32), "scale": f32(scene_scale(piece)),
                "limits": f32(clip_limits(piece)), "ox": roi_in.x, "oy": roi_in.y}
        if effective_mode(piece) == "clip" and _rescaled(piece) and not _planar(piece):
            vals["lut"] = tiled_lut(piece.image.cfa.rgb_pattern())
        if effective_mode(piece) == "opposed":
            if "chroma" not in piece.data:
                piece.data["clips"], piece.data["chroma"] = image_statistics(piece)
            vals.update(clips=f32(piece.data["clips"]), chroma=f32(piece.data["chroma"]))
            if not _planar(piece):
                # lut[i, j] (Halide) = colour at column phase i, row phase j
                vals["lut"] = tiled_lut(piece.image.cfa.rgb_pattern())
        return vals
