"""demosaicnet (Gharbi et al. 2016) -> ``rawdenoise-demosaicnet`` and ``demosaic-demosaicnet``.

Three weight files (shared/models/SOURCES.md §3.2, §3.3):

- ``rawdenoise/demosaicnet_noise/bayer_noise.caffemodel``: joint denoise and
  demosaic, Bayer, noise level as an extra input.  Read straight from the
  protobuf wire format (no Caffe).
- ``rawdenoise/demosaicnet/bayer.pth``: demosaic only, Bayer.
- ``rawdenoise/demosaicnet/xtrans.pth``: demosaic only, Fujifilm X-Trans.

Architecture, Bayer (written from the SOURCES description): 2x2/2 conv packs
the 3-channel sparse mosaic (GRBG phase) to 4 channels at half size [+ a
constant sigma map]; fifteen 3x3 valid convs with ReLU, where a 128-channel
output is split into filters x masks (after conv15; and after conv1 in the
noise model); 1x1 conv to 12; 2x2/2 grouped transposed conv to 3 channels at
full size; concat with the centrally cropped mosaic; 3x3 valid conv 6->64,
ReLU, 1x1 conv to 3.  Net border 31 px per side.  The Caffe model stores its
convs with padding 1 ("same"); valid convs on a mirror-padded input give the
same values away from the border and avoid the zero-padding edge artefacts.

X-Trans: eleven 3x3 valid convs with ReLU at full size on the sparse mosaic,
concat with the cropped mosaic, 3x3 valid conv 67->64, ReLU, 1x1 conv to 3.
Border 12 px per side.

Graph contracts (everything below is inside the ONNX graph):

``bayer_v1`` (darktable, restore.h): ``input`` [1,4,T,T] packed R, G1, G2, B,
linear camera RGB, black-subtracted, divided by the range, white-balance
normalised (darktable's default "daylight"); output ``output`` [1,3,2T,2T] in
the same linear camera-RGB frame (absolute scale).  The graph
1. applies the sRGB transfer curve (demosaicnet was trained on sRGB-encoded
   images; on raw data the curve also roughly stabilises shot-noise variance),
2. scatters the packed samples into the sparse 3-channel mosaic,
3. mirror-pads by 32 rows and 31 columns (reflection keeps the CFA parity;
   the odd column offset turns RGGB into demosaicnet's native GRBG phase),
4. runs the network (valid convs, border 31) and crops to 2T x 2T,
5. applies the inverse sRGB curve.
T >= 17.  ``rawdenoise-demosaicnet`` bakes a fixed noise level sigma (std on
the sRGB-encoded [0,1] scale; default 0.02, training range 0-0.0784), so its
bayer variant has darktable's single input and is interchangeable with
darktable's rawdenoise models.  An extra graph ``model_bayer_sigma.onnx``
(named in ``attributes.extra_graphs``, not a variant: darktable feeds one
input) takes a second input ``sigma`` [1,1,T,T] (same units, one value per
packed site) for callers that know the noise level (pixelpipe).

``xtrans_v1`` (pixelpipe's definition; darktable only reserves the label):
``input`` [1,1,H,W] X-Trans CFA plane, H and W multiples of 6, the tile's
(0, 0) site at the (0, 0) site of the pattern in ``tools.cfa.XTRANS``, same
normalisation as bayer_v1; output ``output`` [1,3,H,W] linear camera RGB.
The graph applies the sRGB curve, builds the sparse mosaic, mirror-pads by
12 about rows/columns 1 and H-2 (the pattern's symmetry axes, so the padded
border keeps the X-Trans phase), runs the network and undoes the curve.
H, W >= 18.  There is no noise-aware X-Trans demosaicnet, so the X-Trans
variant lives in ``demosaic-demosaicnet`` only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import cfa, dtmodel  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

RAW_ID = "rawdenoise-demosaicnet"
DEMOSAIC_ID = "demosaic-demosaicnet"
CAFFE_WEIGHTS = "rawdenoise/demosaicnet_noise/bayer_noise.caffemodel"
BAYER_WEIGHTS = "rawdenoise/demosaicnet/bayer.pth"
XTRANS_WEIGHTS = "rawdenoise/demosaicnet/xtrans.pth"
DEFAULT_SIGMA = 0.02
TOLERANCE = 1e-4
LICENCE = "MIT (mgharbi/demosaicnet_caffe, mgharbi/demosaicnet)"
TRAINING_DATA = (
    "Gharbi, Chaurasia, Paris, Durand, 'Deep Joint Demosaicking and Denoising', SIGGRAPH Asia "
    "2016: sRGB photographs mosaicked synthetically, with a training set of hard patches mined "
    "from a large photo collection; the noise model adds i.i.d. Gaussian noise "
    "(sigma 0-20/255).")
SOURCE_CAFFE = ("https://github.com/mgharbi/demosaicnet_caffe/blob/"
                "ba4e77c50e46619b85cb871d740c6a39f12c0f25/pretrained_models/bayer_noise/"
                "weights.caffemodel")
SOURCE_PTH = ("https://github.com/mgharbi/demosaicnet/tree/"
              "959e9d1630976b421d5af5e35b2e2a01f5630e5c/demosaicnet/data")
BAYER_BORDER = 31
XTRANS_BORDER = 12


# --------------------------------------------------------------------------
# Caffe NetParameter, decoded from the protobuf wire format

def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b: bytes):
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            ln, i = _varint(b, i)
            v, i = b[i:i + ln], i + ln
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise dtmodel.ConversionError(f"unsupported protobuf wire type {wt}")
        yield f, wt, v


def _blob(b: bytes) -> np.ndarray:
    shape, legacy, data = [], {}, []
    for f, wt, v in _fields(b):
        if f == 7:  # BlobShape { repeated int64 dim = 1 [packed] }
            for f2, wt2, v2 in _fields(v):
                if f2 == 1 and wt2 == 2:
                    j = 0
                    while j < len(v2):
                        d, j = _varint(v2, j)
                        shape.append(d)
                elif f2 == 1:
                    shape.append(v2)
        elif f in (1, 2, 3, 4) and wt == 0:  # legacy num/channels/height/width
            legacy[f] = v
        elif f == 5:
            data.append(np.frombuffer(v, "<f4") if wt == 2 else np.frombuffer(v, "<f4"))
    arr = np.concatenate(data) if data else np.zeros(0, np.float32)
    if not shape and legacy:
        shape = [legacy.get(k, 1) for k in (1, 2, 3, 4)]
    return arr.astype(np.float32).reshape(shape)


def read_caffemodel(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> list of parameter blobs (weights, bias)."""
    data = Path(path).read_bytes()
    layers = {}
    for f, wt, v in _fields(data):
        if f != 100:  # LayerParameter layer = 100
            continue
        name, blobs = None, []
        for f2, wt2, v2 in _fields(v):
            if f2 == 1:
                name = v2.decode()
            elif f2 == 7:
                blobs.append(_blob(v2))
        if blobs:
            layers[name] = blobs
    return layers


