"""Preload of the embedded LocalCluster's worker processes (``--jobs N``).

Ctrl-C in a terminal sends SIGINT to the whole process group: the command
and its worker processes. The command handles it (cancels the batch, closes
the cluster, removes what a killed writer left); the workers ignore it, so a
Ctrl-C shows one line rather than a traceback from each worker.
"""
from __future__ import annotations

import signal


def dask_setup(worker=None) -> None:  # noqa: ARG001 - Dask's preload hook
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # pragma: no cover - not the main thread of the worker process
        pass
