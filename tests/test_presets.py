"""Presets and styles (round trips, auto-apply matching, bad input), the workflows on real raws, the CLI."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from helpers import raw_file
from helpers import raw_image
from pixelpipe import presets as P
from pixelpipe.errors import PixelpipeError
from pixelpipe.pipe.history import Edit

WORKFLOWS = ["scene-referred-sigmoid", "scene-referred-filmic", "scene-referred-agx", "display-referred", "none"]
BAYER_RAWS = ["canon_550d_magiclantern_colorchart.dng", "canon_eos_d30.crw", "kodak_dc50.kdc",
              "gopro_hero6_black_gpr2dng.dng"]


def cam(maker="Canon", model="Canon EOS 5D Mark II", iso=200.0, lens="EF24-70mm f/2.8L", raw=True):
    img = raw_image(np.zeros((8, 8)))
    if not raw:
        img.kind = "rgb"
        img.data = np.zeros((3, 8, 8), np.float32)
    img.exif.update({"maker": maker, "model": model, "camera_maker": maker, "camera_model": model, "iso": iso,
                     "lens": lens})
    return img


# ---------------------------------------------------------------- matching
@pytest.mark.parametrize("pattern,value,ok", [("Canon", "Canon", True), ("NIKON", "Nikon Corporation", True),
                                              ("EOS 5D Mark%", "Canon EOS 5D Mark III", True),
                                              ("%D____%", "NIKON D7000", True), ("%D____%", "NIKON D90", False),
                                              ("", None, True), ("Sony", None, False), ("a.b", "axb", False)])
def test_like_patterns(pattern, value, ok):
    assert P.like(pattern, value) is ok


def test_builtin_basecurve_per_maker_and_most_specific_wins():
    e = Edit.default_for(cam(model="Canon EOS 5D Mark II"), "display-referred")
    assert e.get("basecurve").params.nodes[1] == [0.02621, 0.029677]  # "canon eos like alternate"
    e = Edit.default_for(cam(model="Canon EOS 550D"), "display-referred")
    assert e.get("basecurve").params.nodes[1] == [0.028226, 0.029677]  # "canon eos like"
    e = Edit.default_for(cam(maker="GoPro", model="HERO6 Black"), "display-referred")
    assert e.get("basecurve").params.nodes[1] == [0.005, 0.0025]  # "neutral"
    e = Edit.default_for(cam(maker="NIKON CORPORATION", model="NIKON D7000"), "display-referred")
    assert e.get("basecurve").params.nodes[1] == [0.012097, 0.007322]  # "nikon like alternate"
    # base curves belong to the display-referred workflow only, and to raws only
    assert Edit.default_for(cam(), "scene-referred-filmic").find("basecurve") is None
    assert Edit.default_for(cam(raw=False), "display-referred").find("basecurve") is None


def test_user_auto_preset_matching_by_maker_model_lens_iso_format():
    P.save_preset(P.Preset("exposure", "canon high iso", {"exposure": 1.3}, auto_apply=True,
                           match=P.Match(maker="canon", lens="24-70", iso_min=800, formats=("raw",))))
    assert Edit.default_for(cam(iso=1600), "scene-referred").get("exposure").params.exposure == 1.3
    for img in (cam(iso=400), cam(lens="EF50mm f/1.8"), cam(maker="NIKON"), cam(iso=1600, raw=False)):
        inst = Edit.default_for(img, "scene-referred").find("exposure")
        assert inst is None or inst.params is None or inst.params.exposure != 1.3


def test_user_preset_beats_builtin_and_workflow_filter():
    P.save_preset(P.Preset("basecurve", "my canon", {"nodes": [[0, 0], [0.5, 0.7], [1, 1]]}, auto_apply=True,
                           match=P.Match(maker="Canon"), workflows=["display-referred"]))
    e = Edit.default_for(cam(), "display-referred")
    assert e.get("basecurve").params.nodes == [[0.0, 0.0], [0.5, 0.7], [1.0, 1.0]]
    P.save_preset(P.Preset("sigmoid", "punchy", {"middle_grey_contrast": 2.0}, auto_apply=True,
                           workflows=["scene-referred"]))  # an alias is understood
    assert Edit.default_for(cam(), "scene-referred-sigmoid").get("sigmoid").params.middle_grey_contrast == 2.0
    assert Edit.default_for(cam(), "scene-referred-filmic").find("sigmoid") is None


# ---------------------------------------------------------------- round trips
def test_preset_round_trip_apply_and_delete(tmp_path):
    img = cam()
    edit = Edit.default_for(img, "scene-referred-filmic")
    edit.set_params("filmicrgb", img, contrast=1.4, version="v7")
    pre = P.preset_from_edit(edit, "filmicrgb", "my look / v7", description="test", image=img)
    path = P.save_preset(pre)
    assert path.parent == P.presets_dir() / "filmicrgb" and path.exists()
    got = P.get_preset("filmicrgb", "my look / v7")
    assert got.params == pre.params and got.description == "test" and not got.builtin
    other = Edit.default_for(img, "scene-referred-filmic")
    inst = P.apply_preset(other, img, "filmicrgb", "my look / v7")
    assert inst.params.contrast == 1.4 and inst.params.version == "v7"
    assert any(p.name == "my look / v7" for p in P.list_presets("filmicrgb"))
    with pytest.raises(P.PresetError, match="exists"):
        P.save_preset(pre)
    P.save_preset(pre, overwrite=True)
    P.delete_preset("filmicrgb", "my look / v7")
    with pytest.raises(P.PresetError, match="unknown preset 'my look / v7' for module filmicrgb"):
        P.get_preset("filmicrgb", "my look / v7")


def test_builtin_presets_apply():
    img = cam()
    edit = Edit.default_for(img, "scene-referred-agx")
    P.apply_preset(edit, img, "agx", "blender-like|punchy")
    p = edit.get("agx").params
    assert p.look_saturation == pytest.approx(1.4) and p.curve_gamma == 2.4
    with pytest.raises(P.PresetError, match="built-in"):
        P.save_preset(P.Preset("agx", "blender-like|punchy", {}))
    with pytest.raises(P.PresetError, match="built-in"):
        P.delete_preset("agx", "blender-like|punchy")


def test_style_round_trip_with_instances_enabled_state_and_blend():
    img = cam()
    edit = Edit.default_for(img, "scene-referred-sigmoid")
    edit.set_params("sigmoid", img, middle_grey_contrast=1.9)
    edit.set_params("exposure", img, exposure=1.1)
    second = edit.add_instance("exposure")
    second.params = type(edit.get("exposure").params)(exposure=-0.5)
    second.enabled = False
    second.blend = {"mode": "normal", "opacity": 50}
    style = P.style_from_edit(edit, "my style", ops=["sigmoid", "exposure", "exposure#1"], image=img)
    P.save_style(style)
    got = P.get_style("my style")
    assert [(i.op, i.instance, i.enabled) for i in got.items] == [("exposure", 0, True), ("sigmoid", 0, True),
                                                                  ("exposure", 1, False)]
    assert got.items[2].blend == {"mode": "normal", "opacity": 50}
    fresh = Edit.default_for(img, "scene-referred-sigmoid")
    P.apply_style(fresh, img, "my style")
    assert fresh.get("sigmoid").params.middle_grey_contrast == 1.9
    assert fresh.get("exposure").params.exposure == 1.1
    inst1 = fresh.get("exposure#1")
    assert not inst1.enabled and inst1.params.exposure == -0.5 and inst1.blend["opacity"] == 50
    assert ("exposure", 1) in fresh.order
    assert any(s.name == "my style" for s in P.list_styles())
    P.delete_style("my style")
    with pytest.raises(P.PresetError, match="unknown style 'my style'"):
        P.get_style("my style")


def test_builtin_styles_switch_tone_mapper():
    img = cam()
    edit = Edit.default_for(img, "scene-referred-sigmoid")
    P.apply_style(edit, img, "filmic v7")
    assert edit.get("filmicrgb").enabled and edit.get("filmicrgb").params.version == "v7"
    assert not edit.get("sigmoid").enabled


def test_style_with_a_module_this_build_lacks_is_applied_with_a_notice():
    P.save_style(P.Style("future", [P.StyleItem("no_such_module", params={"x": 1}),
                                    P.StyleItem("exposure", params={"exposure": 0.3})]))
    img = cam()
    edit = Edit.default_for(img, "scene-referred")
    P.apply_style(edit, img, "future")
    assert edit.get("exposure").params.exposure == 0.3
    assert any("no_such_module" in n for n in edit.notices)


# ---------------------------------------------------------------- bad input
def test_unknown_style_is_a_clear_error():
    with pytest.raises(PixelpipeError, match="unknown style 'nope'"):
        P.apply_style(Edit.default_for(cam()), cam(), "nope")


def test_corrupt_style_file_names_the_file():
    P.styles_dir().mkdir(parents=True)
    bad = P.styles_dir() / "broken.json"
    bad.write_text("{ not json")
    with pytest.raises(P.PresetError) as e:
        P.get_style("broken")
    assert str(bad) in str(e.value) and "JSON" in str(e.value)
    bad.write_text(json.dumps({"format": "pixelpipe-style", "version": 1, "name": "broken", "items": "x"}))
    with pytest.raises(P.PresetError, match="items"):
        P.get_style("broken")
    errors: list[str] = []
    P.list_styles(errors)  # listing reports it and goes on
    assert errors and str(bad) in errors[0]


def test_invalid_params_name_module_and_field():
    with pytest.raises(P.PresetError, match="sigmoid.*middle_grey_contrast"):
        P.save_preset(P.Preset("sigmoid", "bad", {"middle_grey_contrast": 50.0}))
    P.save_style(P.Style("bad style", [P.StyleItem("exposure", params={"exposure": 1.0})]))
    f = P.styles_dir() / P._file_name("bad style")
    d = json.loads(f.read_text())
    d["items"][0]["params"] = {"exposure": 99.0}
    f.write_text(json.dumps(d))
    edit = Edit.default_for(cam())
    with pytest.raises(P.PresetError, match="bad style.*exposure.*99"):
        P.apply_style(edit, cam(), "bad style")


def test_names_cannot_escape_the_folder():
    p = P.save_preset(P.Preset("exposure", "../../evil", {"exposure": 0.5}))
    assert p.parent == P.presets_dir() / "exposure"
    with pytest.raises(P.PresetError, match="module name"):
        P.save_preset(P.Preset("../x", "n", {}))


# ---------------------------------------------------------------- workflows on real raws
@pytest.mark.realdata
@pytest.mark.parametrize("name", BAYER_RAWS)
def test_every_workflow_looks_right_on_real_raws(name):
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.pipeline import Pipe

    img = load(raw_file(name))
    for wf in WORKFLOWS:
        edit = Edit.default_for(img, wf)
        out = Pipe(img, edit).render(width=320)
        clipped = (out >= 0.999).all(axis=0).mean()
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, wf
        assert 0.1 < out.mean() < 0.8 and out.std() > 0.04, (wf, out.mean())
        # the tone mappers keep highlights below white (only clipped sensor data may reach it)
        assert clipped < (0.02 if wf.startswith("scene") else 0.06), (wf, clipped)


@pytest.mark.realdata
def test_grey_stays_grey_in_every_workflow(tmp_path):
    from pixelpipe.io.decode import load
    from pixelpipe.io.icc import colour_module
    from pixelpipe.io.sample import make_sample_dng
    from pixelpipe.pipe.pipeline import Pipe

    colour = colour_module()
    img = load(make_sample_dng(tmp_path / "s.dng", 600, 400))
    for wf in WORKFLOWS:
        out = Pipe(img, Edit.default_for(img, wf)).render().transpose(1, 2, 0)
        h, w = out.shape[:2]
        x0, x1, y0, y1 = 0.03 * w, 0.60 * w, 0.04 * h, 0.64 * h
        pw, ph = (x1 - x0) / 6, (y1 - y0) / 4
        for col in range(1, 5):  # the ColorChecker greys 8 .. 3.5
            cx, cy = int(x0 + (col + 0.5) * pw), int(y0 + 3.5 * ph)
            patch = out[cy - 3:cy + 3, cx - 3:cx + 3].reshape(-1, 3).mean(0)
            lab = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(patch))
            assert math.hypot(lab[1], lab[2]) < 2.5, (wf, col, lab)


# ---------------------------------------------------------------- CLI
def _cli(argv):
    from pixelpipe.cli_presets import register

    ap = argparse.ArgumentParser(prog="pixelpipe")
    register(ap.add_subparsers(dest="cmd", required=True))
    a = ap.parse_args(argv)
    return a.func(a)


@pytest.mark.realdata
def test_cli_style_and_preset_commands(tmp_path, capsys):
    import shutil

    src = tmp_path / "chart.dng"
    shutil.copy(raw_file("canon_550d_magiclantern_colorchart.dng"), src)
    assert _cli(["style", "save", "mine", str(src), "--modules", "exposure,sigmoid"]) == 0
    assert _cli(["style", "list"]) == 0
    out = capsys.readouterr().out
    assert "mine: exposure, sigmoid" in out and "filmic v7 (built-in)" in out
    assert _cli(["style", "show", "mine"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "mine"
    assert _cli(["preset", "save", "sigmoid", "soft", str(src), "--auto-apply", "--maker", "Canon"]) == 0
    assert _cli(["preset", "list", "--module", "sigmoid"]) == 0
    assert "sigmoid: soft (auto-apply for maker='Canon')" in capsys.readouterr().out
    assert _cli(["preset", "apply", str(src), "agx", "smooth|base"]) == 0
    side = json.loads((tmp_path / "chart.dng.pixelpipe.json").read_text())
    agx = next(m for m in side["modules"] if m["op"] == "agx")
    assert agx["enabled"] and agx["params"]["base_primaries"] == "working"
    assert _cli(["style", "delete", "mine"]) == 0
    with pytest.raises(P.PresetError, match="unknown user style"):
        _cli(["style", "delete", "mine"])
