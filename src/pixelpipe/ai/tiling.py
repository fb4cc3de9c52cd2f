"""Tiled inference for image-to-image models (denoise, upscale, raw denoise).

As darktable's restore_rgb.c does it: square tiles of size T from a ladder
(x1: 2048, 1536, 1024, 768, 512, 384, 256; super-resolution: 768, 512, 384,
256, 192; raw: 512, 384, 256, 192); the first size whose memory estimate fits
a quarter of the available memory; an overlap of 64 px (denoise) or 16 px
(upscale, raw) on every side, mirror padding at the image borders, and only
the central ``T - 2*overlap`` of each tile kept. On out-of-memory the session
is rebuilt one ladder size smaller and the tile retried; the size that worked
is remembered in the pref ``ai.tile_cache.<model>.<scale>.<provider>``.

The session passed in only needs ``run``, ``pin_tile``, ``static_tile``,
``inputs``, ``outputs``, ``cache_key`` and ``provider`` (see
:class:`pixelpipe.ai.runtime.Session`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from pixelpipe import prefs
from pixelpipe.errors import AIError

LADDER_X1: tuple[int, ...] = (2048, 1536, 1024, 768, 512, 384, 256)
LADDER_SR: tuple[int, ...] = (768, 512, 384, 256, 192)
LADDER_RAW: tuple[int, ...] = (512, 384, 256, 192)
OVERLAP_DENOISE = 64
OVERLAP_UPSCALE = 16
OVERLAP_RAW = 16
_ALIGN = 64  # every ladder size is a multiple of 64; shrunk tiles keep that


def available_memory() -> int:
    """Bytes of memory available now: /proc/meminfo MemAvailable, else sysconf, else 4 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def estimate_bytes(tile: int, scale: int = 1, channels_in: int = 3, channels_out: int = 3) -> int:
    """darktable's estimate: activations T_out^2*3*4*(100, or 50 for super-res) + in/out buffers."""
    t_out = tile * scale
    factor = 50 if scale > 1 else 100
    return t_out * t_out * 3 * 4 * factor + tile * tile * channels_in * 4 + t_out * t_out * channels_out * 4


def ladder_for(scale: int) -> tuple[int, ...]:
    return LADDER_X1 if scale == 1 else LADDER_SR


def choose_tile(scale: int = 1, *, ladder: Sequence[int] | None = None, budget: int | None = None) -> int:
    """The first ladder size whose estimate fits ``budget`` (default: ¼ of available memory)."""
    ladder = tuple(ladder or ladder_for(scale))
    budget = available_memory() // 4 if budget is None else budget
    for t in ladder:
        if estimate_bytes(t, scale) <= budget:
            return t
    return ladder[-1]


def _cache_key(session, scale: int) -> str | None:
    key = getattr(session, "cache_key", None)
    provider = getattr(session, "provider", None)
    if not key or not provider:
        return None
    k = f"ai.tile_cache.{key}.{scale}.{provider}"
    try:
        prefs.describe(k)
    except prefs.PrefsError:  # e.g. a provider or scale the pref cannot name
        return None
    return k


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Reflect indices into [0, n) without repeating the edge (numpy/ONNX 'reflect')."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m >= n, period - m, m)