# --------------------------------------------------------------------------
# transfer curve (torch)

def srgb_encode(x):
    lo = 12.92 * x
    hi = 1.055 * torch.pow(torch.clamp(x, min=0.0031308), 1 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, lo, hi)


def srgb_decode(y):
    lo = y / 12.92
    hi = torch.pow((torch.clamp(y, min=0.04045) + 0.055) / 1.055, 2.4)
    return torch.where(y <= 0.04045, lo, hi)


def _conv(w: np.ndarray, b: np.ndarray, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=stride)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(w, np.float32))
    conv.bias.data = torch.from_numpy(np.ascontiguousarray(b, np.float32))
    return conv


# --------------------------------------------------------------------------
# the networks

class BayerCore(nn.Module):
    """demosaicnet Bayer on a sparse GRBG mosaic [1,3,H,W] (H, W even); out [1,3,H-62,W-62]."""

    def __init__(self, pack, convs, products, residual, upsampler, post, output, noise: bool):
        super().__init__()
        self.noise = noise
        self.pack = _conv(*pack, stride=2)
        self.convs = nn.ModuleList(_conv(*c) for c in convs)
        self.products = tuple(products)
        self.residual = _conv(*residual)
        w, b = upsampler
        self.upsampler = nn.ConvTranspose2d(12, 3, 2, stride=2, groups=3)
        self.upsampler.weight.data = torch.from_numpy(np.ascontiguousarray(w))
        self.upsampler.bias.data = torch.from_numpy(np.ascontiguousarray(b))
        self.post = _conv(*post)
        self.output = _conv(*output)

    def forward(self, mosaic, sigma_packed=None):
        x = self.pack(mosaic)
        if self.noise:
            x = torch.cat([x, sigma_packed], 1)
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in self.products:
                n = x.shape[1] // 2
                x = x[:, :n] * x[:, n:]
        up = self.upsampler(self.residual(x))
        c = BAYER_BORDER - 1
        x = torch.cat([mosaic[:, :, c:-c, c:-c], up], 1)
        return self.output(F.relu(self.post(x)))


