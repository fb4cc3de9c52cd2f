#!/usr/bin/env python3
"""Time a single-file raw -> JPEG export: pixelpipe against darktable-cli,
rawtherapee-cli and rawpy, in one run, on the same files.

    . .venv/bin/activate
    sh bench/setup_peers.sh                       # darktable, rawtherapee, GNU time
    python bench/bench_export.py [--runs 5] [--files 12mp,24mp]
        [--tools pixelpipe,pixelpipe-v30,darktable,rawtherapee,rawpy]
        [--json bench/out/export.json] [--dt-perf]

Every export is a separate process, started the same way, so start-up time
counts for every tool. For each process the wall time (perf_counter around
spawn .. reap), the CPU time (user+sys) and the peak RSS (ru_maxrss) come
from os.wait4() on that child, i.e. the same figures as GNU
``/usr/bin/time -f '%e %U %S %M'``. Runs are interleaved (run 1 of every
tool, then run 2 ...) after one untimed warm-up export per tool and file
(page cache, first-start files of the peers). Each output is deleted before
each run. The machine may be shared: before each timed run the script waits
(up to --idle-wait s) until the CPUs are idle (other work below 15%), and
each run records how much CPU other processes used while it ran; a run
where that was over 10% of the machine is redone (up to --retries times) and
the table notes such runs. The table gives medians and ratios: tool median / peer median
(below 1.00 = faster than that peer).

Commands (IN, OUT.jpg; Q = --jpeg-quality, default 90, 4:2:0 for the peers):
  pixelpipe       pixelpipe export IN OUT.jpg --overwrite
  pixelpipe-v30   pixelpipe export IN OUT.jpg --overwrite --workflow scene-referred-filmic --order v30
  darktable       darktable-cli IN OUT.jpg --core --configdir DIR --cachedir DIR/cache
                      --library :memory: --conf plugins/imageio/format/jpeg/quality=Q
                  (DIR a new empty folder for every run, unless --dt-configdir reuse;
                  darktable never overwrites: it would write OUT_01.jpg)
  rawtherapee     rawtherapee-cli -q -Y -o OUT.jpg -d -jQ -js1 -c IN
  rawpy           python -c 'rawpy.imread(IN).postprocess(use_camera_wb=True)
                      -> PIL.Image.save(OUT, quality=Q)'
pixelpipe is run with its own default JPEG settings. A tool that fails
(non-zero exit, or no output) is reported as "failed: <first line of stderr>"
(the last line when stderr is a Python traceback) and the others go on.

Files: "12mp" = $PIXELPIPE_TESTDATA/raw/gopro_hero6_black_gpr2dng.dng
(default ../shared/data), "24mp" = bench/out/gopro_hero6_24mp.dng, built by
bench/make_24mp.py from the 12 MP file when missing; or any raw path.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUTDIR = HERE / "out"

PEERS = ("darktable", "rawtherapee", "rawpy")
ALL_TOOLS = ("pixelpipe", "pixelpipe-v30", "pixelpipe-v30-serve", "darktable", "rawtherapee", "rawpy")
ALIASES = {"darktable-cli": "darktable", "rawtherapee-cli": "rawtherapee", "dt": "darktable",
           "rt": "rawtherapee", "pixelpipe-filmic-v30": "pixelpipe-v30"}
LABEL = {"pixelpipe": "pixelpipe", "pixelpipe-v30": "pixelpipe (filmic, v30)",
         "pixelpipe-v30-serve": "pixelpipe (filmic, v30) via a warm `pixelpipe serve`",
         "darktable": "darktable-cli", "rawtherapee": "rawtherapee-cli", "rawpy": "rawpy"}

RAWPY_SCRIPT = """\
import sys, rawpy
from PIL import Image
with rawpy.imread(sys.argv[1]) as r:
    rgb = r.postprocess(use_camera_wb=True)
