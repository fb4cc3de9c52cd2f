"""The pixelpipe command: exports, order verbs, sidecars, and bad input (one clear line, no traceback)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import raw_file

CHART = "canon_550d_magiclantern_colorchart.dng"


def run(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "pixelpipe.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def one_clean_error(r, *words):
    assert r.returncode != 0
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith("pixelpipe: notice")]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("pixelpipe: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture
def chart(tmp_path):
    """A private copy of a real raw, so sidecars written beside it stay in tmp."""
    dst = tmp_path / CHART
    dst.write_bytes(raw_file(CHART).read_bytes())
    return dst


def test_export_jpeg_png_tiff_with_icc_and_sizes(chart, tmp_path):
    for name, bpp in (("a.jpg", 8), ("b.png", 16), ("c.tif", 16), ("d.tif", 32)):
        r = run("export", chart, tmp_path / name, "--width", "400", "--bpp", str(bpp))
        assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "a.jpg") as im:
        assert im.size[0] == 400 and im.info.get("icc_profile")
    import tifffile

    with tifffile.TiffFile(tmp_path / "d.tif") as t:
        page = t.pages[0]
        assert page.dtype == np.float32 and page.shape[1] == 400
        assert 34675 in page.tags  # ICC profile
    with tifffile.TiffFile(tmp_path / "c.tif") as t:
        assert t.pages[0].dtype == np.uint16


def test_existing_output_is_kept_unless_overwrite(chart, tmp_path):
    out = tmp_path / "o.jpg"
    out.write_bytes(b"precious")
    one_clean_error(run("export", chart, out, "--width", "100"), str(out), "--overwrite")
    assert out.read_bytes() == b"precious"
    assert run("export", chart, out, "--width", "100", "--overwrite").returncode == 0
    assert out.read_bytes()[:2] == b"\xff\xd8"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


@pytest.mark.parametrize("content,word", [(b"", "empty"), (b"hello, not an image\n" * 10, None),
                                          ("truncated", None)])
def test_bad_inputs_give_one_line(tmp_path, content, word):
    bad = tmp_path / "bad.dng"
    if content == "truncated":
        bad.write_bytes(raw_file(CHART).read_bytes()[:60000])
    else:
        bad.write_bytes(content)
    r = run("export", bad, tmp_path / "x.jpg")
    one_clean_error(r, str(bad))
    assert not (tmp_path / "x.jpg").exists()


def test_missing_file_unsupported_cfa_and_gpr(tmp_path):
    one_clean_error(run("export", tmp_path / "nope.dng", tmp_path / "x.jpg"), "nope.dng")
    # a 2x2 CFA without blue: the DNG is valid and LibRaw reads it, demosaic refuses it by name
    import numpy as np

    from pixelpipe.io.dng import write_cfa_dng

    mosaic = np.random.default_rng(0).uniform(0, 4000, (64, 96)).astype(np.uint16)
    no_blue = write_cfa_dng(tmp_path / "no_blue.dng", mosaic, np.array([[0, 1], [1, 0]]), 0, 4095, np.eye(3),
                            (1, 1, 1))
    r = run("export", no_blue, tmp_path / "x.jpg")
    one_clean_error(r, "no_blue.dng", "not supported", "Bayer pattern")
    assert not (tmp_path / "x.jpg").exists()
    one_clean_error(run("export", raw_file("gopro_hero7_black.gpr"), tmp_path / "x.jpg"), "unsupported format")


def test_debug_shows_the_traceback(tmp_path):
    r = run("--debug", "export", tmp_path / "nope.dng", tmp_path / "x.jpg")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bad_sidecar_values_are_named(chart, tmp_path):
    side = tmp_path / "edit.json"
    r = run("order", "move", chart, "exposure", "--after", "colorin", "--sidecar", side)
    assert r.returncode == 0, r.stderr
    d = json.loads(side.read_text())
    for m in d["modules"]:
        if m["op"] == "exposure":
            m["params"]["exposure"] = 99
    side.write_text(json.dumps(d))
    one_clean_error(run("export", chart, tmp_path / "x.jpg", "--sidecar", side), "exposure", "outside")
    for m in d["modules"]:
        if m["op"] == "exposure":
            m["params"]["exposure"] = 1.0
    d["modules"].append({"op": "no_such_module", "params": {}})
    side.write_text(json.dumps(d))
    one_clean_error(run("export", chart, tmp_path / "x.jpg", "--sidecar", side), "no_such_module")
    side.write_text("{not json")
    one_clean_error(run("export", chart, tmp_path / "x.jpg", "--sidecar", side), "not valid JSON")


def test_order_verbs(chart, tmp_path):
    r = run("order", "show", chart)
    assert r.returncode == 0 and "# order: v50" in r.stdout and "* demosaic" in r.stdout
    one_clean_error(run("order", "move", chart, "demosaic", "--after", "colorin"), "demosaic", "colorin")
    assert not Path(str(chart) + ".pixelpipe.json").exists()  # refused move wrote nothing
    r = run("order", "move", chart, "exposure", "--after", "colorin")
    assert r.returncode == 0 and "custom" in r.stdout
    side = Path(str(chart) + ".pixelpipe.json")
    assert side.exists()
    r = run("order", "show", chart)
    lines = [l.split()[-1] for l in r.stdout.splitlines()[1:]]
    assert lines.index("exposure") == lines.index("colorin") + 1
    assert run("order", "save-preset", chart, "my order").returncode == 0
    assert "my order (user)" in run("order", "presets").stdout
    assert run("order", "check", chart).returncode == 0
    # export with the saved preset by name
    assert run("export", chart, tmp_path / "p.jpg", "--order", "my order", "--width", "200").returncode == 0


def test_sidecar_is_used_and_changes_the_result(chart, tmp_path):
    import pixelpipe

    photo = pixelpipe.open(chart)
    base = photo.render(width=200)
    photo.edit.set_params("exposure", photo.image, exposure=2.0)
    photo.save_edit()
    brighter = pixelpipe.open(chart).render(width=200)
    assert brighter.mean() > base.mean() + 0.05
    # the original raw is untouched and the sidecar sits beside it
    assert Path(str(chart) + ".pixelpipe.json").exists()
    assert chart.read_bytes() == raw_file(CHART).read_bytes()


def test_darktable_xmp_order_is_read_and_never_modified(chart, tmp_path):
    xmp = Path(str(chart) + ".xmp")
    xmp.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" '
        'darktable:xmp_version="5" darktable:iop_order_version="2"/></rdf:RDF></x:xmpmeta>\n')
    before = xmp.read_bytes()
    r = run("order", "show", chart)
    assert "# order: v30" in r.stdout, r.stdout + r.stderr
    assert run("export", chart, tmp_path / "x.jpg", "--width", "100").returncode == 0
    assert xmp.read_bytes() == before
    out = tmp_path / "new.xmp"
    assert run("order", "write-xmp", chart, "--out", out).returncode == 0
    assert 'iop_order_version="2"' in out.read_text() or "iop_order_version>2<" in out.read_text()


def test_batch_goes_on_past_a_bad_file(chart, tmp_path):
    bad = tmp_path / "broken.dng"
    bad.write_bytes(b"x" * 1000)
    outdir = tmp_path / "out"
    r = run("export", chart, bad, outdir, "--width", "100")
    assert r.returncode != 0
    assert (outdir / (chart.stem + ".jpg")).exists()
    assert "broken.dng" in r.stderr and "1 written, 1 failed" in r.stdout


def test_sample_command_writes_a_dng_that_exports(tmp_path):
    assert run("sample", tmp_path / "s.dng").returncode == 0
    r = run("export", tmp_path / "s.dng", tmp_path / "s.jpg")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "s.jpg") as im:
        assert im.size == (1200, 800)
    # a second time (the README's demo, run again): refused without --overwrite, replaced with it
    before = (tmp_path / "s.dng").stat().st_mtime_ns
    r = run("sample", tmp_path / "s.dng")
    assert r.returncode != 0 and "exists" in r.stderr and "s.dng" in r.stderr
    assert (tmp_path / "s.dng").stat().st_mtime_ns == before
    r = run("sample", tmp_path / "s.dng", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.dng").stat().st_mtime_ns != before


def test_chromatic_adaptation_choice(chart, tmp_path):
    """--chromatic-adaptation legacy: as-shot white balance, no color calibration; the same as the
    API's; a change of the choice makes an existing output out of date."""
    import pixelpipe
    from pixelpipe.errors import PixelpipeError

    import tifffile

    out = tmp_path / "ca.tif"
    r = run("export", chart, out, "--width", "300", "--bpp", "16", "--no-server", "--chromatic-adaptation", "legacy")
    assert r.returncode == 0, r.stderr
    legacy = tifffile.imread(out).astype(np.float64) / 65535
    photo = pixelpipe.open(chart, chromatic_adaptation="legacy")
    assert photo.edit.find("channelmixerrgb") is None
    assert photo.edit.find("temperature").params is None  # the module's default: as shot
    api = photo.render(width=300)
    assert api.shape == legacy.shape
    assert np.abs(api - legacy).max() < 2e-3
    modern_edit = pixelpipe.open(chart).edit  # the workflow's default is modern
    assert modern_edit.find("channelmixerrgb").enabled
    assert modern_edit.find("temperature").params.preset == "camera-reference"
    r = run("export", chart, out, "--width", "300", "--bpp", "16", "--no-server", "--overwrite",
            "--chromatic-adaptation", "modern")
    assert r.returncode == 0, r.stderr
    modern = tifffile.imread(out).astype(np.float64) / 65535
    assert np.abs(modern - legacy).mean() > 2e-3  # re-rendered with the other adaptation
    with pytest.raises(PixelpipeError, match="chromatic adaptation"):
        pixelpipe.open(chart, chromatic_adaptation="bradford")
