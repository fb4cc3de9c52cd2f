"""What the pipe calls to blend and mask (kept here so pipeline.py stays small).

* :func:`piece_salt` — blend parameters and mask forms (and a module's
  ``cache_salt``, e.g. a mask file's size and date) for the piece hash;
* :func:`ensure_raster_sources` — restart earlier than the cache would allow
  when a later module needs a raster mask that is not in the store;
* :func:`after_process` — after a module ran: build its mask, blend its input
  and output, publish its mask (and any raster mask the module writes);
* :func:`show_mask_overlay` — the darkroom's "display mask" on the final image;
* :func:`distort_points` — points through the pipe's distortion chain.
"""
from __future__ import annotations

import numpy as np

from ..modules.base import Flags, window
from . import modes as M
from .geometry import Geometry, backward, carry_mask, forward
from .kernels import run_blend, run_combine
from .params import BlendParams
from .refine import finish, refine, show_mask
from .raster import RasterStore
from .render import render_group

__all__ = ["RasterStore", "piece_salt", "ensure_raster_sources", "after_process", "show_mask_overlay",
           "distort_points"]

DARKROOM = ("full", "preview", "preview2")


def _notice(pipe, msg: str) -> None:
    if msg not in pipe.notices:
        pipe.notices.append(msg)


def _blend_of(st) -> BlendParams | None:
    bp = getattr(st.instance, "blend", None)
    return bp if bp is not None and bp.active else None


def piece_salt(st) -> str:
    """Extra text for the piece hash: blend parameters with mask forms, module salts."""
    parts = []
    bp = _blend_of(st)
    if bp is not None:
        parts.append(f"blend={bp.digest()}")
    salt = getattr(st.module, "cache_salt", None)
    if salt is not None:
        parts.append(f"salt={salt(st.piece)}")
    return "|".join(parts)


# --------------------------------------------------------------------------- raster sources

def _producer_index(stages, label: str, before: int) -> int | None:
    for k in range(before - 1, -1, -1):
        if stages[k].label == label:
            return k
    return None


def _needed_producers(pipe, stages, start: int) -> set[int]:
    need = set()
    for j in range(start, len(stages)):
        bp = _blend_of(stages[j])
        if bp is not None and bp.mask_mode == "raster":
            p = _producer_index(stages, bp.raster_source, j)
            if p is not None and p < start:
                need.add(p)
    if pipe.show_mask and pipe.kind in DARKROOM:
        for k, st in enumerate(stages[:start]):
            if st.label == pipe.show_mask:
                need.add(k)
    return need


def ensure_raster_sources(pipe, stages, keys, start: int, buf, rec):
    """Move the start of processing back when a raster mask that will be needed is not stored."""
    missing = [p for p in _needed_producers(pipe, stages, start) if keys[p] not in pipe.raster_masks]
    if not missing:
        return start, buf
    first = min(missing)
    for i in range(first - 1, -1, -1):
        hit = pipe.cache.get(keys[i])
        if hit is not None:
            rec.from_cache = stages[i].label
            return i + 1, hit
    rec.from_cache = None
    return 0, None


# --------------------------------------------------------------------------- blending

def resolve_space(bp: BlendParams, piece, pipe) -> str:
    ch = piece.dsc_in.channels if piece.dsc_in else 3
    if ch == 1:
        if bp.colorspace not in ("auto", "raw"):
            _notice(pipe, f"{piece.op}: blending a raw mosaic happens in the raw space "
                          f"({bp.colorspace} is for RGB data)")
        return "raw"
    if bp.colorspace in ("auto", "raw"):
        if bp.colorspace == "raw":
            _notice(pipe, f"{piece.op}: the raw blend space is for mosaics; using RGB")
        return "rgb_display" if piece.dsc_in and piece.dsc_in.space == "display" else "rgb_scene"
    return bp.colorspace


def _label(st) -> str:
    return st.label


def _raster_for(pipe, stages, keys, i: int, bp: BlendParams) -> np.ndarray:
    st = stages[i]
    h, w = st.roi_out.height, st.roi_out.width
    p = _producer_index(stages, bp.raster_source, i)
    pub = pipe.raster_masks.get(keys[p]) if p is not None else None
    if pub is None:
        _notice(pipe, f"{_label(st)}: raster mask {bp.raster_source!r} is not published by an earlier, enabled "
                      "module; using an empty mask")
        return np.zeros((h, w), np.float32)
    return carry_mask(pub.mask, pub.roi, stages[p + 1: i + 1], st.roi_out)


def _channel_table(bp: BlendParams, space: str, pipe, label: str):
    names = M.CHANNELS_BY_SPACE.get(space, ())
    prm = np.zeros((16, 8), np.float32)  # numpy [channel, value]
    polar = False
    any_on = False
    for key, ch in bp.parametric.items():
        name, _, side = key.rpartition("_")
        if name not in names:
            _notice(pipe, f"{label}: parametric channel {key} does not exist in {M.space_names()[space]}; ignored")
            continue
        k = names.index(name) + (8 if side == "out" else 0)
        x0, x1, x2, x3 = ch.range
        s = 2.0 ** ch.boost if name in M.BOOSTABLE and space == "rgb_scene" else 1.0
        x0, x1, x2, x3 = x0 * s, x1 * s, x2 * s, x3 * s
        prm[k] = (x0, x1, x2, x3, 1.0 / (x1 - x0) if x1 > x0 else -1.0, 1.0 / (x3 - x2) if x3 > x2 else -1.0,
                  1.0 if ch.invert else 0.0, 1.0)
        polar |= name in M.POLAR
        any_on = True
    return np.ascontiguousarray(prm), any_on, polar  # Halide reads prm[value, channel]


