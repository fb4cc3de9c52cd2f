"""The ``ai`` and ``prefs`` commands, run in subprocesses."""
from __future__ import annotations

import json
import socket


from aitest_helpers import box_blur, cli, cli_session, make_package
from pixelpipe import prefs
from pixelpipe.ai import registry

ENABLE = "pixelpipe prefs set ai.enabled true"
INSTALL = "pip install 'pixelpipe[ai]'"


def _one_error_line(p, code, text):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, p.stderr
    assert lines[-1].startswith("pixelpipe: error: ") and text in lines[-1], p.stderr
    assert "Traceback" not in p.stderr


def test_fresh_install_says_false_and_how_to_enable():
    p = cli(["prefs", "get", "ai.enabled"])
    assert p.returncode == 0 and p.stdout == "false\n"
    assert ENABLE in p.stderr


def test_model_management_while_disabled_never_imports_onnxruntime(tmp_path, server):
    pkg = make_package(tmp_path / "denoise-nafnet.dtmodel", "denoise-nafnet", "denoise")
    server.assets["denoise-nind.dtmodel"] = make_package(
        tmp_path / "pub" / "denoise-nind.dtmodel", "denoise-nind", "denoise").read_bytes()
    commands = [["ai", "models", "list"], ["ai", "models", "info", "denoise-nind"],
                ["ai", "models", "install", str(pkg)], ["ai", "models", "download", "denoise-nind"],
                ["ai", "models", "activate", "denoise-nafnet"], ["ai", "models", "delete", "denoise-nafnet"],
                ["ai", "models", "deactivate", "mask"], ["ai", "status"], ["prefs", "list"],
                ["prefs", "get", "ai.enabled"]]
    result, out, err = cli_session(commands)
    assert result == {"rcs": [0] * len(commands), "ort_loaded": False}
    # every ai command said how to switch AI on
    assert err.count(f"AI is disabled; enable it with: {ENABLE}") == 9
    assert "installed denoise-nafnet (denoise)" in out
    assert "denoise-nind: installed" in out
    assert [m.id for m in registry.installed_models()] == ["denoise-nind"]
    assert prefs.get("ai.models.active.mask") == "none"


def test_inference_commands_refuse_while_disabled():
    _one_error_line(cli(["ai", "providers"]), 5, f"AI is disabled; enable it with: {ENABLE}")


def test_without_onnxruntime(tmp_path):
    pkg = make_package(tmp_path / "denoise-nind.dtmodel", "denoise-nind", "denoise")
    p = cli(["prefs", "get", "ai.enabled"], block_ort=True)
    assert p.returncode == 0 and p.stdout == "false\n"
    assert INSTALL in p.stderr
    _one_error_line(cli(["prefs", "set", "ai.enabled", "true"], block_ort=True), 5, INSTALL)
    assert prefs.get("ai.enabled") is False
    # model management works
    result, out, err = cli_session([["ai", "models", "install", str(pkg)], ["ai", "models", "list"],
                                    ["ai", "models", "activate", "denoise-nind"]], block_ort=True)
    assert result == {"rcs": [0, 0, 0], "ort_loaded": False}
    assert INSTALL in err
    # even when the prefs file says true (AI uninstalled later), inference refuses with the advice
    prefs.put("ai.enabled", True)
    p = cli(["prefs", "get", "ai.enabled"], block_ort=True)
    assert p.stdout == "false\n" and INSTALL in p.stderr
    _one_error_line(cli(["ai", "models", "check", "denoise-nind"], block_ort=True), 5, INSTALL)
    _one_error_line(cli(["ai", "providers"], block_ort=True), 5, INSTALL)