def bayer_core_from_caffe(path: Path) -> BayerCore:
    L = read_caffemodel(path)
    convs = [L["preconv1"]] + [L[f"conv{i}"] for i in range(2, 16)]
    shapes = [c[0].shape for c in convs]
    if shapes[0] != (128, 5, 3, 3) or shapes[-1] != (128, 64, 3, 3) or len(convs) != 15:
        raise dtmodel.ConversionError(f"unexpected demosaicnet caffe shapes {shapes}: path={path}")
    return BayerCore(L["pack_mosaick"], convs, (0, 14), L["residual"], L["unpack_mosaick"],
                     L["post_conv1"], L["output"], noise=True).eval()


def _state(path: Path) -> dict[str, np.ndarray]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in sd.items()}


def bayer_core_from_pth(path: Path) -> BayerCore:
    s = _state(path)
    p = "main_processor."
    wb = lambda k: (s[k + ".weight"], s[k + ".bias"])  # noqa: E731
    convs = [wb(f"{p}conv{i}") for i in range(1, 16)]
    core = BayerCore(wb(p + "pack_mosaic"), convs, (14,), wb("residual_predictor"),
                     wb("upsampler"), wb("fullres_processor.post_conv"),
                     wb("fullres_processor.output"), noise=False)
    _check_all_used(core, s, path, extra=0)
    return core.eval()


class XTransCore(nn.Module):
    """demosaicnet X-Trans on a sparse mosaic [1,3,H,W]; out [1,3,H-24,W-24]."""

    def __init__(self, convs, post, output):
        super().__init__()
        self.convs = nn.ModuleList(_conv(*c) for c in convs)
        self.post = _conv(*post)
        self.output = _conv(*output)

    def forward(self, mosaic):
        x = mosaic
        for conv in self.convs:
            x = F.relu(conv(x))
        c = XTRANS_BORDER - 1
        x = torch.cat([mosaic[:, :, c:-c, c:-c], x], 1)
        return self.output(F.relu(self.post(x)))


def xtrans_core_from_pth(path: Path) -> XTransCore:
    s = _state(path)
    wb = lambda k: (s[k + ".weight"], s[k + ".bias"])  # noqa: E731
    core = XTransCore([wb(f"main_processor.conv{i}") for i in range(1, 12)],
                      wb("fullres_processor.post_conv"), wb("fullres_processor.output"))
    _check_all_used(core, s, path, extra=0)
    return core.eval()


def _check_all_used(core: nn.Module, state: dict, path: Path, extra: int) -> None:
    n_state = sum(v.size for v in state.values())
    n_core = sum(p.numel() for p in core.parameters())
    if n_state != n_core + extra:
        raise dtmodel.ConversionError(
            f"parameter count {n_core} != weights file {n_state}: path={path}")