def build_mask(pipe, stages, keys, i: int, bp: BlendParams, space: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The final mask (opacity included) of stage ``i`` over its output region."""
    st = stages[i]
    roi = st.roi_out
    h, w = roi.height, roi.width
    if bp.mask_mode == "uniform" or st.module.flags & Flags.NO_MASKS:
        if bp.mask_mode != "uniform":
            _notice(pipe, f"{_label(st)}: this module takes no masks; blending uniformly")
        return np.full((h, w), bp.opacity / 100.0, np.float32)
    if bp.mask_mode == "raster":
        m0 = _raster_for(pipe, stages, keys, i, bp)
        if bp.raster_inverted:
            m0 = 1.0 - m0
    else:
        drawn = None
        if bp.uses_drawn and bp.forms is not None and len(bp.forms):
            geom = Geometry(pipe.image.width, pipe.image.height, roi, stages[: i + 1])
            drawn = render_group(bp.forms, geom)
        use_param = False
        if bp.uses_parametric:
            if space == "raw":
                if bp.parametric:
                    _notice(pipe, f"{_label(st)}: parametric masks need RGB data; ignored on the raw mosaic")
            else:
                prm, use_param, polar = _channel_table(bp, space, pipe, _label(st))
        incl = bp.combine == "inclusive"
        if use_param:
            m0 = run_combine(space, a, b, drawn, prm, use_drawn=drawn is not None, drawn_inv=bp.drawn_inverted,
                             use_param=True, needs_polar=polar, incl=incl, invert=bp.invert)
        else:
            # drawn only: one mask, no per-pixel colour work
            if drawn is None:
                m0 = np.full((h, w), 0.0 if incl else 1.0, np.float32)
            else:
                m0 = 1.0 - drawn if bp.drawn_inverted else drawn
            if bp.invert:
                m0 = 1.0 - m0
    m0 = refine(np.ascontiguousarray(m0, dtype=np.float32), bp, roi.scale, a, b)
    return finish(m0, bp)


def after_process(pipe, stages, keys, i: int, buf: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Blend stage ``i``'s input ``buf`` and output ``out`` and publish its masks; returns the output."""
    st = stages[i]
    key = keys[i]
    writer = getattr(st.module, "raster_mask", None)
    if writer is not None:
        m = writer(st.piece, st.roi_out)
        if m is not None:
            pipe.raster_masks.put(key, m, st.roi_out, st.label)
    bp = _blend_of(st)
    if bp is None:
        return out
    mod, piece = st.module, st.piece
    if not mod.flags & Flags.SUPPORTS_BLENDING:
        _notice(pipe, f"{st.label}: this module does not support blending; blend settings ignored")
        return out
    rin, rout = st.roi_in, st.roi_out
    if rin.scale != rout.scale:
        _notice(pipe, f"{st.label}: input and output scales differ; blending skipped")
        return out
    if (buf.ndim == 2) != (out.ndim == 2) or (out.ndim == 3 and buf.shape[0] != out.shape[0]):
        _notice(pipe, f"{st.label}: input and output have different channels; blending skipped")
        return out
    a = np.ascontiguousarray(window(buf, rin, rout.x, rout.y, rout.width, rout.height), dtype=np.float32)
    b = np.ascontiguousarray(out, dtype=np.float32)
    space = resolve_space(bp, piece, pipe)
    mode = bp.mode
    if mode not in M.MODES_BY_SPACE[space]:
        _notice(pipe, f"{st.label}: blend mode {mode} is not available in {M.space_names()[space]}; using normal")
        mode = "normal"
    mask = build_mask(pipe, stages, keys, i, bp, space, a, b)
    first, second = (b, a) if bp.reverse else (a, b)
    res = run_blend(space, mode, first, second, mask, p=2.0 ** (-bp.fulcrum))
    pipe.raster_masks.put(key, mask, rout, st.label)
    return res


# --------------------------------------------------------------------------- display

def show_mask_overlay(pipe, stages, keys, buf: np.ndarray) -> np.ndarray:
    """The final display image with the mask of ``pipe.show_mask`` over it (darkroom pipes only)."""
    label = getattr(pipe, "show_mask", None)
    if not label or pipe.kind not in DARKROOM or buf.ndim != 3:
        return buf
    idx = next((k for k, st in enumerate(stages) if st.label == label), None)
    pub = pipe.raster_masks.get(keys[idx]) if idx is not None else None
    if pub is None:
        _notice(pipe, f"show mask: module {label} has no mask in this pipe")
        return buf
    m = carry_mask(pub.mask, pub.roi, stages[idx + 1:], stages[-1].roi_out)
    return show_mask(buf, m)


# --------------------------------------------------------------------------- points

def distort_points(pipe, pts, upto: str | None = None, *, backward_: bool = False, include: bool = True):
    """Full-resolution points from the pipe's input to the output of ``upto`` (the whole
    pipe when None; ``include=False``: to its input), or back with ``backward_``."""
    stages, _ = pipe.plan()
    if upto is not None:
        idx = next((k for k, st in enumerate(stages) if st.label == upto), None)
        if idx is None:
            from ..errors import ParamsError

            raise ParamsError(f"the pipe has no enabled module {upto}")
        stages = stages[: idx + (1 if include else 0)]
    return backward(stages, pts) if backward_ else forward(stages, pts)
