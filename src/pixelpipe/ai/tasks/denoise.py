"""The ``denoise`` task: an RGB denoiser (darktable's neural_restore conventions).

Pipeline (restore_rgb.c): the image rendered through the user's edit as linear
Rec.709 in [0, 1] (:func:`~.common.render_linear`) -> the sRGB curve ->
planar NCHW ``[1, 3, H, W]`` float32, tensor ``input`` -> tiles of the
ladder 2048 … 256 with **64 px** overlap, mirror padding at the borders, only
each tile's centre kept (:func:`pixelpipe.ai.tiling.run_tiled`) -> the model's
output, clamped to [0, 1] -> optional **detail recovery** -> the inverse curve.
A model with ``num_inputs`` 2 (FFDNet) also gets ``sigma`` ``[1, 1, H, W]``,
the noise standard deviation / 255 on the encoded scale; darktable fills 25/255,
pixelpipe's default too (``sigma="auto"`` estimates it from the image, a number
sets it, an ``(H, W)`` array gives a spatially varying map).

Detail recovery (darktable's): the luminance residual (Rec.709 weights,
original − denoised, on the encoded values) is split into 5 à-trous bands;
each band is soft-thresholded at 0.04, 0.03, 0.02, 0.01, 0.005 (fine to
coarse), and the sum (the coarse residual is dropped) × ``detail`` is added to
R, G and B. ``strength`` blends the result with the source in linear light.

Two ways to use it: :func:`denoise_file` (darktable's way: a 32-bit float
linear TIFF beside the original, grouped with it by a sidecar, see
:mod:`.common`) and the ``neural_denoise`` pipe module
(:mod:`pixelpipe.modules.neural_denoise`), which calls :func:`denoise_encoded`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pixelpipe.errors import AIError

from . import common
from .wavelets import bands, soft_threshold

DETAIL_THRESHOLDS = (0.04, 0.03, 0.02, 0.01, 0.005)   # fine -> coarse (darktable)
DEFAULT_SIGMA = 25.0                                 # darktable fills 25/255
SIGMA_MAX = 75.0                                     # FFDNet's training range


def estimate_sigma(encoded: np.ndarray) -> float:
    """Noise std (0–255 units) of an encoded planar RGB image: the median absolute
    finest-scale Haar diagonal coefficient of its luminance / 0.6745 (Donoho & Johnstone)."""
    y = common.luminance(encoded)
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    if h < 2 or w < 2:
        return 0.0
    y = y[:h, :w]
    hh = (y[0::2, 0::2] - y[0::2, 1::2] - y[1::2, 0::2] + y[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745 * 255.0)


def detail_recovery(noisy: np.ndarray, denoised: np.ndarray, alpha: float,
                    thresholds=DETAIL_THRESHOLDS) -> np.ndarray:
    """darktable's detail recovery on encoded planar RGB (see the module docstring)."""
    if alpha <= 0:
        return denoised
    resid = common.luminance(noisy) - common.luminance(denoised)
    bs, _ = bands(resid, len(thresholds))
    detail = np.zeros_like(resid)
    for b, t in zip(bs, thresholds):
        detail += soft_threshold(b, t)
    return (denoised + np.float32(alpha) * detail[None]).astype(np.float32)


def _io_names(session) -> tuple[str, str | None]:
    names = [t.name for t in session.inputs]
    if len(names) == 1:
        return names[0], None
    sig = "sigma" if "sigma" in names else names[1]
    img = next(n for n in names if n != sig)
    return img, sig


