"""ONNX Runtime sessions: provider choice, CPU fallback, pinned tile dims, FP16, IOBinding.

ONNX Runtime is imported here, lazily, and only after :func:`require_enabled`
has checked that ``ai.enabled`` is true and the package is installed.

Providers (pref ``ai.provider``): ``auto|cpu|cuda|tensorrt|rocm|migraphx|
openvino|coreml|directml``. ``auto`` tries, in darktable's order, what the
installed ONNX Runtime build offers (Linux CUDA -> MIGraphX -> ROCm, macOS
CoreML, Windows DirectML), then the CPU. A provider that is missing from the
build or fails to start falls back to the CPU with a one-line notice on
stderr; so does a provider whose run fails for a reason other than memory.

Sessions pin the symbolic dims of image inputs to the tile size (batch -> 1,
H and W -> tile) with ``SessionOptions.add_free_dimension_override_by_name``,
convert float32 inputs to the model's element type (FP16 models) and outputs
back to float32, and run through an IOBinding whenever the provider is not the
CPU (``io_binding=True`` forces it on the CPU too), so tensors already on the
device (``OrtValue``) are not copied back and forth.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pixelpipe import prefs
from pixelpipe.errors import AIError

from . import onnxinfo
from .enable import require_enabled
from .onnxinfo import TensorInfo

EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
}
SHORT_NAMES = {v: k for k, v in EP_NAMES.items()}
#: where IOBinding puts tensors for each provider (others use host memory)
DEVICE_TYPES = {"cuda": "cuda", "tensorrt": "cuda", "directml": "dml"}

_OOM_RE = re.compile(
    r"out of memory|failed to allocate|bad_alloc|alloc_failed|allocation fail|BFCArena|"
    r"cudaErrorMemoryAllocation|hipErrorOutOfMemory|MemoryError|CUDNN_STATUS_ALLOC",
    re.IGNORECASE)


class AIOutOfMemory(AIError):
    """The provider ran out of memory (the tiler retries with a smaller tile)."""


def notice(msg: str) -> None:
    """A one-line notice on stderr."""
    print(f"pixelpipe: notice: {msg}", file=sys.stderr, flush=True)


def ort():
    """The ``onnxruntime`` module; :class:`AIError` with advice when AI is off or missing."""
    require_enabled()
    try:
        import onnxruntime
    except ImportError as e:  # installed but broken
        raise AIError(f"ONNX Runtime cannot be imported ({e}); reinstall with: "
                      f"pip install --force-reinstall 'pixelpipe[ai]'") from None
    return onnxruntime


def auto_order(platform: str | None = None) -> list[str]:
    """darktable's AUTO order, without the final CPU."""
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return ["cuda", "migraphx", "rocm"]
    if platform == "darwin":
        return ["coreml"]
    if platform.startswith("win"):
        return ["directml"]
    return []


def build_providers() -> list[str]:
    """Short names of the providers the installed ONNX Runtime build offers."""
    return [SHORT_NAMES[p] for p in ort().get_available_providers() if p in SHORT_NAMES]


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or bool(_OOM_RE.search(str(exc)))


