"""Compiled Halide kernels: built once, cached in-process and on disk.

A kernel is described by a builder that returns the output Func and its
argument list (ImageParams and Params, in call order). Parameters are runtime
``hl.Param`` values, so moving a slider never recompiles.

Compilation paths, first that works:
1. a shared library already in the user's kernel cache (no compile at all);
2. ahead-of-time: Halide writes an object file plus its Python-extension glue,
   the system C++ compiler links them into an importable module stored in the
   cache, keyed by module source, kernel name, variant, target and Halide
   version, so later processes pay nothing;
3. JIT in this process when no C++ compiler/Python headers are present (one
   notice per process).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import halide as hl
import numpy as np

from ..userdirs import cache_dir
from .target import target_for

Builder = Callable[[], tuple[hl.Func, Sequence[Any]]]

#: How many Halide compilations this process has done (JIT or AOT). The
#: "second process compiles nothing" test reads it.
STATS = {"compiled": 0, "loaded_from_disk": 0, "jit": 0}

# Halide warns when a Python float constant is narrowed to float32; our constants are meant as float32
warnings.filterwarnings("ignore", message="The floating-point value", category=RuntimeWarning)

_lock = threading.RLock()
_memory: dict[str, "Kernel"] = {}
_jit_notice_shown = False


@functools.lru_cache(maxsize=None)
def _halide_version() -> str:  # read once: the package metadata lookup costs ~1 ms
    try:
        from importlib.metadata import version

        return version("halide")
    except Exception:  # noqa: BLE001
        return "unknown"


def kernel_cache_dir() -> Path:
    return Path(os.environ.get("PIXELPIPE_KERNEL_CACHE", cache_dir() / "kernels"))


def _aot_possible() -> bool:
    if os.environ.get("PIXELPIPE_NO_AOT"):
        return False
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    inc = sysconfig.get_paths().get("include")
    return bool(cxx and inc and Path(inc, "Python.h").exists())


@dataclass
class Kernel:
    name: str
    fn: Callable[..., Any]
    source: str  # "memory" | "disk" | "aot" | "jit"

    def __call__(self, *args):
        return self.fn(*args)


def _key(name: str, variant: str, device: str, source_tag: str) -> str:
    target = str(target_for(device))
    h = hashlib.sha256("|".join([name, variant, target, _halide_version(), source_tag]).encode())
    return f"{name}-{h.hexdigest()[:20]}"


@functools.lru_cache(maxsize=None)
def file_digest(path: str) -> bytes:
    """SHA-256 of a source file, read once per process: the key must describe the code this
    process imported, not a later edit of the file (see ``remember_sources``)."""
    return hashlib.sha256(Path(path).read_bytes()).digest()


def remember_sources(prefixes=("pixelpipe.modules.", "pixelpipe.engine.")) -> None:
    """Digest the source of every imported kernel-defining module now (called right after the
    modules are imported), so a file edited while this process runs cannot lend its new hash
    to a kernel built from the old code."""
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if path and name.startswith(prefixes):
            file_digest(path)


def source_tag_of(*objs) -> str:
    """Hash of the Python source files that define a kernel (module + engine helpers)."""
    h = hashlib.sha256()
    # the shared schedule helpers shape every kernel too
    h.update(file_digest(str(Path(__file__).parent / "halide_ops.py")))
    for o in objs:
        path = getattr(o, "__file__", None) or sys.modules[o.__module__].__file__
        h.update(file_digest(str(path)))
    return h.hexdigest()[:16]


def _load_extension(path: Path, fname: str):
    spec = importlib.util.spec_from_file_location(fname, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, fname)


def _compile_aot(func: hl.Func, args, fname: str, device: str, dest: Path):
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".build-") as tmp:
        t = Path(tmp)
        outs = {
            hl.OutputFileType.object: str(t / f"{fname}.o"),
            hl.OutputFileType.python_extension: str(t / f"{fname}.py.cpp"),
        }
        hl.Pipeline(func).compile_to(outs, list(args), fname, target_for(device))
        inc = Path(hl.__file__).parent / "include"
        so_tmp = t / dest.name
        cmd = [
            shutil.which(os.environ.get("CXX", "g++")) or "c++", "-O1", "-shared", "-fPIC", "-std=c++17",
            "-I", str(inc), "-I", sysconfig.get_paths()["include"],
            str(t / f"{fname}.py.cpp"), str(t / f"{fname}.o"), "-o", str(so_tmp), "-lpthread", "-ldl",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"linking kernel {fname} failed: {r.stderr[-2000:]}")
        os.replace(so_tmp, dest)  # atomic: concurrent processes may race, both results are equal


def get_kernel(name: str, builder: Builder, *, variant: str = "", device: str = "cpu",
               source_tag: str = "") -> Kernel:
    """Return a callable kernel ``k(*inputs, *params, out)`` for ``builder``.

    ``variant`` distinguishes structurally different builds of one kernel
    (e.g. a CFA kind); ``source_tag`` should change whenever the algorithm or
    schedule changes (use :func:`source_tag_of` on the defining module).
    """
    global _jit_notice_shown
    key = _key(name, variant, device, source_tag)
    with _lock:
        k = _memory.get(key)
        if k is not None:
            return k
        fname = "k_" + hashlib.sha1(key.encode()).hexdigest()[:16]
        so = kernel_cache_dir() / device / (fname + sysconfig.get_config_var("EXT_SUFFIX"))
        fn = None
        if so.exists():
            try:
                fn = _load_extension(so, fname)
                STATS["loaded_from_disk"] += 1
                src = "disk"
            except Exception:  # noqa: BLE001 - a stale/corrupt cache entry is rebuilt
                so.unlink(missing_ok=True)
                fn = None
        if fn is None:
            func, args = builder()
            if _aot_possible():
                try:
                    _compile_aot(func, args, fname, device, so)
                    STATS["compiled"] += 1
                    fn = _load_extension(so, fname)
                    src = "aot"
                except Exception as e:  # noqa: BLE001
                    print(f"pixelpipe: notice: ahead-of-time kernel build failed ({str(e)[:200]}); using JIT",
                          file=sys.stderr)
                    fn = None
            if fn is None:
                if not _jit_notice_shown and not _aot_possible():
                    print("pixelpipe: notice: no C++ compiler or Python headers found; kernels are "
                          "JIT-compiled in each process (install g++ and python3-dev to cache them)",
                          file=sys.stderr)
                    _jit_notice_shown = True
                func, args = builder()
                fn = hl.Pipeline(func).compile_to_callable(list(args), target_for(device))
                STATS["compiled"] += 1
                STATS["jit"] += 1
                src = "jit"
        k = Kernel(name, fn, src)
        _memory[key] = k
        return k


def widen(a: np.ndarray) -> np.ndarray:
    """``a`` with its last two axes edge-padded to at least 2 (the same values a clamped read sees).

    Halide's Python-extension glue reads an array that is C- and Fortran-contiguous at once
    (at most one axis longer than 1, e.g. (3, 1, 1)) in Fortran order, swapping its axes;
    callers widen thin images with this and crop the result.
    """
    h, w = a.shape[-2:]
    pad = [(0, 0)] * (a.ndim - 2) + [(0, max(0, 2 - h)), (0, max(0, 2 - w))]
    return np.pad(a, pad, mode="edge")


def f32(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 view/copy, as kernels expect."""
    return np.ascontiguousarray(a, dtype=np.float32)
