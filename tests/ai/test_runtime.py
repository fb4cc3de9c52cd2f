"""ONNX Runtime sessions: opt-in guard, providers and CPU fallback, FP16, IOBinding, pinned dims."""
from __future__ import annotations

import numpy as np
import pytest

from aitest_helpers import box_blur, box_blur_reference, make_package, onnx, upscaler
from pixelpipe import prefs
from pixelpipe.ai import load_session, onnxinfo, runtime
from pixelpipe.ai.package import install_package
from pixelpipe.errors import AIError

ort = pytest.importorskip("onnxruntime")
TensorProto = onnx.TensorProto


@pytest.fixture
def blur_path(tmp_path):
    p = tmp_path / "blur.onnx"
    p.write_bytes(box_blur())
    return p


def _img(h=40, w=56, c=3, seed=1):
    return np.random.default_rng(seed).random((1, c, h, w), dtype=np.float32)


def test_inference_refused_while_disabled(blur_path):
    with pytest.raises(AIError, match="pixelpipe prefs set ai.enabled true"):
        load_session(blur_path)
    with pytest.raises(AIError, match="prefs set ai.enabled true"):
        runtime.probe_provider("cpu")


def test_probe_model_is_valid_onnx():
    data = onnxinfo.probe_model_bytes()
    m = onnx.load_from_string(data)
    onnx.checker.check_model(m, full_check=True)
    assert [n.op_type for n in m.graph.node] == ["Add"]
    ins, outs = onnxinfo.read_io_bytes(data)
    assert ins[0] == onnxinfo.TensorInfo("x", "float32", onnxinfo.PROBE_SHAPE)
    assert outs[0].name == "y"


def test_header_reader_matches_onnx(tmp_path):
    p = tmp_path / "u.onnx"
    p.write_bytes(upscaler(2))
    ins, outs = onnxinfo.read_io(p)
    assert ins == [onnxinfo.TensorInfo("input", "float32", ("batch", 3, "h", "w"))]
    assert outs == [onnxinfo.TensorInfo("output", "float32", ("batch", 3, "h2", "w2"))]
    p16 = tmp_path / "f16.onnx"
    p16.write_bytes(box_blur(elem=TensorProto.FLOAT16))
    assert onnxinfo.read_io(p16)[0][0].dtype == "float16"


def test_providers_probe(enable_ai):
    ok, detail = runtime.probe_provider("cpu")
    assert ok and detail == "works"
    rows = {p: (in_build, ok) for p, in_build, ok, _ in runtime.probe_all()}
    assert rows["cpu"] == (True, True)
    assert set(rows) == {"cpu", "cuda", "tensorrt", "rocm", "migraphx", "openvino", "coreml", "directml"}
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert rows["cuda"] == (False, False)
        assert runtime.probe_provider("cuda") == (False, f"not in this ONNX Runtime build ({ort.__version__})")


def test_auto_order():
    assert runtime.auto_order("linux") == ["cuda", "migraphx", "rocm"]
    assert runtime.auto_order("darwin") == ["coreml"]
    assert runtime.auto_order("win32") == ["directml"]


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="this test needs a machine without CUDA")
def test_cuda_request_falls_back_to_cpu_with_notice(enable_ai, blur_path, capsys):
    prefs.put("ai.provider", "cuda")
    s = load_session(blur_path)
    assert s.provider == "cpu" and s.requested_provider == "cuda"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pixelpipe: notice: provider cuda:")
    assert err[0].endswith("using cpu")
    x = _img()
    np.testing.assert_allclose(s.run({"input": x})["output"], box_blur_reference(x), atol=1e-5)


def test_auto_is_silent_on_cpu_only(enable_ai, blur_path, capsys):
    s = load_session(blur_path, provider="auto")
    assert s.provider in ("cpu", "cuda", "migraphx", "rocm", "coreml", "directml")
    if s.provider == "cpu":
        assert capsys.readouterr().err == ""


def test_run_and_metadata(enable_ai, blur_path):
    s = load_session(blur_path, provider="cpu")
    assert [t.name for t in s.inputs] == ["input"] and [t.name for t in s.outputs] == ["output"]
    assert s.inputs[0].dtype == "float32"
    x = _img()
    out = s.run({"input": x})
    assert out["output"].dtype == np.float32 and out["output"].shape == x.shape
    np.testing.assert_allclose(out["output"], box_blur_reference(x), atol=1e-5)
    assert s.last_run_used_io_binding is False
    with pytest.raises(AIError, match="missing: input"):
        s.run({"other": x})


def test_iobinding_path_on_cpu(enable_ai, blur_path):
    s = load_session(blur_path, provider="cpu")
    x = _img()
    plain = s.run({"input": x})["output"]
    bound = s.run({"input": x}, io_binding=True)["output"]
    assert s.last_run_used_io_binding is True
    np.testing.assert_array_equal(plain, bound)
    # outputs kept as OrtValues can be fed back without a round trip through numpy
    on_dev = s.run_on_device({"input": x})
    assert isinstance(on_dev["output"], ort.OrtValue)
    again = s.run({"input": on_dev["output"]})["output"]
    assert s.last_run_used_io_binding is True
    np.testing.assert_allclose(again, box_blur_reference(plain), atol=1e-5)


