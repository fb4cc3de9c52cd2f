"""The thin side of ``pixelpipe serve``: find the per-user worker, send it a command.

Standard library only: a ``pixelpipe export`` that finds a running worker
imports neither NumPy nor Halide, so it pays only Python's own start-up.

The socket is ``$XDG_RUNTIME_DIR/pixelpipe/worker-ENV-CODE.sock`` (else in
the user cache folder ``~/.cache/pixelpipe/run/``; a path too long for a Unix
socket falls back to ``/tmp/pixelpipe-UID/``), in a folder of mode 0700, the
socket itself 0600; the worker also checks the peer's uid. ENV is a digest
of what makes two commands equivalent (user, Python, package location,
XDG folders, ``PIXELPIPE_*``/``HL_*``/``CUDA_VISIBLE_DEVICES``), CODE a
digest of the package's files: a command only ever talks to a worker
running the same code in the same environment.

Protocol: one JSON object per line. The command sends ``{"op": "export",
"request": {...}}`` (or ``status``, ``stop``, ``ping``); the worker answers
with the export's events (see ``runner``) and ends with ``{"event":
"exit", "code": N}`` or ``{"event": "error", "line": ..., "exit_code": N}``.
Ctrl-C in the command sends ``{"op": "cancel"}``: the worker stops after the
files in progress (written whole or not at all) and reports the summary.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import userdirs

_ENV_PREFIXES = ("PIXELPIPE_", "HL_")
_ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
_IGNORED_ENV = {"PIXELPIPE_NO_SERVER"}


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def env_id() -> str:
    h = hashlib.sha256()
    parts = [str(os.getuid()), sys.executable, str(_package_dir()), str(userdirs.config_dir()),
             str(userdirs.cache_dir()), str(userdirs.data_dir())]
    for k in sorted(os.environ):
        if (k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES) and k not in _IGNORED_ENV:
            parts.append(f"{k}={os.environ[k]}")
    h.update("\0".join(parts).encode())
    return h.hexdigest()[:12]


def code_id() -> str:
    """Digest of the package's source and data files (names, sizes, mtimes)."""
    h = hashlib.sha256()
    root = _package_dir()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith((".py", ".json", ".toml")):
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(p, root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:8]


def socket_dir() -> Path:
    rt = os.environ.get("XDG_RUNTIME_DIR")
    if rt and os.path.isdir(rt) and os.access(rt, os.W_OK | os.X_OK):
        return Path(rt) / "pixelpipe"
    return userdirs.cache_dir() / "run"


def _short_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"pixelpipe-{os.getuid()}"


def socket_path(eid: str | None = None, cid: str | None = None) -> Path:
    name = f"worker-{eid or env_id()}-{cid or code_id()}.sock"
    p = socket_dir() / name
    if len(os.fsencode(str(p))) > 100:  # sun_path is 108 bytes
        p = _short_dir() / name
    return p


def ensure_private_dir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = d.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{d} belongs to another user")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)
    return d


# --------------------------------------------------------------------------- talking

def _connect(path: Path, timeout: float | None = 5.0) -> socket.socket | None:
    if not path.exists():
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        s.close()
        try:  # nobody listens: a worker that died without cleaning up
            path.unlink()
        except OSError:
            pass
        return None
    except OSError:
        s.close()
        return None
    return s


def _send(s: socket.socket, obj: dict) -> None:
    s.sendall((json.dumps(obj) + "\n").encode())


class _Lines:
    """JSON objects, one per line, read from a socket. The buffer lives in the object, not in a
    generator frame: a KeyboardInterrupt raised while waiting in ``recv`` leaves the reader
    usable (a generator would be finished by it and lose what it had buffered)."""

    def __init__(self, s: socket.socket):
        self.s, self.buf, self.eof = s, b"", False

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        while True:
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.strip():
                    return json.loads(line)
                continue
            if self.eof:
                if self.buf.strip():
                    line, self.buf = self.buf, b""
                    return json.loads(line)
                raise StopIteration
            chunk = self.s.recv(65536)
            if not chunk:
                self.eof = True
            self.buf += chunk


def _lines(s: socket.socket) -> _Lines:
    return _Lines(s)


