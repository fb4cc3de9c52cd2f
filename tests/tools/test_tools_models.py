"""Model conversion tools (tools/): ONNX export, ORT vs PyTorch, packaging, quality.

Needs PyTorch (``pip install torch==2.13.0``, CPU) and the shared weights
(``PIXELPIPE_MODELS`` or ../shared/models); without them the tests skip with
the reason printed (a failure under ``PIXELPIPE_REQUIRE_TESTDATA=1``, for the
data).  Each model is converted once per run into a temporary folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install torch==2.13.0): model conversion tests skipped")
onnx = pytest.importorskip("onnx", reason="onnx is not installed: model conversion tests skipped")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: model conversion tests skipped")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pixelpipe.testdata import eval_dir, models_dir  # noqa: E402
from tools import cfa, convert_all, dtmodel, smoke  # noqa: E402

REQUIRE = os.environ.get("PIXELPIPE_REQUIRE_TESTDATA", "") not in ("", "0")


def need(path: Path, what: str) -> Path:
    """tests/conftest.py's rule (that module is not importable by name once
    tests/ai has its own conftest): skip if absent, fail under CI's flag."""
    if path.exists():
        return path
    reason = f"{what} not found at {path} (set PIXELPIPE_MODELS / PIXELPIPE_TESTDATA)"
    if REQUIRE:
        pytest.fail(reason + " and PIXELPIPE_REQUIRE_TESTDATA is set")
    pytest.skip(reason)

TOLERANCE = 1e-4
WEIGHTS = {
    "denoise-ffdnet": ["denoise/ffdnet/FFDNet_color.mat"],
    "upscale-rlfn": ["upscale/rlfn/rlfn_x2.pth", "upscale/rlfn/rlfn_x4.pth"],
    "demosaic-demosaicnet": ["rawdenoise/demosaicnet/bayer.pth", "rawdenoise/demosaicnet/xtrans.pth"],
    "rawdenoise-demosaicnet": ["rawdenoise/demosaicnet_noise/bayer_noise.caffemodel"],
    "rawdenoise-pmrid-demosaicnet": ["rawdenoise/pmrid/torch_pretrained.ckp",
                                     "rawdenoise/demosaicnet/bayer.pth"],
}
FILES = {
    "denoise-ffdnet": ["model.onnx"],
    "upscale-rlfn": ["model_x2.onnx", "model_x4.onnx"],
    "demosaic-demosaicnet": ["model_bayer.onnx", "model_xtrans.onnx"],
    "rawdenoise-demosaicnet": ["model_bayer.onnx", "model_bayer_sigma.onnx"],
    "rawdenoise-pmrid-demosaicnet": ["model_bayer.onnx", "model_bayer_profile.onnx"],
}
INPUTS = {  # file -> input names, in order
    "model.onnx": ["input", "sigma"],
    "model_x2.onnx": ["input"], "model_x4.onnx": ["input"],
    "model_bayer.onnx": ["input"], "model_xtrans.onnx": ["input"],
    "model_bayer_sigma.onnx": ["input", "sigma"],
    "model_bayer_profile.onnx": ["input", "noise_profile"],
}
IDS = list(convert_all.MODEL_IDS)
BAYER_IDS = ["demosaic-demosaicnet", "rawdenoise-demosaicnet", "rawdenoise-pmrid-demosaicnet"]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def converted(out_dir):
    """converted(id) -> the converter's result for id (converted once per module)."""
    done: dict[str, dict] = {}

    def _get(model_id: str) -> dict:
        for w in WEIGHTS[model_id]:
            need(models_dir() / w, f"shared weights {w}")
        if model_id == "denoise-ffdnet":
            pytest.importorskip("h5py", reason="h5py is not installed (needed for MATLAB v7.3 .mat)")
        if model_id not in done:
            done[model_id] = convert_all.convert_one(model_id, out_dir)[0]
        return done[model_id]

    return _get


@pytest.fixture(scope="module")
def kodak():
    return need(eval_dir() / "Kodak24", "Kodak24 evaluation images").parent


def _member(pkg: Path, model_id: str, name: str) -> bytes:
    with zipfile.ZipFile(pkg) as z:
        return z.read(f"{model_id}/{name}")


