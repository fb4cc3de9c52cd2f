"""What the four AI tasks share: the active model and its sessions, the sRGB curve,
rendering through the user's pipe, output names, float TIFFs and group sidecars.

Rendering follows darktable's neural_restore: the image goes through the user's
whole edit in an **export** pipe whose output profile is forced to linear
Rec.709 (``colorout`` profile ``linear_srgb``); the pipe's last module clamps to
[0, 1]. The tasks then encode with the sRGB curve (IEC 61966-2-1) for the model
and decode its output.

Group sidecar (darktable groups a restored image with its source, the new file
being the group leader): every file a task writes gets ``OUT.pixelpipe.json``
beside it. It is a normal pixelpipe edit (for TIFF outputs the ``none``
workflow, so the already-developed pixels are shown as they are; for raw
denoise DNGs the source's edit re-applied with classical denoising switched
off) plus a top-level ``"group"`` object::

    "group": {"leader": "IMG_0001_denoised.tif",          # this file (the group leader)
              "source": "IMG_0001.CR2",                    # relative to this file's folder
              "source_sha256": "...",                      # of the source file when it was made
              "task": "denoise", "model": "denoise-ffdnet", "model_version": "1.0",
              "settings": {...}, "created": "2026-...Z", "software": "pixelpipe 0.1.0"}

:func:`group_of` reads it back. (pixelpipe's edit loader ignores the key; an
edit saved again by a tool that does not know it may drop it.)
"""
from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pixelpipe.errors import AIError, InputError

SRGB_A = 0.055
SRGB_CUT_LIN = 0.0031308
SRGB_CUT_ENC = 0.04045


# --------------------------------------------------------------------------- sRGB curve

def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear -> sRGB-encoded (IEC 61966-2-1), float32; values below 0 are clamped to 0,
    values above 1 follow the curve's formula (the caller clamps when it must)."""
    x = np.maximum(np.asarray(x, dtype=np.float32), np.float32(0.0))
    return np.where(x <= SRGB_CUT_LIN, np.float32(12.92) * x,
                    np.float32(1 + SRGB_A) * np.power(x, np.float32(1 / 2.4)) - np.float32(SRGB_A)
                    ).astype(np.float32)


def srgb_decode(y: np.ndarray) -> np.ndarray:
    """sRGB-encoded -> linear (IEC 61966-2-1), float32; negative values are clamped to 0."""
    y = np.maximum(np.asarray(y, dtype=np.float32), np.float32(0.0))
    return np.where(y <= SRGB_CUT_ENC, y / np.float32(12.92),
                    np.power((y + np.float32(SRGB_A)) / np.float32(1 + SRGB_A), np.float32(2.4))
                    ).astype(np.float32)


def srgb_slope(x: np.ndarray) -> np.ndarray:
    """d(encode)/d(linear) at ``x`` (to carry a noise level through the curve)."""
    x = np.maximum(np.asarray(x, dtype=np.float32), np.float32(1e-6))
    return np.where(x <= SRGB_CUT_LIN, np.float32(12.92),
                    np.float32((1 + SRGB_A) / 2.4) * np.power(x, np.float32(1 / 2.4 - 1))
                    ).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec.709 luminance of planar (3, H, W) RGB (darktable's weights 0.2126, 0.7152, 0.0722)."""
    return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]).astype(np.float32)


# --------------------------------------------------------------------------- models and sessions

def require_model(task: str):
    """The active model of ``task``; :class:`AIError` with the advice when AI is off or
    the task has no model."""
    from pixelpipe import ai, prefs

    ai.require_enabled()
    m = ai.active_model(task)
    if m is None:
        if prefs.get(f"ai.models.active.{task}") == "none":
            raise AIError(f"the {task} task is switched off; activate a model with "
                          f"'pixelpipe ai models activate ID' (see 'pixelpipe ai models list --task {task}')")
        raise AIError(f"no {task} model is installed; see 'pixelpipe ai models list --task {task}' "
                      f"(install one with 'pixelpipe ai models install FILE' or download one)")
    return m


