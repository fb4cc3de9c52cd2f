#!/usr/bin/env python3
"""Where a batch file's time goes when N files are in flight in one process.

    python bench/batch_phases.py DEVICE FILES IN_FLIGHT [SOURCE.dng]
    python bench/batch_phases.py cuda 41 4 gopro.dng     # as run on the H200 host

FILES hard links (copies across file systems) of SOURCE (default: the 12 MP GoPro DNG of the
test data) go into a temporary folder; the first file warms the kernels, the rest run through the batch worker's
``process_job`` on IN_FLIGHT threads. Prints files/s and, per file, the time spent in
hashing, decoding, the pipe, JPEG encoding and writing, summed over the threads (so a
phase that waits on a shared lock grows with IN_FLIGHT).
"""
import collections
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import pixelpipe.batch.worker as W
import pixelpipe.io.decode as D
import pixelpipe.pipe.pipeline as P
import pixelpipe.batch.writer as BW

acc = collections.defaultdict(float)
lock = threading.Lock()
def timed(mod, name, label):
    f = getattr(mod, name)
    def g(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            with lock:
                acc[label] += time.perf_counter() - t
    setattr(mod, name, g)
timed(D, "load", "decode")
timed(W, "file_digest", "hash")
timed(BW, "jpeg_bytes", "jpeg")
timed(W, "_write", "write(all)")
orig_render = P.Pipe.render
def render(self, *a, **k):
    t = time.perf_counter()
    try:
        return orig_render(self, *a, **k)
    finally:
        with lock:
            acc["pipe.render"] += time.perf_counter() - t
P.Pipe.render = render

from pixelpipe.batch.runner import plan_export
device, n, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if len(sys.argv) > 4:
    src = sys.argv[4]
else:
    from pixelpipe.testdata import raw_dir
    src = str(raw_dir() / "gopro_hero6_black_gpr2dng.dng")
work = tempfile.mkdtemp(prefix="batch_phases_")
ind, out = os.path.join(work, "in"), os.path.join(work, "out")
os.makedirs(ind)
for i in range(n):
    try:
        os.link(src, os.path.join(ind, f"f{i:03d}.dng"))
    except OSError:
        shutil.copy(src, os.path.join(ind, f"f{i:03d}.dng"))
plan = plan_export({"inputs": [ind], "output": out, "device": device, "cwd": os.getcwd(), "quiet": True})
W.process_job(plan.jobs[0], plan.settings)  # warm
acc.clear()
t0 = time.perf_counter()
with ThreadPoolExecutor(depth) as ex:
    res = list(ex.map(lambda j: W.process_job(j, plan.settings), plan.jobs[1:]))
wall = time.perf_counter() - t0
m = len(res)
print(f"{device} in flight {depth}: {m} files in {wall:.2f} s = {m / wall:.2f} files/s; per file (summed over threads):",
      ", ".join(f"{k} {1000 * v / m:.0f} ms" for k, v in acc.items()))
shutil.rmtree(work, ignore_errors=True)