Image.fromarray(rgb).save(sys.argv[2], quality=int(sys.argv[3]))
"""


# --------------------------------------------------------------------------- files

def testdata_dir() -> Path:
    env = os.environ.get("PIXELPIPE_TESTDATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def src_12mp() -> Path:
    return testdata_dir() / "raw" / "gopro_hero6_black_gpr2dng.dng"


def ensure_24mp() -> Path:
    dst = OUTDIR / "gopro_hero6_24mp.dng"
    src = src_12mp()
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime \
            and dst.stat().st_mtime >= (HERE / "make_24mp.py").stat().st_mtime:
        return dst
    print(f"building {dst} ...", file=sys.stderr)
    subprocess.run([sys.executable, str(HERE / "make_24mp.py"), str(src), str(dst)], check=True,
                   stdout=sys.stderr)
    return dst


def resolve_files(spec: str) -> list[Path]:
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if item.lower() == "12mp":
            out.append(src_12mp())
        elif item.lower() == "24mp":
            out.append(ensure_24mp())
        else:
            out.append(Path(item).resolve())
    for p in out:
        if not p.is_file():
            sys.exit(f"bench_export: {p}: no such file")
    return out


def raw_size(path: Path) -> str:
    try:
        import rawpy
        with rawpy.imread(str(path)) as r:
            w, h = r.sizes.raw_width, r.sizes.raw_height
        return f"{w}x{h}, {w * h / 1e6:.1f} MP"
    except Exception as e:  # noqa: BLE001 - informational only
        return f"size unknown ({e.__class__.__name__})"


# --------------------------------------------------------------------------- tools

def pixelpipe_exe() -> list[str] | None:
    cand = Path(sys.executable).parent / "pixelpipe"
    if cand.exists():
        return [str(cand)]
    w = shutil.which("pixelpipe")
    return [w] if w else None


class Tool:
    def __init__(self, name: str, quality: int, dt_configdir: str):
        self.name = name
        self.quality = quality
        self.dt_configdir = dt_configdir
        self._dt_shared: str | None = None

    def available(self) -> str | None:
        """None if runnable, else why not."""
        if self.name.startswith("pixelpipe"):
            return None if pixelpipe_exe() else "pixelpipe command not found"
        exe = {"darktable": "darktable-cli", "rawtherapee": "rawtherapee-cli"}.get(self.name)
        if exe and not shutil.which(exe):
            return f"{exe} not installed (run bench/setup_peers.sh)"
        if self.name == "rawpy":
            try:
                import rawpy  # noqa: F401
                import PIL  # noqa: F401
            except ImportError as e:
                return str(e)
        return None

    def version(self) -> str:
        try:
            if self.name.startswith("pixelpipe"):
                from importlib.metadata import version
                return "pixelpipe " + version("pixelpipe")
            if self.name == "darktable":
                r = subprocess.run(["darktable-cli", "--version"], capture_output=True, text=True)
                return (r.stdout or r.stderr).strip().splitlines()[0].replace("this is ", "")
            if self.name == "rawtherapee":
                r = subprocess.run(["rawtherapee-cli", "-v"], capture_output=True, text=True)
                m = re.search(r"version ([^\s,]+)", r.stdout + r.stderr)
                return "rawtherapee-cli " + (m.group(1) if m else "?")
            if self.name == "rawpy":
                import rawpy
                import PIL
                return f"rawpy {rawpy.__version__} (LibRaw {rawpy.libraw_version}), Pillow {PIL.__version__}"
        except Exception as e:  # noqa: BLE001
            return f"{self.name} (version unknown: {e})"
        return self.name

    def argv(self, src: Path, out: Path, work: Path, extra: list[str] | None = None) -> list[str]:
        q = str(self.quality)
        if self.name == "pixelpipe":
            return pixelpipe_exe() + ["export", str(src), str(out), "--overwrite", "--no-server"]
        if self.name == "pixelpipe-v30":
            return pixelpipe_exe() + ["export", str(src), str(out), "--overwrite", "--no-server",
                                      "--workflow", "scene-referred-filmic", "--order", "v30"]
        if self.name == "pixelpipe-v30-serve":  # the worker is started by ensure_server()
            return pixelpipe_exe() + ["export", str(src), str(out), "--overwrite",
                                      "--workflow", "scene-referred-filmic", "--order", "v30"]
        if self.name == "darktable":
            if self.dt_configdir == "reuse":
                if self._dt_shared is None:
                    self._dt_shared = tempfile.mkdtemp(prefix="dtconf_", dir=work)
                conf = Path(self._dt_shared)
            else:
                conf = Path(tempfile.mkdtemp(prefix="dtconf_", dir=work))
            return ["darktable-cli", str(src), str(out), "--core", "--configdir", str(conf),
                    "--cachedir", str(conf / "cache"), "--library", ":memory:",
                    "--conf", f"plugins/imageio/format/jpeg/quality={q}"] + (extra or [])
        if self.name == "rawtherapee":
            return ["rawtherapee-cli", "-q", "-Y", "-o", str(out), "-d", f"-j{q}", "-js1",
                    "-c", str(src)]
        if self.name == "rawpy":
            return [sys.executable, "-c", RAWPY_SCRIPT, str(src), str(out), q]
        raise ValueError(self.name)


# --------------------------------------------------------------------------- running

def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs together, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])  # guest time is already counted in user
    return total - idle, total


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NCPU = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
CONTENDED = 0.10  # other work above this share of the machine during a run = contended


def cpu_busy(interval: float = 0.3) -> float:
    """Fraction of all CPUs busy over `interval` s."""
    b0, t0 = cpu_ticks()
    time.sleep(interval)
    b1, t1 = cpu_ticks()
    return (b1 - b0) / max(1, t1 - t0)


def wait_idle(max_wait: float, threshold: float = 0.15) -> float:
    """Before a timed run: wait (up to max_wait s) until other work leaves the
    CPUs idle; the machine may be shared. Returns the last busy fraction."""
    if max_wait <= 0:
        return 0.0
    busy = cpu_busy()
    deadline = time.monotonic() + max_wait
    while busy > threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        busy = cpu_busy()
    return busy


def run_once(argv: list[str], cwd: Path) -> dict:
    """Spawn, reap with wait4: wall s, CPU s, peak RSS KiB, rc, stderr, and
    `other`: the share of the machine's CPU time that other processes used
    while it ran (system busy ticks minus the child's own CPU time)."""
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        b0, _ = cpu_ticks()
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se, cwd=cwd)
        except OSError as e:
            return {"rc": 127, "wall": 0.0, "cpu": 0.0, "rss_kib": 0, "other": 0.0,
                    "stderr": str(e), "stdout": ""}
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        b1, _ = cpu_ticks()
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu = ru.ru_utime + ru.ru_stime
        other = max(0.0, (b1 - b0) / CLK_TCK - cpu) / max(1e-9, wall * NCPU)
        so.seek(0)
        se.seek(0)
        return {"rc": p.returncode, "wall": wall, "cpu": cpu, "rss_kib": ru.ru_maxrss,
                "other": other, "stderr": se.read().decode(errors="replace"),
                "stdout": so.read().decode(errors="replace")}