def _round_up(x: int, a: int) -> int:
    return -(-x // a) * a


def run_tiled(session, image_nchw: np.ndarray, scale: int = 1, overlap: int = OVERLAP_DENOISE,
              tile: int | None = None, extra_inputs: Mapping[str, Any] | None = None, *,
              ladder: Sequence[int] | None = None, input_name: str | None = None,
              output_name: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run ``session`` over ``image_nchw`` (``[1,C,H,W]`` or ``[C,H,W]``) tile by tile.

    ``extra_inputs`` are fed with every tile: an array ``[1,c,H,W]`` the size of the
    image (e.g. a sigma map) is tiled like the image, anything else is passed as is.
    ``tile`` forces the first size tried (smaller ladder sizes remain as fallbacks);
    ``ladder`` replaces the ladder (e.g. a model's ``attributes.input_sizes``).
    Returns float32 ``[1,C',H*scale,W*scale]`` (or ``[C',...]`` for a 3-D input).
    """
    x = np.asarray(image_nchw, dtype=np.float32)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise AIError(f"run_tiled needs an image [1,C,H,W] or [C,H,W], got shape {x.shape}")
    if scale < 1 or overlap < 0:
        raise AIError(f"bad scale {scale} or overlap {overlap}")
    _, _, H, W = x.shape
    in_name = input_name or session.inputs[0].name
    out_name = output_name or session.outputs[0].name
    tiled_extra: dict[str, np.ndarray] = {}
    const_extra: dict[str, Any] = {}
    for k, v in (extra_inputs or {}).items():
        a = np.asarray(v)
        if a.ndim == 4 and a.shape[0] == 1 and a.shape[2:] == (H, W):
            tiled_extra[k] = a
        else:
            const_extra[k] = v

    static = session.static_tile
    ladder = tuple(sorted(set(ladder or ladder_for(scale)), reverse=True))
    cache_key = None
    if static is not None:
        candidates = [static]
    else:
        cache_key = _cache_key(session, scale)
        cached = prefs.get(cache_key) if cache_key else None
        start = tile or cached or choose_tile(scale, ladder=ladder)
        candidates = [start] + [t for t in ladder if t < start]
        # an image smaller than the tile: a smaller (aligned) tile does the same work
        need = _round_up(max(H, W) + 2 * overlap, _ALIGN)
        if need < candidates[0]:
            candidates = [need] + [t for t in candidates if t < need]
    failures: list[int] = []
    last: BaseException | None = None
    for t in candidates:
        if t <= 2 * overlap:
            raise AIError(f"tile size {t} leaves nothing inside the {overlap} px overlap")
        try:
            session.pin_tile(t)
            out = _pass(session, x, t, scale, overlap, in_name, out_name, tiled_extra, const_extra,
                        progress)
        except (MemoryError, _oom_type()) as e:
            failures.append(t)
            from .runtime import notice

            nxt = next((c for c in candidates if c < t), None)
            if nxt is not None:
                notice(f"out of memory at tile {t} on {getattr(session, 'provider', '?')}; "
                       f"retrying with tile {nxt}")
            last = e
            continue
        if cache_key and t in ladder and (failures or tile is None) and prefs.get(cache_key) != t:
            prefs.put(cache_key, t)
        return out[0] if squeeze else out
    raise AIError(f"out of memory even with tile size {candidates[-1]} "
                  f"(tried {', '.join(map(str, failures))}): {last}")


def _oom_type():
    from .runtime import AIOutOfMemory

    return AIOutOfMemory


def _pass(session, x, t, scale, overlap, in_name, out_name, tiled_extra, const_extra, progress):
    _, C, H, W = x.shape
    step = t - 2 * overlap
    ys0 = list(range(0, H, step))
    xs0 = list(range(0, W, step))
    total = len(ys0) * len(xs0)
    out = None
    done = 0
    for y0 in ys0:
        yi = _mirror(np.arange(y0 - overlap, y0 - overlap + t), H)
        hh = min(step, H - y0)
        for x0 in xs0:
            xi = _mirror(np.arange(x0 - overlap, x0 - overlap + t), W)
            ww = min(step, W - x0)
            feed = {in_name: x[:, :, yi[:, None], xi[None, :]]}
            for k, a in tiled_extra.items():
                feed[k] = a[:, :, yi[:, None], xi[None, :]]
            feed.update(const_extra)
            res = session.run(feed)[out_name]
            if res.ndim != 4 or res.shape[2] != t * scale or res.shape[3] != t * scale:
                raise AIError(f"model output {tuple(res.shape)} for a {t}x{t} tile is not "
                              f"{t * scale}x{t * scale} (scale {scale})")
            if out is None:
                out = np.empty((1, res.shape[1], H * scale, W * scale), np.float32)
            s = scale
            out[:, :, y0 * s:(y0 + hh) * s, x0 * s:(x0 + ww) * s] = \
                res[:, :, overlap * s:(overlap + hh) * s, overlap * s:(overlap + ww) * s]
            done += 1
            if progress is not None:
                progress(done, total)
    return out
