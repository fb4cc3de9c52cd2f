"""`pixelpipe export` on many files: folders, patterns, presets, up-to-date outputs, failures, Ctrl-C.

Real raws (copies of the small ones), real processes, small exports."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import raw_file

CHART = "canon_550d_magiclantern_colorchart.dng"
KODAK = "kodak_dc50.kdc"


def env():
    e = dict(os.environ)
    e["PIXELPIPE_NO_SERVER"] = "1"
    e.pop("XDG_RUNTIME_DIR", None)
    return e


def run(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "pixelpipe.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env(), timeout=timeout)


def dot_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob(".*")]


def check_jpeg(path: Path, width: int | None = None) -> None:
    with Image.open(path) as im:
        im.load()  # the whole file decodes
        assert im.info.get("icc_profile"), path
        assert im.getexif().get(0x0112) == 1
        assert b"pixelpipe:recipe" in im.info.get("comment", b"")
        if width:
            assert im.size[0] == width, (path, im.size)


@pytest.fixture
def tree(tmp_path):
    """in/a.kdc, in/sub/b.dng, plus things a folder scan must leave out."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / ".hidden").mkdir()
    (src / "a.kdc").write_bytes(raw_file(KODAK).read_bytes())
    (src / "sub" / "b.dng").write_bytes(raw_file(CHART).read_bytes())
    (src / ".hidden" / "c.dng").write_bytes(raw_file(CHART).read_bytes())
    (src / "sub" / "b.dng.xmp").write_text(  # darktable's sidecar: read for the order, never an input
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" '
        'darktable:xmp_version="5" darktable:iop_order_version="2"/></rdf:RDF></x:xmpmeta>\n')
    (src / "notes.txt").write_text("not an image")
    return tmp_path


def test_folders_presets_and_patterns(tree):
    r = run("export", "in", "out", "--preset", "full:width=256", "--preset", "web:width=128", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert "4 written, 0 failed" in r.stdout, r.stdout
    got = sorted(str(p.relative_to(tree / "out")) for p in (tree / "out").rglob("*.jpg"))
    assert got == ["a.jpg", "a_web.jpg", "sub/b.jpg", "sub/b_web.jpg"]  # subfolders kept, hidden left out
    check_jpeg(tree / "out" / "sub" / "b.jpg", 256)
    check_jpeg(tree / "out" / "sub" / "b_web.jpg", 128)
    # a pattern with darktable variables, include filter, PNG by the pattern's extension
    r = run("export", "in", "pat/$(EXIF_YEAR-nodate)/$(MAKER)_$(FILE_NAME)_$(SEQUENCE).png", "--width", "64",
            "--include", "*.kdc", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert [str(p.relative_to(tree / "pat")) for p in (tree / "pat").rglob("*.png")] == ["1997/Kodak_a_0001.png"]
    # a TOML preset file with its own pattern, TIFF 16-bit
    (tree / "p.toml").write_text('[preset.t16]\nformat = "tif"\nbpp = 16\nwidth = 96\n'
                                 'pattern = "tif/$(FILE.NAME)_$(WIDTH.EXPORT)x$(HEIGHT.EXPORT)"\n')
    r = run("export", "in/sub/b.dng", "out2", "--presets", "p.toml", cwd=tree)
    assert r.returncode == 0, r.stderr
    import tifffile

    [t] = list((tree / "out2" / "tif").glob("*.tif"))
    with tifffile.TiffFile(t) as tf:
        page = tf.pages[0]
        assert page.dtype == np.uint16 and page.shape[1] == 96
        assert t.name == f"b_{page.shape[1]}x{page.shape[0]}.tif"
        assert "pixelpipe:recipe" in page.description
    assert dot_files(tree / "out") + dot_files(tree / "out2") + dot_files(tree / "pat") == []


def test_up_to_date_outputs_are_skipped_stale_ones_kept(tree):
    args = ("export", "in", "out", "--width", "200")
    assert run(*args, cwd=tree).returncode == 0
    a, b = tree / "out" / "a.jpg", tree / "out" / "sub" / "b.jpg"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (a, b)}
    r = run(*args, cwd=tree)
    assert r.returncode == 0 and "0 written, 0 failed, 2 skipped (up to date)" in r.stdout, r.stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (a, b)} == before
    # an edit beside b: its output is now stale, reported and left alone
    side = tree / "in" / "sub" / "b.dng.pixelpipe.json"
    assert run("order", "set", tree / "in" / "sub" / "b.dng", "v30", cwd=tree).returncode == 0
    assert side.exists()
    r = run(*args, cwd=tree)
    assert r.returncode == 1
    assert "1 skipped (up to date), 1 stale" in r.stdout, r.stdout
    assert "out/sub/b.jpg" in r.stderr and "--overwrite" in r.stderr
    assert b.read_bytes() == before[b][0]
    r = run(*args, "--overwrite", cwd=tree)
    assert r.returncode == 0 and "1 written, 0 failed, 1 skipped" in r.stdout, r.stdout
    assert b.read_bytes() != before[b][0] and a.read_bytes() == before[a][0]
    # other settings: every output is stale; a foreign file with the same name too
    r = run("export", "in", "out", "--width", "150", cwd=tree)
    assert r.returncode == 1 and "2 stale" in r.stdout
    assert dot_files(tree / "out") == []


