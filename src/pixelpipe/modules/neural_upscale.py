"""neural_upscale: the ``upscale`` AI task as a pipe module (pixelpipe only, not in darktable).

darktable upscales as a utility that exports a new, larger file (pixelpipe does
that too: ``pixelpipe ai upscale``). This module is the other way of use: the
super-resolution model inside the pipe, so an export (or a darkroom region) comes
out ``scale`` times larger with the whole edit before it, and a region of the
enlarged image can be previewed without running the whole file.

Position: right after ``colorout`` (anchor in ``pipe/data/pixelpipe_anchors.json``),
where the values are display-referred and encoded by the output profile, as the
models were trained on. Algorithm, on the planar input ``v``:

* to the model's sRGB-encoded domain: with an sRGB-curve output profile (srgb,
  display_p3) ``e = clamp(v, 0, 1)``; otherwise the profile's curve is undone
  (ICC parametric curve of :func:`pixelpipe.modules.colorspaces.trc`), clamped
  and encoded with the sRGB curve;
* ``u = clamp(model_x<scale>(e), 0, 1)`` over tiles of the super-resolution ladder
  with 16 px overlap (:func:`pixelpipe.ai.tasks.upscale.upscale_encoded`);
* back to the profile's encoding.

Geometry: the output is ``scale`` times the input; ``modify_roi_out`` multiplies,
``modify_roi_in`` divides and pads by 16 px (darktable's upscale tile overlap) so
that a region renders as the same part of the whole image (exactly for models whose
receptive field stays within the overlap; RLFN's attention branch sees its whole
tile, so regions differ from the whole image by what tiling changes, see
QUALITY.md). ``distort_transform`` / ``distort_backtransform`` scale points, so
drawn masks of later modules and the object-mask tools follow.

While AI is off, no upscale model is active or it lacks the x``scale`` graph, the
module still enlarges (pixel repetition) with a notice, so the image's geometry
never depends on the AI state. The darkroom's cut-down pipe takes the same cheap
path (EXPENSIVE flag). Why not Halide: the work is an ONNX Runtime model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PixelpipeError
from .base import Flags, Module, Params, Piece, ROI, Tags, param

PAD = 16                     # darktable's upscale tile overlap
SRGB_CURVE_PROFILES = ("srgb", "display_p3")


@dataclass
class NeuralUpscaleParams(Params):
    """Neural upscale.

    scale: the enlargement, 2 or 4 (the active upscale model's model_x2 / model_x4 graph).
    """

    scale: int = param(2, choices=(2, 4))


def _decode(v: np.ndarray, t: dict) -> np.ndarray:
    """Profile-encoded -> linear (ICC parametric curve: (a v + b)^g above d, c v below)."""
    v = np.maximum(v, 0)
    hi = np.power(np.maximum(t["a"] * v + t["b"], 0), t["g"])
    return np.where(v >= t["d"], hi, t["c"] * v).astype(np.float32) if t["c"] > 0 else hi.astype(np.float32)


def _encode(lin: np.ndarray, t: dict) -> np.ndarray:
    """Linear -> profile-encoded (the inverse of :func:`_decode`)."""
    lin = np.maximum(lin, 0)
    hi = (np.power(lin, 1.0 / t["g"]) - t["b"]) / t["a"]
    if t["c"] > 0:
        return np.where(lin >= t["c"] * t["d"], hi, lin / t["c"]).astype(np.float32)
    return hi.astype(np.float32)


def _repeat(a: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(a, s, axis=-2), s, axis=-1)


class NeuralUpscale(Module):
    op = "neural_upscale"
    name = "neural upscale"
    Params = NeuralUpscaleParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING | Flags.EXPENSIVE
    tags = Tags.DISTORT
    works_on = "rgb"
    summary = "enlarge 2x/4x with the active AI upscale model (RLFN), after the output profile"
    channels_in = 3
    channels_out = 3

    # ---- per run
    def commit(self, piece: Piece) -> None:
        s = int(piece.params.scale)
        piece.data.clear()
        piece.data["s"] = s
        dsc = piece.dsc_in
        profile = getattr(dsc, "output_profile", None) if dsc is not None and dsc.space == "display" else None
        piece.data["profile"] = profile or "linear_rec2020"
        try:
            from ..ai.tasks import common
            from ..ai.tasks.upscale import check_scale

            model = common.require_model("upscale")
            check_scale(model, s)
            piece.data["session"] = common.session_for(model, scale=s)
            sizes = model.config.attributes.get("input_sizes")
            piece.data["ladder"] = tuple(sizes) if sizes else None
        except PixelpipeError as e:
            note = f"neural_upscale: no model ({e}); enlarged by pixel repetition"
            if note not in piece.notices:
                piece.notices.append(note)

    # ---- geometry
    def modify_roi_out(self, piece: Piece, roi_in: ROI) -> ROI:
        s = int(piece.params.scale)
        return ROI(roi_in.x * s, roi_in.y * s, roi_in.width * s, roi_in.height * s, roi_in.scale)

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        s = int(piece.params.scale)
        x0, y0 = roi_out.x // s, roi_out.y // s
        x1 = -(-(roi_out.x + roi_out.width) // s)
        y1 = -(-(roi_out.y + roi_out.height) // s)
        return ROI(x0 - PAD, y0 - PAD, x1 - x0 + 2 * PAD, y1 - y0 + 2 * PAD, roi_out.scale)

    def distort_transform(self, piece: Piece, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, dtype=np.float64) * float(piece.params.scale)

    def distort_backtransform(self, piece: Piece, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, dtype=np.float64) / float(piece.params.scale)

    # ---- pixels
    def _crop(self, big: np.ndarray, s: int, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        ox, oy = roi_out.x - roi_in.x * s, roi_out.y - roi_in.y * s
        return np.ascontiguousarray(big[:, oy:oy + roi_out.height, ox:ox + roi_out.width], dtype=np.float32)

    def process_fast(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        s = int(piece.params.scale)
        return self._crop(_repeat(np.asarray(inp, np.float32), s), s, roi_in, roi_out)

    def process(self, piece: Piece, inp: np.ndarray, roi_in: ROI, roi_out: ROI) -> np.ndarray:
        s = int(piece.params.scale)
        session = piece.data.get("session")
        h, w = inp.shape[-2:]
        if session is None or min(h, w) < 16:  # RLFN needs 15 px; a sliver has nothing to enlarge
            return self.process_fast(piece, inp, roi_in, roi_out)
        from ..ai.tasks import common
        from ..ai.tasks.upscale import upscale_encoded
        from .colorspaces import trc

        v = np.nan_to_num(np.asarray(inp, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        profile = piece.data["profile"]
        t = trc(profile)
        if profile in SRGB_CURVE_PROFILES:
            e = np.clip(v, 0, 1)
        else:
            e = common.srgb_encode(np.clip(_decode(v, t), 0, 1))
        u = np.clip(upscale_encoded(session, e, s, ladder=piece.data.get("ladder")), 0, 1)
        out = u if profile in SRGB_CURVE_PROFILES else _encode(common.srgb_decode(u), t)
        return self._crop(out, s, roi_in, roi_out)
