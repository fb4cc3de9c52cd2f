"""The ``upscale`` task: 2x / 4x super-resolution (darktable's neural_restore conventions).

Pipeline (restore_rgb.c): the image through the user's edit as linear Rec.709
in [0, 1] -> the sRGB curve -> NCHW ``[1, 3, H, W]`` -> ``model_x2.onnx`` or
``model_x4.onnx`` over tiles of the super-resolution ladder (768, 512, 384,
256, 192) with **16 px** overlap, mirror padding at the borders, each tile's
centre kept -> ``[1, 3, sH, sW]`` clamped to [0, 1] -> the inverse curve ->
a TIFF (32-bit float linear Rec.709 by default; 8/16-bit sRGB on request)
beside the original with its group sidecar (see :mod:`.common`).

Two ways to use it, as for denoise: :func:`upscale_file` (darktable's way,
``pixelpipe ai upscale --scale 2|4``: a new, larger file grouped with its
source) and the ``neural_upscale`` pipe module (:mod:`pixelpipe.modules.neural_upscale`,
right after the output profile), with which an export comes out enlarged and a
region of the enlarged image renders on its own (:func:`upscale_preview` is the
command line's before/after view of such a region). The file way leaves an
enabled ``neural_upscale`` of the edit out (a notice says so) instead of
enlarging twice.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from pixelpipe.errors import AIError

from . import common
from .denoise import Result

SCALES = (2, 4)


def upscale_encoded(session, encoded: np.ndarray, scale: int, *, tiled: bool = True, tile: int | None = None,
                    ladder=None, progress=None) -> np.ndarray:
    """Run the model on encoded planar RGB ``(3, H, W)``; returns ``(3, sH, sW)`` (not clamped)."""
    from pixelpipe.ai import tiling

    x = np.ascontiguousarray(encoded, dtype=np.float32)[None]
    if not tiled:
        session.pin_tile(None)
        return np.asarray(session.run({session.inputs[0].name: x})[session.outputs[0].name][0], np.float32)
    return tiling.run_tiled(session, x, scale=scale, overlap=tiling.OVERLAP_UPSCALE, tile=tile,
                            ladder=ladder, progress=progress)[0]


def check_scale(model, scale: int) -> None:
    if scale not in SCALES:
        raise AIError(f"scale must be 2 or 4, not {scale}")
    if scale not in model.scales():
        raise AIError(f"model {model.id} offers no x{scale} upscale (it has "
                      f"{', '.join('x%d' % s for s in model.scales())})")


def upscale_linear(session, linear: np.ndarray, scale: int, *, tiled: bool = True, tile=None, ladder=None,
                   progress=None) -> np.ndarray:
    lin = np.clip(np.nan_to_num(np.asarray(linear, np.float32)), 0, 1)
    out = upscale_encoded(session, common.srgb_encode(lin), scale, tiled=tiled, tile=tile, ladder=ladder,
                          progress=progress)
    return common.srgb_decode(np.clip(out, 0, 1))


def upscale_file(src: str | os.PathLike, dst: str | os.PathLike, scale: int, *, bpp: int = 32,
                 overwrite: bool = False, sidecar=None, progress=None) -> Result:
    """Render ``src`` through its edit, upscale x``scale``, write a TIFF at ``dst`` and its group sidecar."""
    from pixelpipe.io.atomic import check_destination

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    common.check_input(src)
    check_destination(dst, overwrite=overwrite)
    model = common.require_model("upscale")
    check_scale(model, scale)
    session = common.session_for(model, scale=scale)
    photo = common.open_photo(src, sidecar)
    _without_module(photo)
    lin = common.render_linear(photo)
    sizes = model.config.attributes.get("input_sizes")
    out = upscale_linear(session, lin, scale, ladder=tuple(sizes) if sizes else None, progress=progress)
    settings = {"scale": scale, "bpp": bpp}
    common.write_tiff(dst, out, photo.image, overwrite=overwrite, bpp=bpp, source=src.name)
    try:
        side = common.write_group_sidecar(dst, common.neutral_edit_for_rgb(dst),
                                          common.group_record(dst, src, "upscale", model, settings))
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return Result(src, dst, side, time.perf_counter() - t0, list(photo.notices), settings)


def _without_module(photo) -> None:
    """Switch off an enabled neural_upscale of the edit (the file is enlarged once, here)."""
    for inst in photo.edit.instances:
        if inst.op == "neural_upscale" and inst.enabled:
            inst.enabled = False
            photo.notices.append("the edit's neural_upscale module is left out (the file is upscaled here)")


def upscale_preview(src, roi_xywh, scale: int, *, sidecar=None) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) of a region of the full-size output: the region upscaled by
    nearest neighbour and by the model (16 px of context, as the tiles have)."""
    from pixelpipe.ai.tiling import OVERLAP_UPSCALE

    model = common.require_model("upscale")
    check_scale(model, scale)
    session = common.session_for(model, scale=scale)
    photo = common.open_photo(src, sidecar)
    _without_module(photo)
    W, H = common.full_output_size(photo)
    roi = common.clip_roi(roi_xywh, (W, H))
    pad = OVERLAP_UPSCALE
    x0, y0 = max(0, roi.x - pad), max(0, roi.y - pad)
    x1, y1 = min(W, roi.x + roi.width + pad), min(H, roi.y + roi.height + pad)
    lin = common.render_linear(photo, roi.with_(x=x0, y=y0, width=x1 - x0, height=y1 - y0))
    up = upscale_linear(session, lin, scale)
    s = scale
    after = up[:, (roi.y - y0) * s:(roi.y - y0 + roi.height) * s, (roi.x - x0) * s:(roi.x - x0 + roi.width) * s]
    before = lin[:, roi.y - y0:roi.y - y0 + roi.height, roi.x - x0:roi.x - x0 + roi.width]
    before = np.repeat(np.repeat(before, s, axis=1), s, axis=2)
    return before, after
