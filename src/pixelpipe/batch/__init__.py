"""Batch export: many files, several outputs each, in parallel, up to date, resumable.

* ``discover`` finds the inputs (files, folders, include/exclude globs);
* ``outputs`` makes the output presets and names (darktable's variables, ``variables``);
* ``recipe`` decides whether an existing output is up to date (a digest stored in it);
* ``worker.process_job`` exports one input to every preset, in any process;
* ``runner.run_export`` runs a command: in this process, on an embedded Dask
  LocalCluster (``--jobs N``) or on a Dask cluster (``--scheduler``);
* ``server``/``client``: ``pixelpipe serve``, the per-user warm worker;
* ``report``: lines, progress bar and summary on the console.

Importing this package is cheap (no NumPy, no Halide).
"""
from __future__ import annotations

__all__ = ["run_export"]


def run_export(req: dict, emit, **kw) -> int:
    from .runner import run_export as _run

    return _run(req, emit, **kw)
