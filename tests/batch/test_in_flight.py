"""The one-process batch runner keeps two files in flight: a file starts while another is still
being processed, every file is reported exactly once, and a cancel starts no new file."""
from __future__ import annotations

import threading
import time

import pytest

from pixelpipe.batch import runner, worker


def _plan(n):
    jobs = [dict(index=i, seq=i + 1, path=f"f{i}.dng", display=f"f{i}.dng", subfolder="") for i in range(n)]
    return runner.Plan("batch", jobs, {"presets": []}, [])


@pytest.fixture
def fake_jobs(monkeypatch):
    spans, lock = {}, threading.Lock()

    def process_job(job, settings, raise_errors=False):
        t0 = time.monotonic()
        time.sleep(0.15)
        with lock:
            spans[job["index"]] = (t0, time.monotonic(), threading.get_ident())
        return {"index": job["index"], "input": job["display"], "outputs": []}

    monkeypatch.setattr(worker, "process_job", process_job)
    monkeypatch.setenv("PIXELPIPE_IN_FLIGHT", "2")
    return spans


def test_two_files_are_in_flight_and_each_is_reported_once(fake_jobs):
    got = []
    assert runner._run_serial(_plan(6), got.append, threading.Event())
    assert sorted(r["index"] for r in got) == list(range(6))
    spans = sorted(fake_jobs.values())
    running = [sum(1 for s in spans if s[0] <= t < s[1]) for t, _, _ in spans]
    assert max(running) == 2  # two files at once, never three
    assert sum(1 for r in running if r == 2) >= 3  # most files started beside another one
    assert len({s[2] for s in spans}) == 2  # on two threads


def test_one_in_flight_runs_files_one_after_another(fake_jobs, monkeypatch):
    monkeypatch.setenv("PIXELPIPE_IN_FLIGHT", "1")
    got = []
    assert runner._run_serial(_plan(3), got.append, threading.Event())
    spans = sorted(fake_jobs.values())
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_cancel_starts_no_new_file(fake_jobs):
    cancel = threading.Event()
    got = []

    def on_result(res):
        got.append(res)
        cancel.set()  # as Ctrl-C or a client's cancel would, after the first result

    assert runner._run_serial(_plan(10), on_result, cancel) is False
    assert len(fake_jobs) <= 3  # the two in flight (and at most one started with the first result)


@pytest.mark.parametrize("memory_mb, threads", [(4096, 2), (2048, 1)])
def test_local_cluster_workers_keep_files_in_flight_on_their_memory_share(monkeypatch, memory_mb, threads):
    """``--jobs N``: each worker process of the embedded cluster runs two files at once (Dask
    threads) where its memory share holds two, else one."""
    monkeypatch.delenv("PIXELPIPE_IN_FLIGHT", raising=False)
    monkeypatch.setenv("PIXELPIPE_MEMORY_MB", str(memory_mb))  # per process
    engine = runner.DaskEngine(n_workers=2)
    try:
        workers = engine.client.scheduler_info()["workers"].values()
        assert [w["nthreads"] for w in workers] == [threads, threads]
    finally:
        engine.close()