def denoise_encoded(session, encoded: np.ndarray, sigma=DEFAULT_SIGMA, *, tiled: bool = True,
                    tile: int | None = None, ladder=None,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run the model on encoded planar RGB ``(3, H, W)`` (values as the model takes them,
    [0, 1]); ``sigma``: a number (0–255 units) or an ``(H, W)`` map. Returns the model's
    output ``(3, H, W)`` (not clamped). ``tiled=False`` runs the whole image at once."""
    from pixelpipe.ai import tiling

    x = np.ascontiguousarray(encoded, dtype=np.float32)[None]
    img_name, sig_name = _io_names(session)
    extra = {}
    if sig_name is not None:
        if np.ndim(sigma) == 0:
            smap = np.full((1, 1) + x.shape[2:], np.float32(sigma) / 255.0, np.float32)
        else:
            smap = (np.asarray(sigma, np.float32) / 255.0).reshape((1, 1) + x.shape[2:])
        extra[sig_name] = smap
    if not tiled:
        session.pin_tile(None)  # free H/W (a tiled run pins them to its tile)
        out = session.run({img_name: x, **extra})
        return np.asarray(out[session.outputs[0].name][0], dtype=np.float32)
    y = tiling.run_tiled(session, x, scale=1, overlap=tiling.OVERLAP_DENOISE, tile=tile, extra_inputs=extra,
                         input_name=img_name, ladder=ladder, progress=progress)
    return y[0]


def model_ladder(model):
    sizes = model.config.attributes.get("input_sizes") if model is not None and model.config else None
    return tuple(sizes) if sizes else None


def resolve_sigma(sigma, encoded: np.ndarray) -> float | np.ndarray:
    if isinstance(sigma, str):
        if sigma != "auto":
            raise AIError(f"sigma must be a number 0..{SIGMA_MAX:g} or 'auto', not {sigma!r}")
        return float(np.clip(estimate_sigma(encoded), 0.0, SIGMA_MAX))
    if np.ndim(sigma) == 0:
        s = float(sigma)
        if not 0 <= s <= SIGMA_MAX:
            raise AIError(f"sigma {s:g} is outside 0..{SIGMA_MAX:g} (the model's training range)")
        return s
    return np.clip(np.asarray(sigma, np.float32), 0, SIGMA_MAX)


def denoise_linear(session, linear: np.ndarray, *, sigma=DEFAULT_SIGMA, detail: float = 0.0,
                   strength: float = 1.0, tiled: bool = True, tile: int | None = None, ladder=None,
                   progress=None) -> np.ndarray:
    """Linear Rec.709 planar RGB in [0, 1] -> denoised linear RGB (darktable's pipeline)."""
    if not 0 <= strength <= 1:
        raise AIError(f"strength {strength:g} is outside 0..1")
    if not 0 <= detail <= 1:
        raise AIError(f"detail {detail:g} is outside 0..1")
    lin = np.clip(np.nan_to_num(np.asarray(linear, np.float32)), 0, 1)
    enc = common.srgb_encode(lin)
    s = resolve_sigma(sigma, enc)
    out = np.clip(denoise_encoded(session, enc, s, tiled=tiled, tile=tile, ladder=ladder,
                                  progress=progress), 0, 1)
    out = np.clip(detail_recovery(enc, out, detail), 0, 1)
    den = common.srgb_decode(out)
    if strength < 1:
        den = (np.float32(strength) * den + np.float32(1 - strength) * lin).astype(np.float32)
    return den


@dataclass
class Result:
    source: Path
    output: Path
    sidecar: Path | None = None
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def denoise_file(src: str | os.PathLike, dst: str | os.PathLike, *, sigma=DEFAULT_SIGMA, detail: float = 0.0,
                 strength: float = 1.0, bpp: int = 32, overwrite: bool = False, sidecar=None,
                 tiled: bool = True, progress=None) -> Result:
    """darktable's way: render ``src`` through its edit, denoise, write a TIFF (32-bit
    float linear Rec.709 by default) at ``dst`` and its group sidecar."""
    import time

    from pixelpipe.io.atomic import check_destination

    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    common.check_input(src)
    check_destination(dst, overwrite=overwrite)
    model = common.require_model("denoise")
    session = common.session_for(model)
    photo = common.open_photo(src, sidecar)
    lin = common.render_linear(photo)
    enc_sigma = sigma
    if sigma == "auto":
        enc_sigma = resolve_sigma("auto", common.srgb_encode(lin))
    out = denoise_linear(session, lin, sigma=enc_sigma, detail=detail, strength=strength, tiled=tiled,
                         ladder=model_ladder(model), progress=progress)
    settings = {"sigma": enc_sigma if np.ndim(enc_sigma) == 0 else "map", "detail": detail,
                "strength": strength, "bpp": bpp}
    common.write_tiff(dst, out, photo.image, overwrite=overwrite, bpp=bpp, source=src.name)
    try:
        side = common.write_group_sidecar(dst, common.neutral_edit_for_rgb(dst),
                                          common.group_record(dst, src, "denoise", model, settings))
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return Result(src, dst, side, time.perf_counter() - t0, list(photo.notices), settings)


def denoise_preview(src, roi_xywh, *, sigma=DEFAULT_SIGMA, detail: float = 0.0, strength: float = 1.0,
                    sidecar=None) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) linear planar RGB of a region ``(x, y, w, h)`` of the full-size
    output; the region is rendered with 64 px of context on every side so the result
    equals the same region of a whole-image run."""
    from pixelpipe.ai.tiling import OVERLAP_DENOISE

    model = common.require_model("denoise")
    session = common.session_for(model)
    photo = common.open_photo(src, sidecar)
    W, H = common.full_output_size(photo)
    roi = common.clip_roi(roi_xywh, (W, H))
    pad = OVERLAP_DENOISE
    x0, y0 = max(0, roi.x - pad), max(0, roi.y - pad)
    x1, y1 = min(W, roi.x + roi.width + pad), min(H, roi.y + roi.height + pad)
    padded = roi.with_(x=x0, y=y0, width=x1 - x0, height=y1 - y0)
    lin = common.render_linear(photo, padded)
    if sigma == "auto":
        sigma = resolve_sigma("auto", common.srgb_encode(lin))
    den = denoise_linear(session, lin, sigma=sigma, detail=detail, strength=strength)
    sl = (slice(None), slice(roi.y - y0, roi.y - y0 + roi.height), slice(roi.x - x0, roi.x - x0 + roi.width))
    return lin[sl], den[sl]
