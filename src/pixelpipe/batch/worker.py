"""One input file of a batch, in whatever process runs it.

:func:`process_job` is the unit of work: the same function runs in the
``pixelpipe`` process, in the ``pixelpipe serve`` worker and in Dask workers
(local or on a cluster). Its arguments are plain data (paths, the sidecar's
JSON, settings) and so is its result; pixels never leave the process. What
is expensive to set up stays warm in the process between files: compiled
Halide kernels (``engine.kernels`` keeps them in memory after the first
load), ONNX sessions (``ai.runtime``) and the imported decoders.

For each output preset: the recipe digest (see ``recipe``) is compared with
the one stored in an existing output: equal -> skipped, different -> stale
(left alone unless ``overwrite``), absent -> written. The raw is decoded once
for all presets, only when something is to be written or an output name
needs the image (EXIF or size variables).
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Any

from ..errors import InputError, OutputError, PixelpipeError
from . import variables
from .outputs import OutputPreset, Resolved, resolve
from .recipe import RECIPE_KEY, edit_sources, file_digest, read_recipe, recipe_digest

#: statuses of one output
WRITTEN, SKIPPED, STALE, FAILED = "written", "skipped", "stale", "failed"

_STALE_MSG = "exists and is not an up-to-date export of this input with these settings"


def _settings_presets(settings: dict) -> list[OutputPreset]:
    return [OutputPreset(**p) for p in settings["presets"]]


def _context(job: dict, settings: dict) -> variables.Context:
    import datetime as dt

    return variables.Context(path=job["path"], sequence=job["seq"], subfolder=job.get("subfolder", ""),
                             now=dt.datetime.fromisoformat(settings["now"]))


def _typed(path: str, job: dict, outs: list[Resolved | None]) -> str:
    """``path`` as the user would write it: the input, a sidecar beside it, or an output."""
    p = os.path.abspath(path)
    if p == job["path"] or p.startswith(job["path"] + "."):
        return job["display"] + p[len(job["path"]):]
    for r in outs:
        if r is not None and p == r.path:
            return r.display
    return path


def _reason(e: BaseException, job: dict, outs: list[Resolved | None]) -> str:
    """The one-line reason, with paths as the user wrote them."""
    if isinstance(e, PixelpipeError):
        if e.path:
            return f"{_typed(e.path, job, outs)}: {super(PixelpipeError, e).__str__()}"
        return f"{job['display']}: {e}"
    if isinstance(e, MemoryError):
        return f"{job['display']}: out of memory"
    return f"{job['display']}: internal error: {e.__class__.__name__}: {e}"


def _as_typed(e: BaseException, job: dict, outs: list[Resolved | None]) -> None:
    """Name the file in an error as the user wrote it (the worker works on absolute paths)."""
    if isinstance(e, PixelpipeError) and e.path:
        e.path = _typed(e.path, job, outs)


def _exit_code(e: BaseException) -> int:
    if isinstance(e, PixelpipeError):
        return e.exit_code
    return 75 if isinstance(e, MemoryError) else 70


def _state(out: Resolved, recipe: str, overwrite: bool) -> str | None:
    """None: to write; SKIPPED or STALE for an existing file."""
    if not os.path.lexists(out.path):
        return None
    if os.path.isdir(out.path):
        raise OutputError("is a directory", path=out.path)
    if read_recipe(out.path) == recipe:
        return SKIPPED
    return None if overwrite else STALE


def _load_edit(image, job: dict, settings: dict):
    from ..api import load_edit
    from ..pipe.history import Edit, order_by_name

    doc = settings.get("sidecar_doc")
    if doc is not None:
        edit = Edit.from_dict(doc, path=settings.get("sidecar_display") or settings.get("sidecar"))
        if settings.get("order"):
            edit.order = order_by_name(settings["order"])
    else:
        edit = load_edit(image, None, settings.get("workflow"), settings.get("order"),
                         settings.get("chromatic_adaptation"))
    style = settings.get("style")
    if style:
        try:
            from ..presets import apply_style
        except ImportError:
            raise PixelpipeError(f"--style {style!r}: styles are not available in this build "
                                 "(pixelpipe.presets.apply_style is missing)") from None
        result = apply_style(edit, image, style)
        if result is not None and hasattr(result, "instances"):
            edit = result
    return edit


def process_job(job: dict, settings: dict, *, raise_errors: bool = False) -> dict[str, Any]:
    """Export one input to every output preset; never raises (unless ``raise_errors``)
    except for KeyboardInterrupt. The result is a plain dict (see :func:`_result`)."""
    t0 = time.perf_counter()
    presets = _settings_presets(settings)
    outs: list[Resolved | None] = [None] * len(presets)
    result: dict[str, Any] = {"index": job["index"], "input": job["display"], "path": job["path"],
                              "outputs": [], "notices": [], "error": None, "exit_code": 0, "seconds": 0.0,
                              "pid": os.getpid()}
    per_out: list[dict] = [{"preset": p.name, "path": None, "display": None, "status": None, "reason": None,
                            "seconds": 0.0} for p in presets]
    pipes: dict[bool, Any] = {}
    try:
        cwd = settings["cwd"]
        overwrite = bool(settings.get("overwrite"))
        try:
            digest = file_digest(job["path"])
        except OSError:
            digest = None  # the decoder reports what is wrong with the file
        sources = edit_sources(job["path"], sidecar_doc=settings.get("sidecar_doc"),
                               workflow=settings.get("workflow"), order=settings.get("order"),
                               style=settings.get("style"),
                               chromatic_adaptation=settings.get("chromatic_adaptation"))
        recipes = [recipe_digest(digest or "", sources, p.recipe()) for p in presets]
        todo: list[int] = []
        # 1. outputs whose names need no image: decide before decoding
        for k, p in enumerate(presets):
            if p.literal or not variables.uses_image(p.target):
                outs[k] = resolve(p, _context(job, settings), cwd)
                st = _state(outs[k], recipes[k], overwrite) if digest else None
                if st is None:
                    todo.append(k)
                else:
                    per_out[k]["status"] = st
            else:
                todo.append(k)
        image = edit = None
        if todo:
            spread_gpus(settings.get("device"))
            from ..io.decode import load

            image = load(job["path"])
            if digest is None:
                raise InputError("cannot read the file", path=job["path"])
            edit = _load_edit(image, job, settings)
            result["notices"] += [n for n in edit.notices]
        for k in todo:
            p = presets[k]
            t1 = time.perf_counter()
            try:
                pipe = pipes.get(p.hq)
                if pipe is None:
                    from ..pipe.pipeline import Pipe

                    pipe = pipes[p.hq] = Pipe(image, edit, "export", hq=p.hq, device=settings.get("device"))
                if outs[k] is None:  # the name needs EXIF or sizes
                    ctx = _context(job, settings)
                    ctx.exif = dict(image.exif)
                    ctx.sensor_size = (image.width, image.height)
                    ctx.crop_size = pipe.full_size()
                    _, ew, eh = pipe.fit_scale(p.width or None, p.height or None)
                    ctx.export_size = (ew, eh)
                    outs[k] = resolve(p, ctx, cwd)
                    st = _state(outs[k], recipes[k], overwrite)
                    if st is not None:
                        per_out[k]["status"] = st
                        continue
                out = outs[k]
                if os.path.realpath(out.path) == os.path.realpath(job["path"]):
                    raise OutputError("refusing to write over the input image", path=out.path)
                if not p.literal:
                    os.makedirs(os.path.dirname(out.path), exist_ok=True)
                # 8-bit JPEG: the pipe's last kernel quantises (a quarter of the bytes, one pass less)
                pixels = pipe.render(p.width or None, p.height or None, u8=p.format == "jpg" and p.bpp == 8)
                for n in pipe.notices:
                    if n not in result["notices"]:
                        result["notices"].append(n)
                _write(out.path, pixels, p, pipe, image, recipes[k], overwrite)
                per_out[k]["status"] = WRITTEN
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - one output failed: the others go on
                if raise_errors:
                    _as_typed(e, job, outs)
                    raise
                per_out[k]["status"] = FAILED
                per_out[k]["reason"] = _reason(e, job, outs)
                result["exit_code"] = result["exit_code"] or _exit_code(e)
                if settings.get("debug"):
                    per_out[k]["traceback"] = traceback.format_exc()
            finally:
                per_out[k]["seconds"] = time.perf_counter() - t1
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - the whole file failed (decode, edit)
        if raise_errors:
            _as_typed(e, job, outs)
            raise
        result["error"] = _reason(e, job, outs)
        result["exit_code"] = _exit_code(e)
        if settings.get("debug"):
            result["traceback"] = traceback.format_exc()
        for o in per_out:
            if o["status"] is None:
                o["status"] = FAILED
                o["reason"] = result["error"]
    pixels = None  # the last output: release() may reuse its buffer
    for pipe in pipes.values():
        pipe.release()  # the next file's modules write into these buffers
    for k, o in enumerate(per_out):
        if outs[k] is not None:
            o["path"], o["display"] = outs[k].path, outs[k].display
    if raise_errors:
        for k, o in enumerate(per_out):
            if o["status"] == STALE:
                raise OutputError(f"{_STALE_MSG} (use --overwrite to replace it)", path=outs[k].display)
    result["outputs"] = per_out
    result["seconds"] = time.perf_counter() - t0
    return result


_gpu_chosen = False


def spread_gpus(device: str | None) -> None:
    """Give each Dask worker process of a host with several GPUs one of them.

    Halide puts every process on the last GPU unless ``HL_GPU_DEVICE`` says otherwise, so
    eight workers on an eight-GPU host would share one. Once per process, before its first GPU
    kernel: a worker that will use CUDA and sees several devices takes GPU (its number, or a
    digest of its name) modulo the count. An ``HL_GPU_DEVICE`` or ``CUDA_VISIBLE_DEVICES``
    set for the worker (dask-cuda does this) is left as it is.
    """
    global _gpu_chosen
    if _gpu_chosen:
        return
    _gpu_chosen = True
    if "HL_GPU_DEVICE" in os.environ:
        return
    want = (device or os.environ.get("PIXELPIPE_DEVICE") or "cpu").lower()
    if want not in ("auto", "cuda"):
        return
    slot = _worker_slot()
    if slot is None:
        return
    n = cuda_device_count()
    if n > 1:
        os.environ["HL_GPU_DEVICE"] = str(slot % n)


def _worker_slot() -> int | None:
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None  # not in a Dask worker
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    import zlib

    return zlib.crc32(str(name).encode())


def cuda_device_count() -> int:
    """GPUs the CUDA driver shows this process (0 without a driver)."""
    import ctypes

    for lib_name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(lib_name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0:
                return count.value
        except Exception:  # noqa: BLE001 - any driver oddity: no GPU
            return 0
    return 0


def _write(path: str, pixels, preset: OutputPreset, pipe, image, recipe: str, overwrite: bool) -> None:
    from ..io.icc import icc_profile
    from .writer import write_output

    exif = image.raw_exif_bytes or dict(image.exif) or None
    metadata = {"Software": "pixelpipe", "pixelpipe:source": os.path.basename(image.path),
                RECIPE_KEY: recipe}
    write_output(path, pixels, fmt=preset.format, bpp=preset.bpp, quality=preset.quality,
                 icc=icc_profile(pipe.output_profile()), exif=exif, metadata=metadata, overwrite=overwrite)


def warm_up() -> None:
    """Import the heavy parts and load the common kernels (a small synthetic raw through the
    default export), so the first real file pays nothing. Errors are ignored."""
    import tempfile

    try:
        from ..api import open as open_photo
        from ..io.sample import make_sample_dng

        with tempfile.TemporaryDirectory(prefix="pixelpipe-warm-") as tmp:
            src = os.path.join(tmp, "warm.dng")
            make_sample_dng(src, width=96, height=64)
            photo = open_photo(src)
            pipe = photo.pipe("export")
            pipe.render(48, 48, u8=True)
    except Exception:  # noqa: BLE001 - warming is best effort
        pass