# --------------------------------------------------------------------------
# contract wrappers

def _scatter_weights(pattern: np.ndarray) -> torch.Tensor:
    """1x1 conv weights: unshuffled CFA sites (p*p channels) -> 3 sparse planes (3*p*p)."""
    p = pattern.shape[0]
    w = np.zeros((3 * p * p, p * p, 1, 1), np.float32)
    for dy in range(p):
        for dx in range(p):
            t = dy * p + dx
            w[pattern[dy, dx] * p * p + t, t] = 1.0
    return torch.from_numpy(w)


class BayerV1(nn.Module):
    """darktable bayer_v1: [1,4,T,T] packed RGGB (linear) -> [1,3,2T,2T] linear camera RGB.

    ``sigma``: None for a noise-free core; a float to bake a fixed noise level;
    "input" to take a second input ``sigma`` [1,1,T,T].
    """

    def __init__(self, core: BayerCore, sigma=None):
        super().__init__()
        self.core = core
        self.sigma = sigma
        self.register_buffer("scatter", _scatter_weights(cfa.RGGB), persistent=False)
        if core.noise and sigma is None:
            raise ValueError("the noise-aware core needs a sigma")

    def forward(self, x, sigma=None):
        g = srgb_encode(x)
        sparse = F.pixel_shuffle(F.conv2d(g, self.scatter), 2)  # [1,3,2T,2T] RGGB
        b = BAYER_BORDER
        # reflection keeps the Bayer parity; the odd column offset makes it GRBG
        padded = F.pad(sparse, (b, b, b + 1, b + 1), mode="reflect")
        s = None
        if self.core.noise:
            if self.sigma == "input":
                full = F.interpolate(sigma, scale_factor=2.0, mode="nearest")
                s = F.avg_pool2d(F.pad(full, (b, b, b + 1, b + 1), mode="reflect"), 2)
            else:
                s = torch.ones_like(padded[:, :1, 0::2, 0::2]) * float(self.sigma)
        y = self.core(padded, s)[:, :, 1:-1, :]
        return srgb_decode(y)


def _mirror_about_axis(x, dim: int, pad: int):
    """Pad by ``pad`` mirroring about index 1 at the start and index n-2 at the end."""
    n = x.shape[dim]
    top = x.narrow(dim, 3, pad).flip(dim)
    bottom = x.narrow(dim, n - 3 - pad, pad).flip(dim)
    return torch.cat([top, x, bottom], dim)


class XTransV1(nn.Module):
    """pixelpipe xtrans_v1: [1,1,H,W] X-Trans CFA (linear, H, W % 6 == 0) -> [1,3,H,W]."""

    def __init__(self, core: XTransCore):
        super().__init__()
        self.core = core
        self.register_buffer("scatter", _scatter_weights(cfa.XTRANS), persistent=False)

    def forward(self, x):
        g = srgb_encode(x)
        sparse = F.pixel_shuffle(F.conv2d(F.pixel_unshuffle(g, 6), self.scatter), 6)
        p = XTRANS_BORDER
        padded = _mirror_about_axis(_mirror_about_axis(sparse, 2, p), 3, p)
        return srgb_decode(self.core(padded))


# --------------------------------------------------------------------------
# conversion

