"""RLFN x2 and x4 (PyTorch state dicts) -> ``upscale-rlfn.dtmodel``.

One package with ``model_x2.onnx`` and ``model_x4.onnx``, the layout of
darktable's upscale-bsrgan (restore.c loads ``model_x2.onnx`` /
``model_x4.onnx`` for the 2x and 4x upscale tasks).

Architecture (written from shared/models/SOURCES.md §4.1): 3x3 conv 3->52;
six residual local feature blocks (three 3x3 convs with LeakyReLU 0.05, plus
the block input, 1x1 conv, then enhanced spatial attention: 1x1 conv to 16,
3x3 stride-2 valid conv, 7x7/3 max-pool, 3x3 conv, bilinear resize back, plus
a 1x1 conv of the 16-channel map, 1x1 conv to 52, sigmoid, multiply); 3x3 conv
plus the first feature map; 3x3 conv to 3*s*s and pixel shuffle.

RLFN was trained on 0-255 values.  darktable's upscalers take and return
sRGB-encoded RGB in [0,1], so the x255 and /255 are inside the graph:
``input`` [1,3,H,W] in [0,1] -> ``output`` [1,3,sH,sW] in [0,1] (not
clamped).  H, W >= 15 (the attention branch's stride-2 conv and 7x7 pool).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import dtmodel  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MODEL_ID = "upscale-rlfn"
WEIGHTS = {2: "upscale/rlfn/rlfn_x2.pth", 4: "upscale/rlfn/rlfn_x4.pth"}
TOLERANCE = 1e-4
LICENCE = "Apache-2.0 (bytedance/RLFN)"
TRAINING_DATA = ("DIV2K and Flickr2K (DF2K) with bicubic downsampling, PSNR-oriented "
                 "(Kong et al., 'Residual Local Feature Network for Efficient Super-Resolution', "
                 "NTIRE 2022 workshop).")
SOURCE = ("https://github.com/bytedance/RLFN/tree/bccfde91bf8b2de80789ec033a029e6f2a932330/"
          "model_zoo")
FEATURES = 52
ESA_CHANNELS = 16


class ESA(nn.Module):
    def __init__(self, c: int, f: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, c, 1)

    def forward(self, x):
        c1 = self.conv1(x)
        m = F.max_pool2d(self.conv2(c1), kernel_size=7, stride=3)
        m = F.interpolate(self.conv3(m), size=(x.shape[2], x.shape[3]), mode="bilinear",
                          align_corners=False)
        return x * torch.sigmoid(self.conv4(m + self.conv_f(c1)))


class RLFB(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.c1_r = nn.Conv2d(c, c, 3, padding=1)
        self.c2_r = nn.Conv2d(c, c, 3, padding=1)
        self.c3_r = nn.Conv2d(c, c, 3, padding=1)
        self.c5 = nn.Conv2d(c, c, 1)
        self.esa = ESA(c, ESA_CHANNELS)

    def forward(self, x):
        y = F.leaky_relu(self.c1_r(x), 0.05)
        y = F.leaky_relu(self.c2_r(y), 0.05)
        y = F.leaky_relu(self.c3_r(y), 0.05)
        return self.esa(self.c5(y + x))


class RLFN(nn.Module):
    """Takes and returns [0,1]; the network itself works on 0-255."""

    def __init__(self, scale: int, c: int = FEATURES):
        super().__init__()
        self.conv_1 = nn.Conv2d(3, c, 3, padding=1)
        for i in range(1, 7):
            setattr(self, f"block_{i}", RLFB(c))
        self.conv_2 = nn.Conv2d(c, c, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(c, 3 * scale * scale, 3, padding=1),
                                       nn.PixelShuffle(scale))

    def forward(self, x):
        f = self.conv_1(x * 255.0)
        y = f
        for i in range(1, 7):
            y = getattr(self, f"block_{i}")(y)
        return self.upsampler(self.conv_2(y) + f) * (1.0 / 255.0)


def load_model(scale: int, models: Path | None = None):
    path = dtmodel.require(dtmodel.models_dir(models) / WEIGHTS[scale], f"RLFN x{scale} weights")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if "params" in sd:
        sd = sd["params"]
    net = RLFN(scale)
    net.load_state_dict(sd, strict=True)
    return net.eval(), path


def convert(out_dir: Path, models: Path | None = None, **_):
    out_dir = Path(out_dir)
    stage = dtmodel.stage_dir(out_dir, MODEL_ID)
    checks, weights = [], []
    rng = np.random.default_rng(0)
    for scale in (2, 4):
        net, wpath = load_model(scale, models)
        weights.append(wpath)
        onnx_path = stage / f"model_x{scale}.onnx"
        dtmodel.export_onnx(net, (torch.rand(1, 3, 48, 48),), onnx_path, ["input"], ["output"],
                            {"input": {2: "height", 3: "width"},
                             "output": {2: "out_height", 3: "out_width"}})
        feeds = [{"input": rng.random((1, 3, h, w), dtype=np.float32)} for h, w in ((48, 48), (33, 40))]
        check = dtmodel.compare_with_ort(net, onnx_path, feeds, TOLERANCE)
        dtmodel.log(f"{MODEL_ID}: {check['file']}  max |ORT - torch| = {check['max_abs_diff']:.3g}")
        checks.append(check)
    config = dtmodel.make_config(
        model_id=MODEL_ID, name="RLFN x2 / x4",
        description=("Efficient super-resolution (RLFN, NTIRE 2022), x2 and x4 "
                     "(model_x2.onnx, model_x4.onnx). Input sRGB-encoded RGB in [0,1], output "
                     "[0,1]: the 0-255 scaling the network was trained with is inside the graph. "
                     "Trained on clean bicubic downsampling: denoise first."),
        task="upscale", arch="generic", tiling=True, num_inputs=1,
        attributes={"color_space": "sRGB", "scales": [2, 4]},
        model_card={"author": "Fangyuan Kong, Mingxi Li, Songwei Liu, Ding Liu, Jingwen He, "
                              "Yang Bai, Fangmin Chen, Lean Fu (ByteDance)",
                    "paper": "Residual Local Feature Network for Efficient Super-Resolution, "
                             "CVPR 2022 workshops (NTIRE)",
                    "source": SOURCE, "license": LICENCE, "training_data": TRAINING_DATA,
                    "notes": "Converted by pixelpipe tools/convert_rlfn.py"})
    report = {"weights": [str(w) for w in weights],
              "weights_sha256": [dtmodel.sha256_file(w) for w in weights], "checks": checks}
    entry = dtmodel.package(out_dir, config, default=True, licence=LICENCE,
                            training_data=TRAINING_DATA, source=SOURCE, report=report)
    return [{"id": MODEL_ID, "dtmodel": out_dir / f"{MODEL_ID}.dtmodel", "entry": entry,
             "checks": checks}]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/models")
    ap.add_argument("--models", default=None, help="shared weights folder")
    a = ap.parse_args(argv)
    convert(Path(a.out), Path(a.models) if a.models else None)


if __name__ == "__main__":
    main()
