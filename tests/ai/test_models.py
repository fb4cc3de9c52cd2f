"""Catalogue, config.json, package install, task slots, and bad input."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from aitest_helpers import box_blur, bayer_model, config, make_package, sam2_pair, symlink_member
from pixelpipe import prefs
from pixelpipe.ai import catalogue, registry
from pixelpipe.ai import config as config_mod
from pixelpipe.ai.package import install_package
from pixelpipe.errors import AIError

DT_AI = ["mask-object-sam21-small", "mask-object-sam21-tiny", "mask-object-segnext-b2hq",
         "denoise-nind", "denoise-nafnet", "rawdenoise-nind", "upscale-bsrgan"]
OURS = ["denoise-ffdnet", "upscale-rlfn", "rawdenoise-demosaicnet", "rawdenoise-pmrid-demosaicnet"]


def _models_dir_entries():
    d = registry.models_dir()
    return sorted(os.listdir(d)) if d.exists() else []


# --------------------------------------------------------------------------- catalogue

def test_catalogue_loads_with_darktable_models_and_ours():
    entries = {e.id: e for e in catalogue.entries()}
    assert set(DT_AI) | set(OURS) == set(entries)
    defaults = {e.task: e.id for e in entries.values() if e.default}
    assert defaults == {"mask": "mask-object-sam21-small", "denoise": "denoise-nind",
                        "rawdenoise": "rawdenoise-nind", "upscale": "upscale-bsrgan"}
    for mid in DT_AI:
        e = entries[mid]
        assert e.downloadable and e.github_asset == f"{mid}.dtmodel"
        assert {"licence", "osaid", "mof", "training_data", "source"} <= set(e.card)
    for mid in OURS:
        e = entries[mid]
        assert not e.downloadable and e.build and "tools/" in e.build
        assert {"licence", "training_data", "source"} <= set(e.card)


@pytest.mark.parametrize("mutate,msg", [
    (lambda m: m.update(colour="red"), "unknown field"),
    (lambda m: m.pop("github_asset"), "github_asset"),
    (lambda m: m.update(checksum="md5:abc"), "checksum"),
    (lambda m: m.update(task="paint"), "unknown task"),
    (lambda m: m.update(id="../x"), "invalid model id"),
    (lambda m: m.update(repository="local"), "build"),
])
def test_catalogue_rejects_bad_entries(mutate, msg):
    m = {"id": "denoise-x", "name": "x", "task": "denoise", "github_asset": "denoise-x.dtmodel",
         "default": False}
    mutate(m)
    with pytest.raises(AIError, match=msg):
        catalogue.parse({"version": 1, "models": [m]})


# --------------------------------------------------------------------------- config.json

def test_config_keys_as_darktable_reads_them():
    cfg = config_mod.parse({
        "id": "rawdenoise-x", "name": "x", "task": "rawdenoise", "arch": "utnet2", "tiling": True,
        "attributes": {"input_sizes": [512], "coreml_cpu_only": True},
        "variants": {"bayer": {"onnx": "model_bayer.onnx", "input_kind": "bayer_v1",
                               "wb_norm": "daylight", "edge_pad": "mirror_cropped"}},
        "variants.linear.onnx": "model_linear.onnx", "variants.linear.target_mean": 0.3,
        "github_asset": "rawdenoise-x.dtmodel", "default": True,
    })
    assert cfg.warnings == []
    assert cfg.attribute("variants.bayer.onnx") == "model_bayer.onnx"
    assert cfg.attribute("variants.bayer.wb_norm") == "daylight"
    assert cfg.attribute("variants.linear.input_kind") == "linear_v1"
    assert cfg.attribute("variants.linear.target_mean") == 0.3
    assert cfg.attribute("attributes.input_sizes") == [512]
    assert cfg.num_inputs == 1 and cfg.backend == "onnx" and cfg.version == "1.0"
    d = config_mod.parse({"id": "a", "name": "b"})
    assert d.task == "general" and d.num_inputs == 1 and d.tiling is False


@pytest.mark.parametrize("raw,msg", [
    ({"name": "x"}, "missing required key 'id'"),
    ({"id": "x"}, "missing required key 'name'"),
    ({"id": "x", "name": ""}, "non-empty"),
    ({"id": "a/b", "name": "x"}, "invalid model id"),
    ({"id": "x", "name": "x", "backend": "tflite"}, "only 'onnx'"),
    ({"id": "x", "name": "x", "num_inputs": 3}, "num_inputs"),
    ({"id": "x", "name": "x", "tiling": "yes"}, "tiling"),
    ({"id": "x", "name": "x", "variants": {"bayer": {"input_kind": "linear_v1"}}}, "input_kind"),
    ({"id": "x", "name": "x", "variants": {"linear": {"wb_norm": "auto"}}}, "wb_norm"),
    ({"id": "x", "name": "x", "variants": {"bayer": {"onnx": "../m.onnx"}}}, "plain .onnx"),
    ({"id": "x", "name": "x", "attributes": {"input_sizes": [0]}}, "input_sizes"),
])
def test_config_errors(raw, msg):
    with pytest.raises(AIError, match=msg):
        config_mod.parse(raw, where="cfg.json")


def test_config_unknown_keys_warn():
    cfg = config_mod.parse({"id": "x", "name": "x", "colour": 1, "attributes": {"foo": 1},
                            "variants": {"bayer": {"bar": 1}, "foveon": {}}})
    text = " ".join(cfg.warnings)
    assert "colour" in text and "bar" in text and "foveon" in text
    assert "foo" not in text  # model-specific attributes are kept silently
    assert cfg.attribute("attributes.foo") == 1


def test_variants_inside_attributes_as_darktable_looks_them_up():
    cfg = config_mod.parse({"id": "x", "name": "x", "task": "rawdenoise",
                            "attributes": {"variants": {"bayer": {"onnx": "b.onnx", "wb_norm": "none"}},
                                           "variants.linear.onnx": "l.onnx"},
                            "model_card": {"license": "MIT"}})
    assert cfg.warnings == []
    assert cfg.attribute("variants.bayer.onnx") == "b.onnx"
    assert cfg.attribute("variants.bayer.wb_norm") == "none"
    assert cfg.attribute("variants.linear.onnx") == "l.onnx"


def test_config_written_by_the_project_converters_installs(tmp_path):
    """tools/dtmodel.make_config (the converters' config.json) is accepted without warnings."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    try:
        dtm = pytest.importorskip("tools.dtmodel")
    finally:
        sys.path.pop(0)
    cfg = dtm.make_config(
        model_id="rawdenoise-pmrid-demosaicnet", name="n", description="d", task="rawdenoise",
        attributes={"noise_profile": [1e-3, 1e-5], "min_tile": 32,
                    "extra_graphs": {"bayer_profile": {"onnx": "model_bayer_profile.onnx"}}},
        variants={"bayer": {"input_kind": "bayer_v1", "input_colorspace": "camRGB",
                            "wb_norm": "daylight", "output_scale": "match_gain",
                            "bayer_orientation": "force_rggb", "onnx": "model_bayer.onnx"}},
        model_card={"license": "Apache-2.0", "source": "https://example.org"})
    m = install_package(make_package(tmp_path / "p.dtmodel", "rawdenoise-pmrid-demosaicnet",
                                     "rawdenoise", cfg=cfg, files={"model_bayer.onnx": bayer_model()}))
    assert m.warnings == []
    assert m.variants() == ["bayer"]
    assert m.model_file(variant="bayer").variant.settings["output_scale"] == "match_gain"


# --------------------------------------------------------------------------- install

@pytest.mark.parametrize("task,mid", [("denoise", "denoise-nind"), ("upscale", "upscale-bsrgan"),
                                      ("rawdenoise", "rawdenoise-nind"),
                                      ("mask", "mask-object-sam21-small")])
def test_install_dtmodel_per_task(tmp_path, task, mid):
    cfg = config(mid, task, arch="sam2") if task == "mask" else None
    pkg = make_package(tmp_path / f"{mid}.dtmodel", mid, task, cfg=cfg)
    m = install_package(pkg)
    assert m.id == mid and m.task == task and m.ok
    assert (registry.models_dir() / mid / "config.json").is_file()
    assert _models_dir_entries() == [mid]  # no temp folders left
    assert registry.get_installed(mid).path == registry.models_dir() / mid
    if task == "upscale":
        assert m.scales() == [2, 4]
        assert m.onnx_path(scale=4).name == "model_x4.onnx"
    if task == "rawdenoise":
        assert m.variants() == ["bayer", "linear"]
        assert m.onnx_path(variant="xtrans").name == "model_linear.onnx"  # darktable's fallback


def test_install_flat_zip_and_reinstall_replaces(tmp_path):
    pkg = make_package(tmp_path / "a.zip", "denoise-nafnet", "denoise", root="")
    install_package(pkg)
    cfg = config("denoise-nafnet", "denoise", version="2.0")
    install_package(make_package(tmp_path / "b.dtmodel", "denoise-nafnet", "denoise", cfg=cfg))
    assert registry.get_installed("denoise-nafnet").config.version == "2.0"
    assert _models_dir_entries() == ["denoise-nafnet"]


def test_rawdenoise_variants_inferred_from_files(tmp_path):
    cfg = config("rawdenoise-nind", "rawdenoise",
                 attributes={"input_sizes": [512], "model_bayer": {"wb_norm": "none"}})
    m = install_package(make_package(tmp_path / "r.dtmodel", "rawdenoise-nind", "rawdenoise",
                                     cfg={**cfg, "variants": {}}))
    kinds = {f.variant.kind: f.variant for f in m.files()}
    assert set(kinds) == {"bayer", "linear"}
    assert kinds["bayer"].settings == {"wb_norm": "none"}


def _assert_nothing_installed():
    assert [e for e in _models_dir_entries()] == []


BAD_PACKAGES = {
    "missing name": (dict(cfg={"id": "denoise-nind", "task": "denoise"}), "missing required key 'name'"),
    "folder/id mismatch": (dict(root="other"), "does not match the model id"),
    "no config": (dict(root="a/b"), "no config.json"),
    "denoise 4 channels": (dict(files={"model.onnx": box_blur(channels=4)}), "3 channels"),
    "denoise missing sigma": (dict(cfg=config("denoise-nind", "denoise", num_inputs=2),
                                   files={"model.onnx": box_blur()}),
                              "num_inputs=2 takes 2 input"),
    "denoise onnx missing": (dict(files={"other.onnx": box_blur()}), "model.onnx missing"),
    "not onnx": (dict(files={"model.onnx": b"hello"}), "not a valid ONNX model"),
    "upscale wrong ratio": (dict(task="upscale", files={"model_x4.onnx": bayer_model(8)}), "3 channels|4x"),
    "bayer wrong channels": (dict(task="rawdenoise", files={"model_bayer.onnx": box_blur(),
                                                            "model_linear.onnx": box_blur()}), "4 channels"),
    "sam2 decoder missing input": (dict(task="mask", cfg=config("denoise-nind", "mask", arch="sam2"),
                                        files={"encoder.onnx": sam2_pair()[0],
                                               "decoder.onnx": box_blur()}), "lacks input"),
    "dotdot member": (dict(extra_members=[("denoise-nind/../../evil.txt", b"x")]), "'..'"),
    "absolute member": (dict(extra_members=[("/tmp/evil.txt", b"x")]), "absolute"),
    "symlink member": (dict(extra_members=[symlink_member("denoise-nind/link", "/etc/passwd")]),
                       "symbolic link"),
}


@pytest.mark.parametrize("case", list(BAD_PACKAGES))
def test_bad_packages_install_nothing(tmp_path, case):
    kw, msg = BAD_PACKAGES[case]
    kw = dict(kw)
    task = kw.pop("task", "denoise")
    mid = "denoise-nind"
    prefs.put("ai.models.active.denoise", "none")
    pkg = make_package(tmp_path / "p.dtmodel", mid, task, **kw)
    with pytest.raises(AIError, match=msg):
        install_package(pkg)
    _assert_nothing_installed()
    assert not (tmp_path.parent / "evil.txt").exists()
    assert prefs.get("ai.models.active.denoise") == "none"


def test_bad_package_keeps_the_installed_model(tmp_path):
    install_package(make_package(tmp_path / "ok.dtmodel", "denoise-nind", "denoise"))
    prefs.put("ai.models.active.denoise", "denoise-nind")
    before = (registry.models_dir() / "denoise-nind" / "model.onnx").read_bytes()
    bad = make_package(tmp_path / "bad.dtmodel", "denoise-nind", "denoise",
                       files={"model.onnx": box_blur(channels=4)})
    with pytest.raises(AIError):
        install_package(bad)
    assert (registry.models_dir() / "denoise-nind" / "model.onnx").read_bytes() == before
    assert _models_dir_entries() == ["denoise-nind"]
    assert registry.active_model("denoise").id == "denoise-nind"


def test_size_limits(tmp_path):
    pkg = make_package(tmp_path / "big.dtmodel", "denoise-nind", "denoise", padding=2 << 20)
    prefs.put("ai.max_download_mb", 1)
    with pytest.raises(AIError, match="ai.max_download_mb"):
        install_package(pkg)
    prefs.put("ai.max_download_mb", 100)
    prefs.put("ai.max_unpacked_mb", 1)
    with pytest.raises(AIError, match="ai.max_unpacked_mb"):
        install_package(pkg)
    _assert_nothing_installed()


def test_zip_bomb_declared_size_is_capped(tmp_path):
    p = tmp_path / "bomb.dtmodel"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("denoise-nind/config.json", json.dumps(config("denoise-nind", "denoise")))
        zf.writestr("denoise-nind/model.onnx", box_blur())
        zf.writestr("denoise-nind/zeros.bin", bytes(3 << 20))
    assert p.stat().st_size < 100_000
    prefs.put("ai.max_unpacked_mb", 2)
    with pytest.raises(AIError, match="unpacks to"):
        install_package(p)
    _assert_nothing_installed()


def test_disk_full_while_unpacking(tmp_path, monkeypatch):
    import errno

    from pixelpipe.ai import package

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(package, "_extract", full)
    with pytest.raises(AIError, match="no space left"):
        install_package(make_package(tmp_path / "p.dtmodel", "denoise-nind", "denoise"))
    _assert_nothing_installed()


# --------------------------------------------------------------------------- slots

def test_task_slots(tmp_path):
    assert registry.active_model("denoise") is None
    install_package(make_package(tmp_path / "a.dtmodel", "denoise-nafnet", "denoise"))
    # not marked default: an unset slot stays empty
    assert registry.active_model("denoise") is None
    assert prefs.get("ai.models.active.denoise") is None
    install_package(make_package(tmp_path / "b.dtmodel", "denoise-nind", "denoise"))
    assert registry.active_model("denoise").id == "denoise-nind"
    assert prefs.get("ai.models.active.denoise") == "denoise-nind"  # persisted, like darktable
    registry.activate("denoise-nafnet")
    assert registry.active_model("denoise").id == "denoise-nafnet"
    registry.deactivate("denoise")
    assert registry.active_model("denoise") is None
    assert prefs.get("ai.models.active.denoise") == "none"
    registry.activate("denoise-nafnet")
    prefs.put("ai.tile_cache.denoise-nafnet.1.cpu", 512)
    registry.delete("denoise-nafnet")
    assert prefs.get("ai.models.active.denoise") is None  # slot unset
    assert prefs.get("ai.tile_cache.denoise-nafnet.1.cpu") is None
    assert registry.active_model("denoise").id == "denoise-nind"  # default again
    assert _models_dir_entries() == ["denoise-nind"]
    # other tasks untouched
    assert registry.active_model("upscale") is None


def test_slot_errors(tmp_path):
    install_package(make_package(tmp_path / "u.dtmodel", "upscale-bsrgan", "upscale"))
    with pytest.raises(AIError, match="not installed; download it with: pixelpipe ai models download"):
        registry.activate("denoise-nind")
    with pytest.raises(AIError, match="not installed"):
        registry.delete("denoise-nind")
    prefs.put("ai.models.active.denoise", "upscale-bsrgan")
    with pytest.raises(AIError, match="is a upscale model"):
        registry.active_model("denoise")
    prefs.put("ai.models.active.denoise", "denoise-nind")
    with pytest.raises(AIError, match="is not installed"):
        registry.active_model("denoise")
    with pytest.raises(AIError, match="unknown AI task"):
        registry.active_model("colorize")


def test_broken_model_folder_is_listed_not_used(tmp_path):
    d = registry.models_dir() / "denoise-nind"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{not json")
    assert registry.installed_models() == []
    broken = registry.scan(include_broken=True)
    assert len(broken) == 1 and "not valid JSON" in broken[0].error
    assert registry.active_model("denoise") is None
    registry.delete("denoise-nind")
    assert not d.exists()


def test_models_dir_pref(tmp_path):
    prefs.put("ai.models_dir", str(tmp_path / "elsewhere"))
    install_package(make_package(tmp_path / "a.dtmodel", "denoise-nind", "denoise"))
    assert (tmp_path / "elsewhere" / "denoise-nind" / "config.json").is_file()


def test_import_is_cheap():
    import subprocess
    import sys

    code = ("import sys, pixelpipe.ai; "
            "print(sorted(m for m in ('onnxruntime', 'numpy', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stale_temp_folders_from_a_killed_run_are_cleaned(tmp_path):
    import time

    mdir = registry.models_dir()
    old = mdir / ".install-denoise-nind-abc123"
    (old / "denoise-nind").mkdir(parents=True)
    t = time.time() - 7200
    os.utime(old, (t, t))
    fresh = mdir / ".install-upscale-bsrgan-def456"
    fresh.mkdir()
    install_package(make_package(tmp_path / "a.dtmodel", "denoise-nind", "denoise"))
    assert not old.exists() and fresh.exists()
    assert [m.id for m in registry.installed_models()] == ["denoise-nind"]
