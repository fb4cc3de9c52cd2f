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
#: cube-root domain of the opposed mean (darktable's HL_POWERF)
POWER = 3.0
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
    return hl.select(v > 0, hl.pow(hl.max(v, hl.f32(1e-30)), hl.f32(1.0 / POWER)), hl.f32(0))


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


def _schedule_reference(out, funcs):
    """Strips of 16 rows in parallel; per strip the colours, values and horizontal sums are stored."""
    out.split(y, yo, yi, 16, GUARD).parallel(yo).vectorize(x, VEC, GUARD)
    funcs["colour"].compute_at(out, yo).vectorize(x, VEC, GUARD)
    funcs["value"].compute_at(out, yo).vectorize(x, VEC, GUARD)
    funcs["across"].compute_at(out, yo).reorder(x, y, c).bound(c, 0, 6).unroll(c).vectorize(x, VEC, GUARD)


def _build_reference(period: int):
    """Kernel: ``max(v, 0) - ref`` for every photosite of a whole mosaic (for the statistic)."""
    src_p = hl.ImageParam(hl.Float(32), 2, "mosaic")
    lut = hl.ImageParam(hl.Int(32), 2, "lut")
    p = {"lut": lut, "in_w": src_p.dim(0).extent(), "in_h": src_p.dim(1).extent(), "ox": 0, "oy": 0}
    f = _reference(hl.BoundaryConditions.repeat_edge(src_p), p, period)
    diff = hl.Func("diff")
    diff[x, y] = f["value"][x, y] - f["ref"][x, y]
    _schedule_reference(diff, f)
    return diff, [src_p, lut]


def reference_diff(mosaic: np.ndarray, rgb_pattern: np.ndarray, device: str = "cpu") -> np.ndarray:
    """``max(v, 0) - ref`` for every photosite of ``mosaic`` (its (0, 0) at phase (0, 0) of the pattern)."""
    n = period_of(rgb_pattern)
    k = get_kernel("highlights_reference", lambda: _build_reference(n), variant=f"p{n}", device=device,
                   source_tag=source_tag_of(_build_reference))
    out = np.empty(mosaic.shape, np.float32)
    k(f32(mosaic), tiled_lut(rgb_pattern), out)
    return out


# --------------------------------------------------------------------------- the chrominance statistic

def _dilate_disc(m: np.ndarray) -> np.ndarray:
    """Dilation of a boolean grid by the disc dx^2 + dy^2 <= 13 (a 7x7 square without its corners).

    The disc is the union of a 7x5 and a 5x7 rectangle, each dilated separably.
    """
    def along(a, r, axis):
        out = a.copy()
        n = a.shape[axis]
        for s in range(1, r + 1):
            if s >= n:
                break
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(s, None), slice(None, -s)
            out[tuple(lo)] |= a[tuple(hi)]
            out[tuple(hi)] |= a[tuple(lo)]
        return out

    return along(along(m, 3, 1), 2, 0) | along(along(m, 2, 1), 3, 0)


def chrominance(mosaic: np.ndarray, rgb_pattern: np.ndarray, clips: np.ndarray,
                device: str = "cpu") -> np.ndarray:
    """The per-colour chrominance offset of inpaint opposed over a whole balanced mosaic."""
    H, W = mosaic.shape
    if min(H, W) < 3 or H * W <= MIN_SAMPLES:
        return np.zeros(3)  # no 3x3 neighbourhoods, or too few photosites for the statistic
    ny, nx = rgb_pattern.shape
    col = np.tile(np.asarray(rgb_pattern, np.int8), (-(-H // ny), -(-W // nx)))[:H, :W]
    thr = np.asarray(clips, np.float32)[col]
    clipped = mosaic >= thr
    if not clipped.any():
        return np.zeros(3)
    hb, wb = -(-H // BLOCK), -(-W // BLOCK)
    base = ~clipped & (mosaic > LOW_FRACTION * thr)
    diff = None
    out = np.zeros(3)
    for k in range(3):
        own = col == k
        m = np.zeros((hb * BLOCK, wb * BLOCK), bool)
        m[:H, :W] = clipped & own
        blocks = m.reshape(hb, BLOCK, wb, BLOCK).any(axis=(1, 3))
        if not blocks.any():
            continue
        near = np.repeat(np.repeat(_dilate_disc(blocks), BLOCK, 0), BLOCK, 1)[:H, :W]
        sel = base & own & near
        if int(np.count_nonzero(sel)) > MIN_SAMPLES:
            if diff is None:
                diff = reference_diff(mosaic, rgb_pattern, device)
            out[k] = float(diff[sel].mean(dtype=np.float64))
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


def _whole_balanced_input(piece: Piece, coeff_rgb: np.ndarray) -> np.ndarray:
    """The whole image as this module receives it with the file's levels (rawprepare, then WB)."""
    from .base import BufferDesc
    from .rawprepare import Rawprepare

    img = piece.image
    rp = Rawprepare()
    rpiece = Piece("rawprepare", 0, rp.default_params(img), img, pipe=piece.pipe, device=piece.device)
    rpiece.buf_in = (img.width, img.height)
    planar = _planar(piece)
    rpiece.dsc_in = BufferDesc(3 if planar else 1, img.cfa, "raw")
    rp.commit(rpiece)
    whole = ROI(0, 0, img.width, img.height, 1.0)
    prepared = rp.process(rpiece, np.ascontiguousarray(img.data), whole, whole)
    if planar:
        return prepared * f32(coeff_rgb)[:, None, None]
    pat = img.cfa.rgb_pattern()
    ny, nx = pat.shape
    lut = f32(coeff_rgb)[pat]
    H, W = prepared.shape
    tiled = np.tile(lut, (-(-H // ny), -(-W // nx)))[:H, :W]
    return prepared * tiled


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
    u = u[u >= 0.5]
    n = u.size
    if n < 50:
        return None
    edges = np.arange(0.5, 1.1 + 1e-9, 1.0 / 1024)
    h, _ = np.histogram(u, edges)
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
    pat, rgb = np.asarray(image.cfa.pattern), image.cfa.rgb_pattern()
    ny, nx = pat.shape
    for k in range(3):
        parts = [((d[j::ny, i::nx] - black[pat[j, i]]) / max(image.white - black[pat[j, i]], 1e-6)).ravel()
                 for j in range(ny) for i in range(nx) if rgb[j, i] == k]
        if parts:
            lv = saturation_level(np.concatenate(parts).astype(np.float32))
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
    balanced = _whole_balanced_input(piece, coeff)
    if planar:
        chroma = chrominance_planar(balanced, clips)
    else:
        chroma = chrominance(balanced, img.cfa.rgb_pattern(), clips, piece.device)
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
