"""Atomic output: write to a temporary name in the destination folder, then rename.

A reader never sees a half-written file, and a failure (an exception, a
``KeyboardInterrupt``) leaves neither a temporary file nor a damaged output.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError


def check_destination(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an existing output (unless ``overwrite``) or a missing folder."""
    p = Path(path)
    if p.is_dir():
        raise OutputError("is a directory", path=str(p))
    if p.exists() and not overwrite:
        raise OutputError("exists (use --overwrite)", path=str(p))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {parent} does not exist", path=str(p))
    return p


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file keeps the destination's extension (some writers choose
    the format from it) and starts with ``.`` so that folder listings ignore it.
    On any exception, ``KeyboardInterrupt`` included, the temporary file is
    removed and the exception propagates; ``path`` is left untouched.
    """
    dest = check_destination(path, overwrite=overwrite)
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=parent)
    except OSError as e:
        raise OutputError(f"cannot create a file in {parent}: {e.strerror or e}", path=str(dest)) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise OutputError("the writer produced no data", path=str(dest))
        if not overwrite and dest.exists():  # appeared while we were writing
            raise OutputError("exists (use --overwrite)", path=str(dest))
        try:
            os.chmod(tmp_path, 0o666 & ~_umask())
        except OSError:
            pass
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    """The process umask, read without changing it (os.umask is racy in threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
