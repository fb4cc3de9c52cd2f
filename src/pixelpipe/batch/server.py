"""``pixelpipe serve``: the per-user background worker.

One long-lived process that has imported the decoders, NumPy and Halide and
loaded the compiled kernels (a small synthetic raw is exported at start to
load the common ones), so an export sent to it pays no start-up. Later
``pixelpipe export`` commands find it through its Unix socket (see
``client`` for the location and the protocol) and use it automatically;
``--no-server`` or ``PIXELPIPE_NO_SERVER=1`` run without it.

Each connection is served by its own thread: single files and ``--jobs 1``
batches run in this process; ``--jobs N`` batches on a LocalCluster of N
worker processes kept warm between commands (``serve --jobs N`` starts it
at once). Paths arrive absolute with the command's working folder; the
worker never changes its own. It stops on ``pixelpipe serve --stop`` or after
``--idle-timeout`` seconds without a command (default 900).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path

from . import client


class Server:
    def __init__(self, idle_timeout: float = 900.0, jobs: str | None = None):
        self.idle_timeout = idle_timeout
        self.default_jobs = jobs
        self.path = client.socket_path()
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.active = 0
        self.requests = 0
        self.files = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.engines: dict[int, object] = {}
        self.engine_lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.ready = False  # the warm-up export is done and the --jobs cluster is up

    # ------------------------------------------------------------------ engines
    def engine_for(self, n: int):
        from .runner import DaskEngine

        with self.engine_lock:
            e = self.engines.get(n)
            if e is None:
                for other in list(self.engines.values()):  # one warm cluster at a time
                    other.close()
                self.engines.clear()
                e = self.engines[n] = DaskEngine(None, n)
            return e

    # ------------------------------------------------------------------ lifecycle
    def bind(self) -> bool:
        """Listen on the socket; False when another worker already answers there."""
        client.ensure_private_dir(self.path.parent)
        if client._ask(self.path, "ping") is not None:
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        s.listen(16)
        s.settimeout(0.5)
        self.sock = s
        return True

    def serve(self) -> None:
        assert self.sock is not None
        with self.lock:  # idle time counts from when commands can reach it, not from start-up
            self.last_activity = time.monotonic()
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                with self.lock:
                    idle = self.active == 0 and time.monotonic() - self.last_activity > self.idle_timeout
                if idle:
                    print(f"pixelpipe serve: idle for {self.idle_timeout:g} s, stopping", file=sys.stderr, flush=True)
                    break
                continue
            except OSError:
                break
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        self.shutdown()

    def shutdown(self) -> None:
        self.stopping.set()
        try:
            if self.sock is not None:
                self.sock.close()
        finally:
            try:
                # only our own socket: a newer worker may have taken the name
                if self.path.exists() and self.path.stat().st_ino == getattr(self, "_ino", None):
                    self.path.unlink()
            except OSError:
                pass
        with self.engine_lock:
            for e in self.engines.values():
                try:
                    e.close()
                except Exception:  # noqa: BLE001
                    pass
            self.engines.clear()

    # ------------------------------------------------------------------ one connection
    def handle(self, conn: socket.socket) -> None:
        with self.lock:
            self.active += 1
            self.last_activity = time.monotonic()
        try:
            if not _same_user(conn):
                return
            conn.settimeout(None)
            lines = client._lines(conn)
            msg = next(lines, None)
            if not msg:
                return
            op = msg.get("op")
            if op == "ping":
                self._send(conn, {"event": "pong", "pid": os.getpid()})
            elif op == "status":
                self._send(conn, {"event": "status", "pid": os.getpid(), "socket": str(self.path),
                                  "uptime_s": round(time.time() - self.started, 1), "requests": self.requests,
                                  "files": self.files, "active": self.active - 1,
                                  "idle_timeout_s": self.idle_timeout, "ready": "yes" if self.ready else "no",
                                  "local_workers": ",".join(str(n) for n in self.engines) or "none"})
            elif op == "stop":
                self._send(conn, {"event": "stopping", "pid": os.getpid()})
                self.stopping.set()
            elif op == "export":
                with self.lock:
                    self.requests += 1
                self.export(conn, lines, msg.get("request") or {})
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.lock:
                self.active -= 1
                self.last_activity = time.monotonic()

    @staticmethod
    def _send(conn: socket.socket, obj: dict) -> None:
        conn.sendall((json.dumps(obj, default=str) + "\n").encode())

    def export(self, conn: socket.socket, lines, req: dict) -> None:
        from ..errors import PixelpipeError
        from .runner import run_export

        cancel = threading.Event()

        def listen():  # a "cancel" line or the command going away
            try:
                for m in lines:
                    if m.get("op") == "cancel":
                        break
            except (OSError, ValueError):
                pass
            cancel.set()

        threading.Thread(target=listen, daemon=True).start()
        send_lock = threading.Lock()

        def emit(ev: dict) -> None:
            if ev.get("event") == "result":
                with self.lock:
                    self.files += 1
            try:
                with send_lock:
                    self._send(conn, ev)
            except OSError:
                cancel.set()

        if req.get("jobs") is None and self.default_jobs:
            req = dict(req, jobs=self.default_jobs)
        try:
            code = run_export(req, emit, cancel=cancel, engine_factory=self.engine_for)
            emit({"event": "exit", "code": code})
        except PixelpipeError as e:
            emit({"event": "error", "line": f"pixelpipe: error: {e}", "exit_code": e.exit_code,
                  "traceback": traceback.format_exc()})
        except MemoryError:
            emit({"event": "error", "line": "pixelpipe: error: out of memory", "exit_code": 75})
        except Exception as e:  # noqa: BLE001 - one line for the command, the worker goes on
            emit({"event": "error", "exit_code": 70, "traceback": traceback.format_exc(),
                  "line": f"pixelpipe: internal error: {e.__class__.__name__}: {e} (run with --debug for details)"})


def _same_user(conn: socket.socket) -> bool:
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        return uid == os.getuid()
    except (OSError, AttributeError):  # pragma: no cover - not Linux: the 0600 socket still guards
        return True


def serve_forever(*, idle_timeout: float = 900.0, jobs: str | None = None, warm: bool = True) -> int:
    srv = Server(idle_timeout, jobs)
    if not srv.bind():
        print(f"pixelpipe serve: a worker already answers on {srv.path}", file=sys.stderr)
        return 0
    srv._ino = srv.path.stat().st_ino
    print(f"pixelpipe serve: pid {os.getpid()} listening on {srv.path}", file=sys.stderr, flush=True)

    def prepare():
        t0 = time.perf_counter()
        try:
            from .worker import warm_up

            if warm:
                warm_up()
            if jobs:
                from .runner import _jobs_count

                n = _jobs_count(jobs)
                if n > 1:
                    engine = srv.engine_for(n)
                    if warm:  # each worker process loads the kernels too
                        engine.client.run(warm_up)
        except Exception as e:  # noqa: BLE001 - the first command reports what is wrong
            print(f"pixelpipe serve: preparing failed: {e.__class__.__name__}: {e}", file=sys.stderr, flush=True)
        srv.ready = True
        print(f"pixelpipe serve: ready ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    threading.Thread(target=prepare, daemon=True).start()
    try:
        srv.serve()
    except KeyboardInterrupt:
        srv.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pixelpipe.batch.server")
    ap.add_argument("--idle-timeout", type=float, default=900.0)
    ap.add_argument("--jobs", default=None)
    ap.add_argument("--no-warm", action="store_true")
    a = ap.parse_args(argv)
    os.chdir(Path.home() if Path.home().is_dir() else "/")
    return serve_forever(idle_timeout=a.idle_timeout, jobs=a.jobs, warm=not a.no_warm)


if __name__ == "__main__":
    sys.exit(main())
