#!/usr/bin/env python3
"""Where one export's time goes, in one warm process: imports, decode, each pipe stage, JPEG write.

    . .venv/bin/activate
    python bench/profile_export.py [RAW] [--workflow scene-referred-filmic] [--order v30] [--runs 3]

Prints one line per run (the first pays kernel loading); the per-stage wall
times are the pipe's own (``Pipe.last.seconds``, also printed by any export with
``PIXELPIPE_PROFILE=1``). Default RAW: the 12 MP GoPro DNG of the test data.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

t_start = time.perf_counter()
from pixelpipe.io.decode import load  # noqa: E402
from pixelpipe.io.writers import write_image  # noqa: E402
from pixelpipe.pipe.history import Edit  # noqa: E402
from pixelpipe.pipe.pipeline import Pipe  # noqa: E402
from pixelpipe.testdata import raw_dir  # noqa: E402

IMPORTS = time.perf_counter() - t_start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", nargs="?", default=str(raw_dir() / "gopro_hero6_black_gpr2dng.dng"))
    ap.add_argument("--workflow", default="scene-referred-filmic")
    ap.add_argument("--order", default="v30")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    print(f"imports {IMPORTS:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.runs):
            t0 = time.perf_counter()
            img = load(a.raw)
            t1 = time.perf_counter()
            pipe = Pipe(img, Edit.default_for(img, workflow=a.workflow, order=a.order), "export")
            out = pipe.render()
            t2 = time.perf_counter()
            write_image(Path(tmp) / "out.jpg", out.transpose(1, 2, 0), overwrite=True)
            t3 = time.perf_counter()
            stages = ", ".join(f"{n} {v * 1000:.0f}" for n, v in pipe.last.seconds.items())
            print(f"run {k + 1}: decode {t1 - t0:.2f} s, pipe {t2 - t1:.2f} s, write {t3 - t2:.2f} s; "
                  f"stages (ms): {stages}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
