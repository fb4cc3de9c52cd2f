"""`pixelpipe serve`: the per-user worker on a private Unix socket that later commands use.

The worker and the commands of these tests run one snapshot of the package: a command only
talks to a worker running the same code (the socket name holds a digest of the package's
files), so edits made to the source tree while a test runs would otherwise make the command
look for another worker and quietly export in its own process. Every wait is on a condition,
bounded, never a fixed sleep."""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import pixelpipe
from helpers import raw_file

CHART = "canon_550d_magiclantern_colorchart.dng"


@pytest.fixture(scope="module")
def package_snapshot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pkg")
    shutil.copytree(Path(pixelpipe.__file__).parent, root / "pixelpipe",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


@pytest.fixture
def cli_env(monkeypatch, package_snapshot):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("PIXELPIPE_NO_SERVER", raising=False)
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(package_snapshot)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    yield e
    subprocess.run([sys.executable, "-m", "pixelpipe.cli", "serve", "--stop"], env=e, capture_output=True,
                   timeout=120)  # whatever a failed test left running


def pp(*args, env, timeout=300, cwd=None):
    return subprocess.run([sys.executable, "-m", "pixelpipe.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)


def status(env) -> dict:
    r = pp("serve", "--status", env=env)
    if r.returncode != 0:
        return {}
    return dict(line.split(": ", 1) for line in r.stdout.splitlines())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    st = Path(f"/proc/{pid}/stat")
    try:
        return st.read_text().split()[2] == "Z"
    except OSError:
        return True


def wait_until(cond, timeout=120.0, step=0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(step)
    return cond()


def test_the_command_and_the_worker_run_the_snapshot(cli_env, package_snapshot):
    r = subprocess.run([sys.executable, "-c", "import pixelpipe; print(pixelpipe.__file__)"], capture_output=True,
                       text=True, env=cli_env, timeout=60)
    assert Path(r.stdout.strip()).is_relative_to(package_snapshot), r.stdout


def test_serve_is_used_by_later_commands_and_stops(tmp_path, cli_env):
    r = pp("serve", "--idle-timeout", "600", env=cli_env)
    assert r.returncode == 0, r.stderr
    st = status(cli_env)
    assert st, "the worker started but does not answer --status"
    pid, sock = int(st["pid"]), Path(st["socket"])
    try:
        assert "note" not in st  # the command and the worker run the same code
        assert wait_until(lambda: status(cli_env).get("ready") == "yes", timeout=300)  # warm-up export done
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        src = tmp_path / CHART
        src.write_bytes(raw_file(CHART).read_bytes())
        r = pp("export", src, tmp_path / "a.jpg", "--width", "200", env=cli_env)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "a.jpg").exists()
        st = status(cli_env)
        assert st["requests"] == "1" and st["files"] == "1", st  # it went through the worker
        # errors come back as one line with the file's exit code
        r = pp("export", tmp_path / "nope.dng", tmp_path / "b.jpg", env=cli_env)
        assert r.returncode == 2 and r.stderr.strip().startswith("pixelpipe: error:") and "nope.dng" in r.stderr
        assert "Traceback" not in r.stderr
        # a batch with a relative path, from another folder: the worker uses the command's folder
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "c.dng").write_bytes(src.read_bytes())
        r = pp("export", "in", "out", "--width", "64", env=cli_env, cwd=tmp_path)
        assert r.returncode == 0 and "1 written, 0 failed" in r.stdout, r.stderr
        assert (tmp_path / "out" / "c.jpg").exists()
        assert status(cli_env)["requests"] == "3"
        # --no-server bypasses it
        r = pp("export", src, tmp_path / "d.jpg", "--width", "64", "--no-server", env=cli_env)
        assert r.returncode == 0 and status(cli_env)["requests"] == "3"
    finally:
        r = pp("serve", "--stop", env=cli_env)
    assert r.returncode == 0 and "stopped 1" in r.stdout
    assert wait_until(lambda: gone(pid)) and not sock.exists()
    assert pp("serve", "--status", env=cli_env).returncode == 1


def test_ctrl_c_in_a_command_cancels_its_export_in_the_worker(tmp_path, cli_env):
    """SIGINT to the command (not to the worker): the worker finishes the file in progress,
    writes nothing partial, reports the summary through the command and stays up."""
    r = pp("serve", "--idle-timeout", "600", env=cli_env)
    assert r.returncode == 0, r.stderr
    pid = int(status(cli_env)["pid"])
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    data = raw_file(CHART).read_bytes()
    n = 16
    for i in range(n):
        (src / f"img{i:02d}.dng").write_bytes(data)
    try:
        p = subprocess.Popen([sys.executable, "-m", "pixelpipe.cli", "export", str(src), str(out), "--width", "400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
        try:
            assert wait_until(lambda: list(out.glob("*.jpg")) or p.poll() is not None, timeout=300)
            assert p.poll() is None, "the batch ended before it could be interrupted"
            p.send_signal(signal.SIGINT)
            stdout, stderr = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 130, stderr
        assert "interrupted" in stderr and "interrupted" in stdout, (stdout, stderr)
        assert wait_until(lambda: status(cli_env).get("active") == "0", timeout=120)  # the export ended there
        written = sorted(out.glob("*.jpg"))
        assert 1 <= len(written) < n
        for f in written:
            with Image.open(f) as im:
                im.load()
                assert im.size[0] == 400
        assert [q.name for q in out.iterdir() if q.name.startswith(".")] == []
        # the worker is still up and serves the rest of the batch
        assert not gone(pid)
        r = pp("export", src, out, "--width", "400", "-q", env=cli_env)
        assert r.returncode == 0 and f"{n - len(written)} written, 0 failed, {len(written)} skipped" in r.stdout
        assert status(cli_env)["requests"] == "2"
    finally:
        pp("serve", "--stop", env=cli_env)
    assert wait_until(lambda: gone(pid))


def test_serve_stops_when_idle(cli_env):
    r = pp("serve", "--idle-timeout", "3", "--no-warm", env=cli_env)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split("pid ")[1].split(",")[0])
    sock = Path(r.stdout.split("socket ")[1].split(",")[0])
    assert wait_until(lambda: gone(pid), timeout=120)
    assert not sock.exists()
    assert status(cli_env) == {}