def failure_line(res: dict) -> str:
    lines = [ln.strip() for ln in (res["stderr"] or res["stdout"]).splitlines() if ln.strip()]
    # darktable warns about root first; skip that noise.
    lines = [ln for ln in lines if "running darktable as root" not in ln] or lines
    if not lines:
        return f"exit status {res['rc']}, no message"
    if lines[0].startswith("Traceback"):
        return lines[-1]
    return lines[0]


def output_size(path: Path) -> str:
    try:
        from PIL import Image
        with Image.open(path) as im:
            return f"{im.size[0]}x{im.size[1]}"
    except Exception:  # noqa: BLE001
        return "?"


def bench(files: list[Path], tools: list[Tool], runs: int, warmup: int, work: Path,
          idle_wait: float = 0.0, retries: int = 0) -> list[dict]:
    results = []
    for src in files:
        label = f"{src.name} ({raw_size(src)})"
        print(f"== {label}", file=sys.stderr)
        state = {}
        for t in tools:
            st = {"tool": t.name, "label": LABEL[t.name], "version": t.version(), "samples": [],
                  "discarded": [], "failed": None, "output": None, "argv": None}
            why = t.available()
            if why:
                st["failed"] = why
            state[t.name] = st
        ext_out = {t.name: work / f"{src.stem}.{t.name}.jpg" for t in tools}

        def one(t: Tool, timed: bool) -> None:
            st = state[t.name]
            out = ext_out[t.name]
            for attempt in range(retries + 1 if timed else 1):
                for old in out.parent.glob(out.stem + "*" + out.suffix):  # OUT and dt's OUT_01
                    old.unlink()
                argv = t.argv(src, out, work)
                st["argv"] = argv
                if timed:
                    wait_idle(idle_wait)
                res = run_once(argv, work)
                ok = res["rc"] == 0 and out.exists() and out.stat().st_size > 0
                if not ok:
                    if res["rc"] == 0:
                        res["stderr"] = (res["stderr"] + f"\nexit 0 but no output at {out}").strip()
                    st["failed"] = failure_line(res)
                    print(f"   {t.name}: failed: {st['failed']}", file=sys.stderr)
                    return
                if st["output"] is None:
                    st["output"] = output_size(out)
                if not timed:
                    return
                sample = {k: res[k] for k in ("wall", "cpu", "rss_kib")}
                sample["other_load"] = round(res["other"], 3)
                # through `pixelpipe serve` the work is done by the worker process, which the
                # "other load" figure counts: it is reported but never a reason to redo the run
                contended = res["other"] > CONTENDED and not t.name.endswith("-serve")
                print(f"   {t.name}: {res['wall']:.2f} s, CPU {res['cpu']:.2f} s, "
                      f"{res['rss_kib'] / 1024:.0f} MiB, other load {res['other']:.0%}"
                      + (" (contended" + (", redo)" if attempt < retries else ", kept)")
                         if contended else ""), file=sys.stderr)
                if contended and attempt < retries:
                    st["discarded"].append(sample)
                    continue
                st["samples"].append(sample)
                return

        for _ in range(warmup):
            for t in tools:
                if not state[t.name]["failed"]:
                    one(t, timed=False)
        for i in range(runs):
            for t in tools:
                if not state[t.name]["failed"]:
                    one(t, timed=True)
        for st in state.values():
            s = st["samples"]
            if s and not st["failed"]:
                walls = [x["wall"] for x in s]
                st["median_wall"] = statistics.median(walls)
                st["min_wall"], st["max_wall"] = min(walls), max(walls)
                st["median_cpu"] = statistics.median(x["cpu"] for x in s)
                st["median_rss_mib"] = statistics.median(x["rss_kib"] for x in s) / 1024
                st["contended_kept"] = sum(1 for x in s if x["other_load"] > CONTENDED)
        results.append({"file": str(src), "label": label, "tools": list(state.values())})
    return results