def _session_options(overrides: Mapping[str, int] | None = None, optimization: str = "all",
                     threads: int | None = None):
    rt = ort()
    so = rt.SessionOptions()
    so.log_severity_level = 3  # errors only; our notices say what matters
    so.intra_op_num_threads = threads or os.cpu_count() or 1
    so.graph_optimization_level = {
        "all": rt.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": rt.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disabled": rt.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    for name, value in (overrides or {}).items():
        so.add_free_dimension_override_by_name(name, int(value))
    return so


class _ProviderFailed(Exception):
    pass


class _InferenceFailed(AIError):
    """ONNX Runtime raised while running (not out of memory)."""


def _create(model: str | bytes, provider: str, so):
    """An InferenceSession on ``provider`` (with the CPU behind it for unsupported nodes)."""
    rt = ort()
    ep = EP_NAMES[provider]
    if provider != "cpu" and ep not in rt.get_available_providers():
        raise _ProviderFailed(f"not in this ONNX Runtime build ({rt.__version__})")
    providers = [ep] if provider == "cpu" else [ep, "CPUExecutionProvider"]
    try:
        sess = rt.InferenceSession(model, sess_options=so, providers=providers)
    except Exception as e:  # noqa: BLE001 - ORT raises several pybind types
        if provider == "cpu":
            raise
        raise _ProviderFailed(_first_line(e)) from None
    if ep not in sess.get_providers():
        raise _ProviderFailed("it did not start (missing driver or libraries?)")
    return sess


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__


def probe_provider(provider: str) -> tuple[bool, str]:
    """Does ``provider`` work here? Builds and runs a tiny model; (ok, detail)."""
    if provider not in EP_NAMES:
        raise AIError(f"unknown provider {provider!r} (one of {', '.join(EP_NAMES)})")
    ort()  # refuses with the advice while AI is off
    try:
        sess = _create(onnxinfo.probe_model_bytes(), provider, _session_options(threads=1))
        x = np.ones(onnxinfo.PROBE_SHAPE, np.float32)
        y = sess.run(None, {"x": x})[0]
        if not np.allclose(y, 2.0):
            return False, "wrong result from the probe model"
    except _ProviderFailed as e:
        return False, str(e)
    except Exception as e:  # noqa: BLE001
        return False, _first_line(e)
    return True, "works"


def probe_all() -> list[tuple[str, bool, bool, str]]:
    """(provider, in this build, works, detail) for every provider."""
    offered = set(build_providers())
    out = []
    for p in EP_NAMES:
        if p != "cpu" and p not in offered:
            out.append((p, False, False, "not in this ONNX Runtime build"))
            continue
        ok, detail = probe_provider(p)
        out.append((p, True, ok, detail))
    return out


def _tensor_infos(args) -> list[TensorInfo]:
    out = []
    for a in args:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in (a.shape or ()))
        out.append(TensorInfo(a.name, onnxinfo.ORT_TYPES.get(a.type, a.type), shape))
    return out


