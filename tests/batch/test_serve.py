"""`pixelpipe serve`: the per-user worker on a private Unix socket that later commands use."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import raw_file

CHART = "canon_550d_magiclantern_colorchart.dng"


@pytest.fixture
def cli_env(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("PIXELPIPE_NO_SERVER", raising=False)
    return dict(os.environ)


def pp(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "pixelpipe.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


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
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def wait_until(cond, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_serve_is_used_by_later_commands_and_stops(tmp_path, cli_env):
    r = pp("serve", "--idle-timeout", "120", env=cli_env)
    assert r.returncode == 0, r.stderr
    st = status(cli_env)
    pid, sock = int(st["pid"]), Path(st["socket"])
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        src = tmp_path / CHART
        src.write_bytes(raw_file(CHART).read_bytes())
        r = pp("export", src, tmp_path / "a.jpg", "--width", "200", env=cli_env)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "a.jpg").exists()
        st = status(cli_env)
        assert st["requests"] == "1" and st["files"] == "1"  # it went through the worker
        # errors come back as one line with the file's exit code
        r = pp("export", tmp_path / "nope.dng", tmp_path / "b.jpg", env=cli_env)
        assert r.returncode == 2 and r.stderr.strip().startswith("pixelpipe: error:") and "nope.dng" in r.stderr
        assert "Traceback" not in r.stderr
        # a batch with a relative path, from another folder: the worker uses the command's folder
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "c.dng").write_bytes(src.read_bytes())
        r = subprocess.run([sys.executable, "-m", "pixelpipe.cli", "export", "in", "out", "--width", "64"],
                           capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=300)
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


def test_serve_stops_when_idle(cli_env):
    r = pp("serve", "--idle-timeout", "1", "--no-warm", env=cli_env)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split("pid ")[1].split(",")[0])
    assert wait_until(lambda: gone(pid), timeout=60)
    assert status(cli_env) == {}
