"""Install a darktable-ai model package (``<id>.dtmodel`` / ``.zip``) unchanged.

A package is a zip holding ``<id>/config.json`` and the model's ONNX files
(``dtai package`` layout); a zip with ``config.json`` at its root is accepted
too. Before anything is put in place:

* the archive size and the total uncompressed size are capped (prefs
  ``ai.max_download_mb``, ``ai.max_unpacked_mb``);
* members with absolute names, ``..`` components, backslashes, symlinks or
  other special files, or encryption refuse the whole package;
* the package is unpacked into a temporary folder *inside* the models dir,
  its ``config.json`` and ONNX tensors are checked against its task, and only
  then is the folder renamed into place (replacing an older copy of the same
  model in two renames, the old one restored if the second fails).

Any failure (including a full disk or Ctrl-C) removes the temporary folder,
so nothing is ever half-installed and the task slots are untouched.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from pixelpipe import prefs
from pixelpipe.errors import AIError

from . import config as config_mod
from . import registry, tasks

MiB = 1 << 20
MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


def limits() -> tuple[int, int]:
    """(max archive bytes, max total unpacked bytes) from the prefs."""
    return prefs.get("ai.max_download_mb") * MiB, prefs.get("ai.max_unpacked_mb") * MiB


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\\" in name:
        return "a backslash in the name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    parts = [p for p in name.split("/")]
    if any(p == ".." for p in parts):
        return "a '..' component"
    if any(p == "" for p in parts[:-1]) or "\0" in name:
        return "an empty path component"
    mode = (info.external_attr >> 16) & 0xFFFF
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "a special file"
    if info.flag_bits & 0x1:
        return "encryption"
    return None


def inspect(archive: Path) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo], str]:
    """Open and vet a package; returns (zip, members, root folder or '')."""
    max_archive, max_unpacked = limits()
    try:
        size = archive.stat().st_size
    except FileNotFoundError:
        raise AIError("package not found", path=archive) from None
    if size > max_archive:
        raise AIError(f"package is {size / MiB:.1f} MiB, over the limit of {max_archive // MiB} MiB "
                      f"(pref ai.max_download_mb)", path=archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise AIError(f"not a .dtmodel/zip package ({e})", path=archive) from None
    try:
        members = zf.infolist()
        if not members:
            raise AIError("the package is empty", path=archive)
        if len(members) > MAX_MEMBERS:
            raise AIError(f"the package has {len(members)} members (limit {MAX_MEMBERS})", path=archive)
        total = 0
        for info in members:
            why = _unsafe(info)
            if why:
                raise AIError(f"refusing package: member {info.filename!r} has {why}", path=archive)
            total += info.file_size
        if total > max_unpacked:
            raise AIError(f"the package unpacks to {total / MiB:.1f} MiB, over the limit of "
                          f"{max_unpacked // MiB} MiB (pref ai.max_unpacked_mb)", path=archive)
        names = {i.filename for i in members}
        tops = {i.filename.split("/")[0] for i in members}
        if "config.json" in names:
            root = ""
        elif len(tops) == 1 and f"{next(iter(tops))}/config.json" in names:
            root = next(iter(tops))
        else:
            raise AIError("no config.json at the package root or in its single top folder "
                          "(expected <id>/config.json)", path=archive)
        return zf, members, root
    except BaseException:
        zf.close()
        raise


def read_config(archive: str | Path) -> config_mod.ModelConfig:
    """The config.json of a package, checked (nothing is unpacked)."""
    archive = Path(archive)
    zf, _, root = inspect(archive)
    with zf:
        return _config_from_zip(zf, root, archive)


def _config_from_zip(zf: zipfile.ZipFile, root: str, archive: Path) -> config_mod.ModelConfig:
    import json

    name = f"{root}/config.json" if root else "config.json"
    try:
        raw = json.loads(zf.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise AIError(f"{name} in the package is not valid JSON ({e})", path=archive) from None
    return config_mod.parse(raw, where=f"{archive}:{name}")


def _disk_error(e: OSError, what: str, where: Path) -> AIError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return AIError(f"no space left on device while {what}; nothing was installed", path=where)
    return AIError(f"{what} failed: {e.strerror or e}; nothing was installed", path=where)


def _extract(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], root: str, dest: Path,
             max_unpacked: int) -> None:
    dest_real = os.path.realpath(dest)
    written = 0
    for info in members:
        rel = info.filename[len(root) + 1:] if root else info.filename
        if not rel or rel.endswith("/"):
            if rel:
                (dest / rel).mkdir(parents=True, exist_ok=True)
            continue
        target = dest / rel
        real = os.path.realpath(target)
        if os.path.commonpath([dest_real, real]) != dest_real:
            raise AIError(f"refusing package: member {info.filename!r} escapes the model folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "xb") as dst:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_unpacked:
                    raise AIError("the package unpacks to more than its declared size limit "
                                  "(pref ai.max_unpacked_mb)")
                dst.write(chunk)


def install_package(archive: str | Path, *, expected_id: str | None = None) -> registry.InstalledModel:
    """Install a ``.dtmodel``/zip package; returns the installed model.

    Replaces an installed model of the same id; the task slots are not changed.
    """
    archive = Path(archive)
    _, max_unpacked = limits()
    zf, members, root = inspect(archive)
    with zf:
        cfg = _config_from_zip(zf, root, archive)
        if root and root != cfg.id:
            raise AIError(f"package folder {root!r} does not match the model id {cfg.id!r}", path=archive)
        if expected_id is not None and cfg.id != expected_id:
            raise AIError(f"the package holds model {cfg.id!r}, not {expected_id!r}", path=archive)
        mdir = registry.models_dir()
        _clean_stale(mdir)
        try:
            mdir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".install-{cfg.id}-", dir=mdir))
        except OSError as e:
            raise _disk_error(e, "creating the models folder", mdir) from None
        try:
            staged = tmp / cfg.id
            staged.mkdir()
            try:
                _extract(zf, members, root, staged, max_unpacked)
            except OSError as e:
                raise _disk_error(e, "unpacking the package", archive) from None
            except (zipfile.BadZipFile, EOFError) as e:
                raise AIError(f"the package is corrupt ({e}); nothing was installed", path=archive) from None
            staged_cfg = config_mod.load(staged / "config.json")
            tasks.check_model_dir(staged_cfg, staged)
            _swap_into_place(staged, mdir / cfg.id)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    m = registry.get_installed(cfg.id)
    if m is None or not m.ok:  # pragma: no cover - just checked above
        raise AIError(f"model {cfg.id} did not install", path=mdir / cfg.id)
    return m


STALE_S = 3600
_TEMP_PREFIXES = (".install-", ".replaced-", ".delete-")


def _clean_stale(mdir: Path) -> None:
    """Remove temporary folders that an earlier run left behind when it was killed
    (older than an hour, so that a concurrent install is never touched)."""
    import time

    try:
        entries = list(mdir.iterdir())
    except OSError:
        return
    now = time.time()
    for p in entries:
        try:
            if p.name.startswith(_TEMP_PREFIXES) and p.is_dir() and now - p.stat().st_mtime > STALE_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def _swap_into_place(staged: Path, final: Path) -> None:
    try:
        if not final.exists():
            os.rename(staged, final)
            return
        old = final.parent / f".replaced-{final.name}-{secrets.token_hex(4)}"
        os.rename(final, old)
        try:
            os.rename(staged, final)
        except BaseException:
            os.rename(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise _disk_error(e, "moving the model into place", final) from None