def test_providers_and_check_when_enabled(tmp_path, enable_ai):
    p = cli(["ai", "providers"])
    assert p.returncode == 0, p.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in p.stdout.splitlines()[2:-1]}
    assert rows["cpu"] == ["yes", "yes"]
    assert set(rows) == {"cpu", "cuda", "tensorrt", "rocm", "migraphx", "openvino", "coreml", "directml"}
    assert "ai.provider = auto: sessions use" in p.stdout
    cli(["ai", "models", "install", str(make_package(tmp_path / "d.dtmodel", "denoise-nind", "denoise"))])
    p = cli(["ai", "models", "check", "denoise-nind"])
    assert p.returncode == 0 and "model.onnx: ok on" in p.stdout
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        prefs.put("ai.provider", "cuda")
        p = cli(["ai", "models", "check", "denoise-nind"])
        assert p.returncode == 0 and "model.onnx: ok on cpu" in p.stdout
        notices = [l for l in p.stderr.splitlines() if "notice" in l]
        assert len(notices) == 1 and "provider cuda" in notices[0] and "using cpu" in notices[0]


def test_prefs_commands():
    p = cli(["prefs", "set", "mask.object.morph_radius", "3"])
    assert p.returncode == 0 and p.stdout == "mask.object.morph_radius = 3\n"
    assert cli(["prefs", "get", "mask.object.morph_radius"]).stdout == "3\n"
    p = cli(["prefs", "list"])
    assert any(l.split() == ["mask.object.morph_radius", "=", "3"] for l in p.stdout.splitlines())
    assert any(l.split()[:4] == ["ai.enabled", "=", "false", "#"] for l in p.stdout.splitlines())
    assert cli(["prefs", "unset", "mask.object.morph_radius"]).returncode == 0
    assert cli(["prefs", "get", "mask.object.morph_radius"]).stdout == "1\n"
    assert cli(["prefs", "path"]).stdout.strip().endswith("pixelpipe/prefs.toml")
    _one_error_line(cli(["prefs", "set", "mask.object.morph_radius", "6"]), 3, "out of range 0..5")
    _one_error_line(cli(["prefs", "get", "ai.nope"]), 3, "unknown preference key 'ai.nope'")
    _one_error_line(cli(["prefs", "set", "ai.models.active.denoise", "upscale-bsrgan"]), 5,
                    "is not installed")


def test_debug_shows_traceback():
    p = cli(["--debug", "prefs", "get", "ai.nope"])
    assert p.returncode != 0 and "Traceback" in p.stderr and "PrefsError" in p.stderr


def test_models_list_info_and_errors(tmp_path):
    cli(["ai", "models", "install", str(make_package(tmp_path / "u.dtmodel", "upscale-bsrgan", "upscale"))])
    p = cli(["ai", "models", "list", "--json"])
    data = json.loads(p.stdout)
    rows = {r["id"]: r for r in data["models"]}
    assert rows["upscale-bsrgan"]["installed"] and rows["upscale-bsrgan"]["active"]
    assert not rows["denoise-nind"]["installed"] and rows["denoise-nind"]["downloadable"]
    assert not rows["denoise-ffdnet"]["downloadable"]
    assert data["slots"]["upscale"]["active"] == "upscale-bsrgan"
    assert data["slots"]["denoise"]["active"] is None
    p = cli(["ai", "models", "list"])
    lines = {l.split()[0]: l for l in p.stdout.splitlines() if l.strip()}
    assert "active" in lines["upscale-bsrgan"] and "available" in lines["denoise-nind"]
    assert "build locally" in lines["upscale-rlfn"]
    p = cli(["ai", "models", "info", "mask-object-sam21-small"])
    assert p.returncode == 0
    for text in ("licence:", "Apache-2.0", "training data:", "SA-1B", "OSAID v1.0:", "MOF class:",
                 "source:", "installed:", "no"):
        assert text in p.stdout
    p = cli(["ai", "models", "info", "upscale-bsrgan"])
    assert "model_x2.onnx [x2] input float32" in p.stdout and "active:" in p.stdout
    _one_error_line(cli(["ai", "models", "info", "nope"]), 5, "unknown model 'nope'")
    _one_error_line(cli(["ai", "models", "activate", "denoise-nind"]), 5,
                    "not installed; download it with: pixelpipe ai models download denoise-nind")
    _one_error_line(cli(["ai", "models", "delete", "denoise-nind"]), 5, "not installed")
    _one_error_line(cli(["ai", "models", "download", "upscale-rlfn"]), 5,
                    "run 'python tools/build_models.py upscale-rlfn'")
    _one_error_line(cli(["ai", "models", "install", str(tmp_path / "missing.dtmodel")]), 5,
                    "package not found")
    bad = make_package(tmp_path / "bad.dtmodel", "denoise-nind", "denoise",
                       files={"model.onnx": box_blur(channels=1)})
    _one_error_line(cli(["ai", "models", "install", str(bad)]), 5, "does not fit task denoise")
    p = cli(["ai", "models", "delete", "upscale-bsrgan"])
    assert p.returncode == 0 and "upscale: no active model now" in p.stdout
    assert prefs.get("ai.models.active.upscale") is None