def _bayer_feeds(with_sigma: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    feeds = []
    for t_h, t_w in ((40, 40), (24, 36)):
        f = {"input": rng.random((1, 4, t_h, t_w), dtype=np.float32)}
        if with_sigma:
            f["sigma"] = rng.random((1, 1, t_h, t_w), dtype=np.float32) * 0.06
        feeds.append(f)
    return feeds


def export_bayer(net: BayerV1, path: Path, with_sigma: bool) -> dict:
    names = ["input", "sigma"] if with_sigma else ["input"]
    ex = (torch.rand(1, 4, 32, 32),) + ((torch.full((1, 1, 32, 32), 0.02),) if with_sigma else ())
    axes = {"input": {2: "height", 3: "width"}, "output": {2: "out_height", 3: "out_width"}}
    if with_sigma:
        axes["sigma"] = {2: "height", 3: "width"}
    dtmodel.export_onnx(net, ex, path, names, ["output"], axes)
    return dtmodel.compare_with_ort(net, path, _bayer_feeds(with_sigma), TOLERANCE)


def export_xtrans(net: XTransV1, path: Path) -> dict:
    dtmodel.export_onnx(net, (torch.rand(1, 1, 48, 48),), path, ["input"], ["output"],
                        {"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}})
    rng = np.random.default_rng(1)
    feeds = [{"input": rng.random((1, 1, h, w), dtype=np.float32)} for h, w in ((48, 48), (36, 60))]
    return dtmodel.compare_with_ort(net, path, feeds, TOLERANCE)


BAYER_VARIANT = {
    "input_kind": "bayer_v1", "input_colorspace": "camRGB", "wb_norm": "daylight",
    "output_scale": "absolute", "bayer_orientation": "force_rggb",
}


def convert_rawdenoise(out_dir: Path, models: Path | None = None, sigma: float = DEFAULT_SIGMA, **_):
    out_dir = Path(out_dir)
    wpath = dtmodel.require(dtmodel.models_dir(models) / CAFFE_WEIGHTS, "demosaicnet bayer_noise weights")
    core = bayer_core_from_caffe(wpath)
    stage = dtmodel.stage_dir(out_dir, RAW_ID)
    checks = [export_bayer(BayerV1(core, sigma=float(sigma)).eval(), stage / "model_bayer.onnx", False),
              export_bayer(BayerV1(core, sigma="input").eval(), stage / "model_bayer_sigma.onnx", True)]
    for c in checks:
        dtmodel.log(f"{RAW_ID}: {c['file']}  max |ORT - torch| = {c['max_abs_diff']:.3g}")
    variants = {"bayer": dict(BAYER_VARIANT, onnx="model_bayer.onnx")}
    config = dtmodel.make_config(
        model_id=RAW_ID, name="demosaicnet joint denoise + demosaic",
        description=(f"Joint demosaic and denoise of Bayer raw (demosaicnet, Gharbi et al. 2016). "
                     f"bayer_v1: packed RGGB [1,4,T,T] linear -> [1,3,2T,2T] linear camera RGB; "
                     f"sRGB curve, mirror padding and CFA phase shift inside the graph; fixed noise "
                     f"sigma {sigma:g} on the sRGB-encoded scale. model_bayer_sigma.onnx takes the "
                     f"sigma map as a second input."),
        task="rawdenoise", arch="generic", tiling=True, num_inputs=1,
        attributes={"noise_sigma": float(sigma), "min_tile": 17,
                    # pixelpipe's extra graph: bayer_v1 plus a second input (not a darktable
                    # variant: darktable feeds one input)
                    "extra_graphs": {"bayer_sigma": {
                        "onnx": "model_bayer_sigma.onnx", "input_kind": "bayer_v1",
                        "inputs": {"input": "[1,4,T,T] packed RGGB",
                                   "sigma": "[1,1,T,T] noise std, sRGB-encoded scale"}}}},
        variants=variants,
        model_card={"author": "Michael Gharbi, Gaurav Chaurasia, Sylvain Paris, Fredo Durand",
                    "paper": "Deep Joint Demosaicking and Denoising, SIGGRAPH Asia 2016",
                    "source": SOURCE_CAFFE, "license": LICENCE, "training_data": TRAINING_DATA,
                    "notes": "Converted by pixelpipe tools/convert_demosaicnet.py"})
    report = {"weights": str(wpath), "weights_sha256": dtmodel.sha256_file(wpath),
              "sigma": float(sigma), "checks": checks}
    entry = dtmodel.package(out_dir, config, default=False, licence=LICENCE,
                            training_data=TRAINING_DATA, source=SOURCE_CAFFE, report=report)
    return [{"id": RAW_ID, "dtmodel": out_dir / f"{RAW_ID}.dtmodel", "entry": entry, "checks": checks}]


def convert_demosaic(out_dir: Path, models: Path | None = None, **_):
    out_dir = Path(out_dir)
    root = dtmodel.models_dir(models)
    bpath = dtmodel.require(root / BAYER_WEIGHTS, "demosaicnet bayer.pth")
    xpath = dtmodel.require(root / XTRANS_WEIGHTS, "demosaicnet xtrans.pth")
    stage = dtmodel.stage_dir(out_dir, DEMOSAIC_ID)
    checks = [export_bayer(BayerV1(bayer_core_from_pth(bpath)).eval(), stage / "model_bayer.onnx", False),
              export_xtrans(XTransV1(xtrans_core_from_pth(xpath)).eval(), stage / "model_xtrans.onnx")]
    for c in checks:
        dtmodel.log(f"{DEMOSAIC_ID}: {c['file']}  max |ORT - torch| = {c['max_abs_diff']:.3g}")
    variants = {
        "bayer": dict(BAYER_VARIANT, onnx="model_bayer.onnx"),
        "xtrans": {"onnx": "model_xtrans.onnx", "input_kind": "xtrans_v1",
                   "input_colorspace": "camRGB", "wb_norm": "daylight", "output_scale": "absolute"},
    }
    config = dtmodel.make_config(
        model_id=DEMOSAIC_ID, name="demosaicnet demosaic (Bayer, X-Trans)",
        description=("Demosaic only (demosaicnet, noise-free weights), for use after a raw-domain "
                     "denoiser such as PMRID. bayer_v1: packed RGGB [1,4,T,T] -> [1,3,2T,2T]; "
                     "xtrans_v1 (pixelpipe): CFA plane [1,1,H,W], H, W multiples of 6 -> "
                     "[1,3,H,W]. Linear camera RGB in and out; sRGB curve inside the graph."),
        task="demosaic", arch="generic", tiling=True, num_inputs=1,
        attributes={"min_tile": 17,
                    "xtrans_pattern": ["".join("RGB"[c] for c in row) for row in cfa.XTRANS]},
        variants=variants,
        model_card={"author": "Michael Gharbi, Gaurav Chaurasia, Sylvain Paris, Fredo Durand",
                    "paper": "Deep Joint Demosaicking and Denoising, SIGGRAPH Asia 2016",
                    "source": SOURCE_PTH, "license": LICENCE, "training_data": TRAINING_DATA,
                    "notes": "Converted by pixelpipe tools/convert_demosaicnet.py"})
    report = {"weights": [str(bpath), str(xpath)],
              "weights_sha256": [dtmodel.sha256_file(bpath), dtmodel.sha256_file(xpath)],
              "checks": checks}
    entry = dtmodel.package(out_dir, config, default=True, licence=LICENCE,
                            training_data=TRAINING_DATA, source=SOURCE_PTH, report=report)
    return [{"id": DEMOSAIC_ID, "dtmodel": out_dir / f"{DEMOSAIC_ID}.dtmodel", "entry": entry,
             "checks": checks}]


def convert(out_dir: Path, models: Path | None = None, only: str | None = None, **opts):
    res = []
    if only in (None, RAW_ID):
        res += convert_rawdenoise(out_dir, models, **opts)
    if only in (None, DEMOSAIC_ID):
        res += convert_demosaic(out_dir, models, **opts)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/models")
    ap.add_argument("--models", default=None, help="shared weights folder")
    ap.add_argument("--only", choices=[RAW_ID, DEMOSAIC_ID])
    ap.add_argument("--sigma", type=float, default=DEFAULT_SIGMA,
                    help="noise std baked into rawdenoise-demosaicnet (sRGB-encoded scale)")
    a = ap.parse_args(argv)
    convert(Path(a.out), Path(a.models) if a.models else None, only=a.only, sigma=a.sigma)


if __name__ == "__main__":
    main()