class Session:
    """One ONNX model loaded in ONNX Runtime.

    ``run(inputs) -> {output name: float32 array}``; ``inputs``/``outputs`` list
    :class:`TensorInfo`; ``provider`` is the provider actually in use (short name);
    ``tile`` the size H/W are pinned to (None = free); ``static_tile`` the tile a
    model with fixed H = W needs; ``cache_key`` names the model in the tile cache.
    """

    def __init__(self, path: str | Path, *, provider: str | None = None, model_id: str | None = None,
                 cache_key: str | None = None, task: str | None = None, tile: int | None = None,
                 optimization: str = "all", threads: int | None = None):
        self.path = Path(path)
        self.model_id = model_id
        self.cache_key = cache_key or model_id
        self.task = task
        self.optimization = optimization
        self.threads = threads
        req = (provider or prefs.get("ai.provider")).lower()
        if req not in ("auto", *EP_NAMES):
            raise AIError(f"unknown provider {req!r} (one of auto, {', '.join(EP_NAMES)})")
        self.requested_provider = req
        self.header_inputs, self.header_outputs = onnxinfo.read_io(self.path)
        self.tile: int | None = None
        self.provider: str = "cpu"
        self.last_run_used_io_binding = False
        self._sess = None
        self._open(tile, first=True)

    # ---------------------------------------------------------------- building
    def _overrides(self, tile: int | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.header_inputs:
            for i, d in enumerate(t.shape):
                if not isinstance(d, str):
                    continue
                if i == 0 or d in ("batch", "batch_size", "N", "num_labels"):
                    out[d] = 1
                elif tile is not None and t.rank == 4 and i in (2, 3):
                    out[d] = tile
        return out

    def _open(self, tile: int | None, first: bool = False) -> None:
        so = _session_options(self._overrides(tile), self.optimization, self.threads)
        model = str(self.path)
        if first:
            candidates = ([*auto_order(), "cpu"] if self.requested_provider == "auto"
                          else [self.requested_provider] + ([] if self.requested_provider == "cpu" else ["cpu"]))
        else:
            candidates = [self.provider] + (["cpu"] if self.provider != "cpu" else [])
        offered = set(build_providers())
        failures: list[str] = []
        for p in candidates:
            if self.requested_provider == "auto" and p != "cpu" and p not in offered:
                continue  # auto only tries what the build offers, silently
            try:
                sess = _create(model, p, so)
            except _ProviderFailed as e:
                failures.append(f"{p}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - CPU failed: the model itself is bad
                raise AIError(f"ONNX Runtime cannot load the model: {_first_line(e)}",
                              path=self.path) from None
            if failures:
                notice(f"provider {failures[-1]}; using {p}" if len(failures) == 1 else
                       f"providers failed ({'; '.join(failures)}); using {p}")
            self._sess = sess
            self.provider = p
            self.tile = tile
            self._inputs = _tensor_infos(sess.get_inputs())
            self._outputs = _tensor_infos(sess.get_outputs())
            return
        raise AIError("no execution provider could load the model: " + "; ".join(failures),
                      path=self.path)  # pragma: no cover - the CPU always is a candidate

    # ---------------------------------------------------------------- metadata
    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    @property
    def static_tile(self) -> int | None:
        """The tile size of a model whose image input has fixed, equal H and W."""
        for t in self.header_inputs:
            if t.rank == 4 and isinstance(t.shape[2], int) and t.shape[2] == t.shape[3]:
                return t.shape[2]
        return None

    @property
    def device(self) -> str:
        return DEVICE_TYPES.get(self.provider, "cpu")

    def pin_tile(self, tile: int | None) -> None:
        """Rebuild the session with H/W pinned to ``tile`` (no-op if already so or static)."""
        if tile == self.tile or self.static_tile is not None:
            return
        self._sess = None
        self._open(tile)

    def close(self) -> None:
        self._sess = None

    def __repr__(self) -> str:
        return f"<Session {self.path.name} provider={self.provider} tile={self.tile}>"

    # ---------------------------------------------------------------- running
    def _feed(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        rt = sys.modules.get("onnxruntime")
        meta = {t.name: t for t in self._inputs}
        unknown = sorted(set(inputs) - set(meta))
        missing = sorted(set(meta) - set(inputs))
        if unknown or missing:
            raise AIError(f"model inputs are {', '.join(map(str, self._inputs))}; "
                          + (f"unknown: {', '.join(unknown)} " if unknown else "")
                          + (f"missing: {', '.join(missing)}" if missing else ""), path=self.path)
        feed: dict[str, Any] = {}
        for name, value in inputs.items():
            if rt is not None and isinstance(value, rt.OrtValue):
                feed[name] = value
                continue
            want = meta[name].dtype
            arr = np.asarray(value)
            if want in ("float16", "float32", "float64") and arr.dtype != np.dtype(want):
                arr = arr.astype(want)
            feed[name] = np.ascontiguousarray(arr)
        return feed

    def run(self, inputs: Mapping[str, Any], *, io_binding: bool | None = None) -> dict[str, np.ndarray]:
        """Run the model; float16 outputs come back as float32. A provider other than the
        CPU that fails (for a reason other than memory) is replaced by the CPU, with a notice."""
        try:
            return self._run(inputs, io_binding)
        except _InferenceFailed as e:
            if self.provider == "cpu":
                raise AIError(str(e)) from None
            notice(f"provider {self.provider} failed while running {self.path.name} "
                   f"({e}); retrying on cpu")
            self.provider = "cpu"
            self._sess = None
            self._open(self.tile)
            return self._run(inputs, io_binding)

    def _run(self, inputs, io_binding):
        if self._sess is None:
            raise AIError("the session is closed", path=self.path)
        feed = self._feed(inputs)
        use_binding = (self.provider != "cpu") if io_binding is None else io_binding
        use_binding = use_binding or any(not isinstance(v, np.ndarray) for v in feed.values())
        try:
            if use_binding:
                values = self._run_bound(feed)
            else:
                values = self._sess.run(None, feed)
        except MemoryError as e:
            raise AIOutOfMemory(f"out of memory running {self.path.name} on {self.provider}") from e
        except Exception as e:  # noqa: BLE001 - ORT's pybind exceptions
            if is_oom(e):
                raise AIOutOfMemory(f"out of memory running {self.path.name} on {self.provider} "
                                    f"(tile {self.tile}): {_first_line(e)}") from None
            raise _InferenceFailed(f"inference failed: {_first_line(e)}", path=self.path) from None
        self.last_run_used_io_binding = use_binding
        out = {}
        for t, v in zip(self._outputs, values):
            v = np.asarray(v)
            out[t.name] = v.astype(np.float32) if v.dtype == np.float16 else v
        return out

    def _bind(self, feed):
        rt = ort()
        binding = self._sess.io_binding()
        dev = self.device
        for name, value in feed.items():
            if isinstance(value, rt.OrtValue):
                binding.bind_ortvalue_input(name, value)
            elif dev == "cpu":
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, rt.OrtValue.ortvalue_from_numpy(value, dev, 0))
        for t in self._outputs:
            binding.bind_output(t.name, dev, 0)
        self._sess.run_with_iobinding(binding)
        return binding

    def _run_bound(self, feed):
        return self._bind(feed).copy_outputs_to_cpu()

    def run_on_device(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Run through an IOBinding and keep the outputs where the provider put them
        (``OrtValue``), e.g. to feed a SAM encoder's outputs to its decoder."""
        feed = self._feed(inputs)
        try:
            binding = self._bind(feed)
        except Exception as e:  # noqa: BLE001
            if is_oom(e):
                raise AIOutOfMemory(f"out of memory running {self.path.name}: {_first_line(e)}") from None
            raise AIError(f"inference failed: {_first_line(e)}", path=self.path) from None
        self.last_run_used_io_binding = True
        return dict(zip((t.name for t in self._outputs), binding.get_outputs()))


def load_session(model, provider: str | None = None, *, task: str | None = None,
                 scale: int | None = None, variant: str | None = None, role: str | None = None,
                 tile: int | None = None, threads: int | None = None) -> Session:
    """A :class:`Session` for an installed model (an :class:`InstalledModel` or its id),
    or for an ``.onnx`` file.

    ``task`` refuses a model of another task; ``scale`` (upscale), ``variant``
    (rawdenoise: bayer|linear|xtrans) and ``role`` (mask: encoder|decoder) pick the
    ONNX file. The mask decoder always runs on the CPU, as in darktable.
    """
    require_enabled()
    from . import registry, tasks

    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise AIError("ONNX file not found", path=path)
        return Session(path, provider=provider, task=task, tile=tile, threads=threads)
    m = registry.require_installed(model) if isinstance(model, str) else model
    if task is not None and m.task != task:
        raise AIError(f"model {m.id} is a {m.task} model, not a {task} model; choose one with "
                      f"'pixelpipe ai models activate ID'")
    mf = m.model_file(scale=scale, variant=variant, role=role)
    enc_out = None
    if m.task == "mask" and mf.role == "decoder":
        enc_out = tasks.check_file(m.config, m.path, m.model_file(role="encoder"))[1]
    tasks.check_file(m.config, m.path, mf, encoder_outputs=enc_out)
    key = m.id if mf.variant is None else f"{m.id}_{mf.variant.kind}"
    decoder = m.task == "mask" and mf.role == "decoder"
    return Session(m.path / mf.filename, provider="cpu" if decoder else provider, model_id=m.id,
                   cache_key=key, task=m.task, tile=tile, threads=threads,
                   optimization="basic" if decoder else "all")
