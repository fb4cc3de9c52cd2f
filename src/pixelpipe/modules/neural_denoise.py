"""neural_denoise: the ``denoise`` AI task as a pipe module (pixelpipe only, not in darktable).

darktable runs its neural denoiser as a utility that exports a new file;
users asked for it as a pipeline module with a full preview and finer control
(darktable issue #20922). This module sits at darktable's denoiseprofile
position (after demosaic, in camera RGB, before exposure; its order anchor is
in ``pipe/data/pixelpipe_anchors.json``) and runs the active ``denoise`` model
(FFDNet-style, see :mod:`pixelpipe.ai.tasks.denoise`) on the pipe's buffer.

Algorithm, per pixel of the planar linear input ``v`` (camera RGB, white-balanced):

* headroom ``H = max(1, max(processed_maximum))`` (the largest value a clipped
  pixel reaches after white balance), ``e = srgb(clamp(v / H, 0, 1))``: the
  display-encoded values the model was trained on, with the highlights kept;
* the model's noise map (models with a ``sigma`` input), 0–255 units on the
  encoded scale: ``sigma`` when set; else (``sigma = 0``, auto) the raw's noise
  model ``var = a x + b`` (:mod:`pixelpipe.ai.tasks.noise`, measured on the
  mosaic) carried through the curve, ``255 sqrt(a g + b) srgb'(g / H) / H`` with
  ``g`` the (3x3-averaged) green channel, times ``AUTO_GAIN`` = 2.5 (demosaicked
  noise is correlated; see the constant); for a non-raw input the noise measured
  on the whole file (Donoho's MAD estimate). Times ``sigma_scale``, times the
  buffer's scale when the pipe works below full resolution (averaging 1/s² pixels
  divides the noise by 1/s); clamped to 0..75;
* ``d = clamp(model(e), 0, 1)``, then darktable's detail recovery (``detail``);
* ``out = v + strength * H * (srgb⁻¹(d) - srgb⁻¹(e))``: the change the model made,
  in linear light, added to the input, so values beyond the headroom and below
  zero keep their excess.

Why not Halide: the work is an ONNX Runtime model (``process`` is overridden, as
the module guide allows for what Halide cannot express).

Region of interest: the model sees 64 px of context on every side (darktable's
tile overlap for denoisers; FFDNet's receptive field is under 50 px), so
``modify_roi_in`` pads the output region by 64 px at the buffer's scale and a
region renders exactly as the same part of the whole image. Inside, the padded
buffer is tiled with the same 64 px overlap (:func:`pixelpipe.ai.tiling.run_tiled`).

Flags: EXPENSIVE, with an identity fast path (the darkroom's cut-down pipe shows
the input). While AI is off, no denoise model is active or a side of the image is
under 16 px, the module passes its input through with a notice (a 1-pixel-high
image has no 2-D noise to measure).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PixelpipeError
from .base import Flags, Module, Params, Piece, ROI, param, window

PAD = 64
MIN_SIDE = 16
#: the automatic level is the measured one times this: after demosaic the noise is
#: spatially correlated and a model trained on white noise needs a higher level to
#: remove it (Poisson-Gaussian noise added to the 550D raw at three levels: PSNR
#: peaks at 2.5-3.5x the measured level, +4 to +11 dB over the noisy render)
AUTO_GAIN = 2.5


@dataclass
class NeuralDenoiseParams(Params):
    """Neural denoise.

    strength: blend of the denoised result with the input, 0..1 (1 = fully denoised).
    sigma: noise level for the model, 0..75 in 0–255 units of the display-encoded
           values; 0 = automatic (the raw's measured noise model).
    sigma_scale: multiplies the (automatic or set) noise level, 0.1..4.
    detail: darktable's detail recovery (wavelet-thresholded luminance residual added
            back), 0..1.
    """

    strength: float = param(1.0, min=0.0, max=1.0)
    sigma: float = param(0.0, min=0.0, max=75.0, unit="/255")
    sigma_scale: float = param(1.0, min=0.1, max=4.0, unit="x")
    detail: float = param(0.0, min=0.0, max=1.0)


class NeuralDenoise(Module):
    op = "neural_denoise"
    name = "neural denoise"
    Params = NeuralDenoiseParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES | Flags.EXPENSIVE
    works_on = "rgb"
    summary = "denoise with the active AI denoise model (FFDNet), at denoiseprofile's place"
    channels_in = 3
    channels_out = 3

    # ---- per run
    def commit(self, piece: Piece) -> None:
        piece.data.pop("off", None)
        try:
            from ..ai.tasks import common

            model = common.require_model("denoise")
            piece.data["session"] = common.session_for(model)
            piece.data["ladder"] = model.config.attributes.get("input_sizes")
        except PixelpipeError as e:
            piece.data["off"] = str(e)
            note = f"neural_denoise skipped: {e}"
            if note not in piece.notices:
                piece.notices.append(note)
            return
        dsc = piece.dsc_in
        pm = max(dsc.processed_maximum) if dsc is not None else 1.0
        piece.data["headroom"] = float(max(1.0, pm))
        img = piece.image
        if piece.params.sigma > 0:
            piece.data["noise"] = ("const", float(piece.params.sigma))
        elif img.is_raw:
            from ..ai.tasks.noise import raw_noise_model

            piece.data["noise"] = ("model",) + raw_noise_model(img)
        else:
            piece.data["noise"] = ("const", _file_sigma(img))

    # ---- regions: 64 px of context
    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        return roi_out.padded(PAD)

    # ---- pixels
    def process_fast(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        return np.ascontiguousarray(window(inp, roi_in, roi_out.x, roi_out.y, roi_out.width, roi_out.height))

    def process(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        h, w = inp.shape[-2:]
        if min(piece.buf_in) > 0:  # the image's size, not the (padded) region's
            h, w = piece.buf_in[1], piece.buf_in[0]
        if "off" in piece.data or "session" not in piece.data or min(h, w) < MIN_SIDE:
            return self.process_fast(piece, inp, roi_in, roi_out)
        from ..ai.tasks import common
        from ..ai.tasks.denoise import denoise_encoded, detail_recovery

        p = piece.params
        H = np.float32(piece.data["headroom"])
        v = np.nan_to_num(np.asarray(inp, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        e = common.srgb_encode(np.clip(v / H, 0, 1))
        sigma = self.sigma_map(piece, v, roi_in.scale)
        d = np.clip(denoise_encoded(piece.data["session"], e, sigma, ladder=piece.data.get("ladder")), 0, 1)
        d = np.clip(detail_recovery(e, d, p.detail), 0, 1)
        out = v + np.float32(p.strength) * H * (common.srgb_decode(d) - common.srgb_decode(e))
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        return np.ascontiguousarray(window(out, roi_in, roi_out.x, roi_out.y, roi_out.width, roi_out.height))

    def sigma_map(self, piece: Piece, v: np.ndarray, scale: float):
        """The model's noise level (0–255 units): a number or an (H, W) map."""
        p = piece.params
        kind, *vals = piece.data["noise"]
        factor = p.sigma_scale * min(1.0, float(scale))
        if kind == "const":
            return float(np.clip(vals[0] * factor, 0, 75))
        from ..ai.tasks import common

        a, b = vals
        factor *= AUTO_GAIN
        H = np.float32(piece.data["headroom"])
        g = _box3(np.maximum(v[1], 0))
        sig = 255.0 * np.sqrt(np.float32(a) * g + np.float32(b)) * common.srgb_slope(np.clip(g / H, 0, 1)) / H
        return np.clip(sig * np.float32(factor), 0, 75).astype(np.float32)


def _box3(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="edge")
    s = sum(p[i:i + x.shape[0], j:j + x.shape[1]] for i in range(3) for j in range(3))
    return (s / np.float32(9)).astype(np.float32)


_FILE_SIGMA: dict[tuple, float] = {}


def _file_sigma(image) -> float:
    """Noise of a non-raw file (0–255, encoded scale), measured once per file."""
    try:
        key = (image.identity(), image.data.shape)
    except OSError:
        key = (id(image), image.data.shape)
    if key not in _FILE_SIGMA:
        from ..ai.tasks import common
        from ..ai.tasks.denoise import estimate_sigma

        data = image.data
        enc = data if image.encoding == "srgb" else common.srgb_encode(np.clip(data, 0, 1))
        _FILE_SIGMA[key] = float(np.clip(estimate_sigma(enc), 0, 75))
    return _FILE_SIGMA[key]