# --------------------------------------------------------------------------- darktable -d perf

PERF_RE = re.compile(r"took ([\d.]+) secs \(([\d.]+) CPU\) \[export\] processed `([^']+)'")


def dt_perf(src: Path, tool: Tool, work: Path) -> dict:
    out = work / f"{src.stem}.dtperf.jpg"
    if out.exists():
        out.unlink()
    res = run_once(tool.argv(src, out, work, extra=["-d", "perf"]), work)
    text = res["stdout"] + res["stderr"]
    mods = [{"module": m.group(3), "wall": float(m.group(1)), "cpu": float(m.group(2))}
            for m in PERF_RE.finditer(text)]
    def grab(pat):
        m = re.search(pat, text)
        return float(m.group(1)) if m else None
    return {"file": str(src), "total_wall": res["wall"], "rc": res["rc"], "modules": mods,
            "other_load": round(res["other"], 3),
            "load": grab(r"\[dev\] took ([\d.]+) secs .* to load the image"),
            "pipe": grab(r"pixel pipeline processing took ([\d.]+) secs"),
            "pipe_cpu": grab(r"pixel pipeline processing took [\d.]+ secs \(([\d.]+) CPU\)")}


# --------------------------------------------------------------------------- report

def machine() -> dict:
    model = "?"
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for ln in open("/proc/meminfo"):
            if ln.startswith("MemTotal"):
                mem = f"{int(ln.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "mem": mem,
            "kernel": platform.release(), "machine": platform.machine(),
            "python": platform.python_version()}


def fmt_ratio(st: dict, peer: dict | None) -> str:
    if not peer or "median_wall" not in peer or "median_wall" not in st:
        return "–"
    return f"{st['median_wall'] / peer['median_wall']:.2f}×"


