"""Preferences: opt-in default, typed values, validation, round trip through prefs.toml."""
from __future__ import annotations

import pytest

from pixelpipe import prefs, userdirs
from pixelpipe.prefs import PrefsError


def test_fresh_install_is_opt_in():
    assert not prefs.path().exists()
    assert prefs.get("ai.enabled") is False
    assert prefs.get("ai.provider") == "auto"
    assert prefs.get("ai.repository") == "darktable-org/darktable-ai"
    assert prefs.get("ai.compat_version") == "5.6.0"
    assert prefs.get("ai.api_base") == "https://api.github.com"
    assert prefs.get("ai.download_base") == "https://github.com"
    assert prefs.path() == userdirs.config_dir() / "prefs.toml"
    from pixelpipe.ai import enable

    assert enable.ai_enabled() is False


def test_round_trip_typed_values():
    assert prefs.put("ai.enabled", "true") is True
    assert prefs.put("ai.provider", "CUDA") == "cuda"
    assert prefs.put("mask.object.threshold", "0.25") == 0.25
    assert prefs.put("mask.object.morph_radius", "5") == 5
    assert prefs.put("mask.object.smoothing", 1.3) == 1.3
    assert prefs.put("mask.object.cleanup", "100") == 100
    assert prefs.put("mask.object.persist_model", "yes") is True
    assert prefs.put("mask.object.edge_refine", "0") == 0.0
    assert prefs.put("mask.object.refine_passes", "3") == 3
    assert prefs.put("ai.models.active.denoise", "denoise-nind") == "denoise-nind"
    assert prefs.put("ai.models.active.mask", "none") == "none"
    assert prefs.put("ai.tile_cache.denoise-nind.1.cpu", "1024") == 1024
    assert prefs.put("ai.repository", "me/my-models") == "me/my-models"
    assert prefs.put("ai.compat_version", "5.6.1") == "5.6.1"
    text = prefs.path().read_text()
    assert "[ai.tile_cache.denoise-nind.1]" in text
    assert prefs.get("ai.enabled") is True
    assert prefs.get("mask.object.threshold") == 0.25
    assert prefs.get("ai.tile_cache.denoise-nind.1.cpu") == 1024
    assert prefs.get("ai.models.active.denoise") == "denoise-nind"
    keys = {k: (v, s) for k, v, s in prefs.items()}
    assert keys["ai.enabled"] == (True, True)
    assert keys["ai.tile_cache.denoise-nind.1.cpu"] == (1024, True)
    assert keys["mask.object.threshold"] == (0.25, True)
    assert keys["ai.models_dir"] == ("", False)
    assert prefs.unset("ai.provider") is True
    assert prefs.get("ai.provider") == "auto"
    assert prefs.unset("ai.provider") is False


@pytest.mark.parametrize("key,value,why", [
    ("ai.enabled", "maybe", "true or false"),
    ("ai.provider", "tpu", "one of"),
    ("mask.object.morph_radius", "6", "out of range 0..5"),
    ("mask.object.morph_radius", "1.5", "integer"),
    ("mask.object.cleanup", "101", "out of range 0..100"),
    ("mask.object.smoothing", "1.4", "out of range 0..1.3"),
    ("mask.object.threshold", "nan", "finite"),
    ("ai.repository", "no-slash", "OWNER/NAME"),
    ("ai.compat_version", "5.6", "X.Y.Z"),
    ("ai.api_base", "ftp://x", "URL"),
    ("ai.models.active.denoise", "../etc", "model id"),
    ("ai.tile_cache.denoise-nind.1.cpu", "8", "out of range"),
])
def test_invalid_values_are_refused(key, value, why):
    with pytest.raises(PrefsError, match=why) as ei:
        prefs.put(key, value)
    assert key in str(ei.value)
    assert not prefs.path().exists()


@pytest.mark.parametrize("key", ["ai.enable", "foo", "ai.models.active.colorize",
                                 "ai.tile_cache.m.1.auto", "mask.object.model", "ai.tile_cache.a.b"])
def test_unknown_keys_are_refused(key):
    with pytest.raises(PrefsError, match="unknown preference key"):
        prefs.get(key)
    with pytest.raises(PrefsError, match="unknown preference key"):
        prefs.put(key, "1")


def test_bad_file_value_names_the_file():
    prefs.path().parent.mkdir(parents=True)
    prefs.path().write_text("[mask.object]\nmorph_radius = 9\n")
    with pytest.raises(PrefsError) as ei:
        prefs.get("mask.object.morph_radius")
    assert str(prefs.path()) in str(ei.value) and "morph_radius" in str(ei.value)


def test_bad_toml_is_a_clear_error():
    prefs.path().parent.mkdir(parents=True)
    prefs.path().write_text("ai = [\n")
    with pytest.raises(PrefsError, match="not valid TOML"):
        prefs.get("ai.enabled")


def test_unknown_key_in_file_warns_and_survives_rewrite(capsys):
    prefs.path().parent.mkdir(parents=True)
    prefs.path().write_text("[future]\nthing = 3\n")
    prefs.put("ai.enabled", True)
    assert "unknown preference key 'future.thing'" in capsys.readouterr().err
    assert "thing = 3" in prefs.path().read_text()
    assert prefs.get("ai.enabled") is True


def test_unset_matching():
    prefs.put("ai.tile_cache.a.1.cpu", 512)
    prefs.put("ai.tile_cache.a.2.cuda", 256)
    prefs.put("ai.tile_cache.b.1.cpu", 768)
    assert prefs.unset_matching(lambda k: k.startswith("ai.tile_cache.a.")) == 2
    assert prefs.get("ai.tile_cache.b.1.cpu") == 768
    assert prefs.get("ai.tile_cache.a.1.cpu") is None
