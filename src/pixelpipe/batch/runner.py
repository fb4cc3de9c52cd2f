"""Planning and running a batch export: in this process, on a local Dask cluster, or a remote one.

:func:`run_export` takes the command's request (plain data, see
``cli._export_request``) and an ``emit`` callback that receives events
(``start``, ``result`` per input file, ``notice``, ``done``); the console
reporter (``report``) turns them into lines, a progress bar and the summary,
and ``pixelpipe serve`` forwards them over its socket. Engines:

* ``--jobs 1`` (default): files one after another in this process (the
  Halide kernels use every core for each file);
* ``--jobs N`` / ``--jobs auto``: an embedded ``dask.distributed.LocalCluster``
  of N single-threaded worker processes, each keeping its kernels warm;
* ``--scheduler tcp://HOST:8786``: an existing Dask cluster. Workers must see
  the input and output paths (a shared file system) and have pixelpipe
  installed. Without ``--device`` each worker uses its GPU where it has one
  (``auto``); on a host with several GPUs the worker processes are spread
  over them (see ``worker``).

Tasks carry paths, the sidecar's JSON and the settings; results are small
dicts: pixels never pass through the scheduler. A worker that dies
mid-file (killed, out of memory) has its task re-run by the scheduler on
another worker; outputs are renamed into place only when complete, so each
output appears once, whole. No lock is taken anywhere: outputs are
independent files and the up-to-date record lives inside each output.

Ctrl-C (SIGINT to the command, or to its whole process group: the embedded
cluster's workers ignore it, see ``dask_setup``) cancels what has not
started; files already being processed may still be completed, whole, before
the workers stop; what a stopped writer left is removed, the summary says
"interrupted" and the exit code is 130.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ..errors import OutputError, PixelpipeError
from . import variables
from .discover import discover
from .outputs import make_presets, output_mode, plan_outputs, resolve

Emit = Callable[[dict], None]


class Plan:
    def __init__(self, mode: str, jobs: list[dict], settings: dict, notices: list[str]):
        self.mode, self.jobs, self.settings, self.notices = mode, jobs, settings, notices

    @property
    def single(self) -> bool:
        return self.mode == "single"


def _sidecar_doc(path: str, display: str) -> Any:
    """The explicit --sidecar, read and checked once here (tasks carry its JSON)."""
    from ..pipe.history import Edit

    Edit.load(path)  # every problem with the file is reported once, before any work
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def plan_export(req: dict) -> Plan:
    """Inputs, output presets and settings; user errors raise before any work is done."""
    cwd = req.get("cwd") or os.getcwd()
    inputs = list(req["inputs"])
    output = req["output"]
    mode = output_mode(inputs, output, cwd)
    cli = {k: req.get(k) for k in ("width", "height", "hq", "bpp", "quality", "format")}
    if not cli.get("hq"):
        cli["hq"] = None
    preset_files = [os.path.join(cwd, f) for f in req.get("preset_files") or []]
    presets = make_presets(req.get("presets") or [], preset_files, cli)
    presets = plan_outputs(mode, output, presets, cwd)
    if mode == "single":
        files = [dict(path=os.path.normpath(os.path.join(cwd, inputs[0])), display=inputs[0], subfolder="")]
        notices: list[str] = []
    else:
        found, notices = discover(inputs, cwd, include=req.get("include"), exclude=req.get("exclude"),
                                  recursive=req.get("recursive", True))
        files = [asdict(f) for f in found]
    jobs = [dict(index=i, seq=i + 1, **f) for i, f in enumerate(files)]
    sidecar_doc = None
    if req.get("sidecar"):
        sidecar_doc = _sidecar_doc(os.path.join(cwd, req["sidecar"]), req["sidecar"])
    settings = {
        "cwd": cwd, "now": dt.datetime.now().isoformat(), "overwrite": bool(req.get("overwrite")),
        "workflow": req.get("workflow"), "order": req.get("order"), "style": req.get("style"),
        "chromatic_adaptation": req.get("chromatic_adaptation"),
        "device": _device(req), "sidecar": req.get("sidecar"), "sidecar_doc": sidecar_doc,
        "sidecar_display": req.get("sidecar"), "debug": bool(req.get("debug")),
        "presets": [asdict(p) for p in presets],
    }
    plan = Plan(mode, jobs, settings, notices)
    _check_collisions(plan)
    return plan


def _device(req: dict) -> str | None:
    """The command's --device; without one, workers of a Dask cluster use their GPU where they
    have one ("auto", decided by each worker), and local processes follow PIXELPIPE_DEVICE or
    run on the CPU (None)."""
    if req.get("device"):
        return str(req["device"])
    return "auto" if req.get("scheduler") else None


def _check_collisions(plan: Plan) -> None:
    """Two inputs may not write one output (checked where names need no image)."""
    from .outputs import OutputPreset

    seen: dict[str, str] = {}
    now = dt.datetime.fromisoformat(plan.settings["now"])
    for pd in plan.settings["presets"]:
        p = OutputPreset(**pd)
        if not p.literal and variables.uses_image(p.target):
            continue
        for job in plan.jobs:
            ctx = variables.Context(path=job["path"], sequence=job["seq"], subfolder=job["subfolder"], now=now)
            r = resolve(p, ctx, plan.settings["cwd"])
            if r.path in seen:
                raise OutputError(f"{seen[r.path]} and {job['display']} would both be written here; add a "
                                  "variable such as $(SEQUENCE) or $(FILE.SUBFOLDER) to the output pattern",
                                  path=r.display)
            seen[r.path] = job["display"]


# --------------------------------------------------------------------------- engines

def _jobs_count(value: Any) -> int:
    if value in (None, "", 1, "1"):
        return 1
    if str(value).lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise PixelpipeError(f"--jobs must be a number or auto, not {value!r}") from None
    if n < 1:
        raise PixelpipeError("--jobs must be at least 1")
    return n


#: files in flight in one process (``PIXELPIPE_IN_FLIGHT`` overrides; 1 = strictly one after another)
IN_FLIGHT = 2


def files_in_flight(budget: int) -> int:
    """Files one process keeps in flight with ``budget`` bytes: a second file doubles the peak
    memory (~1.3 GB for a 24 MP export), so two only from 3 GiB up."""
    return int(os.environ.get("PIXELPIPE_IN_FLIGHT", IN_FLIGHT if budget >= 3 << 30 else 1))


def pool_bytes(budget: int, depth: int) -> int:
    """Buffer-pool size for ``depth`` files in flight: each finished file's buffers are kept for
    the next (at most a quarter of the budget)."""
    return min(budget // 4, depth * 768 << 20)


def _run_serial(plan: Plan, on_result: Callable[[dict], None], cancel: threading.Event) -> bool:
    """This process, file after file, with two files in flight (one where the memory budget is
    under 3 GiB).

    A file's decoding, hashing and JPEG encoding run on one core, its kernels on all of
    them; with a second file in flight one file's single-threaded steps overlap the
    other's kernels (Halide and the codecs release the GIL), so no core waits. Results
    are reported as files finish. On Ctrl-C no new file starts and the files in progress
    are finished (their outputs are complete or absent, never partial).
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from ..engine.buffers import POOL
    from ..pipe.cache import memory_budget
    from .worker import process_job

    depth = files_in_flight(memory_budget())  # the budget: half the RAM, see pipe/cache.py
    if plan.single or len(plan.jobs) < 2 or depth < 2:
        for job in plan.jobs:
            if cancel.is_set():
                return False
            on_result(process_job(job, plan.settings, raise_errors=plan.single))
        return True
    # every file in flight releases its pipe's buffers to the pool when done; a pool that
    # holds them all lets the next files write into mapped memory instead of faulting in
    # fresh pages (costly on some VMs: engine/buffers.py)
    POOL.cap = max(POOL.cap, pool_bytes(memory_budget(), depth))
    jobs = iter(plan.jobs)
    pending: set = set()
    with ThreadPoolExecutor(depth, thread_name_prefix="pixelpipe-file") as pool:
        def start_next() -> None:
            job = None if cancel.is_set() else next(jobs, None)
            if job is not None:
                pending.add(pool.submit(process_job, job, plan.settings))

        for _ in range(depth):
            start_next()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    pending.discard(f)
                    on_result(f.result())
                    start_next()
        except KeyboardInterrupt:
            cancel.set()
            wait(pending)
            raise
    return not cancel.is_set()


