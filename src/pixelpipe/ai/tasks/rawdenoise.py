"""The ``rawdenoise`` task: denoise the raw mosaic and write a new raw (darktable's
restore_raw_bayer.c conventions).

Bayer (``bayer_v1`` graphs: packed ``[1, 4, T, T]`` R, G1, G2, B in ->
``[1, 3, 2T, 2T]`` camera RGB out):

1. the mosaic as decoded (active area), per photosite ``x = (raw - black) / (white - black)``
   (per CFA colour, or the DNG BlackLevel pattern), times the DNG GainMap
   opcodes (lens shading) when the file has them, times the **white-balance
   normaliser** of the variant's ``wb_norm`` (``daylight``, the default: the
   D65 coefficients from the camera matrix, darktable's adobe_XYZ_to_CAM;
   ``as_shot``; ``none``);
2. force-crop to an RGGB origin (one row and/or column off for GRBG, GBRG, BGGR)
   and to even sizes; pack 2x2 -> ``[4, H/2, W/2]``;
3. tiles of 512, 384, 256, 192 packed px (or ``attributes.input_sizes``) with
   **16 packed px** (32 photosites) overlap, mirrored inside the cropped frame
   (reflection of the packed planes keeps the CFA phase), only the centres kept
   (:func:`pixelpipe.ai.tiling.run_tiled`); with ``output_scale: match_gain`` each
   tile's output is scaled by one number so that its re-mosaicked mean equals
   the tile's input mean (darktable's per-tile scalar gain);
4. the normaliser undone; the camera RGB re-mosaicked to the **original** CFA
   (the rows/columns the crop left out take the nearest computed pixel); then
   (pixelpipe's addition) a **local level correction**: per 2x2 position (Bayer)
   or CFA colour (X-Trans), the
   49x49-photosite box average of the change the model made is added back, so
   local means stay where they were (:func:`level_correction`); blended with the
   source by ``strength``;
5. back to sensor units with the file's black and white levels and written as a
   16-bit CFA DNG (:func:`pixelpipe.io.dng.write_cfa_dng`): CFA pattern, black
   per CFA cell, white level, ColorMatrix1 (XYZ -> camera) and its illuminant,
   AsShotNeutral, orientation, default crop, BaselineExposure, the source's EXIF,
   Make/Model, and a small sRGB preview. Gain maps are baked into the values
   (the writer carries no opcode lists), which may then exceed the white level,
   as they do after rawprepare; they are clipped only at 65535.

X-Trans (``xtrans_v1``, pixelpipe's definition, see tools/README.md): the CFA
plane ``[1, 1, T, T]`` (normalised and white-balanced as above) -> ``[1, 3, T, T]``;
the frame is cropped so that its (0, 0) site is the (0, 0) site of the model's
``attributes.xtrans_pattern`` (tools.cfa.XTRANS by default) and to multiples of
6; tiles of 504, 384, 252, 192 with an 18 px overlap, mirrored about the pattern's
symmetry axes (rows/columns 1 and n-2) so the phase holds. Used only when the
active model has an ``xtrans`` variant.

Linear (``linear_v1``, darktable's restore_raw_linear: ``[1, 3, T, T]`` ->
``[1, 3, T, T]``), for the sensors the mosaic paths do not take: X-Trans when the
active model has no ``xtrans`` variant but a ``linear`` one, and non-CFA raw
data (LinearRaw DNGs, full-colour stacks). Camera RGB at full resolution from a
minimal pixelpipe pipe (rawprepare, highlights, demosaic; white balance off), or
the planar data itself for non-CFA raws, normalised to [0, 1] -> times the
variant's ``wb_norm`` multipliers (default ``as_shot``) -> to the variant's
``input_colorspace`` (default ``lin_rec2020``, through the camera matrix) ->
scaled so that its mean is ``target_mean`` (default 0.30; ``null`` leaves it) ->
the model over tiles of 512 ... 192 px with 32 px overlap (the context a
``bayer_v1`` tile gets), per-tile ``match_gain`` when the variant says so ->
every step undone -> the local level correction per channel -> ``strength`` ->
a **LinearRaw DNG** (16-bit, camera RGB, black 1024 so that negative noise
survives, white 65535, the source's colour matrix, as-shot neutral, orientation,
EXIF and a preview).

Refused with a clear message: non-raw files, monochrome raws, four-colour
(CYGM) mosaics and unknown CFAs; X-Trans without an ``xtrans`` or ``linear``
variant, non-CFA data without a ``linear`` variant; a Bayer layout that is not a
2x2 R/G/G/B arrangement.

The result is re-imported with the user's edit re-applied: ``OUT.dng.pixelpipe.json``
holds the source's edit (its sidecar, else the workflow's defaults) with the
classical denoisers (``denoiseprofile``, ``rawdenoise``, ``nlmeans``,
``bilateral``, ``neural_denoise``) switched off and ``rawprepare`` back to the
new file's levels, plus the group record (:mod:`.common`).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from pixelpipe.errors import AIError, InputError, UnsupportedCFAError

from . import common
from .denoise import Result

CLASSICAL_DENOISERS = ("denoiseprofile", "rawdenoise", "nlmeans", "bilateral", "neural_denoise")
XTRANS_LADDER = (504, 384, 252, 192)
XTRANS_OVERLAP = 18
# tools.cfa.XTRANS: demosaicnet's training pattern (pixelpipe's xtrans_v1 phase)
XTRANS_CANONICAL = ("GBGGRG", "RGRBGB", "GBGGRG", "GRGGBG", "BGBRGR", "GRGGBG")


# --------------------------------------------------------------------------- what can be handled

def sensor_kind(image) -> str:
    """"bayer", "xtrans" or "linear" (non-CFA raw data); a clear refusal for anything else."""
    if not image.is_raw:
        raise InputError("raw denoise needs a camera raw file; this is a developed image "
                         "(use 'pixelpipe ai denoise' for it)", path=image.path)
    cfa = image.cfa
    kind = cfa.kind if cfa is not None else "unknown"
    if kind == "bayer":
        return "bayer"
    if kind == "xtrans":
        return "xtrans"
    if kind == "none" and image.data.ndim == 3 and image.data.shape[0] == 3 \
            and sorted(image.cfa.rgb_pattern().ravel().tolist()) == [0, 1, 2]:
        return "linear"
    what = {"mono": "a monochrome raw (no colour filter array: nothing for a demosaicking "
                    "denoiser to work on)",
            "4color": "a four-colour (CYGM) mosaic",
            "none": "non-CFA raw data that is not three R, G, B planes"}.get(
                kind, f"an unknown colour filter array ({kind})")
    raise UnsupportedCFAError(f"raw denoise handles Bayer and X-Trans mosaics and linear RGB raw data; "
                              f"this file is {what}", path=image.path)


def choose_path(model, image) -> str:
    """The variant that handles ``image`` with ``model``: its sensor kind, or ``linear`` for
    X-Trans when the model has no ``xtrans`` variant (darktable's fallback)."""
    kind = sensor_kind(image)
    have = model.variants()
    if kind == "xtrans" and "xtrans" not in have and "linear" in have:
        return "linear"
    if kind not in have:
        need = {"xtrans": " (X-Trans raws need an xtrans_v1 or a linear_v1 variant)",
                "linear": " (linear RGB raw data needs a linear_v1 variant)"}.get(kind, "")
        raise UnsupportedCFAError(f"the active rawdenoise model {model.id} has no {kind} variant "
                                  f"(it has {', '.join(have) or 'none'}){need}", path=image.path)
    return kind


def rggb_origin(rgb_pattern: np.ndarray, path: str = "") -> tuple[int, int]:
    """(row, column) of the R site that starts an R G / G B quad."""
    p = np.asarray(rgb_pattern)
    if p.shape != (2, 2):
        raise UnsupportedCFAError(f"unusual Bayer layout {p.tolist()} (raw denoise needs a 2x2 pattern)",
                                  path=path)
    for oy in (0, 1):
        for ox in (0, 1):
            if (p[oy, ox], p[oy, 1 - ox], p[1 - oy, ox], p[1 - oy, 1 - ox]) == (0, 1, 1, 2):
                return oy, ox
    raise UnsupportedCFAError(f"Bayer pattern {p.tolist()} is not an R/G/G/B arrangement", path=path)


def pattern_at(rgb_pattern: np.ndarray, h: int, w: int, oy: int = 0, ox: int = 0) -> np.ndarray:
    """Colour (0 R, 1 G, 2 B) of every site of an (h, w) frame whose (0, 0) is (oy, ox)."""
    p = np.asarray(rgb_pattern)
    ys = (np.arange(h) + oy) % p.shape[0]
    xs = (np.arange(w) + ox) % p.shape[1]
    return p[ys[:, None], xs[None, :]]


# --------------------------------------------------------------------------- normalisation

def wb_normaliser(image, mode: str) -> np.ndarray:
    """(R, G, B) multipliers for ``wb_norm`` (daylight | as_shot | none), G = 1."""
    if mode == "none":
        return np.ones(3, np.float32)
    cand = []
    if mode == "as_shot":
        cand.append(image.wb_as_shot)
    from pixelpipe.modules.colorin import reference_coefficients

    try:
        ref = reference_coefficients(image)
    except Exception:  # noqa: BLE001 - a broken matrix: fall back
        ref = None
    cand += [ref, image.wb_daylight, image.wb_as_shot]
    for c in cand:
        if c is None:
            continue
        v = np.asarray(c, np.float64)[:3]
        if np.all(np.isfinite(v)) and np.all(v > 0):
            return (v / v[1]).astype(np.float32)
    return np.ones(3, np.float32)


def black_sites(image, y0: int = 0, x0: int = 0, h: int | None = None, w: int | None = None) -> np.ndarray:
    """Black level of every photosite of a window (sensor units, float32)."""
    h = image.height if h is None else h
    w = image.width if w is None else w
    if image.black_map is not None:
        bm = np.asarray(image.black_map, np.float32)
        ys = (np.arange(y0, y0 + h)) % bm.shape[0]
        xs = (np.arange(x0, x0 + w)) % bm.shape[1]
        return bm[ys[:, None], xs[None, :]]
    pat = image.cfa.pattern
    bl = np.asarray(image.black, np.float32)
    idx = pattern_at(pat, h, w, y0, x0)
    return bl[np.clip(idx, 0, len(bl) - 1)]


def gain_sites(image, y0: int = 0, x0: int = 0, h: int | None = None, w: int | None = None) -> np.ndarray | None:
    """The product of the DNG GainMap opcodes over a window (None without gain maps)."""
    if not image.gain_maps:
        return None
    from pixelpipe.modules.rawprepare import gain_axis, gain_entries, interpolate_gain

    h = image.height if h is None else h
    w = image.width if w is None else w
    out = np.ones((h, w), np.float32)
    H, W = image.height, image.width
    for ch, m, g in gain_entries(image, planar=False):
        if ch != 0:
            continue
        gx = gain_axis(x0, w, m["left"], m["right"], m["col_pitch"], m["map_origin_h"],
                       m["map_spacing_h"], g.shape[1], W)
        gy = gain_axis(y0, h, m["top"], m["bottom"], m["row_pitch"], m["map_origin_v"],
                       m["map_spacing_v"], g.shape[0], H)
        rows = np.nonzero(gy >= 0)[0]
        cols = np.nonzero(gx >= 0)[0]
        if rows.size == 0 or cols.size == 0:
            continue
        val = interpolate_gain(g, gy[rows][:, None], gx[cols][None, :]).astype(np.float32)
        out[np.ix_(rows, cols)] *= val
    return out


def normalised(image, y0=0, x0=0, h=None, w=None, *, apply_gain: bool = True):
    """(x, black, range, gain) of a window: x = (raw - black) / (white - black) * gain."""
    h = image.height if h is None else h
    w = image.width if w is None else w
    raw = np.asarray(image.data[y0:y0 + h, x0:x0 + w], np.float32)
    black = black_sites(image, y0, x0, h, w)
    rng = np.maximum(np.float32(image.white) - black, np.float32(1e-6))
    x = (raw - black) / rng
    gain = gain_sites(image, y0, x0, h, w) if apply_gain else None
    if gain is not None:
        x = x * gain
    return x.astype(np.float32), black, rng, gain


# --------------------------------------------------------------------------- the models

class _MatchGain:
    """A session whose tile outputs are scaled to the tile's input mean (``match_gain``)."""

    def __init__(self, session, in_name: str, out_name: str, bayer: bool):
        self._s = session
        self._in, self._out, self._bayer = in_name, out_name, bayer
        self.gains: list[float] = []

    def __getattr__(self, k):
        return getattr(self._s, k)

    def run(self, feed):
        out = self._s.run(feed)
        x = np.asarray(feed[self._in], np.float64)
        y = np.asarray(out[self._out])
        if self._bayer:
            re = np.stack([y[0, 0, 0::2, 0::2], y[0, 1, 0::2, 1::2], y[0, 1, 1::2, 0::2], y[0, 2, 1::2, 1::2]])
        elif x.shape[1] == y.shape[1]:  # linear_v1: RGB in, RGB out
            re = y[0]
        else:
            re = y[0].mean(axis=0)
        sx, sy = float(x.sum()), float(np.asarray(re, np.float64).sum())
        g = sx / sy if sx > 1e-6 * x.size and sy > 1e-6 * x.size else 1.0
        g = float(np.clip(g, 0.5, 2.0))
        self.gains.append(g)
        out[self._out] = (y * np.float32(g)).astype(np.float32)
        return out


def _variant_settings(model, kind: str) -> dict:
    if kind not in model.variants():
        need = " (X-Trans raws need a model with an xtrans_v1 or a linear_v1 variant)" \
            if kind == "xtrans" else ""
        raise UnsupportedCFAError(f"the active rawdenoise model {model.id} has no {kind} variant "
                                  f"(it has {', '.join(model.variants()) or 'none'}){need}")
    f = model.model_file(variant=kind)
    return dict(f.variant.settings)


def denoise_bayer(session, x: np.ndarray, rgb_pattern: np.ndarray, wb: np.ndarray, *,
                  match_gain: bool = False, ladder=None, tiled: bool = True, progress=None) -> np.ndarray:
    """Normalised mosaic ``x`` (H, W) of a Bayer ``rgb_pattern`` -> denoised normalised mosaic
    on the same pattern (see the module docstring, steps 2-4)."""
    from pixelpipe.ai import tiling

    H, W = x.shape
    oy, ox = rggb_origin(rgb_pattern)
    hc, wc = (H - oy) // 2 * 2, (W - ox) // 2 * 2
    if hc < 2 or wc < 2:
        raise InputError(f"the image is too small for raw denoise ({W}x{H})")
    c = x[oy:oy + hc, ox:ox + wc]
    packed = np.stack([c[0::2, 0::2] * wb[0], c[0::2, 1::2] * wb[1], c[1::2, 0::2] * wb[1],
                       c[1::2, 1::2] * wb[2]]).astype(np.float32)[None]
    in_name, out_name = session.inputs[0].name, session.outputs[0].name
    sess = _MatchGain(session, in_name, out_name, True) if match_gain else session
    if tiled:
        out = tiling.run_tiled(sess, packed, scale=2, overlap=tiling.OVERLAP_RAW,
                               ladder=ladder or tiling.LADDER_RAW, progress=progress)[0]
    else:
        session.pin_tile(None)
        out = sess.run({in_name: packed})[out_name][0]
    out = out / wb.reshape(3, 1, 1)
    return remosaic(out, rgb_pattern, H, W, oy, ox)


def remosaic(rgb: np.ndarray, rgb_pattern: np.ndarray, H: int, W: int, oy: int, ox: int) -> np.ndarray:
    """Camera RGB ``(3, h, w)`` computed for the frame starting at (oy, ox) -> an (H, W) mosaic on
    ``rgb_pattern`` (whose phase is that of the full frame); sites outside the computed frame take
    the nearest computed pixel."""
    _, h, w = rgb.shape
    p = np.asarray(rgb_pattern)
    ph, pw = p.shape
    ry = np.clip(np.arange(H) - oy, 0, h - 1)
    rx = np.clip(np.arange(W) - ox, 0, w - 1)
    out = np.empty((H, W), np.float32)
    for i in range(ph):
        for j in range(pw):
            out[i::ph, j::pw] = rgb[p[i, j]][ry[i::ph][:, None], rx[j::pw][None, :]]
    return out


def _mirror_axis(idx: np.ndarray, n: int, lo: int = 1) -> np.ndarray:
    """Reflect about ``lo`` and ``n - 1 - lo`` (X-Trans symmetry axes for n ≡ 0 mod 6)."""
    a, b = lo, n - 1 - lo
    period = 2 * (b - a)
    m = np.mod(idx - a, period)
    return a + np.where(m > b - a, period - m, m)


def xtrans_shift(rgb_pattern: np.ndarray, canonical: np.ndarray) -> tuple[int, int]:
    p = np.asarray(rgb_pattern)
    if p.shape != (6, 6):
        raise UnsupportedCFAError(f"X-Trans pattern must be 6x6, got {p.shape}")
    for dy in range(6):
        for dx in range(6):
            if np.array_equal(np.roll(np.roll(p, -dy, 0), -dx, 1), canonical):
                return dy, dx
    raise UnsupportedCFAError("this X-Trans layout is not a shift of the model's pattern")


def canonical_xtrans(model) -> np.ndarray:
    rows = model.config.attributes.get("xtrans_pattern") if model is not None else None
    rows = rows if isinstance(rows, list) and len(rows) == 6 else XTRANS_CANONICAL
    return np.array([["RGB".index(ch) for ch in r.upper()] for r in rows])


def denoise_xtrans(session, x: np.ndarray, rgb_pattern: np.ndarray, wb: np.ndarray, canonical: np.ndarray, *,
                   match_gain: bool = False, ladder=None, progress=None) -> np.ndarray:
    """Normalised X-Trans mosaic -> denoised normalised mosaic (own tiler: tiles and overlap in
    multiples of 6, mirrored about the pattern's symmetry axes)."""
    H, W = x.shape
    oy, ox = xtrans_shift(rgb_pattern, canonical)
    hc, wc = (H - oy) // 6 * 6, (W - ox) // 6 * 6
    if hc < 12 or wc < 12:
        raise InputError(f"the image is too small for raw denoise ({W}x{H})")
    c = x[oy:oy + hc, ox:ox + wc] * wb[canonical[np.arange(hc)[:, None] % 6, np.arange(wc)[None, :] % 6]]
    ov = XTRANS_OVERLAP
    in_name, out_name = session.inputs[0].name, session.outputs[0].name
    sess = _MatchGain(session, in_name, out_name, False) if match_gain else session
    static = session.static_tile
    ladder = [static] if static else list(ladder or XTRANS_LADDER)
    need = -(-(max(hc, wc) + 2 * ov) // 6) * 6
    t = min([s for s in ladder if s >= need] or [ladder[0]])
    if static is None:
        session.pin_tile(t)
    step = t - 2 * ov
    out = np.empty((3, hc, wc), np.float32)
    ys, xs = list(range(0, hc, step)), list(range(0, wc, step))
    total, done = len(ys) * len(xs), 0
    for y0 in ys:
        yi = _mirror_axis(np.arange(y0 - ov, y0 - ov + t), hc)
        hh = min(step, hc - y0)
        for x0 in xs:
            xi = _mirror_axis(np.arange(x0 - ov, x0 - ov + t), wc)
            ww = min(step, wc - x0)
            tile = c[yi[:, None], xi[None, :]][None, None].astype(np.float32)
            res = sess.run({in_name: tile})[out_name]
            out[:, y0:y0 + hh, x0:x0 + ww] = res[0, :, ov:ov + hh, ov:ov + ww]
            done += 1
            if progress:
                progress(done, total)
    out = out / wb.reshape(3, 1, 1)
    # the pattern of the full frame, as the remosaic needs it (phase of (0, 0) of x)
    return remosaic(out, rgb_pattern, H, W, oy, ox)


LEVEL_RADIUS = 24  # photosites


def _box(a: np.ndarray, r: int) -> np.ndarray:
    """Box sum over (2r+1)^2 with the window clipped at the borders (cumulative sums)."""
    c = np.cumsum(np.cumsum(np.pad(a.astype(np.float64), ((1, 0), (1, 0))), 0), 1)
    H, W = a.shape
    y0 = np.clip(np.arange(H) - r, 0, H)
    y1 = np.clip(np.arange(H) + r + 1, 0, H)
    x0 = np.clip(np.arange(W) - r, 0, W)
    x1 = np.clip(np.arange(W) + r + 1, 0, W)
    return (c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0])


def level_correction(x: np.ndarray, den: np.ndarray, pattern: np.ndarray, r: int = LEVEL_RADIUS) -> np.ndarray:
    """Keep local means: add back, per CFA colour (per 2x2 position for Bayer), the (2r+1)-px box
    average of the change the model made. A denoiser should not move local levels; models that work on sRGB-encoded
    values shift deep shadows by a few percent (demosaicnet: -6 % in blue at 0.6 % of the
    range, cf. darktable #21065); the noise this re-adds is averaged over ~(2r+1)^2/3 sites."""
    H, W = x.shape
    out = den.copy()
    d = (x - den).astype(np.float64)
    p = np.asarray(pattern)
    if p.shape == (2, 2):  # Bayer: per photosite position, so G1 and G2 keep their own levels
        lab = pattern_at(np.arange(4).reshape(2, 2), H, W)
    else:
        lab = pattern_at(p, H, W)
    for c in np.unique(lab):
        m = lab == c
        corr = _box(d * m, r) / np.maximum(_box(m.astype(np.float64), r), 1)
        out[m] += corr[m].astype(np.float32)
    return out


def denoise_mosaic(model, image, x: np.ndarray, y0: int = 0, x0: int = 0, *, progress=None,
                   tiled: bool = True, keep_levels: bool = True) -> tuple[np.ndarray, dict]:
    """Denoise a normalised window of ``image``'s mosaic whose (0, 0) is at (y0, x0)."""
    kind = sensor_kind(image)
    settings = _variant_settings(model, kind)
    session = common.session_for(model, variant=kind)
    wb = wb_normaliser(image, settings.get("wb_norm", "daylight"))
    pat = pattern_at(image.cfa.rgb_pattern(), *image.cfa.pattern.shape, y0, x0)
    sizes = model.config.attributes.get("input_sizes")
    ladder = tuple(sizes) if sizes else None
    mg = settings.get("output_scale") == "match_gain"
    if kind == "bayer":
        den = denoise_bayer(session, x, pat, wb, match_gain=mg, ladder=ladder, tiled=tiled, progress=progress)
    else:
        den = denoise_xtrans(session, x, pat, wb, canonical_xtrans(model), match_gain=mg, ladder=ladder,
                             progress=progress)
    if keep_levels:
        den = level_correction(x, den, pat)
    return den, {"variant": kind, "wb_norm": settings.get("wb_norm", "daylight"), "wb": wb.tolist(),
                 "output_scale": settings.get("output_scale", "absolute"), "level_correction": keep_levels}


# --------------------------------------------------------------------------- linear_v1

LINEAR_OVERLAP = 32       # px: the context a bayer_v1 tile gets (16 packed px)
LINEAR_TARGET_MEAN = 0.30  # darktable's default target_mean
LINEAR_BLACK = 1024        # LinearRaw DNG black: negative noise survives down to -1.6 %
LINEAR_WHITE = 65535
_CAMERA_OPS = ("rawprepare", "highlights", "demosaic", "gamma")


def camera_rgb(image, roi=None) -> np.ndarray:
    """Normalised camera RGB ``(3, H, W)`` (no white balance) of a raw: the planar data of
    non-CFA raws, else a minimal pixelpipe pipe (rawprepare, highlights, demosaic)."""
    if image.cfa is not None and image.cfa.kind == "none":
        order = image.cfa.rgb_pattern().ravel()
        data = np.asarray(image.data, np.float32)[np.argsort(order)]
        bl = np.asarray(image.black, np.float32)
        black = np.array([bl[min(int(i), len(bl) - 1)] for i in image.cfa.pattern.ravel()], np.float32)
        black = black[np.argsort(order)].reshape(3, 1, 1)
        x = (data - black) / np.maximum(np.float32(image.white) - black, np.float32(1e-6))
        if roi is not None:
            x = x[:, roi.y:roi.y + roi.height, roi.x:roi.x + roi.width]
        return np.ascontiguousarray(x, np.float32)
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    e = Edit.default_for(image, "none")
    for inst in e.instances:
        inst.enabled = inst.op in _CAMERA_OPS
    pipe = Pipe(image, e, "export")
    out = pipe.render() if roi is None else pipe.process(roi)
    return np.ascontiguousarray(out, np.float32)


def linear_matrix(image, colourspace_: str) -> np.ndarray:
    """White-balanced camera RGB -> the model's input colour space."""
    from pixelpipe.modules.colorin import camera_matrix
    from pixelpipe.modules.colorspaces import working_to_profile

    if colourspace_ == "camRGB":
        return np.eye(3)
    cm = camera_matrix(image)
    if cm is None:
        raise UnsupportedCFAError(f"the linear raw-denoise path needs the camera's colour matrix to reach "
                                  f"{colourspace_}; this file has none", path=image.path)
    m = np.asarray(cm, np.float64)  # -> linear Rec.2020 (the working space)
    if colourspace_ == "srgb_linear":
        m = np.asarray(working_to_profile("linear_srgb"), np.float64) @ m
    return m


def denoise_linear_rgb(model, image, cam: np.ndarray, *, progress=None, tiled: bool = True,
                       keep_levels: bool = True) -> tuple[np.ndarray, dict]:
    """Normalised camera RGB ``(3, H, W)`` -> denoised camera RGB through the ``linear`` variant."""
    from pixelpipe.ai import tiling

    settings = _variant_settings(model, "linear")
    session = common.session_for(model, variant="linear")
    wb = wb_normaliser(image, settings.get("wb_norm", "as_shot"))
    space = settings.get("input_colorspace", "lin_rec2020")
    m = linear_matrix(image, space)
    v = np.einsum("ij,jhw->ihw", m.astype(np.float32), cam * wb.reshape(3, 1, 1)).astype(np.float32)
    target = settings.get("target_mean", LINEAR_TARGET_MEAN)
    mean = float(np.mean(v, dtype=np.float64))
    k = float(np.clip(target / mean, 1e-2, 1e3)) if target and mean > 0 else 1.0
    v *= np.float32(k)
    in_name, out_name = session.inputs[0].name, session.outputs[0].name
    mg = settings.get("output_scale") == "match_gain"
    sess = _MatchGain(session, in_name, out_name, False) if mg else session
    if tiled:
        sizes = model.config.attributes.get("input_sizes")
        out = tiling.run_tiled(sess, v[None], scale=1, overlap=LINEAR_OVERLAP,
                               ladder=tuple(sizes) if sizes else tiling.LADDER_RAW, progress=progress)[0]
    else:
        session.pin_tile(None)
        out = sess.run({in_name: v[None]})[out_name][0]
    out = np.einsum("ij,jhw->ihw", np.linalg.inv(m).astype(np.float32), out / np.float32(k))
    den = (out / wb.reshape(3, 1, 1)).astype(np.float32)
    if keep_levels:
        for c in range(3):
            ones = np.ones(den.shape[1:], np.float64)
            den[c] += (_box((cam[c] - den[c]).astype(np.float64), LEVEL_RADIUS) / _box(ones, LEVEL_RADIUS)
                       ).astype(np.float32)
    return den, {"variant": "linear", "wb_norm": settings.get("wb_norm", "as_shot"), "wb": wb.tolist(),
                 "input_colorspace": space, "target_mean": target, "gain": round(k, 5),
                 "output_scale": settings.get("output_scale", "absolute"), "level_correction": keep_levels}


def linear_source(image, cam: np.ndarray):
    """``image`` as the LinearRaw DNG of ``cam`` reads back (normalised camera RGB planes)."""
    from pixelpipe.io.source import CFA

    return dataclasses.replace(image, data=np.ascontiguousarray(cam, np.float32),
                               cfa=CFA("none", np.array([[0, 1, 2]]), "RGBG"), black=(0.0, 0.0, 0.0, 0.0),
                               white=1.0, black_map=None, gain_maps=None, crop=None, noise_profile=None)


def write_linear(dst: Path, image, den: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write normalised camera RGB ``(3, H, W)`` as a LinearRaw DNG with the source's tags."""
    from pixelpipe.io.dng import write_linear_dng

    span = np.float32(LINEAR_WHITE - LINEAR_BLACK)
    vals = np.clip(np.rint(np.nan_to_num(np.moveaxis(den, 0, 2)) * span + LINEAR_BLACK), 0, 65535)
    make, model_, _ = _names(image)
    return write_linear_dng(dst, vals.astype(np.uint16), black=LINEAR_BLACK, white=LINEAR_WHITE,
                            color_matrix1=_colour_matrix(image), as_shot_neutral=_neutral(image),
                            orientation=int(image.orientation or 1), make=make, model=model_,
                            exif=image.raw_exif_bytes, preview_rgb=preview_rgb(image, den),
                            illuminant=int(image.calibration_illuminant or 21), overwrite=overwrite)


# --------------------------------------------------------------------------- the DNG

def _colour_matrix(image) -> np.ndarray:
    m = getattr(image, "xyz_to_cam", None)
    if m is not None and np.asarray(m).shape == (3, 3) and np.all(np.isfinite(m)):
        return np.asarray(m, np.float64)
    from pixelpipe.io.icc import colourspace

    return np.linalg.inv(colourspace("linear_srgb").matrix_rgb_to_xyz)


def _neutral(image) -> np.ndarray:
    for wb in (image.wb_as_shot, image.wb_daylight):
        if wb is not None:
            v = np.asarray(wb, np.float64)[:3]
            if np.all(v > 0):
                n = 1.0 / v
                return n / n[1]
    return np.ones(3)


def preview_rgb(image, den: np.ndarray, max_side: int = 512) -> np.ndarray:
    """A small sRGB preview (uint8 HWC, as stored, not oriented) of a normalised mosaic, or of
    normalised camera RGB planes (3, H, W)."""
    from pixelpipe.modules.colorin import camera_matrix
    from pixelpipe.modules.colorspaces import working_to_profile

    H, W = den.shape[-2:]
    if den.ndim == 3:  # camera RGB planes (linear path)
        k = max(1, int(np.ceil(max(H, W) / max_side)))
        hb, wb_ = max(1, H // k), max(1, W // k)
        rgb = den[:, :hb * k, :wb_ * k].reshape(3, hb, k, wb_, k).mean(axis=(2, 4)).astype(np.float32)
    else:
        pat = pattern_at(image.cfa.rgb_pattern(), H, W)
        k = max(image.cfa.pattern.shape[0], int(np.ceil(max(H, W) / max_side)))
        k = -(-k // image.cfa.pattern.shape[0]) * image.cfa.pattern.shape[0]
        hb, wb_ = H // k, W // k
        rgb = np.zeros((3, hb, wb_), np.float32)
        for c in range(3):
            m = (pat[:hb * k, :wb_ * k] == c).reshape(hb, k, wb_, k).sum(axis=(1, 3))
            s = (den[:hb * k, :wb_ * k] * (pat[:hb * k, :wb_ * k] == c)).reshape(hb, k, wb_, k).sum(axis=(1, 3))
            rgb[c] = s / np.maximum(m, 1)
    wb = np.asarray(image.wb_as_shot or (1, 1, 1), np.float32)[:3]
    rgb *= wb.reshape(3, 1, 1)
    cm = camera_matrix(image)
    if cm is not None:
        rgb = np.einsum("ij,jhw->ihw", (working_to_profile("linear_srgb") @ cm).astype(np.float32), rgb)
    lo = np.percentile(rgb, 99) if rgb.size else 1.0
    rgb = np.clip(rgb / max(lo, 1e-6), 0, 1)
    enc = common.srgb_encode(rgb)
    return (np.moveaxis(enc, 0, 2) * 255 + 0.5).astype(np.uint8)


def _names(image):
    ex = image.exif or {}
    make = str(ex.get("camera_maker") or ex.get("maker") or "pixelpipe")
    model_ = str(ex.get("camera_model") or ex.get("model") or "raw")
    return make, model_, ex.get("baseline_exposure")


def write_dng(dst: Path, image, den: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a normalised mosaic back in ``image``'s sensor units as a CFA DNG."""
    from pixelpipe.io.dng import write_cfa_dng

    H, W = den.shape
    pat = image.cfa.rgb_pattern()
    r, c = pat.shape
    black = black_sites(image)
    cell_black = np.array([[float(black[i::r, j::c].mean()) for j in range(c)] for i in range(r)])
    cell_black = np.round(cell_black)
    white = float(image.white)
    tiled_black = np.tile(cell_black, (-(-H // r), -(-W // c)))[:H, :W].astype(np.float32)
    sensor = den * (np.float32(white) - tiled_black) + tiled_black
    mosaic = np.clip(np.rint(np.nan_to_num(sensor)), 0, 65535).astype(np.uint16)
    make, model_, be = _names(image)
    return write_cfa_dng(
        dst, mosaic, pat, cell_black.ravel().tolist() if np.ptp(cell_black) > 0 else float(cell_black.flat[0]),
        int(round(white)), _colour_matrix(image), _neutral(image), orientation=int(image.orientation or 1),
        make=make, model=model_, exif=image.raw_exif_bytes, preview_rgb=preview_rgb(image, den),
        illuminant=int(image.calibration_illuminant or 21), default_crop=image.crop,
        baseline_exposure=float(be) if isinstance(be, (int, float)) else None, overwrite=overwrite)


def edit_for_result(edit):
    """The source's edit for the denoised raw: classical denoisers off, rawprepare's levels
    from the new file."""
    e = copy.deepcopy(edit)
    for inst in e.instances:
        if inst.op in CLASSICAL_DENOISERS:
            inst.enabled = False
        if inst.op == "rawprepare":
            inst.params = None
    return e


def rawdenoise_file(src: str | os.PathLike, dst: str | os.PathLike, *, strength: float = 1.0,
                    overwrite: bool = False, sidecar=None, progress=None, keep_levels: bool = True) -> Result:
    """Denoise ``src``'s mosaic with the active rawdenoise model and write ``dst`` (a CFA DNG)
    with its sidecar (the user's edit re-applied, classical denoise off, group record)."""
    from pixelpipe.io.atomic import check_destination

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    common.check_input(src)
    check_destination(dst, overwrite=overwrite)
    if not 0 <= strength <= 1:
        raise AIError(f"strength {strength:g} is outside 0..1")
    model = common.require_model("rawdenoise")
    photo = common.open_photo(src, sidecar)
    image = photo.image
    path = choose_path(model, image)  # refuse early, before any work
    notices = list(photo.notices)
    if path == "linear":
        x = camera_rgb(image)
        gain = None
        if image.gain_maps and image.cfa.kind == "none":
            notices.append("the file's GainMap (lens shading) opcodes are not carried into the LinearRaw DNG")
        elif image.gain_maps:
            gain = image.gain_maps  # rawprepare applied them to the camera RGB
        den, info = denoise_linear_rgb(model, image, x, progress=progress, keep_levels=keep_levels)
    else:
        x, _, _, gain = normalised(image)
        den, info = denoise_mosaic(model, image, x, progress=progress, keep_levels=keep_levels)
    if strength < 1:
        den = np.float32(strength) * den + np.float32(1 - strength) * x
    if gain is not None:
        notices.append("the DNG GainMap (lens shading) corrections are applied to the written data")
    if path == "linear":
        write_linear(dst, image, den, overwrite=overwrite)
    else:
        write_dng(dst, image, den, overwrite=overwrite)
    settings = {"strength": strength, **info, "gain_maps_applied": gain is not None}
    try:
        side = common.write_group_sidecar(dst, edit_for_result(photo.edit),
                                          common.group_record(dst, src, "rawdenoise", model, settings))
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return Result(src, dst, side, time.perf_counter() - t0, notices, settings)


def rawdenoise_preview(src, roi_xywh, *, strength: float = 1.0, sidecar=None, margin: int = 64,
                       keep_levels: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) of a region (x, y, w, h) of the full-size output, linear Rec.709: the
    user's pipe on the source, and on the sensor data patched with the denoised region
    (the region's corners carried back through the pipe's distortions, plus ``margin``
    photosites), with the classical denoisers off."""
    from pixelpipe.blend.geometry import backward
    from pixelpipe.pipe.pipeline import Pipe

    model = common.require_model("rawdenoise")
    photo = common.open_photo(src, sidecar)
    image = photo.image
    path = choose_path(model, image)
    lin = common.linear_edit(photo.edit, image)
    pipe = Pipe(image, lin, "export")
    stages, size = pipe.plan()
    roi = common.clip_roi(roi_xywh, size)
    if path == "linear":
        return _linear_preview(model, image, lin, stages, roi, strength, margin, keep_levels)
    xs = [roi.x, roi.x + roi.width]
    ys = [roi.y, roi.y + roi.height]
    pts = backward(stages, np.array([[x, y] for x in xs for y in ys], np.float64))
    period = image.cfa.pattern.shape[0]
    sx0 = max(0, int(np.floor(pts[:, 0].min())) - margin)
    sy0 = max(0, int(np.floor(pts[:, 1].min())) - margin)
    sx1 = min(image.width, int(np.ceil(pts[:, 0].max())) + margin)
    sy1 = min(image.height, int(np.ceil(pts[:, 1].max())) + margin)
    sx0, sy0 = sx0 - sx0 % period, sy0 - sy0 % period
    x, black, rng, gain = normalised(image, sy0, sx0, sy1 - sy0, sx1 - sx0)
    den, _ = denoise_mosaic(model, image, x, sy0, sx0, keep_levels=keep_levels)
    if strength < 1:
        den = np.float32(strength) * den + np.float32(1 - strength) * x
    if gain is not None:
        den = den / np.maximum(gain, 1e-6)  # the pipe applies the gain maps itself
    data = np.array(image.data, np.float32, copy=True)
    data[sy0:sy1, sx0:sx1] = den * rng + black
    patched = dataclasses.replace(image, data=data)
    before = Pipe(image, lin, "export").process(roi)
    after = Pipe(patched, edit_for_result(lin), "export").process(roi)
    return before, after


def _sensor_window(image, stages, roi, margin: int, period: int = 1):
    from pixelpipe.blend.geometry import backward

    xs = [roi.x, roi.x + roi.width]
    ys = [roi.y, roi.y + roi.height]
    pts = backward(stages, np.array([[x, y] for x in xs for y in ys], np.float64))
    sx0 = max(0, int(np.floor(pts[:, 0].min())) - margin)
    sy0 = max(0, int(np.floor(pts[:, 1].min())) - margin)
    sx1 = min(image.width, int(np.ceil(pts[:, 0].max())) + margin)
    sy1 = min(image.height, int(np.ceil(pts[:, 1].max())) + margin)
    return sx0 - sx0 % period, sy0 - sy0 % period, sx1, sy1


def _linear_preview(model, image, lin, stages, roi, strength, margin, keep_levels):
    """The linear path's preview: the user's pipe on the source, and on the camera RGB the
    LinearRaw DNG would hold, denoised in the window the region needs (plus the tiles'
    context)."""
    from pixelpipe.pipe.pipeline import Pipe

    cam = camera_rgb(image)
    sx0, sy0, sx1, sy1 = _sensor_window(image, stages, roi, margin + LINEAR_OVERLAP)
    sx1, sy1 = min(sx1, cam.shape[2]), min(sy1, cam.shape[1])
    win = cam[:, sy0:sy1, sx0:sx1]
    den, _ = denoise_linear_rgb(model, image, win, keep_levels=keep_levels)
    if strength < 1:
        den = np.float32(strength) * den + np.float32(1 - strength) * win
    patched = cam.copy()
    patched[:, sy0:sy1, sx0:sx1] = den
    before = Pipe(image, lin, "export").process(roi)
    after = Pipe(linear_source(image, patched), edit_for_result(lin), "export").process(roi)
    return before, after
