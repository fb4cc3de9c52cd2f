"""Stand-in ONNX models for the AI task tests (built with onnx.helper, right names and
shapes, trivial arithmetic), real models from the shared weights, and small helpers."""
from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from aitest_helpers import _model, _vi, box_blur, bayer_model, config, upscaler  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
REQUIRE = os.environ.get("PIXELPIPE_REQUIRE_TESTDATA", "") not in ("", "0")
F = TensorProto.FLOAT


def _t(name, arr, elem=F):
    a = np.asarray(arr)
    return helper.make_tensor(name, elem, a.shape, a.ravel().tolist())


def _i64(name, vals):
    return helper.make_tensor(name, TensorProto.INT64, [len(vals)], list(vals))


# --------------------------------------------------------------------------- raw models

def scaled_bayer_model(factor: float) -> bytes:
    """bayer_v1 that returns ``factor`` x the identity remosaic (for match_gain)."""
    w = np.zeros((12, 4, 1, 1), np.float32)
    for c in range(12):
        w[c, c % 4, 0, 0] = factor
    nodes = [helper.make_node("Conv", ["input", "W"], ["c12"]),
             helper.make_node("DepthToSpace", ["c12"], ["output"], blocksize=2, mode="CRD")]
    return _model(nodes, [_vi("input", [1, 4, "t", "t"])], [_vi("output", [1, 3, "t2", "t2"])], [_t("W", w)])


def xtrans_identity() -> bytes:
    """xtrans_v1: [1,1,H,W] -> [1,3,H,W], the plane copied to R, G and B."""
    nodes = [helper.make_node("Concat", ["input", "input", "input"], ["output"], axis=1)]
    return _model(nodes, [_vi("input", [1, 1, "h", "w"])], [_vi("output", [1, 3, "h", "w"])])


# --------------------------------------------------------------------------- mask models

SAM_RADII = (100.0, 200.0, 300.0)     # in the 1024 frame; iou picks the 2nd
SAM_IOU = (0.2, 0.9, 0.5)


