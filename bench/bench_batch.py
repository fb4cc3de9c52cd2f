"""Batch export throughput: `pixelpipe export FOLDER OUT` against a darktable-cli loop.

N distinctly named copies (``--hardlinks``: hard links) of the 12 MP GoPro DNG
go into a temporary folder; every timed run starts with its outputs deleted.
Measured in one run of this script (so all see the same machine):

* darktable-cli loop: one ``darktable-cli IN OUT.jpg`` process per file, as
  users script it (one config folder for the loop, ``--library :memory:``,
  JPEG quality as below), over the first ``--dt-subset`` files, after one
  untimed run that creates darktable's config and caches; its time per file
  is extrapolated to N, and the table says so. Skipped with ``--skip-peers``
  (machines without darktable, e.g. the GPU host).
* pixelpipe, one process per file (``--pp-loop-subset`` files; start-up paid
  every time, like darktable-cli), when asked.
* ``pixelpipe export in out -q --jobs J --no-server`` for each J in
  ``--jobs`` (1 = this process; more = an embedded Dask LocalCluster);
* the same through a warm ``pixelpipe serve --jobs J`` worker (``--serve``);
* a second run over up-to-date outputs (everything skipped).

For every run: images per second, and how busy the machine was meanwhile:
each CPU core (from /proc/stat, sampled every ``--sample`` s: mean busy % over
all cores, the busiest and least busy core) and, where ``nvidia-smi`` is
present, each GPU (utilisation %, mean and peak, and peak memory), sampled
at the same interval. "other load" is the share of the machine used by
processes outside the measured command (other users of a shared machine).

Full-size 8-bit JPEG, quality 95 by default (``--width`` fits both tools
into W x W instead). ``--device cuda|auto`` passes the device to pixelpipe.

    python bench/bench_batch.py --count 200 --dt-subset 20 --jobs 1,2 --serve --json bench/out/batch.json
    python bench/bench_batch.py --count 200 --jobs 1,4,8,16 --device cuda --skip-peers   # GPU host
    python bench/bench_batch.py --count 6 --dt-subset 2 --jobs 1,2        # a quick check that it works
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
import threading
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


def per_core_ticks() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each CPU core."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                v = [int(x) for x in line.split()[1:]]
                total = sum(v[:8])
                out.append((total - v[3] - v[4], total))
    return out


class Sampler:
    """Samples CPU cores (/proc/stat) and GPUs (nvidia-smi, if present) while a run goes on."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.cores: list[list[float]] = []   # per sample: busy fraction of each core
        self.gpu: dict[int, dict[str, list[float]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._smi: subprocess.Popen | None = None
        self._smi_out = None

    def __enter__(self) -> "Sampler":
        smi = shutil.which("nvidia-smi")
        if smi:
            self._smi_out = tempfile.TemporaryFile(mode="w+")
            self._smi = subprocess.Popen(
                [smi, "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 f"-lms={max(100, int(self.interval * 1000))}"],
                stdout=self._smi_out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self._prev = per_core_ticks()
        self._thread = threading.Thread(target=self._cpu_loop, daemon=True)
        self._thread.start()
        return self

    def _take(self) -> None:
        cur = per_core_ticks()
        if sum(t for _, t in cur) > sum(t for _, t in self._prev):
            self.cores.append([(b1 - b0) / max(1, t1 - t0) for (b0, t0), (b1, t1) in zip(self._prev, cur)])
        self._prev = cur

    def _cpu_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()  # the last part of an interval
        if self._smi is not None:
            self._smi.terminate()
            try:
                self._smi.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._smi.kill()
            self._smi_out.seek(0)
            for line in self._smi_out.read().splitlines():
                parts = [x.strip() for x in line.split(",")]
                if len(parts) != 3:
                    continue
                try:
                    idx, util, mem = int(parts[0]), float(parts[1]), float(parts[2])
                except ValueError:
                    continue  # "[N/A]" and the like
                g = self.gpu.setdefault(idx, {"util": [], "mem": []})
                g["util"].append(util)
                g["mem"].append(mem)
            self._smi_out.close()

    def summary(self) -> dict:
        out: dict = {"samples": len(self.cores)}
        if self.cores:
            n = len(self.cores[0])
            per_core = [100 * sum(s[k] for s in self.cores) / len(self.cores) for k in range(n)]
            out["cpu_mean_pct"] = sum(per_core) / n
            out["cpu_per_core_pct"] = [round(x, 1) for x in per_core]
            out["cpu_min_core_pct"], out["cpu_max_core_pct"] = min(per_core), max(per_core)
        if self.gpu:
            out["gpus"] = {i: {"util_mean_pct": sum(g["util"]) / len(g["util"]), "util_max_pct": max(g["util"]),
                               "mem_max_mib": max(g["mem"]), "samples": len(g["util"])}
                           for i, g in sorted(self.gpu.items())}
        elif shutil.which("nvidia-smi") is None:
            out["gpus"] = None  # no nvidia-smi on this machine
        return out


def fmt_other(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def busy_text(b: dict) -> str:
    if "cpu_mean_pct" not in b:
        return "cpu -"
    t = f"cpu {b['cpu_mean_pct']:.0f}% (cores {b['cpu_min_core_pct']:.0f}..{b['cpu_max_core_pct']:.0f}%)"
    for i, g in (b.get("gpus") or {}).items():
        t += f" gpu{i} {g['util_mean_pct']:.0f}% (peak {g['util_max_pct']:.0f}%, {g['mem_max_mib']:.0f} MiB)"
    return t


def make_inputs(src: Path, folder: Path, n: int, hardlinks: bool = False) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    how = "hard links" if hardlinks else "copies"
    for i in range(n):
        dst = folder / f"gopro_{i + 1:04d}.dng"
        if hardlinks:
            try:
                os.link(src, dst)
                continue
            except OSError:
                how = "copies"
        shutil.copyfile(src, dst)
    return how


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def count_outputs(folder: Path) -> int:
    return len(list(folder.rglob("*.jpg"))) if folder.exists() else 0


def darktable_loop(files: list[Path], out: Path, work: Path, quality: int, width: int | None,
                   sample: float = 0.5) -> dict:
    conf = work / "dtconf"
    conf.mkdir(exist_ok=True)

    def argv_for(f: Path, dest: Path) -> list[str]:
        argv = ["darktable-cli", str(f), str(dest), "--core", "--configdir", str(conf),
                "--cachedir", str(conf / "cache"), "--library", ":memory:",
                "--conf", f"plugins/imageio/format/jpeg/quality={quality}"]
        if width:
            argv[3:3] = ["--width", str(width), "--height", str(width)]
        return argv

    # untimed: the first run creates darktable's config folder and caches
    clear(work / "dtwarm")
    (work / "dtwarm").mkdir(parents=True)
    run_once(argv_for(files[0], work / "dtwarm" / "warm.jpg"))
    return process_per_file("darktable-cli", files, out, argv_for, sample)


def process_per_file(tool: str, files: list[Path], out: Path, argv_for, sample: float) -> dict:
    """One ``argv_for(file, output)`` process per file, timed as a whole while the machine is sampled."""
    clear(out)
    out.mkdir(parents=True)
    cpu = other_busy = 0.0
    with Sampler(sample) as smp:
        t0 = time.perf_counter()
        for f in files:
            r = run_once(argv_for(f, out / (f.stem + ".jpg")))
            if r["rc"] != 0:
                raise SystemExit(f"{tool} failed on {f}: {r['stderr'][-500:]}")
            cpu += r["cpu"]
            other_busy += r["other"] * r["wall"]
        wall = time.perf_counter() - t0
    return {"files": len(files), "wall": wall, "cpu": cpu, "other": other_busy / wall,
            "written": count_outputs(out), "busy": smp.summary()}


def pixelpipe_batch(inp: Path, out: Path, jobs: str, device: str, width: int | None, quality: int,
                    serve: bool = False, keep: bool = False, sample: float = 0.5) -> dict:
    if not keep:
        clear(out)
    argv = pixelpipe_exe() + ["export", str(inp), str(out), "-q", "--no-progress", "--jobs", jobs,
                              "--device", device, "--quality", str(quality)]
    if width:
        argv += ["--width", str(width), "--height", str(width)]
    env = dict(os.environ)
    if not serve:
        argv.append("--no-server")
    with Sampler(sample) as smp:
        r = run_once(argv, env=env)
    r["busy"] = smp.summary()
    if serve:  # the work is done by the worker, another process tree: "other" would count it
        r["other"] = None
    if r["rc"] != 0:
        raise SystemExit(f"pixelpipe failed ({r['rc']}): {r['stderr'][-1500:]}")
    r["written"] = count_outputs(out)
    r["summary"] = r["stdout"].strip().splitlines()[-1] if r["stdout"].strip() else ""
    return r


def pixelpipe_loop(files: list[Path], out: Path, device: str, width: int | None, quality: int,
                   sample: float = 0.5) -> dict:
    def argv_for(f: Path, dest: Path) -> list[str]:
        argv = pixelpipe_exe() + ["export", str(f), str(dest), "-q", "--no-server",
                                  "--device", device, "--quality", str(quality)]
        return argv + (["--width", str(width), "--height", str(width)] if width else [])

    return process_per_file("pixelpipe", files, out, argv_for, sample)


def start_serve(jobs: str) -> None:
    subprocess.run(pixelpipe_exe() + ["serve", "--stop"], capture_output=True)
    r = subprocess.run(pixelpipe_exe() + ["serve", "--jobs", jobs, "--idle-timeout", "900"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"pixelpipe serve failed: {r.stderr}")
    # ready = the warm-up export has loaded the kernels and the LocalCluster (if any) is up
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:
        st = subprocess.run(pixelpipe_exe() + ["serve", "--status"], capture_output=True, text=True).stdout
        if any(ln == "ready: yes" for ln in st.splitlines()):
            return
        time.sleep(0.5)
    raise SystemExit("pixelpipe serve did not get ready within 600 s")


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
    ap.add_argument("--hardlinks", action="store_true", help="hard links instead of copies of the source")
    ap.add_argument("--sample", type=float, default=0.5, help="CPU/GPU sampling interval, s (default 0.5)")
    a = ap.parse_args(argv)
    if a.count < 1 or a.dt_subset < 1:
        ap.error("--count and --dt-subset must be at least 1")

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
        results["inputs"] = make_inputs(src, inp, a.count, a.hardlinks)
        files = sorted(inp.iterdir())
        print(f"{a.count} {results['inputs']} of {src.name} in {inp}; {NCPU} cores; load {loadavg()}; "
              f"nvidia-smi {'found' if shutil.which('nvidia-smi') else 'not found'}", flush=True)
        # warm the kernel cache once (not timed): a first-ever run compiles
        pixelpipe_loop(files[:1], work / "warm", a.device, a.width, a.quality, a.sample)

        def record(name: str, r: dict, files_n: int, note: str = "") -> None:
            row = {"name": name, "files": files_n, "wall": r["wall"], "cpu": r.get("cpu"),
                   "other": r.get("other"), "per_file": r["wall"] / files_n, "images_per_s": files_n / r["wall"],
                   "written": r.get("written"), "busy": r.get("busy"), "load": loadavg(), "note": note}
            results["runs"].append(row)
            print(f"{name:48s} {files_n:4d} files {r['wall']:8.1f} s  {files_n / r['wall']:6.2f} images/s  "
                  f"{r['wall'] / files_n:6.3f} s/image  {busy_text(r.get('busy') or {})}  "
                  f"other load {fmt_other(r.get('other'))}  load {row['load']}", flush=True)

        if not a.skip_peers:
            if not shutil.which("darktable-cli"):
                raise SystemExit("darktable-cli not found (bench/setup_peers.sh, or --skip-peers)")
            sub = files[: a.dt_subset]
            r = darktable_loop(sub, work / "dt", work, a.quality, a.width, a.sample)
            if r["written"] != len(sub):
                raise SystemExit(f"darktable-cli wrote {r['written']} of {len(sub)} files")
            note = (f"measured on the first {len(sub)} of {a.count} files; {a.count} files extrapolated: "
                    f"{r['wall'] / len(sub) * a.count:.0f} s") if len(sub) < a.count else ""
            record("darktable-cli loop (one process per file)", r, len(sub), note)
        if a.pp_loop_subset:
            sub = files[: a.pp_loop_subset]
            r = pixelpipe_loop(sub, work / "pploop", a.device, a.width, a.quality, a.sample)
            record("pixelpipe loop (one process per file)", r, len(sub), f"first {len(sub)} of {a.count}")
        out = work / "out"
        jobs = [s.strip() for s in a.jobs.split(",") if s.strip()]
        for j in jobs:
            r = pixelpipe_batch(inp, out, j, a.device, a.width, a.quality, sample=a.sample)
            if r["written"] != a.count:
                raise SystemExit(f"pixelpipe wrote {r['written']} of {a.count} files: {r['summary']}")
            record(f"pixelpipe export --jobs {j}", r, a.count, r["summary"])
            if a.serve:
                start_serve(j)
                try:
                    r = pixelpipe_batch(inp, out, j, a.device, a.width, a.quality, serve=True, sample=a.sample)
                    if r["written"] != a.count:
                        raise SystemExit(f"pixelpipe (serve) wrote {r['written']} of {a.count}: {r['summary']}")
                    record(f"pixelpipe export --jobs {j} via serve", r, a.count, r["summary"])
                finally:
                    subprocess.run(pixelpipe_exe() + ["serve", "--stop"], capture_output=True)
        r = pixelpipe_batch(inp, out, jobs[-1], a.device, a.width, a.quality, keep=True, sample=a.sample)
        if f"{a.count} skipped" not in r["summary"]:
            raise SystemExit(f"the second run did not skip every output: {r['summary']}")
        record(f"pixelpipe export --jobs {jobs[-1]}, all up to date", r, a.count, r["summary"])

        dt = next((x for x in results["runs"] if x["name"].startswith("darktable")), None)
        print()
        print("| run | images | wall s | images/s | s per image | vs darktable-cli loop | CPU busy: mean (cores) "
              "| GPU busy | other load |")
        print("|---|---:|---:|---:|---:|---:|---|---|---:|")
        for x in results["runs"]:
            ratio = f"{dt['per_file'] / x['per_file']:.2f}x" if dt else "-"
            x["vs_darktable"] = dt["per_file"] / x["per_file"] if dt else None
            b = x.get("busy") or {}
            cpu = (f"{b['cpu_mean_pct']:.0f}% ({b['cpu_min_core_pct']:.0f}..{b['cpu_max_core_pct']:.0f}%)"
                   if "cpu_mean_pct" in b else "-")
            gpus = b.get("gpus")
            gpu = ("; ".join(f"gpu{i} {g['util_mean_pct']:.0f}% (peak {g['util_max_pct']:.0f}%)"
                             for i, g in gpus.items()) if gpus else ("no nvidia-smi" if gpus is None else "-"))
            print(f"| {x['name']} | {x['files']} | {x['wall']:.1f} | {x['files'] / x['wall']:.2f} | "
                  f"{x['per_file']:.3f} | {ratio} | {cpu} | {gpu} | {fmt_other(x['other'])} |")
        if dt and dt["files"] < a.count:
            print(f"\ndarktable-cli: {dt['note']} (s per image is what the ratios compare)")
        print("Measured on a machine shared with other processes: see 'other load' and the load averages.")
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