def _session(pkg: Path, model_id: str, name: str):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(_member(pkg, model_id, name), opts, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- export and package

@pytest.mark.parametrize("model_id", IDS)
def test_onnx_runtime_matches_pytorch(converted, out_dir, model_id):
    r = converted(model_id)
    assert [c["file"] for c in r["checks"]] == FILES[model_id]
    for c in r["checks"]:
        print(f"{model_id} {c['file']}: max |ORT - torch| = {c['max_abs_diff']:.3g}")
        assert c["max_abs_diff"] < TOLERANCE
        assert len(c["input_shapes"]) == 2  # two sizes: the dynamic axes work
    report = json.loads((out_dir / f"{model_id}.report.json").read_text())
    assert [c["max_abs_diff"] for c in report["checks"]] == [c["max_abs_diff"] for c in r["checks"]]
    assert report["checksum"] == r["entry"]["checksum"]


@pytest.mark.parametrize("model_id", IDS)
def test_package_layout_config_and_checksum(converted, out_dir, model_id):
    r = converted(model_id)
    pkg = out_dir / f"{model_id}.dtmodel"
    assert r["dtmodel"] == pkg
    with zipfile.ZipFile(pkg) as z:
        names = sorted(z.namelist())
    assert names == sorted([f"{model_id}/config.json"] + [f"{model_id}/{f}" for f in FILES[model_id]])

    cfg = json.loads(_member(pkg, model_id, "config.json"))
    for k in dtmodel.CONFIG_KEYS:
        assert k in cfg, k
    assert cfg["id"] == model_id and cfg["backend"] == "onnx" and cfg["version"] == "1.0"
    assert cfg["tiling"] is True
    assert cfg["num_inputs"] == (2 if model_id == "denoise-ffdnet" else 1)
    assert cfg["task"] == model_id.split("-")[0]
    assert cfg["model_card"]["license"]
    if cfg["variants"]:  # darktable looks variants up inside "attributes"
        assert cfg["attributes"]["variants"] == cfg["variants"]
    if model_id in BAYER_IDS:
        assert cfg["variants"]["bayer"]["input_kind"] == "bayer_v1"
        assert cfg["variants"]["bayer"]["onnx"] == "model_bayer.onnx"
    if model_id == "demosaic-demosaicnet":
        assert cfg["variants"]["xtrans"]["input_kind"] == "xtrans_v1"
    if model_id == "upscale-rlfn":
        assert cfg["attributes"]["scales"] == [2, 4]

    entry = json.loads((out_dir / f"{model_id}.json").read_text())
    assert entry == r["entry"]
    assert set(entry) == set(dtmodel.CATALOGUE_KEYS)
    assert entry["github_asset"] == pkg.name
    assert entry["checksum"] == "sha256:" + hashlib.sha256(pkg.read_bytes()).hexdigest()
    assert entry["licence"] and entry["training_data"] and entry["source"].startswith("https://")
    if model_id == "denoise-ffdnet":
        assert "no licence file" in entry["licence"] and "MIT" in entry["licence"] and "KAIR" in entry["licence"]
    dtmodel.check_package(pkg, entry)


@pytest.mark.parametrize("model_id", IDS)
def test_onnx_interface(converted, out_dir, model_id):
    converted(model_id)
    pkg = out_dir / f"{model_id}.dtmodel"
    for f in FILES[model_id]:
        m = onnx.load_from_string(_member(pkg, model_id, f))
        assert m.opset_import[0].version == 17
        ins = [i for i in m.graph.input]
        assert [i.name for i in ins] == INPUTS[f]
        assert [o.name for o in m.graph.output] == ["output"]
        image = ins[0].type.tensor_type.shape.dim
        # darktable fixes the symbolic dims "height" and "width" to the tile size
        assert image[0].dim_value == 1
        assert (image[2].dim_param, image[3].dim_param) == ("height", "width")
        assert m.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 1


@pytest.mark.parametrize("model_id", [i for i in IDS if i != "demosaic-demosaicnet"])
def test_pixelpipe_accepts_the_package(converted, out_dir, model_id):
    """pixelpipe's own config parser and per-task tensor checks take the unpacked folder."""
    from pixelpipe.ai import config, tasks

    converted(model_id)
    d = out_dir / model_id
    cfg = config.load(d / "config.json")
    files = tasks.check_model_dir(cfg, d)
    assert set(files) <= set(FILES[model_id])


def test_catalogue_and_cli_reproducible(converted, out_dir, tmp_path):
    first = converted("denoise-ffdnet")
    assert convert_all.main(["--out", str(tmp_path), "--only", "denoise-ffdnet"]) == 0
    cat = json.loads((tmp_path / "catalogue.json").read_text())
    assert cat["version"] == 1 and [m["id"] for m in cat["models"]] == ["denoise-ffdnet"]
    # the same weights give the same package bytes
    assert cat["models"][0]["checksum"] == first["entry"]["checksum"]


def test_missing_weights_is_a_clear_error(tmp_path):
    from tools import convert_rlfn

    with pytest.raises(dtmodel.ConversionError, match="path=.*rlfn_x2.pth"):
        convert_rlfn.convert(tmp_path / "out", tmp_path / "no-weights")


# ----------------------------------------------------------------------------- graph contracts

@pytest.mark.parametrize("model_id", BAYER_IDS)
def test_bayer_v1_flat_colour_is_kept(converted, out_dir, model_id):
    """A flat colour packed as RGGB comes back as that colour, borders included:
    the RGGB -> GRBG phase shift and the mirror padding are right."""
    converted(model_id)
    sess = _session(out_dir / f"{model_id}.dtmodel", model_id, "model_bayer.onnx")
    colour = np.array([0.30, 0.18, 0.08], np.float32)
    t = 32
    packed = np.stack([np.full((t, t), colour[c]) for c in (0, 1, 1, 2)])[None].astype(np.float32)
    out = sess.run(None, {"input": packed})[0][0]
    assert out.shape == (3, 2 * t, 2 * t)
    err = np.abs(out - colour[:, None, None]).max()
    mean_err = np.abs(out.reshape(3, -1).mean(1) / colour - 1).max()
    print(f"{model_id}: flat colour max error {err:.4f}, mean {mean_err:.2%}")
    if model_id == "rawdenoise-pmrid-demosaicnet":
        # PMRID itself shifts flat areas a little (hence output_scale match_gain)
        assert err < 0.03 and mean_err < 0.04
    else:
        assert err < 0.01 and mean_err < 0.01


def test_xtrans_v1_flat_colour_and_pattern(converted, out_dir):
    converted("demosaic-demosaicnet")
    sess = _session(out_dir / "demosaic-demosaicnet.dtmodel", "demosaic-demosaicnet", "model_xtrans.onnx")
    colour = np.array([0.30, 0.18, 0.08], np.float32)
    plane = cfa.mosaic(np.broadcast_to(colour[:, None, None], (3, 48, 60)).copy(), cfa.XTRANS)
    out = sess.run(None, {"input": plane[None, None]})[0][0]
    assert out.shape == (3, 48, 60)
    err = np.abs(out - colour[:, None, None]).max()
    print(f"xtrans flat colour max error {err:.4f}")
    assert err < 0.02  # the network's own error on this saturated colour is ~0.01, everywhere
    # the same colour on a pattern shifted by one row is read as the wrong colours
    wrong = cfa.mosaic(np.broadcast_to(colour[:, None, None], (3, 48, 60)).copy(),
                       np.roll(cfa.XTRANS, 1, axis=0))
    assert np.abs(sess.run(None, {"input": wrong[None, None]})[0][0] - colour[:, None, None]).max() > 0.1


def test_bayer_v1_any_tile_size(converted, out_dir):
    converted("rawdenoise-pmrid-demosaicnet")
    sess = _session(out_dir / "rawdenoise-pmrid-demosaicnet.dtmodel", "rawdenoise-pmrid-demosaicnet",
                    "model_bayer.onnx")
    x = np.random.default_rng(3).random((1, 4, 45, 33), dtype=np.float32) * 0.5
    assert sess.run(None, {"input": x})[0].shape == (1, 3, 90, 66)


# ----------------------------------------------------------------------------- quality on real data

def test_quality_ffdnet_kodak_sigma25(converted, out_dir, kodak):
    converted("denoise-ffdnet")
    q = smoke.ffdnet(out_dir / "denoise-ffdnet.dtmodel", kodak)
    print(q)
    assert q["model"] - q["noisy"] > 5.0


def test_quality_rlfn_beats_bicubic(converted, out_dir, kodak):
    converted("upscale-rlfn")
    q = smoke.rlfn(out_dir / "upscale-rlfn.dtmodel", kodak)
    print(q)
    assert q["x2_model"] - q["x2_bicubic"] > 1.0
    assert q["x4_model"] - q["x4_bicubic"] > 0.5


def test_quality_demosaicnet_beats_bilinear(converted, out_dir, kodak):
    converted("demosaic-demosaicnet")
    q = smoke.demosaic(out_dir / "demosaic-demosaicnet.dtmodel", kodak)
    print(q)
    assert q["bayer_model"] - q["bayer_bilinear"] > 3.0
    assert q["xtrans_model"] - q["xtrans_bilinear"] > 3.0


def test_quality_rawdenoise_demosaicnet_noisy_mosaic(converted, out_dir, kodak):
    converted("rawdenoise-demosaicnet")
    q = smoke.rawdenoise_demosaicnet(out_dir / "rawdenoise-demosaicnet.dtmodel", kodak)
    print(q)
    assert q["model"] - q["bilinear"] > 3.0
    assert abs(q["model_sigma_input"] - q["model"]) < 0.05  # same sigma, two graphs


def test_quality_pmrid_denoises_before_demosaicing(converted, out_dir, kodak):
    converted("demosaic-demosaicnet")
    converted("rawdenoise-pmrid-demosaicnet")
    q = smoke.pmrid(out_dir / "rawdenoise-pmrid-demosaicnet.dtmodel", kodak,
                    out_dir / "demosaic-demosaicnet.dtmodel")
    print(q)
    for iso in (1600, 3200):
        assert q[f"iso{iso}_model"] - q[f"iso{iso}_bilinear"] > 1.0
        assert q[f"iso{iso}_model"] - q[f"iso{iso}_demosaic_only"] > 1.0
