"""FFDNet colour (MatConvNet weights) -> ``denoise-ffdnet.dtmodel``.

Architecture (written from shared/models/SOURCES.md §2.1): pixel-unshuffle by
2 (3 -> 12 channels at half size), append the noise map (sigma/255, one value
per 2x2 block), twelve 3x3 convs 13->96, 10x 96->96, 96->12 with ReLU between,
pixel-shuffle back.  The network predicts the clean image (not a residual).

The exported graph has darktable's two-input interface (num_inputs 2):
``input`` [1,3,H,W] sRGB-encoded RGB in [0,1] and ``sigma`` [1,1,H,W] (noise
std / 255, darktable fills 25/255); output ``output`` [1,3,H,W].  Inside the
graph: reflection padding of odd H/W to even, the 2x2 average of the sigma
map, the unshuffle and shuffle, and the crop back to H x W; so any H, W >= 2
works.  MatConvNet's sub-image order (k = 4c + 2dx + dy) differs from
PyTorch's pixel_unshuffle (4c + 2dy + dx); the permutation is folded into the
first and last conv weights, so the graph uses plain DepthToSpace/SpaceToDepth.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: python tools/convert_ffdnet.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import dtmodel  # noqa: E402

MODEL_ID = "denoise-ffdnet"
WEIGHTS = "denoise/ffdnet/FFDNet_color.mat"
TOLERANCE = 1e-4
LICENCE = (
    "Weights: cszn/FFDNet, which has no licence file (all rights reserved by default; "
    "research use). The same network is published under the MIT licence in cszn/KAIR "
    "(release files, not the ones converted here)."
)
TRAINING_DATA = (
    "Synthetic additive white Gaussian noise (sigma 0-75 on 0-255) on clean photographs: "
    "BSD400, 400 ImageNet validation images and 4,744 Waterloo Exploration images "
    "(Zhang, Zuo, Zhang, IEEE TIP 2018)."
)
SOURCE = ("https://github.com/cszn/FFDNet/blob/e787f46df2f374ff3591186706229cb9a0591fea/"
          "models/FFDNet_color.mat")


def read_matconvnet(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Conv layers of a MatConvNet v7.3 .mat as PyTorch (out, in, kH, kW) + bias."""
    import h5py

    convs = []
    with h5py.File(path, "r") as f:
        layers = f["net"]["layers"]
        for i in range(layers.shape[0]):
            g = f[layers[i, 0]]
            kind = "".join(chr(c) for c in np.array(g["type"]).ravel())
            if kind != "conv":
                continue
            refs = g["weights"]
            w = np.array(f[refs[0, 0]], dtype=np.float32)
            b = np.array(f[refs[1, 0]], dtype=np.float32).ravel()
            if w.ndim == 3:  # single output channel stored as (in, kW, kH)
                w = w[None]
            convs.append((np.ascontiguousarray(w.transpose(0, 1, 3, 2)), b))
    return convs


def _torch_order_permutation(channels: int = 3) -> np.ndarray:
    """perm[t] = MatConvNet sub-image index of PyTorch unshuffle channel t."""
    perm = np.empty(4 * channels, dtype=np.int64)
    for c in range(channels):
        for dy in range(2):
            for dx in range(2):
                perm[4 * c + 2 * dy + dx] = 4 * c + 2 * dx + dy
    return perm


def build(convs):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class FFDNet(nn.Module):
        def __init__(self):
            super().__init__()
            perm = _torch_order_permutation(3)
            self.body = nn.ModuleList()
            n = len(convs)
            for i, (w, b) in enumerate(convs):
                w = w.copy()
                b = b.copy()
                if i == 0:
                    w[:, :12] = w[:, perm]
                if i == n - 1:
                    w = w[perm]
                    b = b[perm]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data = torch.from_numpy(np.ascontiguousarray(w))
                conv.bias.data = torch.from_numpy(np.ascontiguousarray(b))
                self.body.append(conv)

        def forward(self, x, sigma):
            h, w = x.shape[2], x.shape[3]
            ph, pw = h % 2, w % 2
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
            s = F.pad(sigma, (0, pw, 0, ph), mode="replicate")
            y = torch.cat([F.pixel_unshuffle(x, 2), F.avg_pool2d(s, 2)], 1)
            last = len(self.body) - 1
            for i, conv in enumerate(self.body):
                y = conv(y)
                if i < last:
                    y = F.relu(y)
            return F.pixel_shuffle(y, 2)[:, :, :h, :w]

    return FFDNet().eval()


def load_model(models: Path | None = None):
    path = dtmodel.require(dtmodel.models_dir(models) / WEIGHTS, "FFDNet colour weights")
    convs = read_matconvnet(path)
    if len(convs) != 12 or convs[0][0].shape != (96, 13, 3, 3) or convs[-1][0].shape != (12, 96, 3, 3):
        raise dtmodel.ConversionError(f"unexpected FFDNet layer shapes: path={path}")
    return build(convs), path


def convert(out_dir: Path, models: Path | None = None, **_):
    import torch

    out_dir = Path(out_dir)
    net, wpath = load_model(models)
    stage = dtmodel.stage_dir(out_dir, MODEL_ID)
    onnx_path = stage / "model.onnx"
    ex = (torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 25 / 255))
    dtmodel.export_onnx(
        net, ex, onnx_path, ["input", "sigma"], ["output"],
        {"input": {2: "height", 3: "width"}, "sigma": {2: "height", 3: "width"},
         "output": {2: "height", 3: "width"}})
    rng = np.random.default_rng(0)
    feeds = []
    for h, w in ((64, 64), (37, 50)):  # even and odd sizes: the in-graph padding
        feeds.append({"input": rng.random((1, 3, h, w), dtype=np.float32),
                      "sigma": (rng.random((1, 1, h, w), dtype=np.float32) * 75 / 255)})
    check = dtmodel.compare_with_ort(net, onnx_path, feeds, TOLERANCE)
    dtmodel.log(f"{MODEL_ID}: model.onnx  max |ORT - torch| = {check['max_abs_diff']:.3g}")
    config = dtmodel.make_config(
        model_id=MODEL_ID, name="FFDNet colour",
        description=("Gaussian denoiser with a noise-level map (FFDNet, colour). Input sRGB-encoded "
                     "RGB in [0,1] plus sigma map (noise std/255, trained 0-75/255); output the "
                     "denoised image. Any H, W (odd sizes padded inside the graph)."),
        task="denoise", arch="generic", tiling=True, num_inputs=2,
        attributes={"color_space": "sRGB"},
        model_card={"author": "Kai Zhang, Wangmeng Zuo, Lei Zhang",
                    "paper": "FFDNet: Toward a Fast and Flexible Solution for CNN based Image "
                             "Denoising, IEEE TIP 2018",
                    "source": SOURCE, "license": LICENCE, "training_data": TRAINING_DATA,
                    "notes": "Converted by pixelpipe tools/convert_ffdnet.py"})
    report = {"weights": str(wpath), "weights_sha256": dtmodel.sha256_file(wpath),
              "checks": [check]}
    entry = dtmodel.package(out_dir, config, default=True, licence=LICENCE,
                            training_data=TRAINING_DATA, source=SOURCE, report=report)
    return [{"id": MODEL_ID, "dtmodel": out_dir / f"{MODEL_ID}.dtmodel", "entry": entry,
             "checks": [check]}]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/models")
    ap.add_argument("--models", default=None, help="shared weights folder")
    a = ap.parse_args(argv)
    convert(Path(a.out), Path(a.models) if a.models else None)


if __name__ == "__main__":
    main()
