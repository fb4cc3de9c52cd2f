"""Reuse of large pixel buffers between renders.

Writing into freshly mapped memory costs a page fault per 4 KiB page; on some
machines (this project's VMs among them) that cost grows tenfold once a process
holds a few hundred MB, so a darkroom render that allocates its outputs anew
spends more time faulting than computing. Buffers the pixel cache lets go of
come here, and ``empty`` hands them out again for outputs of the same shape.
A buffer is taken in only when nothing else refers to it (the caller passes its
last reference), so an image a user still holds is never overwritten.
"""
from __future__ import annotations

import os
import sys
import threading
from collections import deque

import numpy as np

MiB = 1 << 20


class BufferPool:
    def __init__(self, cap_bytes: int = 512 * MiB):
        self.cap = cap_bytes
        self._free: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self.reused = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._free)

    def give(self, arr: np.ndarray) -> bool:
        """Take ``arr`` back for reuse; the caller must hold its last reference (``del`` it after)."""
        # references: the caller's variable, this parameter, getrefcount's argument
        if arr.base is not None or not arr.flags.owndata or sys.getrefcount(arr) > 3 or arr.nbytes < MiB:
            return False
        arr.setflags(write=True)
        with self._lock:
            self._free.append(arr)
            while self._free and self.nbytes > self.cap:
                self._free.popleft()
        return True

    def take(self, shape: tuple, dtype) -> np.ndarray | None:
        shape, dtype = tuple(shape), np.dtype(dtype)
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                a = self._free[i]
                if a.shape == shape and a.dtype == dtype:
                    del self._free[i]
                    self.reused += 1
                    return a
        return None

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


POOL = BufferPool(int(os.environ.get("PIXELPIPE_POOL_MB", 512)) * MiB)


def empty(shape, dtype=np.float32) -> np.ndarray:
    """``np.empty`` that reuses a released buffer of the same shape and type when there is one."""
    a = POOL.take(shape, dtype)
    return a if a is not None else np.empty(shape, dtype)