def test_fp16_model_takes_and_returns_float32(enable_ai, tmp_path):
    p = tmp_path / "f16.onnx"
    p.write_bytes(box_blur(elem=TensorProto.FLOAT16))
    s = load_session(p, provider="cpu")
    assert s.inputs[0].dtype == "float16"
    x = _img()
    y = s.run({"input": x})["output"]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, box_blur_reference(x), atol=3e-3)
    y2 = s.run({"input": x}, io_binding=True)["output"]
    assert y2.dtype == np.float32
    np.testing.assert_array_equal(y, y2)


def test_free_dims_pinned_to_tile(enable_ai, blur_path):
    s = load_session(blur_path, provider="cpu")
    assert s.inputs[0].shape == (1, 3, "height", "width")  # batch pinned to 1 from the start
    s.pin_tile(64)
    assert s.tile == 64
    assert s.inputs[0].shape == (1, 3, 64, 64)
    x = _img(64, 64)
    np.testing.assert_allclose(s.run({"input": x})["output"], box_blur_reference(x), atol=1e-5)
    with pytest.raises(AIError):
        s.run({"input": _img(32, 32)})  # H/W are now fixed at 64


def test_overrides_cover_batch_and_hw(enable_ai, blur_path):
    s = load_session(blur_path, provider="cpu")
    assert s._overrides(128) == {"batch": 1, "height": 128, "width": 128}
    assert s._overrides(None) == {"batch": 1}


def test_load_installed_model_and_wrong_task(enable_ai, tmp_path):
    install_package(make_package(tmp_path / "u.dtmodel", "upscale-bsrgan", "upscale"))
    s = load_session("upscale-bsrgan", task="upscale", scale=4)
    assert s.path.name == "model_x4.onnx" and s.model_id == "upscale-bsrgan"
    assert s.cache_key == "upscale-bsrgan"
    with pytest.raises(AIError, match="is a upscale model, not a denoise model"):
        load_session("upscale-bsrgan", task="denoise")
    with pytest.raises(AIError, match="offers no x3"):
        load_session("upscale-bsrgan", scale=3)
    with pytest.raises(AIError, match="not installed"):
        load_session("denoise-nind")


def test_tampered_onnx_after_install_is_caught_at_load(enable_ai, tmp_path):
    install_package(make_package(tmp_path / "d.dtmodel", "denoise-nind", "denoise"))
    from pixelpipe.ai import registry

    (registry.models_dir() / "denoise-nind" / "model.onnx").write_bytes(box_blur(channels=4))
    with pytest.raises(AIError, match="does not fit task denoise"):
        load_session("denoise-nind")


def test_mask_decoder_runs_on_cpu(enable_ai, tmp_path):
    from aitest_helpers import config

    install_package(make_package(tmp_path / "m.dtmodel", "mask-object-sam21-small", "mask",
                                 cfg=config("mask-object-sam21-small", "mask", arch="sam2")))
    dec = load_session("mask-object-sam21-small", role="decoder", provider="auto")
    assert dec.provider == "cpu" and dec.path.name == "decoder.onnx"
    out = dec.run({"image_embed": np.zeros((1, 256, 64, 64), np.float32),
                   "point_coords": np.zeros((1, 2, 2), np.float32),
                   "point_labels": np.array([[1, -1]], np.float32),
                   "mask_input": np.ones((1, 1, 256, 256), np.float32),
                   "has_mask_input": np.zeros(1, np.float32)})
    assert out["masks"].shape == (1, 3, 1024, 1024) and out["iou_predictions"].shape == (1, 3)


def test_oom_is_recognised():
    assert runtime.is_oom(MemoryError())
    assert runtime.is_oom(RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer of size 123"))
    assert runtime.is_oom(RuntimeError("BFCArena::AllocateRawInternal Available memory of 0 is smaller"))
    assert not runtime.is_oom(RuntimeError("Invalid rank for input"))


def test_provider_failing_at_run_time_falls_back_to_cpu(enable_ai, blur_path, capsys):
    """A GPU provider whose run fails is replaced by the CPU (simulated: the session claims
    CUDA, so its IOBinding asks for CUDA memory, which this build cannot give)."""
    s = load_session(blur_path, provider="cpu")
    s.provider = "cuda"
    x = _img()
    y = s.run({"input": x})["output"]
    assert s.provider == "cpu"
    np.testing.assert_allclose(y, box_blur_reference(x), atol=1e-5)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "provider cuda failed while running blur.onnx" in err[0]
    assert err[0].endswith("retrying on cpu")
    # errors of the caller's making are not provider failures
    s.provider = "cuda"
    with pytest.raises(AIError, match="unknown: nope"):
        s.run({"input": x, "nope": x})
    assert s.provider == "cuda"
