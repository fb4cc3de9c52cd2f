"""Up-to-date outputs: a digest of everything that made an output, stored inside it.

The recipe digest covers the input file's content, the edit's sources (an
explicit ``--sidecar``, else ``IMAGE.pixelpipe.json``, else the darktable
``IMAGE.xmp`` beside it and the user's module presets, which may be
auto-applied; plus workflow, module order and style, with the text of a user
order preset or the style's definition where one is named), the output settings
(format, size, HQ, bit depth, quality) and pixelpipe's version. It is written
into the output itself (JPEG comment, PNG text chunk, TIFF ImageDescription,
as ``pixelpipe:recipe: <hex>``), so the record travels with the file and
appears atomically with it: no shared manifest, so no lock between
processes. An existing output whose recipe matches is up to date; any other
existing file is stale.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

RECIPE_KEY = "pixelpipe:recipe"

_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()


def file_digest(path: str) -> str:
    """BLAKE2b-128 of a file's content (memoised per process by inode, size and mtime)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _digests_lock:
        d = _digests.get(key)
    if d is not None:
        return d
    with open(path, "rb") as f:
        d = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    with _digests_lock:
        if len(_digests) > 100_000:
            _digests.clear()
        _digests[key] = d
    return d


def _maybe_digest(path: Path) -> str | None:
    try:
        return file_digest(str(path)) if path.is_file() else None
    except OSError:
        return None


def edit_sources(image_path: str, *, sidecar_doc: Any = None, workflow: str | None = None,
                 order: str | None = None, style: str | None = None,
                 chromatic_adaptation: str | None = None) -> dict[str, Any]:
    """What decides the edit of ``image_path`` (see the module docstring)."""
    from ..pipe.history import sidecar_path

    src: dict[str, Any] = {"workflow": workflow, "order": order, "style": style}
    if chromatic_adaptation:
        src["chromatic_adaptation"] = chromatic_adaptation
    if sidecar_doc is not None:
        src["sidecar"] = hashlib.sha256(json.dumps(sidecar_doc, sort_keys=True).encode()).hexdigest()
    else:
        side = sidecar_path(image_path)
        src["sidecar"] = _maybe_digest(side)
        if src["sidecar"] is None:
            from .. import userdirs

            src["xmp"] = _maybe_digest(Path(str(image_path) + ".xmp"))
            src["user_presets"] = _folder_listing(userdirs.config_dir() / "presets")
    if order:
        from .. import userdirs

        src["order_preset"] = _maybe_digest(userdirs.config_dir() / "orders" / f"{order}.json")
    if style:
        src["style_def"] = _style_fingerprint(style)
    return src


def _style_fingerprint(name: str) -> str | None:
    """The style's definition (pixelpipe.presets), so editing a style makes its outputs stale."""
    try:
        import dataclasses

        from ..presets import get_style
    except ImportError:
        return None
    try:
        st = get_style(name)
    except Exception:  # noqa: BLE001 - the export itself reports a bad style
        return None
    doc = dataclasses.asdict(st) if dataclasses.is_dataclass(st) else repr(st)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _folder_listing(d: Path) -> str | None:
    """Names, sizes and mtimes under ``d`` (the user's module presets: auto-applied ones change
    the default edit)."""
    if not d.is_dir():
        return None
    h = hashlib.sha256()
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for f in sorted(files):
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            h.update(f"{os.path.relpath(os.path.join(root, f), d)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def recipe_digest(input_digest: str, sources: dict[str, Any], settings: dict[str, Any]) -> str:
    from .. import __version__

    doc = {"pixelpipe": __version__, "input": input_digest, "edit": sources, "output": settings}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- reading it back

def _from_text(text: str) -> str | None:
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == "pixelpipe" and v.strip().startswith("recipe:"):  # "pixelpipe:recipe: X"
            return v.strip()[len("recipe:"):].strip() or None
    return None


def _jpeg(f) -> str | None:
    if f.read(2) != b"\xff\xd8":
        return None
    while True:
        b = f.read(1)
        while b and b != b"\xff":
            b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end: the comment comes before
            return None
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (n,) = struct.unpack(">H", raw)
        data = f.read(n - 2)
        if marker == 0xFE:
            r = _from_text(data.decode("utf-8", "replace"))
            if r:
                return r


def _png(f) -> str | None:
    if f.read(8) != b"\x89PNG\r\n\x1a\n":
        return None
    while True:
        head = f.read(8)
        if len(head) < 8:
            return None
        n, kind = struct.unpack(">I4s", head)
        if kind in (b"IDAT", b"IEND"):
            return None
        data = f.read(n)
        f.read(4)
        if kind in (b"tEXt", b"iTXt"):
            key, _, rest = data.partition(b"\0")
            if key.decode("latin-1") == RECIPE_KEY:
                if kind == b"iTXt":
                    if rest[:1] != b"\0":  # compressed: not what we write
                        return None
                    rest = rest[2:].split(b"\0", 2)[-1]
                return rest.decode("utf-8", "replace").strip() or None


def _tiff(path: str) -> str | None:
    import tifffile

    with tifffile.TiffFile(path) as t:
        desc = t.pages[0].description if t.pages else ""
    return _from_text(desc or "")


def read_recipe(path: str) -> str | None:
    """The recipe stored in an output, or None (not ours, unreadable, other format)."""
    try:
        ext = os.path.splitext(path)[1].lower()
        if ext in (".tif", ".tiff"):
            return _tiff(path)
        with open(path, "rb") as f:
            if ext in (".jpg", ".jpeg"):
                return _jpeg(f)
            if ext == ".png":
                return _png(f)
    except Exception:  # noqa: BLE001 - whatever is wrong with the file, it is not up to date
        return None
    return None
