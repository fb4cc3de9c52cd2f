"""Parallel export on Dask: an embedded LocalCluster (--jobs) and a real scheduler with workers
started as separate processes on loopback, one of them killed mid-batch."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers import raw_file

pytest.importorskip("distributed")

CHART = "canon_550d_magiclantern_colorchart.dng"
KODAK = "kodak_dc50.kdc"
BIN = Path(sys.executable).parent


def env():
    e = dict(os.environ)
    e["PIXELPIPE_NO_SERVER"] = "1"
    e.pop("XDG_RUNTIME_DIR", None)
    e["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "30s"
    return e


def export(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "pixelpipe.cli", "export", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env(), timeout=timeout)


def inputs(folder: Path, n: int, name=CHART) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    data = raw_file(name).read_bytes()
    for i in range(n):
        (folder / f"img{i:02d}{Path(name).suffix}").write_bytes(data)
    return sorted(p.stem for p in folder.iterdir())


def outputs_ok(out: Path, stems: list[str], width: int) -> None:
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{s}.jpg" for s in stems), files  # each exactly once, no temporaries
    for s in stems:
        with Image.open(out / f"{s}.jpg") as im:
            im.load()
            assert im.size[0] == width


def test_local_cluster_jobs_matches_serial_and_goes_on_past_failures(tmp_path):
    stems = inputs(tmp_path / "in", 4)
    (tmp_path / "in" / "bad.dng").write_bytes(b"not a raw" * 100)
    r = export(tmp_path / "in", tmp_path / "par", "--width", "160", "--jobs", "2")
    assert r.returncode == 1, r.stderr
    assert "4 written, 1 failed" in r.stdout and "bad.dng" in r.stderr
    outputs_ok(tmp_path / "par", stems, 160)
    r = export(tmp_path / "in" / "img00.dng", tmp_path / "serial.jpg", "--width", "160")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "serial.jpg").read_bytes() == (tmp_path / "par" / "img00.jpg").read_bytes()


@pytest.mark.parametrize("to", ["group", "process"])
def test_local_cluster_ctrl_c(tmp_path, to):
    """A terminal's Ctrl-C (SIGINT to the process group: the workers get it too) and a SIGINT
    to the command alone both stop the batch: exit 130, only whole outputs, no temporaries,
    no worker process left behind."""
    stems = inputs(tmp_path / "in", 14)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "pixelpipe.cli", "export", str(tmp_path / "in"), str(out),
                          "--width", "400", "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env(), start_new_session=True)
    try:
        t0 = time.monotonic()
        while not list(out.glob("*.jpg")) and time.monotonic() - t0 < 240 and p.poll() is None:
            time.sleep(0.05)
        assert p.poll() is None, "the batch ended before it could be interrupted"
        if to == "group":
            os.killpg(p.pid, signal.SIGINT)
        else:
            p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    done = sorted(out.glob("*.jpg"))
    assert 1 <= len(done) < len(stems)
    assert [q.name for q in out.iterdir() if q.name.startswith(".")] == []
    for f in done:
        with Image.open(f) as im:
            im.load()
    # the worker processes went with the command (nothing of its session is left)
    left = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == p.pid:
                    left.append(d.name)
            except OSError:
                pass
    assert left == [] or _wait_gone(left), left


def _wait_gone(pids: list[str], timeout: float = 60.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        alive = []
        for q in pids:
            try:
                if Path(f"/proc/{q}/stat").read_text().split()[2] != "Z":
                    alive.append(q)
            except OSError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers (no nanny: a killed worker stays dead)."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = {}

    def start(name, args):
        f = open(logs / f"{name}.log", "w")
        procs[name] = subprocess.Popen([str(BIN / "dask"), *args], stdout=f, stderr=subprocess.STDOUT, env=env(),
                                       cwd=tmp_path)

    start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"])
    for w in ("wa", "wb"):
        start(w, ["worker", addr, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", w,
                  "--host", "127.0.0.1", "--death-timeout", "60"])
    from distributed import Client

    client = Client(addr, timeout="60s")
    try:
        client.wait_for_workers(2, timeout=120)
        yield addr, client, procs
    finally:
        client.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_scheduler_cluster_survives_a_killed_worker(tmp_path, cluster):
    addr, client, procs = cluster
    stems = inputs(tmp_path / "in", 10)
    out = tmp_path / "out"
    traffic0 = io_bytes(procs["scheduler"].pid)
    p = subprocess.Popen([sys.executable, "-m", "pixelpipe.cli", "export", str(tmp_path / "in"), str(out),
                          "--width", "300", "--scheduler", addr], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env())
    # wait until worker "wa" is processing one of our files, then kill it mid-task
    names = {}
    victim = None
    t0 = time.monotonic()
    while victim is None and time.monotonic() - t0 < 240 and p.poll() is None:
        info = client.scheduler_info()["workers"]
        names = {a: w.get("name") for a, w in info.items()}
        for a, keys in client.processing().items():
            if names.get(a) == "wa" and any(str(k).startswith("pixelpipe-export-") for k in keys):
                victim = a
        time.sleep(0.02)
    assert victim is not None, "worker wa never got a task"
    procs["wa"].kill()
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    assert "10 written, 0 failed" in stdout, stdout
    outputs_ok(out, stems, 300)
    assert procs["wa"].poll() is not None
    assert [w.get("name") for w in client.scheduler_info()["workers"].values()] == ["wb"]
    # tasks carry paths, results are small: everything the scheduler read and wrote during the
    # batch (tasks, results, heartbeats, the re-run; about 0.1 MB here) is less than the 8-bit
    # pixels of the small outputs alone, let alone the raws (3.9 MB each) or decoded images
    traffic = io_bytes(procs["scheduler"].pid) - traffic0
    output_pixels = 10 * 300 * 200 * 3
    assert traffic < output_pixels, (traffic, output_pixels)


def io_bytes(pid: int) -> int:
    """Bytes a process read and wrote through system calls (sockets and files), from /proc."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["rchar"]) + int(io["wchar"])