def sam2_encoder() -> bytes:
    """SAM 2.1's encoder interface: image [1,3,1024,1024] -> high_res_feats_0 [1,32,256,256],
    high_res_feats_1 [1,64,128,128], image_embed [1,256,64,64] (average pools, channel means)."""
    nodes, inits, outs = [], [], []
    for name, k, ch in (("high_res_feats_0", 4, 32), ("high_res_feats_1", 8, 64), ("image_embed", 16, 256)):
        nodes.append(helper.make_node("AveragePool", ["image"], [f"p{k}"], kernel_shape=[k, k], strides=[k, k]))
        inits.append(_t(f"W{k}", np.full((ch, 3, 1, 1), 1 / 3, np.float32)))
        nodes.append(helper.make_node("Conv", [f"p{k}", f"W{k}"], [name]))
        outs.append(_vi(name, [1, ch, 1024 // k, 1024 // k]))
    return _model(nodes, [_vi("image", [1, 3, 1024, 1024])], outs, inits)


def _disk_logits(nodes, inits, prefix, radii, k=10.0):
    """logits [1,len(radii),1024,1024] = k (r^2 - |p - q|^2) / r^2 around the first point."""
    inits += [_i64(f"{prefix}s0", [0, 0, 0]), _i64(f"{prefix}e0", [1, 1, 1]), _i64(f"{prefix}s1", [0, 0, 1]),
              _i64(f"{prefix}e1", [1, 1, 2]), _i64(f"{prefix}shape", [1, 1, 1, 1]),
              _t(f"{prefix}xs", np.arange(1024, dtype=np.float32).reshape(1, 1, 1, 1024)),
              _t(f"{prefix}ys", np.arange(1024, dtype=np.float32).reshape(1, 1, 1024, 1)),
              _t(f"{prefix}r2", np.array(radii, np.float32).reshape(1, -1, 1, 1) ** 2),
              _t(f"{prefix}k", np.float32(k))]
    nodes += [
        helper.make_node("Slice", ["point_coords", f"{prefix}s0", f"{prefix}e0"], [f"{prefix}px0"]),
        helper.make_node("Slice", ["point_coords", f"{prefix}s1", f"{prefix}e1"], [f"{prefix}py0"]),
        helper.make_node("Reshape", [f"{prefix}px0", f"{prefix}shape"], [f"{prefix}px"]),
        helper.make_node("Reshape", [f"{prefix}py0", f"{prefix}shape"], [f"{prefix}py"]),
        helper.make_node("Sub", [f"{prefix}xs", f"{prefix}px"], [f"{prefix}dx"]),
        helper.make_node("Sub", [f"{prefix}ys", f"{prefix}py"], [f"{prefix}dy"]),
        helper.make_node("Mul", [f"{prefix}dx", f"{prefix}dx"], [f"{prefix}dx2"]),
        helper.make_node("Mul", [f"{prefix}dy", f"{prefix}dy"], [f"{prefix}dy2"]),
        helper.make_node("Add", [f"{prefix}dx2", f"{prefix}dy2"], [f"{prefix}d2"]),
        helper.make_node("Sub", [f"{prefix}r2", f"{prefix}d2"], [f"{prefix}num"]),
        helper.make_node("Div", [f"{prefix}num", f"{prefix}r2"], [f"{prefix}q"]),
        helper.make_node("Mul", [f"{prefix}q", f"{prefix}k"], [f"{prefix}logits"]),
    ]
    return f"{prefix}logits"


def _zero_of(nodes, inits, names, prefix="z"):
    """0 * (sum of the means of ``names``): makes the inputs required, changes nothing."""
    acc = None
    for i, n in enumerate(names):
        nodes.append(helper.make_node("ReduceMean", [n], [f"{prefix}m{i}"], keepdims=0))
        if acc is None:
            acc = f"{prefix}m{i}"
        else:
            nodes.append(helper.make_node("Add", [acc, f"{prefix}m{i}"], [f"{prefix}a{i}"]))
            acc = f"{prefix}a{i}"
    inits.append(_t(f"{prefix}zero", np.float32(0)))
    nodes.append(helper.make_node("Mul", [acc, f"{prefix}zero"], [f"{prefix}out"]))
    return f"{prefix}out"


def sam2_decoder(embed_name: str = "image_embed") -> bytes:
    """SAM 2.1's decoder interface (``embed_name`` may differ, to test the substring mapping):
    three disk masks around the first point (radii SAM_RADII in the 1024 frame), iou SAM_IOU,
    the previous mask added when has_mask_input is 1."""
    nodes, inits = [], []
    logits = _disk_logits(nodes, inits, "d", SAM_RADII)
    zero = _zero_of(nodes, inits, [embed_name, "high_res_feats_0", "high_res_feats_1", "point_labels"])
    inits += [_t("up", np.array([1, 1, 4, 4], np.float32)), _t("five", np.float32(5.0)),
              _t("iou", np.array([SAM_IOU], np.float32))]
    nodes += [
        helper.make_node("Resize", ["mask_input", "", "up"], ["prev_up"], mode="nearest"),
        helper.make_node("Mul", ["prev_up", "has_mask_input"], ["prev_on"]),
        helper.make_node("Mul", ["prev_on", "five"], ["prev5"]),
        helper.make_node("Add", [logits, "prev5"], ["m0"]),
        helper.make_node("Add", ["m0", zero], ["masks"]),
        helper.make_node("AveragePool", ["masks"], ["low_res_masks"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Add", ["iou", zero], ["iou_predictions"]),
    ]
    inputs = [_vi(embed_name, [1, 256, 64, 64]), _vi("high_res_feats_0", [1, 32, 256, 256]),
              _vi("high_res_feats_1", [1, 64, 128, 128]), _vi("point_coords", [1, "num_points", 2]),
              _vi("point_labels", [1, "num_points"]), _vi("mask_input", [1, 1, 256, 256]),
              _vi("has_mask_input", [1])]
    outputs = [_vi("masks", [1, 3, 1024, 1024]), _vi("iou_predictions", [1, 3]),
               _vi("low_res_masks", [1, 3, 256, 256])]
    return _model(nodes, inputs, outputs, inits)


SEGNEXT_RADIUS = 150.0


def segnext_pair() -> tuple[bytes, bytes]:
    enc = _model([helper.make_node("AveragePool", ["image"], ["p16"], kernel_shape=[16, 16], strides=[16, 16]),
                  helper.make_node("Conv", ["p16", "W"], ["image_feats"])],
                 [_vi("image", [1, 3, 1024, 1024])], [_vi("image_feats", [1, 768, 64, 64])],
                 [_t("W", np.full((768, 3, 1, 1), 1 / 3, np.float32))])
    nodes, inits = [], []
    logits = _disk_logits(nodes, inits, "d", (SEGNEXT_RADIUS,))
    zero = _zero_of(nodes, inits, ["image_feats", "point_labels", "prev_mask"])
    nodes += [helper.make_node("Add", [logits, zero], ["l2"]), helper.make_node("Sigmoid", ["l2"], ["mask"])]
    dec = _model(nodes, [_vi("image_feats", [1, 768, 64, 64]), _vi("point_coords", [1, "num_points", 2]),
                         _vi("point_labels", [1, "num_points"]), _vi("prev_mask", [1, 1, 1024, 1024])],
                 [_vi("mask", [1, 1, 1024, 1024])], inits)
    return enc, dec


# --------------------------------------------------------------------------- packages

def package(path: Path, model_id: str, task: str, files: dict[str, bytes], **cfg_extra) -> Path:
    cfg = config(model_id, task, **cfg_extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{model_id}/config.json", json.dumps(cfg, indent=2))
        for name, data in files.items():
            zf.writestr(f"{model_id}/{name}", data)
    return path


def install(tmp: Path, model_id: str, task: str, files: dict[str, bytes], **cfg_extra):
    from pixelpipe import ai

    m = ai.install_package(package(tmp / f"{model_id}.dtmodel", model_id, task, files, **cfg_extra))
    ai.activate(m.id)
    return m


def tiny(tmp: Path, task: str, **kw):
    """Install and activate a stand-in model for ``task``."""
    if task == "denoise":
        return install(tmp, "denoise-tiny", "denoise", {"model.onnx": box_blur(num_inputs=2)}, num_inputs=2)
    if task == "upscale":
        return install(tmp, "upscale-tiny", "upscale", {"model_x2.onnx": upscaler(2), "model_x4.onnx": upscaler(4)})
    if task == "rawdenoise":
        files = {"model_bayer.onnx": kw.get("bayer", bayer_model())}
        variants = {"bayer": {"input_kind": "bayer_v1", "onnx": "model_bayer.onnx",
                              "wb_norm": kw.get("wb_norm", "daylight"),
                              "output_scale": kw.get("output_scale", "absolute")}}
        if kw.get("xtrans"):
            files["model_xtrans.onnx"] = xtrans_identity()
            variants["xtrans"] = {"input_kind": "xtrans_v1", "onnx": "model_xtrans.onnx"}
        if kw.get("linear") is not None:  # ONNX bytes of a linear_v1 graph [1,3,T,T] -> [1,3,T,T]
            files["model_linear.onnx"] = kw["linear"]
            variants["linear"] = {"input_kind": "linear_v1", "onnx": "model_linear.onnx",
                                  **kw.get("linear_settings", {})}
        if kw.get("no_bayer"):
            files.pop("model_bayer.onnx")
            variants.pop("bayer")
        return install(tmp, kw.get("model_id", "rawdenoise-tiny"), "rawdenoise", files, variants=variants)
    if task == "mask":
        if kw.get("arch", "sam2") == "segnext":
            enc, dec = segnext_pair()
            return install(tmp, "mask-tiny-segnext", "mask", {"encoder.onnx": enc, "decoder.onnx": dec},
                           arch="segnext")
        return install(tmp, kw.get("model_id", "mask-tiny-sam2"), "mask",
                       {"encoder.onnx": sam2_encoder(), "decoder.onnx": sam2_decoder(kw.get("embed", "image_embed"))},
                       arch="sam2")
    raise ValueError(task)


# --------------------------------------------------------------------------- real models

_BUILT: dict[str, Path] = {}


def real_package(model_id: str, tmp_factory) -> Path:
    """The .dtmodel of a real model: from $PIXELPIPE_AI_MODELS if it has it, else converted
    from the shared weights in this test session (needs PyTorch; skipped without it, a
    failure under PIXELPIPE_REQUIRE_TESTDATA, where CI installs torch)."""
    env = os.environ.get("PIXELPIPE_AI_MODELS")
    if env and (Path(env) / f"{model_id}.dtmodel").is_file():
        return Path(env) / f"{model_id}.dtmodel"
    if model_id in _BUILT:
        return _BUILT[model_id]
    try:
        import torch  # noqa: F401
    except ImportError:
        reason = (f"PyTorch is not installed, so {model_id} cannot be built from the shared weights "
                  f"(pip install torch==2.13.0, or set PIXELPIPE_AI_MODELS to a folder of built .dtmodel files)")
        if REQUIRE:
            pytest.fail(reason + "; CI installs torch, so this must not happen under PIXELPIPE_REQUIRE_TESTDATA")
        pytest.skip(reason)
    from pixelpipe.testdata import models_dir

    if not models_dir().exists():
        reason = f"shared trained weights not found at {models_dir()}"
        if REQUIRE:
            pytest.fail(reason + " and PIXELPIPE_REQUIRE_TESTDATA is set")
        pytest.skip(reason)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tools import convert_all

    out = tmp_factory.mktemp("real-models")
    for r in convert_all.convert_one(model_id, out):
        _BUILT[r["id"]] = Path(r["dtmodel"])
    return _BUILT[model_id]


def install_real(model_id: str, tmp_factory):
    from pixelpipe import ai

    m = ai.install_package(real_package(model_id, tmp_factory))
    ai.activate(m.id)
    return m


# --------------------------------------------------------------------------- measures

def flat_noise(img: np.ndarray, ref: np.ndarray, block: int = 24, n: int = 30):
    """High-pass noise std of ``img`` in the ``n`` flattest blocks of ``ref`` (planar RGB)."""
    def lum(x):
        return 0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2]

    def hp(y):
        p = np.pad(y, 1, mode="edge")
        s = sum(p[i:i + y.shape[0], j:j + y.shape[1]] for i in range(3) for j in range(3)) / 9
        return y - s, s

    r, _ = hp(lum(img))
    _, s = hp(lum(ref))
    H, W = r.shape
    hb, wb = H // block, W // block

    def blocks(z):
        return z[:hb * block, :wb * block].reshape(hb, block, wb, block).transpose(0, 2, 1, 3).reshape(hb * wb, -1)

    gy, gx = np.gradient(s)
    g = blocks(np.hypot(gx, gy)).mean(1)
    m = blocks(s).mean(1)
    cand = np.nonzero(m > 0.02)[0]
    sel = cand[np.argsort(g[cand])[:n]]
    return blocks(r)[sel].std(1)
