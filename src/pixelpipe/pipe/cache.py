"""The pixelpipe cache: module outputs kept under a hash of everything that made them.

A line's key hashes the image, the pipe kind (with the fast flag), the
module's output region and every earlier enabled module's parameters, so a
parameter change misses from that module on and re-uses everything before.
Eviction is least-recently-used, limited by a line count (per pipe kind) and
a memory cap; lines marked important (the focused module's input) are kept.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

MiB = 1 << 20


def memory_budget(processes: int = 1) -> int:
    """Bytes pixelpipe may use for images in one of ``processes`` processes sharing the machine
    (PIXELPIPE_MEMORY_MB, a per-process figure, else half the RAM shared among them, ≤ 8 GiB each)."""
    env = os.environ.get("PIXELPIPE_MEMORY_MB")
    if env:
        return int(float(env) * MiB)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return int(min(total // 2 // max(1, processes), 8 << 30))


def default_cap() -> int:
    """At least 64 MB, at most a quarter of the memory budget."""
    return max(64 * MiB, memory_budget() // 4)


@dataclass
class Line:
    data: np.ndarray
    important: bool = False


#: lines kept per slot (see PipeCache.put)
SLOT_KEEP = 2


class PipeCache:
    def __init__(self, lines: int, cap_bytes: int | None = None):
        self.max_lines = max(2, int(lines))
        self.cap = int(cap_bytes if cap_bytes is not None else default_cap())
        self._lines: "OrderedDict[str, Line]" = OrderedDict()
        self._slots: dict = {}  # slot -> keys of its lines, oldest first
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, key: str) -> bool:
        return key in self._lines

    @property
    def nbytes(self) -> int:
        return sum(line.data.nbytes for line in self._lines.values())

    def get(self, key: str) -> np.ndarray | None:
        line = self._lines.get(key)
        if line is None:
            self.misses += 1
            return None
        self._lines.move_to_end(key)
        self.hits += 1
        return line.data

    def put(self, key: str, data: np.ndarray, important: bool = False, slot=None) -> None:
        """Store ``data`` under ``key``. ``slot`` (e.g. stage and region) groups the lines that
        replace one another when a parameter upstream changes: only the newest SLOT_KEEP of a
        slot stay (the previous one serves an undo), so dragging a slider does not fill the
        cache with outputs nobody will ask for again."""
        if data.nbytes > self.cap:
            return  # larger than the whole cache: not worth evicting everything
        data.setflags(write=False)  # a cached buffer is shared; nobody may change it
        self._lines[key] = Line(data, important)
        self._lines.move_to_end(key)
        if slot is not None:
            keys = self._slots.setdefault(slot, [])
            if key in keys:
                keys.remove(key)
            keys.append(key)
            for old in keys[:-SLOT_KEEP]:
                if old in self._lines and not self._lines[old].important:
                    self._drop(old)  # (no local reference to the line: its buffer may be reused)
            self._slots[slot] = [k for k in keys if k in self._lines]
        self._evict(keep=key)

    def _drop(self, key: str) -> None:
        """Forget a line; its buffer goes to the pool when nothing else holds it."""
        from ..engine.buffers import POOL

        data = self._lines.pop(key).data
        POOL.give(data)
        del data

    def mark_important(self, key: str) -> None:
        for k, line in self._lines.items():
            line.important = k == key

    def _evict(self, keep: str) -> None:
        def over() -> bool:
            return len(self._lines) > self.max_lines or self.nbytes > self.cap

        for important_too in (False, True):
            for k in list(self._lines):
                if not over():
                    return
                if k == keep or (self._lines[k].important and not important_too):
                    continue
                self._drop(k)

    def release(self) -> None:
        """Drop every line, each buffer to the pool when nothing else holds it."""
        for key in list(self._lines):
            self._drop(key)
        self._slots.clear()

    def invalidate(self) -> None:
        self._lines.clear()
        self._slots.clear()
