#!/usr/bin/env python3
"""Darkroom latency: from setting the tone mapper's parameter to the returned array of a
fit-to-window view (default 1920x1080) of a 24 MP raw, on the CPU.

    . .venv/bin/activate
    python bench/bench_darkroom.py [RAW] [--width 1920 --height 1080] [--runs 20] [--json PATH]

The darkroom pipe (kind "full", the tone mapper focused as when its slider is
dragged) renders the view once; then, --runs times, the edit's
``sigmoid.middle_grey_contrast`` is set to a new value and the view rendered
again: the pixel cache serves everything before the tone mapper, so only the
modules after it run. Reported: median / min / max wall time of those renders
and the stages that ran. Default RAW: bench/out/gopro_hero6_24mp.dng (built by
bench/make_24mp.py).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", nargs="?", default=str(HERE / "out" / "gopro_hero6_24mp.dng"))
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not Path(a.raw).exists():
        sys.exit(f"{a.raw} not found: build it with python bench/make_24mp.py")
    from pixelpipe.io.decode import load
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    img = load(a.raw)
    edit = Edit.default_for(img)  # scene-referred sigmoid
    pipe = Pipe(img, edit, "full", focused="sigmoid")
    t = time.perf_counter()
    first = pipe.render(a.width, a.height)
    first_s = time.perf_counter() - t
    times, executed = [], None
    for k in range(a.runs):
        edit.set_params("sigmoid", img, middle_grey_contrast=1.4 + 0.01 * (k + 1))  # a new value each time
        t = time.perf_counter()
        view = pipe.render(a.width, a.height)
        times.append(time.perf_counter() - t)
        executed = list(pipe.last.executed)
    rep = {"raw": Path(a.raw).name, "size": [img.width, img.height], "view": list(view.shape[1:][::-1]),
           "first_render_s": round(first_s, 3), "runs": a.runs,
           "slider_ms_median": round(statistics.median(times) * 1000, 1),
           "slider_ms_min": round(min(times) * 1000, 1), "slider_ms_max": round(max(times) * 1000, 1),
           "slider_ms_each": [round(t * 1000, 1) for t in times],
           "stages_run_after_change": executed, "first_shape": list(first.shape)}
    print(json.dumps(rep, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