def _ask(path: Path, op: str, timeout: float = 5.0) -> dict | None:
    s = _connect(path, timeout)
    if s is None:
        return None
    try:
        _send(s, {"op": op})
        for ev in _lines(s):
            return ev
    except (OSError, ValueError):
        return None
    finally:
        s.close()
    return None


def export_via_server(req: dict, reporter) -> int | None:
    """Run the export in the worker, feeding its events to ``reporter``; None: no worker."""
    s = _connect(socket_path(), timeout=10.0)
    if s is None:
        return None
    try:
        try:
            _send(s, {"op": "export", "request": req})
            s.settimeout(None)
            events = _lines(s)
            first = next(events)
        except (OSError, ValueError, StopIteration):
            return None  # the worker went away (stopping, idle): run here instead
        pending = [first]
        interrupted = False
        while True:
            try:
                ev = pending.pop() if pending else next(events)
            except StopIteration:
                print("pixelpipe: error: the pixelpipe worker stopped during the export "
                      "(see `pixelpipe serve --status`; --no-server runs without it)", file=sys.stderr)
                return 130 if interrupted else 70
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: leave now; the worker finishes its files
                    print("pixelpipe: interrupted", file=sys.stderr)
                    return 130
                interrupted = True
                try:
                    _send(s, {"op": "cancel"})
                except OSError:
                    return 130
                continue
            kind = ev.get("event")
            if kind == "exit":
                if interrupted:
                    print("pixelpipe: interrupted", file=sys.stderr)
                    return 130
                return int(ev.get("code", 0))
            if kind == "error":
                print(ev["line"], file=sys.stderr)
                if req.get("debug") and ev.get("traceback"):
                    print(ev["traceback"].rstrip(), file=sys.stderr)
                return int(ev.get("exit_code", 1))
            reporter.handle(ev)
    finally:
        s.close()


# --------------------------------------------------------------------------- managing

def _candidates() -> list[Path]:
    eid = env_id()
    out = []
    for d in (socket_dir(), _short_dir()):
        try:
            out += sorted(d.glob(f"worker-{eid}-*.sock"))
        except OSError:
            pass
    return out


def server_status() -> dict[str, Any] | None:
    for p in [socket_path()] + [c for c in _candidates() if c != socket_path()]:
        # patient: a worker busy compiling kernels may take seconds to get to a new connection
        st = _ask(p, "status", timeout=30.0)
        if st is not None:
            st.pop("event", None)
            if p != socket_path():
                st["note"] = "runs other code than this command (it is not used; --stop ends it)"
            return st
    return None


def stop_servers() -> int:
    """Stop the workers of this environment (any code version); how many were running."""
    n = 0
    for p in _candidates():
        if _ask(p, "stop", timeout=30.0) is not None:
            n += 1
            t0 = time.monotonic()
            while p.exists() and time.monotonic() - t0 < 30:  # gone once it no longer accepts
                time.sleep(0.05)
    return n


def start_server(*, idle_timeout: float, jobs: str | None, warm: bool, wait: float = 120.0) -> dict:
    """Start the worker in the background (or find it running) and wait until it answers."""
    path = socket_path()
    st = _ask(path, "ping")
    if st is not None:
        return {"pid": st.get("pid"), "socket": str(path), "already": True}
    ensure_private_dir(path.parent)
    log = path.with_suffix(".log")
    cmd = [sys.executable, "-m", "pixelpipe.batch.server", "--idle-timeout", str(idle_timeout)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    if not warm:
        cmd.append("--no-warm")
    with open(log, "ab") as lf:
        os.chmod(log, 0o600)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, start_new_session=True,
                                close_fds=True)
    t0 = time.monotonic()
    while time.monotonic() - t0 < wait:
        st = _ask(path, "ping", timeout=2.0)
        if st is not None:
            return {"pid": st.get("pid"), "socket": str(path), "already": False}
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            from ..errors import PixelpipeError

            raise PixelpipeError(f"the worker did not start (exit {proc.returncode}): {tail.strip()[-500:]}")
        time.sleep(0.1)
    from ..errors import PixelpipeError

    raise PixelpipeError(f"the worker did not answer within {wait:g} s (log: {log})")
