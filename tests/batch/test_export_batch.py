"""`pixelpipe export` on many files: folders, patterns, presets, up-to-date outputs, failures, Ctrl-C.

Real raws (copies of the small ones), real processes, small exports."""
from __future__ import annotations

import os
import re
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
XMP = ('<?xml version="1.0" encoding="UTF-8"?>\n'
       '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" '
       'darktable:xmp_version="5" darktable:iop_order_version="2"/></rdf:RDF></x:xmpmeta>\n')


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
    (src / "sub" / "b.dng.xmp").write_text(XMP)  # darktable's sidecar: read for the order, never an input
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
    # the batch's 8-bit JPEG (quantised in the pipe's last kernel) holds the API's float render,
    # rounded as the writers round, encoded alike: the same decoded pixels
    import io

    import pixelpipe
    from pixelpipe.batch.writer import jpeg_bytes

    u8 = np.floor(np.clip(pixelpipe.open(tree / "in" / "a.kdc").render(width=256), 0, 1) * 255 + 0.5)
    with Image.open(io.BytesIO(jpeg_bytes(u8.astype(np.uint8), quality=95, icc=None, exif=None,
                                          comment=None))) as im:
        want = np.asarray(im)
    with Image.open(tree / "out" / "a.jpg") as im:
        got = np.asarray(im)
    np.testing.assert_array_equal(got, want)
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
    (tree / "in" / "vc5.gpr").write_bytes(raw_file("gopro_hero7_black.gpr").read_bytes())
    r = run("export", "in", "out", "--width", "100", "-q", cwd=tree)
    assert r.returncode == 1
    assert "2 written, 2 failed" in r.stdout, r.stdout
    errors = [l for l in r.stderr.splitlines() if l.startswith("pixelpipe: error:")]
    assert len(errors) == 2 and "Traceback" not in r.stderr
    assert any("in/broken.dng:" in l for l in errors) and any("in/vc5.gpr:" in l and "unsupported" in l
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


def outputs(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpg")) if folder.exists() else []


def test_inputs_files_and_folders_include_exclude_recursion(tmp_path):
    kdc = raw_file(KODAK).read_bytes()
    for rel in ("a.kdc", "keep/b.kdc", "keep/deep/c.kdc", "rejects/d.kdc", "e.KDC"):
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_bytes(kdc)
    (tmp_path / "loose.kdc").write_bytes(kdc)
    (tmp_path / "loose.kdc.xmp").write_text(XMP)
    # folders and a file named directly; an exclude pattern on the path below the folder
    r = run("export", "in", "loose.kdc", "o1", "--width", "32", "-q", "--exclude", "rejects/*", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert outputs(tmp_path / "o1") == ["a.jpg", "e.jpg", "keep/b.jpg", "keep/deep/c.jpg", "loose.jpg"]
    # not recursive; an include pattern on the name is case-insensitive
    r = run("export", "in", "o2", "--width", "32", "-q", "--no-recursive", "--include", "*.kdc", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert outputs(tmp_path / "o2") == ["a.jpg", "e.jpg"]
    # an include pattern on the path, an exclude pattern on the name
    r = run("export", "in", "o3", "--width", "32", "-q", "--include", "keep/*", "--exclude", "c.*", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert outputs(tmp_path / "o3") == ["keep/b.jpg"]
    # a sidecar named as an input is skipped with a notice; a folder with nothing left is reported
    r = run("export", "loose.kdc.xmp", "in/rejects", "o4", "--width", "32", "-q", "--exclude", "d.kdc",
            cwd=tmp_path)
    assert "loose.kdc.xmp: a sidecar" in r.stderr and "in/rejects: no image files" in r.stderr, r.stderr
    assert outputs(tmp_path / "o4") == []


def test_pattern_with_file_folder_and_exif_date_parts(tmp_path):
    """The output beside each input ($(FILE_FOLDER)), named from the capture date, which is
    read here independently of pixelpipe (the DNG's EXIF DateTimeOriginal, through tifffile)."""
    import tifffile

    gopro = "gopro_hero6_black_gpr2dng.dng"
    for sub in ("day1", "day2"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        (tmp_path / "in" / sub / f"{sub}.dng").write_bytes(raw_file(gopro).read_bytes())
    with tifffile.TiffFile(raw_file(gopro)) as t:
        when = t.pages[0].tags["ExifTag"].value["DateTimeOriginal"]  # "YYYY:MM:DD HH:MM:SS"
    date, clock = when.split(" ")
    y, mo, d = date.split(":")
    h, mi, s = clock.split(":")
    pattern = ("$(FILE_FOLDER)/export/$(EXIF_YEAR)$(EXIF_MONTH)$(EXIF_DAY)-$(EXIF_HOUR)$(EXIF_MINUTE)"
               "$(EXIF_SECOND)_$(FILE_NAME)_$(SEQUENCE[2])_$(EXIF_DATE//:/-)")
    r = run("export", "in", pattern, "--width", "48", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for k, sub in enumerate(("day1", "day2")):
        name = f"{y}{mo}{d}-{h}{mi}{s}_{sub}_{k + 1:02d}_{y}-{mo}-{d} {h}-{mi}-{s}.jpg"
        assert [p.name for p in (tmp_path / "in" / sub / "export").iterdir()] == [name]
        check_jpeg(tmp_path / "in" / sub / "export" / name, 48)


def test_progress_bar_rate_and_time_left_and_quiet(tree):
    (tree / "in" / "c.kdc").write_bytes(raw_file(KODAK).read_bytes())
    bar = re.compile(r"\d+/3 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?(file/s|s/file)\]")  # done/total [spent<left, rate]
    r = run("export", "in", "o1", "--width", "32", "--progress", cwd=tree)
    assert r.returncode == 0 and bar.search(r.stderr), r.stderr
    assert "3 written, 0 failed" in r.stdout and "files/s" in r.stdout
    r = run("export", "in", "o2", "--width", "32", "-q", "--progress", cwd=tree)  # -q wins
    assert r.returncode == 0 and not bar.search(r.stderr) and "-> " not in r.stdout, r.stderr
    assert "3 written, 0 failed" in r.stdout
    r = run("export", "in", "o3", "--width", "32", cwd=tree)  # stderr is not a terminal: no bar
    assert r.returncode == 0 and not bar.search(r.stderr)
    assert len([l for l in r.stdout.splitlines() if " -> " in l]) == 3


def _vm_peak_wrapper(tmp: Path) -> Path:
    """``python WRAPPER ARGS``: the pixelpipe command, then its peak address space on stderr."""
    w = tmp / "vmpeak.py"
    w.write_text("import sys\nfrom pixelpipe.cli import main\nrc = main(sys.argv[1:])\n"
                 "peak = [l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1]\n"
                 "print('VMPEAK', peak, file=sys.stderr)\nsys.exit(rc)\n")
    return w


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_out_of_memory_is_reported_and_the_batch_goes_on(tmp_path):
    """A file that does not fit in memory fails with that reason; the others are written.

    The address space is limited to what exporting the small file alone needed plus 100 MB:
    the 12 MP file needs several 144 MB buffers, so it runs out there, and only there."""
    import resource

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.kdc").write_bytes(raw_file(KODAK).read_bytes())
    (tmp_path / "in" / "big.dng").write_bytes(raw_file("gopro_hero6_black_gpr2dng.dng").read_bytes())
    wrapper = _vm_peak_wrapper(tmp_path)
    e = env()
    e.update(HL_NUM_THREADS="2", MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    probe = [sys.executable, str(wrapper), "export", "in/a.kdc", "probe.jpg", "--width", "256", "-q"]
    r = subprocess.run(probe, capture_output=True, text=True, cwd=tmp_path, env=e, timeout=300)
    assert r.returncode == 0, r.stderr
    peak_kb = int(r.stderr.split("VMPEAK")[1].split()[0])
    limit = (peak_kb + 100 * 1024) * 1024

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, str(wrapper), "export", "in", "OUT", "--width", "256", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=e, timeout=300, preexec_fn=cap)
    assert r.returncode == 1, r.stderr
    assert "1 written, 1 failed" in r.stdout, r.stdout
    errors = [l for l in r.stderr.splitlines() if l.startswith("pixelpipe: error:")]
    assert len(errors) == 1 and errors[0].startswith("pixelpipe: error: in/big.dng:"), r.stderr
    assert "out of memory" in errors[0] or "MemoryError" in errors[0], errors[0]
    assert "Traceback" not in r.stderr
    assert outputs(tmp_path / "OUT") == ["a.jpg"] and dot_files(tmp_path / "OUT") == []