class DaskEngine:
    """A Dask client on a given scheduler, or on an embedded LocalCluster of N processes."""

    def __init__(self, scheduler: str | None = None, n_workers: int = 1, threads: int | None = None):
        import logging

        from distributed import Client, LocalCluster

        self.cluster = None
        # a Ctrl-C that lands inside one of the Dask client's blocking calls makes distributed's
        # own cancel callback fail on the event loop (a NameError in distributed.utils.sync),
        # which tornado logs with a traceback; the batch reports its own outcome, so that log
        # is silenced
        logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise PixelpipeError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
            self.description = f"Dask scheduler {scheduler} ({len(self.client.scheduler_info()['workers'])} workers)"
        else:
            from ..engine.buffers import MiB
            from ..pipe.cache import memory_budget

            cores = _jobs_count("auto")
            hl_threads = threads or max(1, cores // max(1, n_workers))
            # each worker keeps files in flight as the single-process runner does, on its share
            # of the memory (one file's single-threaded steps overlap another's kernels)
            share = memory_budget(n_workers)
            depth = files_in_flight(share)
            env = {"HL_NUM_THREADS": str(hl_threads), "OMP_NUM_THREADS": "1",
                   "PIXELPIPE_NO_SERVER": "1", "PIXELPIPE_POOL_MB": str(max(64, pool_bytes(share, depth) // MiB))}
            self.cluster = LocalCluster(n_workers=n_workers, threads_per_worker=depth, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR,
                                        host="127.0.0.1", env=env, preload=["pixelpipe.batch.dask_setup"])
            self.client = Client(self.cluster)
            self.description = f"{n_workers} local worker processes"

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def run(self, plan: Plan, on_result: Callable[[dict], None], cancel: threading.Event) -> bool:
        from distributed import as_completed
        from distributed.client import FutureCancelledError

        from .worker import process_job

        token = os.urandom(4).hex()
        futures = []
        by_key = {}
        for job in plan.jobs:
            f = self.client.submit(process_job, job, plan.settings, key=f"pixelpipe-export-{token}-{job['index']}",
                                   pure=False)
            futures.append(f)
            by_key[f.key] = job
        stop = threading.Event()

        def watch():
            while not stop.wait(0.2):
                if cancel.is_set():
                    self.client.cancel(futures)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        complete = True
        reported: set[str] = set()
        try:
            for f in as_completed(futures):
                if cancel.is_set():
                    complete = False
                    break
                job = by_key[f.key]
                try:
                    res = f.result()
                except (FutureCancelledError, Exception) as e:  # noqa: BLE001
                    if cancel.is_set() or f.cancelled():
                        complete = False
                        continue
                    res = _failed_result(job, plan, e)
                reported.add(f.key)
                on_result(res)
        except KeyboardInterrupt:
            self.client.cancel([f for f in futures if f.status == "pending"])
            self._report_finished(futures, reported, on_result)
            self.client.cancel(futures)
            raise
        finally:
            stop.set()
        if cancel.is_set():
            self._report_finished(futures, reported, on_result)
        return complete and not cancel.is_set()

    @staticmethod
    def _report_finished(futures, reported: set, on_result, budget: float = 5.0) -> None:
        """After an interruption: report the files that were done but not yet reported, so the
        summary counts what is on disk (a few seconds at most; a second Ctrl-C skips it)."""
        t0 = time.monotonic()
        try:
            for f in futures:
                if f.key in reported or f.status != "finished":
                    continue
                left = budget - (time.monotonic() - t0)
                if left <= 0:
                    return
                try:
                    res = f.result(timeout=left)
                except Exception:  # noqa: BLE001 - not reachable any more: leave it out
                    continue
                reported.add(f.key)
                on_result(res)
        except KeyboardInterrupt:
            return


def _failed_result(job: dict, plan: Plan, e: BaseException) -> dict:
    name = e.__class__.__name__
    if name == "KilledWorker":
        why = "the worker processing it died several times (out of memory, or killed)"
    else:
        why = f"internal error: {name}: {e}"
    reason = f"{job['display']}: {why}"
    return {"index": job["index"], "input": job["display"], "path": job["path"], "error": reason,
            "exit_code": 70, "notices": [], "seconds": 0.0,
            "outputs": [{"preset": p["name"], "path": None, "display": None, "status": "failed",
                         "reason": reason, "seconds": 0.0} for p in plan.settings["presets"]]}


def _clean_temporaries(paths: set[str]) -> int:
    """Remove what a killed writer left beside our outputs (io.atomic's ``.NAME.XXXXXXXX.tmpEXT``)."""
    removed = 0
    by_dir: dict[str, list[tuple[str, str]]] = {}
    for p in paths:
        stem, ext = os.path.splitext(os.path.basename(p))
        by_dir.setdefault(os.path.dirname(p), []).append((stem, ext))
    for d, names in by_dir.items():
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        pats = [re.compile(rf"^\.{re.escape(stem)}\.[A-Za-z0-9_]{{8}}\.tmp{re.escape(ext)}$") for stem, ext in names]
        for e in entries:
            if e.startswith(".") and any(p.match(e) for p in pats):
                try:
                    os.unlink(os.path.join(d, e))
                    removed += 1
                except OSError:
                    pass
    return removed


# --------------------------------------------------------------------------- the command

def run_export(req: dict, emit: Emit, *, cancel: threading.Event | None = None,
               engine_factory: Callable[[int], Any] | None = None) -> int:
    """Run the export described by ``req``; return the exit code.

    In the single-file form the file's error is raised (one line, its own
    exit code); in a batch every failure is reported and the batch goes on.
    ``engine_factory(n)`` lets a long-lived process (``pixelpipe serve``)
    reuse a warm LocalCluster.
    """
    cancel = cancel or threading.Event()
    t0 = time.perf_counter()
    plan = plan_export(req)
    for n in plan.notices:
        emit({"event": "notice", "message": n})
    n_jobs = 1 if plan.single else _jobs_count(req.get("jobs"))
    scheduler = req.get("scheduler")
    engine = None
    own_engine = False
    if scheduler or n_jobs > 1:
        if engine_factory is not None and not scheduler:
            engine = engine_factory(n_jobs)
        else:
            engine = DaskEngine(scheduler, n_jobs)
            own_engine = True
    emit({"event": "start", "inputs": len(plan.jobs), "outputs": len(plan.jobs) * len(plan.settings["presets"]),
          "engine": engine.description if engine else "this process", "single": plan.single})
    counts = {"written": 0, "skipped": 0, "stale": 0, "failed": 0}
    produced: dict[str, str] = {}
    out_paths: set[str] = set()
    failed_files = 0
    exit_code = 0
    done_inputs = [0]

    def on_result(res: dict) -> None:
        nonlocal failed_files, exit_code
        done_inputs[0] += 1
        for o in res["outputs"]:
            if o.get("path"):
                out_paths.add(o["path"])
                if o["status"] in ("written", "skipped"):
                    other = produced.get(o["path"])
                    if other is not None and other != res["input"]:
                        o["status"] = "failed"
                        o["reason"] = (f"{o['display']}: also the output of {other}; add a variable such as "
                                       "$(SEQUENCE) to the output pattern")
                    else:
                        produced[o["path"]] = res["input"]
            counts[o["status"]] = counts.get(o["status"], 0) + 1
        if res.get("error") or any(o["status"] == "failed" for o in res["outputs"]):
            failed_files += 1
            exit_code = exit_code or 1
        emit({"event": "result", **res})

    complete = False
    try:
        if engine is None:
            complete = _run_serial(plan, on_result, cancel)
        else:
            complete = engine.run(plan, on_result, cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        if own_engine and engine is not None:
            engine.close()
        if not plan.single:
            if not complete:  # names that need no image are known: clean beside those too
                out_paths |= _static_paths(plan)
            _clean_temporaries(out_paths)
        if not complete:
            exit_code = 130
        elif counts["stale"] and not exit_code:
            exit_code = 1
        emit({"event": "done", **counts, "inputs": len(plan.jobs), "done_inputs": done_inputs[0],
              "failed_files": failed_files, "seconds": time.perf_counter() - t0,
              "interrupted": not complete, "exit_code": exit_code, "single": plan.single})
    return exit_code


def _static_paths(plan: Plan) -> set[str]:
    from .outputs import OutputPreset

    paths = set()
    now = dt.datetime.fromisoformat(plan.settings["now"])
    for pd in plan.settings["presets"]:
        p = OutputPreset(**pd)
        if p.literal or variables.uses_image(p.target):
            continue
        for job in plan.jobs:
            ctx = variables.Context(path=job["path"], sequence=job["seq"], subfolder=job["subfolder"], now=now)
            paths.add(resolve(p, ctx, plan.settings["cwd"]).path)
    return paths


__all__ = ["run_export", "plan_export", "DaskEngine"]
