"""Quality smoke checks of packaged models on real images (ONNX Runtime only).

Each check opens the ONNX file straight from the ``.dtmodel`` zip, runs it on
a small crop of Kodak24 (``<eval>/Kodak24``, see shared/data/eval/SOURCES.md)
and returns PSNR numbers for the model and for a classical baseline:

- ``denoise-ffdnet``: AWGN sigma 25/255 on a 128x128 crop; noisy vs denoised.
- ``upscale-rlfn``: 128x128 crop downscaled with PIL bicubic by 2 (and 4);
  bicubic upscaling vs the model.
- ``demosaic-demosaicnet``: the crop linearised, mosaicked (RGGB, and the
  X-Trans pattern); bilinear (normalised-convolution) demosaic vs the model,
  compared in sRGB.
- ``rawdenoise-demosaicnet``: as above with Gaussian noise of the baked sigma
  added on the sRGB-encoded mosaic.
- ``rawdenoise-pmrid-demosaicnet``: Poisson-Gaussian noise from PMRID's
  calibrated model (ISO 1600 for the baked graph, 3200 through the
  noise-profile graph) on the linear mosaic of a crop upscaled x2 first: a
  Kodak image at native size has more per-pixel detail than any camera raw,
  and PMRID (a small mobile network) smooths that away.  Compared with
  bilinear and with demosaicnet alone on the same noisy mosaic.

PSNR is on [0,1] sRGB values with an 8-pixel border left out.
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import cfa, dtmodel  # noqa: E402

BORDER = 8
CROP = 128


def kodak(eval_dir: Path, index: int, size: int = CROP, upscale: int = 1) -> np.ndarray:
    """Centre crop (3, size, size) in [0,1] sRGB of kodimNN, optionally upscaled first."""
    from PIL import Image

    path = dtmodel.require(Path(eval_dir) / "Kodak24" / f"kodim{index:02d}.png", "Kodak24 image")
    im = Image.open(path).convert("RGB")
    if upscale > 1:
        im = im.resize((im.width * upscale, im.height * upscale), Image.BICUBIC)
    x0, y0 = (im.width - size) // 2, (im.height - size) // 2
    im = im.crop((x0, y0, x0 + size, y0 + size))
    return np.ascontiguousarray(np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0)


def session(dtmodel_path: Path, member: str):
    import onnxruntime as ort

    model_id = Path(dtmodel_path).name[: -len(".dtmodel")]
    with zipfile.ZipFile(dtmodel_path) as z:
        data = z.read(f"{model_id}/{member}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _run(sess, **feeds):
    return sess.run(None, {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()})[0][0]


def _p(a, b):
    return round(float(cfa.psnr(np.clip(a, 0, 1), b, BORDER)), 2)


def ffdnet(pkg: Path, eval_dir: Path) -> dict:
    img = kodak(eval_dir, 5)
    rng = np.random.default_rng(0)
    noisy = (img + rng.normal(0, 25 / 255, img.shape)).astype(np.float32)
    sess = session(pkg, "model.onnx")
    out = _run(sess, input=noisy[None], sigma=np.full((1, 1) + img.shape[1:], 25 / 255))
    return {"image": "kodim05 128px, AWGN sigma 25", "noisy": _p(noisy, img), "model": _p(out, img)}


def rlfn(pkg: Path, eval_dir: Path) -> dict:
    from PIL import Image

    img = kodak(eval_dir, 8)
    res = {"image": "kodim08 128px, PIL bicubic down/up"}
    hr = Image.fromarray((img.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8))
    for s in (2, 4):
        lr = hr.resize((CROP // s, CROP // s), Image.BICUBIC)
        bic = np.asarray(lr.resize((CROP, CROP), Image.BICUBIC), np.float32).transpose(2, 0, 1) / 255
        x = np.asarray(lr, np.float32).transpose(2, 0, 1)[None] / 255
        out = _run(session(pkg, f"model_x{s}.onnx"), input=x)
        res[f"x{s}_bicubic"] = _p(bic, img)
        res[f"x{s}_model"] = _p(out, img)
    return res


def _bayer_input(lin_mosaic: np.ndarray) -> np.ndarray:
    return cfa.pack_rggb(lin_mosaic)[None]


def demosaic(pkg: Path, eval_dir: Path) -> dict:
    img = kodak(eval_dir, 8)
    lin = cfa.srgb_decode(img)
    m = cfa.mosaic(lin, cfa.RGGB)
    out = cfa.srgb_encode(_run(session(pkg, "model_bayer.onnx"), input=_bayer_input(m)))
    bil = cfa.interpolate_demosaic(cfa.mosaic(img, cfa.RGGB), cfa.RGGB)
    img_x = img[:, :126, :126]  # X-Trans tiles are multiples of 6
    mx = cfa.mosaic(cfa.srgb_decode(img_x), cfa.XTRANS)
    out_x = cfa.srgb_encode(_run(session(pkg, "model_xtrans.onnx"), input=mx[None, None]))
    bil_x = cfa.interpolate_demosaic(cfa.mosaic(img_x, cfa.XTRANS), cfa.XTRANS, radius=2)
    return {"image": "kodim08 128px (X-Trans 126px), clean mosaic",
            "bayer_bilinear": _p(bil, img), "bayer_model": _p(out, img),
            "xtrans_bilinear": _p(bil_x, img_x), "xtrans_model": _p(out_x, img_x)}


def rawdenoise_demosaicnet(pkg: Path, eval_dir: Path, sigma: float | None = None) -> dict:
    import json

    model_id = pkg.name[: -len(".dtmodel")]
    with zipfile.ZipFile(pkg) as z:
        cfg = json.loads(z.read(f"{model_id}/config.json"))
    sigma = cfg["attributes"]["noise_sigma"] if sigma is None else sigma
    img = kodak(eval_dir, 19)
    rng = np.random.default_rng(0)
    noisy_srgb = cfa.mosaic(img, cfa.RGGB) + rng.normal(0, sigma, img.shape[1:]).astype(np.float32)
    x = _bayer_input(cfa.srgb_decode(noisy_srgb))
    out = cfa.srgb_encode(_run(session(pkg, "model_bayer.onnx"), input=x))
    out_s = cfa.srgb_encode(_run(session(pkg, "model_bayer_sigma.onnx"), input=x,
                                 sigma=np.full((1, 1) + x.shape[2:], sigma)))
    bil = cfa.interpolate_demosaic(noisy_srgb, cfa.RGGB)
    return {"image": f"kodim19 128px, Gaussian sigma {sigma:g} on the sRGB mosaic",
            "bilinear": _p(bil, img), "model": _p(out, img), "model_sigma_input": _p(out_s, img)}


def pmrid(pkg: Path, eval_dir: Path, demosaic_pkg: Path | None = None) -> dict:
    from tools.noise import V, iso_noise, profile_from_iso

    img = kodak(eval_dir, 8, upscale=2)
    m = cfa.mosaic(cfa.srgb_decode(np.clip(img, 0, 1)), cfa.RGGB)
    res = {"image": "kodim08 upscaled x2, 128px crop, PMRID Poisson-Gaussian noise"}
    for iso, member in ((1600, "model_bayer.onnx"), (3200, "model_bayer_profile.onnx")):
        k, s2 = iso_noise(iso)
        rng = np.random.default_rng(0)
        dn = m * V
        noisy = ((k * rng.poisson(dn / k) + rng.normal(0, np.sqrt(s2), dn.shape)) / V).astype(np.float32)
        feeds = {"input": _bayer_input(noisy)}
        if member.endswith("profile.onnx"):
            feeds["noise_profile"] = np.array([profile_from_iso(iso)], np.float32)
        out = cfa.srgb_encode(_run(session(pkg, member), **feeds))
        bil = cfa.srgb_encode(cfa.interpolate_demosaic(noisy, cfa.RGGB))
        res[f"iso{iso}_bilinear"] = _p(bil, img)
        res[f"iso{iso}_model"] = _p(out, img)
        if demosaic_pkg is not None:
            dm = cfa.srgb_encode(_run(session(demosaic_pkg, "model_bayer.onnx"), input=feeds["input"]))
            res[f"iso{iso}_demosaic_only"] = _p(dm, img)
    return res


CHECKS = {
    "denoise-ffdnet": ffdnet,
    "upscale-rlfn": rlfn,
    "demosaic-demosaicnet": demosaic,
    "rawdenoise-demosaicnet": rawdenoise_demosaicnet,
    "rawdenoise-pmrid-demosaicnet": pmrid,
}


def run(model_id: str, out_dir: Path, eval_dir: Path) -> dict:
    out_dir = Path(out_dir)
    pkg = out_dir / f"{model_id}.dtmodel"
    if model_id == "rawdenoise-pmrid-demosaicnet":
        dm = out_dir / "demosaic-demosaicnet.dtmodel"
        return pmrid(pkg, eval_dir, dm if dm.exists() else None)
    return CHECKS[model_id](pkg, eval_dir)