def test_failures_are_reported_and_the_batch_goes_on(tree):
    (tree / "in" / "broken.dng").write_bytes(raw_file(CHART).read_bytes()[:60000])
    (tree / "in" / "cygm.crw").write_bytes(raw_file("canon_powershot_g1_cygm.crw").read_bytes())
    r = run("export", "in", "out", "--width", "100", "-q", cwd=tree)
    assert r.returncode == 1
    assert "2 written, 2 failed" in r.stdout, r.stdout
    errors = [l for l in r.stderr.splitlines() if l.startswith("pixelpipe: error:")]
    assert len(errors) == 2 and "Traceback" not in r.stderr
    assert any("in/broken.dng:" in l for l in errors) and any("in/cygm.crw:" in l and "not supported" in l
                                                                for l in errors)
    assert sorted(p.name for p in (tree / "out").rglob("*.jpg")) == ["a.jpg", "b.jpg"]


def test_two_inputs_for_one_output_are_refused_before_any_work(tree):
    (tree / "in" / "other").mkdir()
    (tree / "in" / "other" / "b.dng").write_bytes(raw_file(CHART).read_bytes())
    r = run("export", "in", "flat/$(FILE_NAME)", "--width", "64", cwd=tree)
    assert r.returncode == 4 and "$(SEQUENCE)" in r.stderr and "b.dng" in r.stderr
    assert not (tree / "flat").exists()


def test_single_file_form_and_style_errors(tree, tmp_path):
    out = tmp_path / "one.jpg"
    r = run("export", tree / "in" / "sub" / "b.dng", out, "--width", "120")
    assert r.returncode == 0 and out.exists()
    r = run("export", tree / "in" / "sub" / "b.dng", out, "--width", "120")
    assert r.returncode == 0 and "up to date" in r.stdout
    r = run("export", tree / "in" / "sub" / "b.dng", out, "--width", "121")
    assert r.returncode == 4 and "--overwrite" in r.stderr and str(out) in r.stderr
    r = run("export", tree / "in" / "sub" / "b.dng", tmp_path / "s.jpg", "--style", "no such style")
    lines = [l for l in r.stderr.splitlines() if not l.startswith("pixelpipe: notice")]
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("pixelpipe: error:"), r.stderr
    assert "style" in lines[0]
    r = run("export", tree / "in" / "sub" / "b.dng", tmp_path / "x.jpg", "--preset", "web")
    assert r.returncode == 4 and "--preset" in r.stderr


def test_ctrl_c_stops_cleanly_and_leaves_no_partial_outputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = raw_file(CHART).read_bytes()
    for i in range(16):
        (src / f"img{i:02d}.dng").write_bytes(data)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "pixelpipe.cli", "export", str(src), str(out), "--width", "400"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    t0 = time.monotonic()
    while not list(out.glob("*.jpg")) and time.monotonic() - t0 < 240 and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "interrupted" in stdout
    written = sorted(out.glob("*.jpg"))
    assert 1 <= len(written) < 16
    for f in written:
        check_jpeg(f, 400)
    assert dot_files(out) == []
    # the next run completes the batch: what was written is up to date
    r = run("export", src, out, "--width", "400", "-q")
    assert r.returncode == 0 and f"{16 - len(written)} written, 0 failed, {len(written)} skipped" in r.stdout