_SESSIONS: dict[tuple, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def session_for(model, **kw):
    """A cached :class:`~pixelpipe.ai.runtime.Session` for an installed model (``scale``,
    ``variant``, ``role``, ``provider`` as :func:`pixelpipe.ai.load_session`). Sessions are
    reused while the ONNX file and the provider preference are unchanged. The tensors are
    checked against the task's contract when the session is made, so a model that does not
    fit its task is refused at load."""
    from pixelpipe import ai, prefs

    path = model.onnx_path(**{k: v for k, v in kw.items() if k in ("scale", "variant", "role")})
    try:
        st = path.stat()
    except OSError:
        raise AIError(f"model {model.id}: ONNX file missing", path=path) from None
    key = (model.id, str(path), st.st_mtime_ns, st.st_size, prefs.get("ai.provider"),
           tuple(sorted(kw.items())))
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(key)
        if s is None:
            s = ai.load_session(model, **kw)
            _SESSIONS[key] = s
        return s


def clear_sessions() -> None:
    """Forget every cached session (tests, or after a model was deleted)."""
    with _SESSIONS_LOCK:
        for s in _SESSIONS.values():
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass
        _SESSIONS.clear()


# --------------------------------------------------------------------------- rendering

def open_photo(path: str | os.PathLike, sidecar: str | os.PathLike | None = None):
    """Decode ``path`` with its edit (sidecar beside it, else the workflow's defaults)."""
    from pixelpipe.api import open as open_photo_

    return open_photo_(path, sidecar=sidecar)


def linear_edit(edit, image):
    """A copy of ``edit`` whose output profile is linear Rec.709 (darktable's neural_restore input)."""
    e = copy.deepcopy(edit)
    e.set_params("colorout", image, profile="linear_srgb")
    return e


def render_linear(photo, roi=None, *, edit=None, image=None) -> np.ndarray:
    """The photo through its edit as linear Rec.709, planar float32 ``(3, H, W)`` in [0, 1].

    ``roi`` (a :class:`~pixelpipe.modules.base.ROI` of the full-size output) renders that
    region only (previews)."""
    from pixelpipe.pipe.pipeline import Pipe

    image = image if image is not None else photo.image
    e = linear_edit(edit if edit is not None else photo.edit, image)
    pipe = Pipe(image, e, "export")
    out = pipe.render() if roi is None else pipe.process(roi)
    for n in pipe.notices:
        if n not in photo.notices:
            photo.notices.append(n)
    return np.ascontiguousarray(out, dtype=np.float32)


def full_output_size(photo, edit=None) -> tuple[int, int]:
    from pixelpipe.pipe.pipeline import Pipe

    return Pipe(photo.image, edit if edit is not None else photo.edit, "export").full_size()


# --------------------------------------------------------------------------- outputs

OUTPUT_SUFFIX = {"denoise": "_denoised", "upscale": "_x{scale}", "rawdenoise": "_rawdenoised"}


def derived_path(src: str | os.PathLike, task: str, ext: str, out_dir: str | os.PathLike | None = None,
                 **fmt) -> Path:
    """``<folder>/<stem><suffix><ext>``: beside the source (darktable's ``$(FILE_FOLDER)``)
    or in ``out_dir``."""
    s = Path(src)
    folder = Path(out_dir) if out_dir is not None else s.parent
    return folder / f"{s.stem}{OUTPUT_SUFFIX[task].format(**fmt)}{ext}"


def split_inputs_output(paths: list[str], exts: tuple[str, ...]) -> tuple[list[str], str | None]:
    """``INPUT… [OUTPUT]``: with several arguments the last is the output when it is a
    folder, names a file with one of ``exts``, or does not exist yet."""
    if len(paths) < 2:
        return list(paths), None
    last = Path(paths[-1])
    if last.is_dir() or last.suffix.lower() in exts or not last.exists():
        return list(paths[:-1]), paths[-1]
    return list(paths), None


def plan_outputs(inputs: list[str], output: str | None, task: str, ext: str, exts: tuple[str, ...],
                 **fmt) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: OUTPUT is a file name (one input, extension in
    ``exts``), a folder (created), or absent (each result beside its source)."""
    if output is not None:
        o = Path(output)
        if o.suffix.lower() in exts and not o.is_dir():
            if len(inputs) != 1:
                raise AIError(f"{len(inputs)} inputs need an output folder, not a file name", path=str(o))
            return [(Path(inputs[0]), o)]
        if o.exists() and not o.is_dir():
            raise AIError(f"the output must be a folder or a file ending in {'/'.join(exts)}", path=str(o))
        o.mkdir(parents=True, exist_ok=True)
        return [(Path(i), derived_path(i, task, ext, o, **fmt)) for i in inputs]
    return [(Path(i), derived_path(i, task, ext, None, **fmt)) for i in inputs]


def check_input(path: Path) -> None:
    if not Path(path).exists():
        raise InputError("no such file", path=str(path))
    if Path(path).is_dir():
        raise InputError("is a directory, not an image file", path=str(path))


def write_tiff(path: Path, planar_linear: np.ndarray, image, *, overwrite: bool = False,
               bpp: int = 32, source: str | None = None) -> Path:
    """Write linear Rec.709 planar RGB as a TIFF with the matching ICC and the source's EXIF:
    32-bit float linear (darktable's default for restored images), or 8/16-bit sRGB-encoded.
    Atomic (temporary name, then rename)."""
    from pixelpipe.io.icc import icc_profile
    from pixelpipe.io.writers import write_image

    rgb = np.ascontiguousarray(np.moveaxis(planar_linear, 0, 2), dtype=np.float32)
    profile = "linear_srgb"
    if bpp != 32:
        rgb = srgb_encode(np.clip(rgb, 0, 1))
        profile = "srgb"
    exif = getattr(image, "raw_exif_bytes", None) or (dict(image.exif) if getattr(image, "exif", None) else None)
    meta = {"Software": "pixelpipe"}
    if source:
        meta["pixelpipe:source"] = source
    return write_image(path, rgb, fmt="tiff", bpp=bpp, icc=icc_profile(profile), exif=exif,
                       overwrite=overwrite, metadata=meta)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def group_record(out: Path, source: Path, task: str, model, settings: dict) -> dict:
    from pixelpipe import __version__ as version

    try:
        rel = os.path.relpath(Path(source).resolve(), Path(out).resolve().parent)
    except ValueError:  # another drive (Windows)
        rel = str(Path(source).resolve())
    return {"leader": Path(out).name, "source": rel, "source_sha256": sha256_file(source),
            "task": task, "model": getattr(model, "id", None),
            "model_version": getattr(getattr(model, "config", None), "version", None),
            "settings": settings,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "software": f"pixelpipe {version}"}


def write_group_sidecar(out: Path, edit, group: dict, *, overwrite: bool = True) -> Path:
    """``OUT.pixelpipe.json``: ``edit`` plus the ``"group"`` record (atomic write)."""
    from pixelpipe.io.atomic import atomic_write
    from pixelpipe.pipe.history import sidecar_path

    d = edit.to_dict()
    d["group"] = group
    dest = sidecar_path(out)
    with atomic_write(dest, overwrite=overwrite) as tmp:
        Path(tmp).write_text(json.dumps(d, indent=2), encoding="utf-8")
    return dest


def group_of(path: str | os.PathLike) -> dict | None:
    """The ``"group"`` record of a file written by an AI task (None when there is none)."""
    from pixelpipe.pipe.history import sidecar_path

    p = sidecar_path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    g = d.get("group") if isinstance(d, dict) else None
    return g if isinstance(g, dict) else None


def neutral_edit_for_rgb(path: Path):
    """The edit for a developed (linear Rec.709) TIFF: the ``none`` workflow (input profile
    from the file, output sRGB), so its pixels are shown as they are."""
    from pixelpipe.io.source import SourceImage
    from pixelpipe.pipe.history import Edit

    stub = SourceImage(path=str(path), kind="rgb", data=np.zeros((3, 1, 1), np.float32), encoding="linear")
    return Edit.default_for(stub, "none")


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` (output pixels) -> ints."""
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0 or vals[0] < 0 or vals[1] < 0:
        raise AIError(f"bad region {text!r}: expected X,Y,W,H in output pixels (W, H > 0)")
    return vals[0], vals[1], vals[2], vals[3]


def clip_roi(roi: tuple[int, int, int, int], size: tuple[int, int]):
    from pixelpipe.modules.base import ROI

    x, y, w, h = roi
    W, H = size
    if x >= W or y >= H:
        raise AIError(f"region {roi} lies outside the {W}x{H} image")
    return ROI(x, y, min(w, W - x), min(h, H - y), 1.0)


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 4) -> np.ndarray:
    """Two planar (3, H, W) images next to each other with a grey gap (previews)."""
    h = max(before.shape[1], after.shape[1])
    out = np.full((3, h, before.shape[2] + gap + after.shape[2]), 0.2, np.float32)
    out[:, :before.shape[1], :before.shape[2]] = before
    out[:, :after.shape[1], before.shape[2] + gap:] = after
    return out


def write_preview(path: Path, planar_linear: np.ndarray, *, overwrite: bool = False) -> Path:
    """An 8-bit sRGB PNG/JPEG/TIFF of linear planar RGB (previews)."""
    from pixelpipe.io.icc import icc_profile
    from pixelpipe.io.writers import write_image

    rgb = srgb_encode(np.clip(np.moveaxis(planar_linear, 0, 2), 0, 1))
    return write_image(path, rgb, bpp=8, icc=icc_profile("srgb"), overwrite=overwrite)
