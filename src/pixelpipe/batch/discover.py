"""The input files of a batch: files and folders (recursive), include/exclude patterns.

Folders are walked in name order (hidden files and folders, sidecars and
non-image files are left out); files named on the command line are taken as
they are (the decoder decides what they hold), except sidecars. Include and
exclude patterns are shell globs matched, case-insensitively, against the
file name and against the path below the folder given (``*.dng``,
``2024/*``, ``*/rejects/*``). Standard library only.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

#: raw extensions (darktable's list) and the other formats the decoder reads
RAW_EXTENSIONS = frozenset(
    "3fr ari arw bay cap cr2 cr3 crw dcr dcs dng drf eip erf fff gpr iiq k25 kdc mdc mef mfw mos "
    "mrw nef nrw orf ori pef ptx pxn qtk r3d raf raw rw2 rwl rwz sr2 srf srw sti x3f".split())
IMAGE_EXTENSIONS = RAW_EXTENSIONS | {"jpg", "jpeg", "png", "tif", "tiff"}
SIDECAR_SUFFIXES = (".xmp", ".pixelpipe.json", ".json", ".pp3", ".txt")


@dataclass
class InputFile:
    path: str        # absolute
    display: str     # as the user would write it
    subfolder: str   # below the command-line folder it was found in ("" when named directly)


def is_sidecar(name: str) -> bool:
    return name.lower().endswith(SIDECAR_SUFFIXES)


def _match(patterns: list[str], name: str, rel: str) -> bool:
    n, r = name.lower(), rel.lower().replace(os.sep, "/")
    return any(fnmatch.fnmatchcase(n, p.lower()) or fnmatch.fnmatchcase(r, p.lower()) for p in patterns)


def discover(inputs: list[str], cwd: str, *, include: list[str] | None = None,
             exclude: list[str] | None = None, recursive: bool = True) -> tuple[list[InputFile], list[str]]:
    """(input files in order, notices). Missing files are kept: their export reports the error."""
    include, exclude = list(include or []), list(exclude or [])
    out: list[InputFile] = []
    notices: list[str] = []
    seen: set[str] = set()

    def add(path: str, display: str, sub: str) -> None:
        key = os.path.normpath(path)
        if key not in seen:
            seen.add(key)
            out.append(InputFile(key, display, sub))

    for arg in inputs:
        full = os.path.normpath(os.path.join(cwd, arg))
        if os.path.isdir(full):
            found = 0
            for root, dirs, files in os.walk(full):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
                rel_root = os.path.relpath(root, full)
                rel_root = "" if rel_root == "." else rel_root
                for name in sorted(files):
                    if name.startswith(".") or is_sidecar(name):
                        continue
                    if name.rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS or "." not in name:
                        continue
                    rel = os.path.join(rel_root, name)
                    if include and not _match(include, name, rel):
                        continue
                    if exclude and _match(exclude, name, rel):
                        continue
                    add(os.path.join(root, name), os.path.join(arg, rel), rel_root)
                    found += 1
            if not found:
                notices.append(f"{arg}: no image files found in this folder")
            continue
        name = os.path.basename(full)
        if is_sidecar(name):
            notices.append(f"{arg}: a sidecar, not an image; skipped")
            continue
        if exclude and _match(exclude, name, arg):
            continue
        if include and not _match(include, name, arg):
            continue
        add(full, arg, "")
    return out, notices
