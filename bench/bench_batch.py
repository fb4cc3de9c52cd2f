"""Batch export throughput: `pixelpipe export FOLDER OUT` against a darktable-cli loop.

N distinctly named hard links (or copies) of the 12 MP GoPro DNG go into a
temporary folder; every timed run starts with the outputs deleted. Measured,
in one run of this script (so both see the same machine):

* darktable-cli loop: one ``darktable-cli IN OUT.jpg`` process per file, as
  users script it (one config folder for the loop, ``--library :memory:``,
  JPEG quality as below), over the first ``--dt-subset`` files; the time per
  file is extrapolated to N (say so when quoting it). Skipped with
  ``--skip-peers`` (machines without darktable, e.g. the GPU host).
* pixelpipe, one process per file (``--pp-loop-subset`` files; start-up paid
  every time, like darktable-cli), when asked.
* ``pixelpipe export in out -q --jobs J --no-server`` for each J in
  ``--jobs`` (1 = this process; more = an embedded Dask LocalCluster);
* the same through a warm ``pixelpipe serve --jobs J`` worker (``--serve``);
* a second run over up-to-date outputs (everything skipped).

Full-size 8-bit JPEG, quality 95 by default (``--width`` fits both tools
into W x W instead). ``--device cuda|auto`` passes the device to pixelpipe.

    python bench/bench_batch.py --count 200 --dt-subset 20 --jobs 1,2 --serve --json bench/out/batch.json
    python bench/bench_batch.py --count 400 --jobs 1,8,16 --device cuda --skip-peers   # GPU host
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = len(os.sched_getaffinity(0))


def testdata_dir() -> Path:
    return Path(os.environ.get("PIXELPIPE_TESTDATA", ROOT.parent / "shared" / "data"))


def pixelpipe_exe() -> list[str]:
    exe = shutil.which("pixelpipe", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "pixelpipe.cli"]


def cpu_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle, total


def run_once(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """wall s, CPU s of the process tree (reaped descendants), rc, and `other`: the share
    of the machine other processes used meanwhile."""
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        b0, _ = cpu_ticks()
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se, cwd=cwd, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        b1, _ = cpu_ticks()
        cpu = ru.ru_utime + ru.ru_stime
        so.seek(0)
        se.seek(0)
        return {"rc": os.waitstatus_to_exitcode(status), "wall": wall, "cpu": cpu,
                "busy_cpu": (b1 - b0) / CLK_TCK,
                "other": max(0.0, (b1 - b0) / CLK_TCK - cpu) / max(1e-9, wall * NCPU),
                "stdout": so.read().decode(errors="replace"), "stderr": se.read().decode(errors="replace")}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def make_inputs(src: Path, folder: Path, n: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    how = "hard links"
    for i in range(n):
        dst = folder / f"gopro_{i + 1:04d}.dng"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
            how = "copies"
    return how


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def count_outputs(folder: Path) -> int:
    return len(list(folder.rglob("*.jpg"))) if folder.exists() else 0


def darktable_loop(files: list[Path], out: Path, work: Path, quality: int, width: int | None) -> dict:
    conf = work / "dtconf"
    conf.mkdir(exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cpu = other_busy = 0.0
    for f in files:
        argv = ["darktable-cli", str(f), str(out / (f.stem + ".jpg")), "--core", "--configdir", str(conf),
                "--cachedir", str(conf / "cache"), "--library", ":memory:",
                "--conf", f"plugins/imageio/format/jpeg/quality={quality}"]
        if width:
            argv[3:3] = ["--width", str(width), "--height", str(width)]
        r = run_once(argv)
        if r["rc"] != 0:
            raise SystemExit(f"darktable-cli failed on {f}: {r['stderr'][-500:]}")
        cpu += r["cpu"]
        other_busy += r["other"] * r["wall"]
    wall = time.perf_counter() - t0
    return {"files": len(files), "wall": wall, "cpu": cpu, "other": other_busy / wall,
            "written": count_outputs(out)}


def pixelpipe_batch(inp: Path, out: Path, jobs: str, device: str, width: int | None, quality: int,
                    serve: bool = False, keep: bool = False) -> dict:
    if not keep:
        clear(out)
    argv = pixelpipe_exe() + ["export", str(inp), str(out), "-q", "--no-progress", "--jobs", jobs,
                              "--device", device, "--quality", str(quality)]
    if width:
        argv += ["--width", str(width), "--height", str(width)]
    env = dict(os.environ)
    if not serve:
        argv.append("--no-server")
    r = run_once(argv, env=env)
    if r["rc"] != 0:
        raise SystemExit(f"pixelpipe failed ({r['rc']}): {r['stderr'][-1500:]}")
    r["written"] = count_outputs(out)
    r["summary"] = r["stdout"].strip().splitlines()[-1] if r["stdout"].strip() else ""
    return r


def pixelpipe_loop(files: list[Path], out: Path, device: str, width: int | None, quality: int) -> dict:
    clear(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    cpu = 0.0
    for f in files:
        argv = pixelpipe_exe() + ["export", str(f), str(out / (f.stem + ".jpg")), "-q", "--no-server",
                                  "--device", device, "--quality", str(quality)]
        if width:
            argv += ["--width", str(width), "--height", str(width)]
        r = run_once(argv)
        if r["rc"] != 0:
            raise SystemExit(f"pixelpipe failed on {f}: {r['stderr'][-500:]}")
        cpu += r["cpu"]
    return {"files": len(files), "wall": time.perf_counter() - t0, "cpu": cpu, "written": count_outputs(out)}


def start_serve(jobs: str) -> None:
    subprocess.run(pixelpipe_exe() + ["serve", "--stop"], capture_output=True)
    r = subprocess.run(pixelpipe_exe() + ["serve", "--jobs", jobs, "--idle-timeout", "600"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"pixelpipe serve failed: {r.stderr}")
    # ready = the LocalCluster (if any) is up and the kernels are loaded
    want = "none" if jobs == "1" else None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:
        st = subprocess.run(pixelpipe_exe() + ["serve", "--status"], capture_output=True, text=True).stdout
        workers = next((ln.split(": ", 1)[1] for ln in st.splitlines() if ln.startswith("local_workers")), "")
        if (want == "none" and workers) or (want is None and workers not in ("", "none")):
            time.sleep(3.0)  # kernels of the warm-up export
            return
        time.sleep(0.5)
    raise SystemExit("pixelpipe serve did not get ready")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200, help="input files (default 200)")
    ap.add_argument("--dt-subset", type=int, default=20, help="darktable-cli loop over this many (default 20)")
    ap.add_argument("--pp-loop-subset", type=int, default=0, help="also a pixelpipe process-per-file loop")
    ap.add_argument("--jobs", default="1,2", help="comma list for --jobs (default 1,2)")
    ap.add_argument("--serve", action="store_true", help="also through a warm `pixelpipe serve` worker")
    ap.add_argument("--skip-peers", action="store_true", help="no darktable-cli loop")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int, default=None, help="fit into W x W (default full size)")
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--source", type=Path, default=None, help="the raw to replicate")
    ap.add_argument("--workdir", type=Path, default=None, help="where the inputs/outputs go (default a temp dir)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    src = a.source or testdata_dir() / "raw" / "gopro_hero6_black_gpr2dng.dng"
    if not src.exists():
        raise SystemExit(f"{src} not found (set PIXELPIPE_TESTDATA)")
    work = Path(tempfile.mkdtemp(prefix="bench_batch_", dir=a.workdir))
    results: dict = {"machine": {"nproc": NCPU, "cpu": platform.processor() or platform.machine(),
                                 "python": platform.python_version(), "kernel": platform.release()},
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "count": a.count,
                     "source": src.name, "width": a.width, "quality": a.quality, "device": a.device, "runs": []}
    try:
        inp = work / "in"
        results["inputs"] = make_inputs(src, inp, a.count)
        files = sorted(inp.iterdir())
        print(f"{a.count} {results['inputs']} of {src.name} in {inp}; load {loadavg()}", flush=True)
        # warm the kernel cache once (not timed): a first-ever run compiles
        pixelpipe_loop(files[:1], work / "warm", a.device, a.width, a.quality)

        def record(name: str, r: dict, files_n: int, note: str = "") -> None:
            row = {"name": name, "files": files_n, "wall": r["wall"], "cpu": r.get("cpu"),
                   "other": r.get("other"), "per_file": r["wall"] / files_n, "written": r.get("written"),
                   "load": loadavg(), "note": note}
            results["runs"].append(row)
            print(f"{name:48s} {files_n:4d} files {r['wall']:8.1f} s  {files_n / r['wall']:6.2f} files/s  "
                  f"{r['wall'] / files_n:6.3f} s/file  other load {100 * (r.get('other') or 0):.0f}%  "
                  f"load {row['load']}", flush=True)

        if not a.skip_peers:
            if not shutil.which("darktable-cli"):
                raise SystemExit("darktable-cli not found (bench/setup_peers.sh, or --skip-peers)")
            sub = files[: a.dt_subset]
            r = darktable_loop(sub, work / "dt", work, a.quality, a.width)
            record("darktable-cli loop (one process per file)", r, len(sub),
                   f"first {len(sub)} of {a.count}, extrapolated per file")
        if a.pp_loop_subset:
            sub = files[: a.pp_loop_subset]
            r = pixelpipe_loop(sub, work / "pploop", a.device, a.width, a.quality)
            record("pixelpipe loop (one process per file)", r, len(sub), f"first {len(sub)} of {a.count}")
        out = work / "out"
        for j in [s.strip() for s in a.jobs.split(",") if s.strip()]:
            r = pixelpipe_batch(inp, out, j, a.device, a.width, a.quality)
            assert r["written"] == a.count, (r["written"], r["summary"])
            record(f"pixelpipe export --jobs {j}", r, a.count, r["summary"])
            if a.serve:
                start_serve(j)
                try:
                    r = pixelpipe_batch(inp, out, j, a.device, a.width, a.quality, serve=True)
                    assert r["written"] == a.count
                    record(f"pixelpipe export --jobs {j} via serve", r, a.count, r["summary"])
                finally:
                    subprocess.run(pixelpipe_exe() + ["serve", "--stop"], capture_output=True)
        last = [s.strip() for s in a.jobs.split(",") if s.strip()][-1]
        r = pixelpipe_batch(inp, out, last, a.device, a.width, a.quality, keep=True)
        record(f"pixelpipe export --jobs {last}, all up to date", r, a.count, r["summary"])

        dt = next((x for x in results["runs"] if x["name"].startswith("darktable")), None)
        print()
        print("| run | files | wall s | files/s | s per file | vs darktable-cli loop | other load |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for x in results["runs"]:
            ratio = f"{dt['per_file'] / x['per_file']:.2f}x" if dt else "-"
            x["vs_darktable"] = dt["per_file"] / x["per_file"] if dt else None
            print(f"| {x['name']} | {x['files']} | {x['wall']:.1f} | {x['files'] / x['wall']:.2f} | "
                  f"{x['per_file']:.3f} | {ratio} | {100 * (x['other'] or 0):.0f}% |")
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
