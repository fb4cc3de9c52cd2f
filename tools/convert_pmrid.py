"""PMRID raw denoiser + demosaicnet -> ``rawdenoise-pmrid-demosaicnet.dtmodel``.

PMRID (Wang et al., ECCV 2020, MegEngine/PMRID, Apache-2.0) denoises packed
RGGB raw; demosaicnet's noise-free Bayer weights then demosaic.  Both run in
one graph that follows darktable's ``bayer_v1`` contract, so the package is a
drop-in rawdenoise model: ``input`` [1,4,T,T] packed R, G1, G2, B, linear,
black-subtracted, range-normalised, white-balance normalised -> ``output``
[1,3,2T,2T] linear camera RGB (absolute scale).

Architecture (written from shared/models/SOURCES.md §3.1): separable convs
(depthwise kxk without bias, pointwise 1x1 with bias); head 3x3 4->16 + ReLU;
four encoder stages of 2, 2, 4, 4 blocks (64, 128, 256, 512 channels, first
block stride 2; block = ReLU(sep5x5 -> ReLU -> sep5x5 + projection)); a sep
3x3 512->64 + ReLU bottleneck; four decoder stages (residual sep-conv block,
2x2/2 transposed conv, plus a ReLU'd sep 3x3 projection of the skip); a
residual block on 16 channels and a 3x3 conv to 4; prediction = input + that.

Inside the graph, before the network: the k-sigma transform with a fixed
noise model, x256, and reflection padding of T to a multiple of 32; after
it: the crop, /256, the inverse k-sigma transform, then demosaicnet via the
bayer_v1 wrapper of ``tools.convert_demosaicnet`` (sRGB curve, sparse mosaic,
mirror padding, GRBG phase, valid convs, inverse curve).  T >= 17.

Noise model.  PMRID's transform maps a camera's noise (variance
``k*x_DN + sigma2`` on a V = 959 DN scale) onto the training sensor's at ISO
1600 (k_a = 0.96793, sigma2_a = 2.97948).  The single-input bayer variant
bakes one noise model, by default the anchor itself (the transform is then the
identity): variance = 1.0093e-3 * x + 3.2397e-6 in normalised units, i.e. a
strong denoise.  ``--pmrid-iso`` picks another point on PMRID's calibrated
ISO curve.  PMRID shifts flat areas by up to ~3 %, so the bayer variant asks
darktable for its per-tile mean match (``output_scale: match_gain``).
``model_bayer_profile.onnx`` (in ``attributes.extra_graphs``) takes a second input
``noise_profile`` [1,2] = (S, O) with variance = S*x + O in the input's
normalised units (a DNG NoiseProfile or darktable noise profile); then
k = S*V and sigma2 = O*V^2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import convert_demosaicnet as dmn  # noqa: E402
from tools import dtmodel  # noqa: E402
from tools.noise import K_ANCHOR, S2_ANCHOR, V, iso_noise, profile_from_iso  # noqa: E402,F401

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MODEL_ID = "rawdenoise-pmrid-demosaicnet"
WEIGHTS = "rawdenoise/pmrid/torch_pretrained.ckp"
TOLERANCE = 1e-4
DEFAULT_ISO = 1600.0
LICENCE = "Apache-2.0 (MegEngine/PMRID) + MIT (mgharbi/demosaicnet)"
TRAINING_DATA = (
    "PMRID: clean raw images with synthetic Poisson-Gaussian noise from a k-sigma noise model "
    "calibrated on an OPPO Reno 10x sensor (Wang et al., 'Practical Deep Raw Image Denoising on "
    "Mobile Devices', ECCV 2020). demosaicnet: mosaicked sRGB photographs (Gharbi et al., "
    "SIGGRAPH Asia 2016).")
SOURCE = ("https://github.com/MegEngine/PMRID/blob/8ebb9e8e96559881dee957f34243933c5beb77dd/"
          "models/torch_pretrained.ckp + " + dmn.SOURCE_PTH)


# --------------------------------------------------------------------------
# network

class Sep(nn.Module):
    def __init__(self, cin, cout, k, stride=1, relu=False):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, k, stride=stride, padding=k // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)
        self.relu = relu

    def forward(self, x):
        x = self.pointwise(self.depthwise(x))
        return F.relu(x) if self.relu else x


class Plain(nn.Module):
    def __init__(self, cin, cout, relu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class EncBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        mid = cout // 4
        self.conv1 = Sep(cin, mid, 5, stride, relu=True)
        self.conv2 = Sep(mid, cout, 5)
        self.proj = Sep(cin, cout, 3, stride) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        p = x if self.proj is None else self.proj(x)
        return F.relu(self.conv2(self.conv1(x)) + p)


def _stage(cin, cout, n):
    return nn.Sequential(*[EncBlock(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(n)])


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv0 = Sep(c, c, 3, relu=True)
        self.conv1 = Sep(c, c, 3)

    def forward(self, x):
        return x + self.conv1(self.conv0(x))


class DecStage(nn.Module):
    def __init__(self, cin, skip_in, cout):
        super().__init__()
        self.decode_conv = ResBlock(cin)
        self.upsample = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.proj_conv = Sep(skip_in, cout, 3, relu=True)

    def forward(self, x, skip):
        return self.upsample(self.decode_conv(x)) + self.proj_conv(skip)


class PMRID(nn.Module):
    """Packed RGGB [1,4,H,W] (H, W multiples of 16, k-sigma'd, x256) -> same."""

    def __init__(self):
        super().__init__()
        self.conv0 = Plain(4, 16, relu=True)
        self.enc1 = _stage(16, 64, 2)
        self.enc2 = _stage(64, 128, 2)
        self.enc3 = _stage(128, 256, 4)
        self.enc4 = _stage(256, 512, 4)
        self.encdec = Sep(512, 64, 3, relu=True)
        self.dec1 = DecStage(64, 256, 64)
        self.dec2 = DecStage(64, 128, 32)
        self.dec3 = DecStage(32, 64, 32)
        self.dec4 = DecStage(32, 16, 16)
        self.out0 = ResBlock(16)
        self.out1 = Plain(16, 4, relu=False)

    def forward(self, x):
        c0 = self.conv0(x)
        e1 = self.enc1(c0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d = self.dec1(self.encdec(e4), e3)
        d = self.dec2(d, e2)
        d = self.dec3(d, e1)
        d = self.dec4(d, c0)
        return x + self.out1(self.out0(d))


class PMRIDDemosaic(nn.Module):
    """bayer_v1 graph: k-sigma, PMRID, inverse k-sigma, then demosaicnet (BayerV1).

    ``profile``: a fixed (S, O) to bake, or "input" for a second input
    ``noise_profile`` [1,2].
    """

    def __init__(self, pmrid: PMRID, demosaic: dmn.BayerV1, profile):
        super().__init__()
        self.pmrid = pmrid
        self.demosaic = demosaic
        self.profile = profile

    def _transform(self, profile):
        if self.profile == "input":
            k = profile[:, 0].reshape(1, 1, 1, 1) * V
            s2 = profile[:, 1].reshape(1, 1, 1, 1) * (V * V)
        else:
            k = float(self.profile[0]) * V
            s2 = float(self.profile[1]) * V * V
        a = K_ANCHOR / k
        b = (s2 / (k * k) - S2_ANCHOR / (K_ANCHOR * K_ANCHOR)) * K_ANCHOR
        return a, b

    def forward(self, x, noise_profile=None):
        a, b = self._transform(noise_profile)
        y = (x * V * a + b) * (256.0 / V)
        h, w = x.shape[2], x.shape[3]
        ph, pw = (32 - h % 32) % 32, (32 - w % 32) % 32
        y = F.pad(y, (0, pw, 0, ph), mode="reflect")
        y = self.pmrid(y)[:, :, :h, :w]
        den = ((y * (V / 256.0)) - b) / a / V
        return self.demosaic(den)


def load_pmrid(models: Path | None = None):
    path = dtmodel.require(dtmodel.models_dir(models) / WEIGHTS, "PMRID weights")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    net = PMRID()
    net.load_state_dict(sd, strict=True)
    return net.eval(), path


def load_demosaic(models: Path | None = None):
    path = dtmodel.require(dtmodel.models_dir(models) / dmn.BAYER_WEIGHTS, "demosaicnet bayer.pth")
    return dmn.BayerV1(dmn.bayer_core_from_pth(path)).eval(), path


def build(models: Path | None = None, profile=None):
    pmrid, ppath = load_pmrid(models)
    dm, dpath = load_demosaic(models)
    profile = profile_from_iso(DEFAULT_ISO) if profile is None else profile
    return PMRIDDemosaic(pmrid, dm, profile).eval(), ppath, dpath


def convert(out_dir: Path, models: Path | None = None, pmrid_iso: float = DEFAULT_ISO,
            noise_profile: tuple[float, float] | None = None, **_):
    out_dir = Path(out_dir)
    profile = tuple(noise_profile) if noise_profile else profile_from_iso(pmrid_iso)
    net, ppath, dpath = build(models, profile)
    net_in = PMRIDDemosaic(net.pmrid, net.demosaic, "input").eval()
    stage = dtmodel.stage_dir(out_dir, MODEL_ID)
    rng = np.random.default_rng(0)
    checks = []
    for module, fname, with_profile in ((net, "model_bayer.onnx", False),
                                        (net_in, "model_bayer_profile.onnx", True)):
        names = ["input"] + (["noise_profile"] if with_profile else [])
        ex = (torch.rand(1, 4, 32, 32),)
        if with_profile:
            ex += (torch.tensor([profile], dtype=torch.float32),)
        path = stage / fname
        dtmodel.export_onnx(module, ex, path, names, ["output"],
                            {"input": {2: "height", 3: "width"},
                             "output": {2: "out_height", 3: "out_width"}})
        feeds = []
        for t_h, t_w in ((32, 32), (40, 36)):  # a multiple of 32 and not: the in-graph padding
            f = {"input": rng.random((1, 4, t_h, t_w), dtype=np.float32)}
            if with_profile:
                f["noise_profile"] = np.array([profile_from_iso(800)], np.float32)
            feeds.append(f)
        check = dtmodel.compare_with_ort(module, path, feeds, TOLERANCE)
        dtmodel.log(f"{MODEL_ID}: {fname}  max |ORT - torch| = {check['max_abs_diff']:.3g}")
        checks.append(check)
    # PMRID shifts flat areas by up to ~3 %: let darktable's per-tile mean match correct that
    variants = {"bayer": dict(dmn.BAYER_VARIANT, onnx="model_bayer.onnx", output_scale="match_gain")}
    config = dtmodel.make_config(
        model_id=MODEL_ID, name="PMRID raw denoise + demosaicnet",
        description=("Raw-domain denoise (PMRID, ECCV 2020) followed by demosaic (demosaicnet) in one "
                     "bayer_v1 graph: packed RGGB [1,4,T,T] linear -> [1,3,2T,2T] linear camera RGB. "
                     f"Fixed noise model variance = {profile[0]:.4g}*x + {profile[1]:.4g} "
                     "(normalised units); model_bayer_profile.onnx takes (S, O) as a second input."),
        task="rawdenoise", arch="generic", tiling=True, num_inputs=1,
        attributes={"noise_profile": [float(profile[0]), float(profile[1])], "min_tile": 17,
                    # pixelpipe's extra graph: bayer_v1 plus the noise profile as a second input
                    "extra_graphs": {"bayer_profile": {
                        "onnx": "model_bayer_profile.onnx", "input_kind": "bayer_v1",
                        "inputs": {"input": "[1,4,T,T] packed RGGB",
                                   "noise_profile": "[1,2] (S, O): variance = S*x + O"}}}},
        variants=variants,
        model_card={"author": "Yuzhi Wang, Haibin Huang, Qin Xu, Jiaming Liu, Yiqun Liu, Jue Wang "
                              "(Megvii); demosaic: Michael Gharbi et al.",
                    "paper": "Practical Deep Raw Image Denoising on Mobile Devices, ECCV 2020; "
                             "Deep Joint Demosaicking and Denoising, SIGGRAPH Asia 2016",
                    "source": SOURCE, "license": LICENCE, "training_data": TRAINING_DATA,
                    "notes": "Converted by pixelpipe tools/convert_pmrid.py"})
    report = {"weights": [str(ppath), str(dpath)],
              "weights_sha256": [dtmodel.sha256_file(ppath), dtmodel.sha256_file(dpath)],
              "noise_profile": list(profile), "checks": checks}
    entry = dtmodel.package(out_dir, config, default=True, licence=LICENCE,
                            training_data=TRAINING_DATA, source=SOURCE, report=report)
    return [{"id": MODEL_ID, "dtmodel": out_dir / f"{MODEL_ID}.dtmodel", "entry": entry,
             "checks": checks}]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/models")
    ap.add_argument("--models", default=None, help="shared weights folder")
    ap.add_argument("--pmrid-iso", type=float, default=DEFAULT_ISO,
                    help="bake PMRID's calibrated noise at this ISO (1600 = identity transform)")
    ap.add_argument("--noise-profile", type=float, nargs=2, metavar=("S", "O"),
                    help="bake variance = S*x + O (normalised units) instead")
    a = ap.parse_args(argv)
    convert(Path(a.out), Path(a.models) if a.models else None, pmrid_iso=a.pmrid_iso,
            noise_profile=a.noise_profile)


if __name__ == "__main__":
    main()
