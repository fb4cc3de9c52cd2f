"""darktable's export variables and presets/output names (no image processing)."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from pixelpipe.batch import variables as V
from pixelpipe.batch.outputs import make_presets, output_mode, plan_outputs, resolve
from pixelpipe.errors import OutputError


def ctx(**kw):
    base = dict(path="/photos/2024/IMG_0042.CR2", sequence=7, now=dt.datetime(2025, 3, 9, 14, 5, 6, 789000),
                exif={"datetime": "2016:01:01 23:07:27", "camera_maker": "GoPro", "camera_model": "HERO6 Black",
                      "maker": "GoPro Inc.", "iso": 100.0, "exposure_time": 0.0021978, "fnumber": 2.8,
                      "focal_length": 3.0, "exposure_bias": 0.0, "lens": "Fish/eye"},
                sensor_size=(4000, 3000), crop_size=(3990, 2990), export_size=(2048, 1535))
    base.update(kw)
    return V.Context(**base)


@pytest.mark.parametrize("pattern,expected", [
    ("$(FILE_NAME)", "IMG_0042"),
    ("$(FILE.NAME)", "IMG_0042"),
    ("$(FILE_FOLDER)/out/$(FILE_NAME)", "/photos/2024/out/IMG_0042"),
    ("$(FILE.EXTENSION)", "CR2"),
    ("$(ROLL.NAME)", "2024"),
    ("$(SEQUENCE)", "0007"),
    ("$(SEQUENCE[2,10])", "16"),
    ("$(SEQUENCE3)", "007"),
    ("$(EXIF_YEAR)-$(EXIF_MONTH)-$(EXIF_DAY)_$(EXIF_HOUR)$(EXIF_MINUTE)$(EXIF_SECOND)", "2016-01-01_230727"),
    ("$(EXIF.YEAR.SHORT)$(EXIF.MONTH.SHORT)", "16Jan"),
    ("$(EXIF_DATE)", "2016:01:01 23:07:27"),
    ("$(YEAR)$(MONTH)$(DAY)-$(HOUR)$(MINUTE)$(SECOND).$(MSEC)", "20250309-140506.789"),
    ("$(MAKER) $(MODEL) ISO$(EXIF.ISO) f$(EXIF.APERTURE) $(EXIF.FOCAL.LENGTH)mm", "GoPro HERO6 Black ISO100 f2.8 3mm"),
    ("$(EXIF.EXPOSURE)", "1_455"),
    ("$(EXIF.EXPOSURE.BIAS)", "+0.00"),
    ("$(LENS)", "Fish_eye"),  # a "/" in a value never makes a folder
    ("$(WIDTH.EXPORT)x$(HEIGHT.EXPORT) $(WIDTH.CROP) $(WIDTH.SENSOR) $(MAX_WIDTH)", "2048x1535 3990 4000 0"),
    ("$(FILE.NAME:4)", "0042"),
    ("$(FILE.NAME:0:3)", "IMG"),
    ("$(FILE.NAME:-2)", "42"),
    ("$(FILE.NAME#IMG_)", "0042"),
    ("$(FILE.NAME%42)", "IMG_00"),
    ("$(FILE.NAME/IMG_/photo-)", "photo-0042"),
    ("$(FILE.NAME//0/o)", "IMG_oo42"),
    ("$(MODEL^^)", "HERO6 BLACK"),
    ("$(MODEL,,)", "hero6 black"),
    ("$(FILE.NAME,)", "iMG_0042"),
    ("$(VERSION.IF_MULTI-none)", "none"),
    ("$(MAKER+has maker)", "has maker"),
    ("$(LENS-$(MODEL))", "Fish_eye"),
    ("a)b", "a)b"),
])
def test_darktable_variables(pattern, expected):
    assert V.expand(pattern, ctx()) == expected


def test_missing_exif_gives_empty_and_defaults_work():
    c = ctx(exif={})
    assert V.expand("$(EXIF.YEAR-nodate)/$(LENS-nolens)", c) == "nodate/nolens"


@pytest.mark.parametrize("bad", ["$(FILE_NAM)", "$(NOPE)", "$(FILE.NAME", "$(FILE.NAME:x)", "$(MAKERX)"])
def test_unknown_variables_and_syntax_errors_are_refused(bad):
    with pytest.raises(OutputError):
        V.variables_in(bad)


def test_which_patterns_need_the_image():
    assert not V.uses_image("out/$(FILE_FOLDER)/$(FILE_NAME)_$(SEQUENCE)")
    assert V.uses_image("out/$(EXIF.YEAR)/$(FILE_NAME)")
    assert V.uses_image("$(FILE_NAME)_$(WIDTH.EXPORT)")


def test_presets_builtin_options_and_cli_defaults(tmp_path):
    ps = make_presets(["full", "web:quality=70,suffix=_w", "tiny:width=64,format=png,bpp=16"], [],
                      {"hq": True, "width": None})
    assert [p.name for p in ps] == ["full", "web", "tiny"]
    assert ps[1].width == 2048 and ps[1].quality == 70 and ps[1].suffix == "_w"
    assert ps[2].format == "png" and ps[2].bpp == 16 and ps[2].width == 64
    assert all(p.hq for p in ps)  # a command-line value fills what presets leave unset
    f = tmp_path / "p.toml"
    f.write_text('[preset.big]\nformat = "tif"\nbpp = 16\n\n[preset.small]\nwidth = 300\n'
                 'pattern = "small/$(FILE.NAME)_$(SEQUENCE[3,1])"\n')
    ps = make_presets([], [str(f)], {})
    assert [(p.name, p.format, p.bpp) for p in ps] == [("big", "tif", 16), ("small", "jpg", 8)]
    for bad in (["nope"], ["x:colour=red"], ["x:width=wide"], ["full", "full"]):
        with pytest.raises(OutputError):
            make_presets(bad, [], {})
    with pytest.raises(OutputError):
        plan_outputs("folder", "out", make_presets(["x:format=jpg,bpp=16"], [], {}), "/")


def test_output_names_folder_pattern_single(tmp_path):
    cwd = str(tmp_path)
    assert output_mode(["a.dng"], "x.jpg", cwd) == "single"
    assert output_mode(["a.dng", "b.dng"], "out", cwd) == "folder"
    assert output_mode(["a.dng"], "out/$(FILE_NAME)", cwd) == "pattern"
    with pytest.raises(OutputError, match="folder"):
        output_mode(["a.dng", "b.dng"], "x.jpg", cwd)
    # several presets into one folder: built-in suffixes keep them apart, else one subfolder each
    ps = plan_outputs("folder", "out", make_presets(["full", "web", "a:width=10", "b:width=20"], [], {}), cwd)
    c = V.Context(path=os.path.join(cwd, "in", "IMG_1.dng"), subfolder="day1")
    names = [resolve(p, c, cwd).display for p in ps]
    assert names == ["out/full/day1/IMG_1.jpg", "out/day1/IMG_1_web.jpg", "out/a/day1/IMG_1.jpg",
                     "out/b/day1/IMG_1.jpg"]
    # a pattern with an extension gives the default format
    ps = plan_outputs("pattern", "o/$(FILE_NAME)-$(SEQUENCE).png", make_presets([], [], {}), cwd)
    assert resolve(ps[0], V.Context(path="/x/a.dng", sequence=3), cwd).display == "o/a-0003.png"
    with pytest.raises(OutputError, match="same"):
        plan_outputs("pattern", "o/$(FILE_NAME)", make_presets(["a:width=1", "b:width=2"], [], {}), cwd)