def test_download_commands(tmp_path, server):
    for mid, task in (("denoise-nind", "denoise"), ("upscale-bsrgan", "upscale"),
                      ("rawdenoise-nind", "rawdenoise")):
        server.assets[f"{mid}.dtmodel"] = make_package(tmp_path / "pub" / f"{mid}.dtmodel", mid,
                                                       task).read_bytes()
    server.assets["denoise-nafnet.dtmodel"] = make_package(
        tmp_path / "pub" / "nafnet.dtmodel", "denoise-nafnet", "denoise").read_bytes()
    server.modes["denoise-nafnet.dtmodel"] = "corrupt"
    p = cli(["ai", "models", "download", "upscale-bsrgan"])
    assert p.returncode == 0 and "upscale-bsrgan: installed" in p.stdout
    p = cli(["ai", "models", "download-defaults"])
    # mask-object-sam21-small is not published on this server: reported, the others installed
    _one_error_line(p, 5, "1 of 4 downloads failed: mask-object-sam21-small")
    assert "upscale-bsrgan: already installed" in p.stdout and "rawdenoise-nind: installed" in p.stdout
    p = cli(["ai", "models", "download-all"])
    assert "denoise-ffdnet: skipped (not published; build it with: python tools/build_models.py" in p.stdout
    assert "denoise-nafnet: failed: checksum mismatch" in p.stdout
    assert p.returncode == 5
    assert sorted(m.id for m in registry.installed_models()) == ["denoise-nind", "rawdenoise-nind",
                                                                  "upscale-bsrgan"]


def test_no_network_outside_downloads(tmp_path, monkeypatch):
    """list/info/install/activate/delete/status/prefs never open a socket."""
    from pixelpipe.cli_ai import main

    def refuse(*a, **k):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pkg = make_package(tmp_path / "d.dtmodel", "denoise-nind", "denoise")
    for argv in (["ai", "models", "list"], ["ai", "models", "info", "denoise-nind"],
                 ["ai", "models", "install", str(pkg)], ["ai", "models", "activate", "denoise-nind"],
                 ["ai", "status"], ["prefs", "list"], ["ai", "models", "delete", "denoise-nind"]):
        assert main(argv) == 0, argv


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    from pixelpipe.ai import download
    from pixelpipe.cli_ai import main

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "download_many", interrupted)
    assert main(["ai", "models", "download", "denoise-nind"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pixelpipe: interrupted;") and "resumes" in err[-1]


def test_install_shows_config_warnings(tmp_path):
    from aitest_helpers import config

    cfg = config("denoise-nind", "denoise", colour="blue")
    p = cli(["ai", "models", "install", str(make_package(tmp_path / "d.dtmodel", "denoise-nind",
                                                         "denoise", cfg=cfg))])
    assert p.returncode == 0 and "unknown key(s) ignored: colour" in p.stderr
    assert "unknown key(s) ignored: colour" in cli(["ai", "models", "info", "denoise-nind"]).stdout