def markdown(results: list[dict], runs: int) -> str:
    lines = []
    for r in results:
        by = {st["tool"]: st for st in r["tools"]}
        lines.append(f"**{r['label']}**, median of {runs} runs\n")
        lines.append("| tool | wall s (median) | min–max | CPU s | peak RSS MiB "
                     "| vs darktable-cli | vs rawtherapee-cli | vs rawpy | output |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for st in r["tools"]:
            if st["failed"] or "median_wall" not in st:
                why = st["failed"] or "no samples"
                lines.append(f"| {st['label']} | failed: {why.replace('|', '/')} | | | | | | | |")
                continue
            lines.append(
                f"| {st['label']} | {st['median_wall']:.2f} | {st['min_wall']:.2f}–{st['max_wall']:.2f} "
                f"| {st['median_cpu']:.2f} | {st['median_rss_mib']:.0f} "
                f"| {fmt_ratio(st, by.get('darktable'))} | {fmt_ratio(st, by.get('rawtherapee'))} "
                f"| {fmt_ratio(st, by.get('rawpy'))} | {st['output']} |")
        notes = []
        for st in r["tools"]:
            n, d = st.get("contended_kept", 0), len(st.get("discarded", []))
            if n or d:
                notes.append(f"{st['label']}: {d} run(s) redone, {n} kept")
        if notes:
            lines.append("")
            lines.append(f"Runs during which other processes used >{CONTENDED:.0%} of the machine: "
                         + "; ".join(notes) + ".")
        lines.append("")
    return "\n".join(lines)


def perf_markdown(perf: list[dict]) -> str:
    lines = []
    for p in perf:
        lines.append(f"darktable-cli `-d perf`, {Path(p['file']).name}: process {p['total_wall']:.2f} s, "
                     f"image load {p['load']} s, pixel pipe {p['pipe']} s ({p['pipe_cpu']} s CPU); "
                     f"other processes' load meanwhile {p['other_load']:.0%}\n")
        lines.append("| module | wall s | CPU s |")
        lines.append("|---|---:|---:|")
        for m in p["modules"]:
            lines.append(f"| {m['module']} | {m['wall']:.3f} | {m['cpu']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool and file (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    ap.add_argument("--files", default="12mp,24mp",
                    help="comma list: 12mp, 24mp or raw paths (default 12mp,24mp)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help=f"comma list of {', '.join(ALL_TOOLS)} (default all)")
    ap.add_argument("--jpeg-quality", type=int, default=90, help="for the peers (default 90)")
    ap.add_argument("--dt-configdir", choices=("fresh", "reuse"), default="fresh",
                    help="darktable: new configdir per run (default) or one per benchmark")
    ap.add_argument("--dt-perf", action="store_true",
                    help="also run darktable-cli -d perf once per file, print per-module times")
    ap.add_argument("--idle-wait", type=float, default=30.0, metavar="S",
                    help="before each timed run wait up to S s for the CPUs to be idle "
                         "(other work below 15%%); 0 = do not wait (default 30)")
    ap.add_argument("--retries", type=int, default=2, metavar="N",
                    help="redo a timed run up to N times when other processes used more than "
                         f"{CONTENDED * 100:.0f}%% of the machine while it ran (default 2)")
    ap.add_argument("--json", metavar="PATH", help="write all samples and medians as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the exported JPEGs (bench/out/run-*)")
    a = ap.parse_args(argv)

    names = []
    for n in a.tools.split(","):
        n = ALIASES.get(n.strip(), n.strip())
        if n not in ALL_TOOLS:
            ap.error(f"unknown tool {n!r}; choose from {', '.join(ALL_TOOLS)}")
        if n not in names:
            names.append(n)
    tools = [Tool(n, a.jpeg_quality, a.dt_configdir) for n in names]
    files = resolve_files(a.files)

    OUTDIR.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=OUTDIR))
    started = _dt.datetime.now(_dt.timezone.utc)
    load0 = os.getloadavg()
    try:
        serve = any(t.name.endswith("-serve") for t in tools) and pixelpipe_exe()
        if serve:  # a warm worker, started (and its kernels loaded) before any timed run
            subprocess.run(pixelpipe_exe() + ["serve", "--stop"], capture_output=True)
            subprocess.run(pixelpipe_exe() + ["serve"], check=True, capture_output=True)
            for _ in range(300):
                r = subprocess.run(pixelpipe_exe() + ["serve", "--status"], capture_output=True, text=True)
                if r.returncode == 0 and "ready: yes" in r.stdout:
                    break
                time.sleep(1)
        try:
            results = bench(files, tools, a.runs, a.warmup, work, a.idle_wait, a.retries)
        finally:
            if serve:
                subprocess.run(pixelpipe_exe() + ["serve", "--stop"], capture_output=True)
        perf = []
        if a.dt_perf:
            dt = next((t for t in tools if t.name == "darktable"), None) or \
                Tool("darktable", a.jpeg_quality, a.dt_configdir)
            if dt.available() is None:
                perf = []
                for f in files:
                    for attempt in range(a.retries + 1):
                        wait_idle(a.idle_wait)
                        p = dt_perf(f, dt, work)
                        if p["other_load"] <= CONTENDED:
                            break
                    perf.append(p)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    m = machine()
    m["loadavg_start"] = load0[0]
    cmd = "python bench/bench_export.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"Command: `{cmd.strip()}`  ")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC  ")
    print(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']} {m['machine']}; "
          f"1-min load average before the run {m['loadavg_start']:.2f}  ")
    vers = {}
    for r in results:
        for st in r["tools"]:
            vers.setdefault(st["label"], st["version"])
    print("Versions: " + "; ".join(sorted(set(vers.values()))) + "\n")
    print(markdown(results, a.runs))
    if perf:
        print(perf_markdown(perf))
    if a.json:
        doc = {"command": cmd.strip(), "date_utc": started.isoformat(timespec="seconds"),
               "machine": m, "runs": a.runs, "warmup": a.warmup, "jpeg_quality": a.jpeg_quality,
               "dt_configdir": a.dt_configdir, "results": results, "dt_perf": perf}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=1))
        print(f"wrote {a.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
