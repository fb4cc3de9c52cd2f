"""Just enough of the ONNX file format, without the ``onnx`` package or ONNX Runtime.

* :func:`read_io` reads a model's graph inputs and outputs (names, element
  types, dims with their symbolic names) by walking the protobuf wire format
  and skipping everything else (weights are never decoded; the file is
  memory-mapped). Installation uses it to check that a model's tensors fit its
  task before anything is put in place, and the runtime uses it to learn the
  symbolic dimension names it pins to the tile size.
* :func:`probe_model_bytes` builds a tiny valid model (``y = x + x``, float32
  ``[1, 3, 8, 8]``) byte by byte, used to test whether an execution provider
  works on this computer. ``tests/ai`` checks it with ``onnx.checker``.
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from pixelpipe.errors import AIError

#: TensorProto.DataType -> numpy-style name
ELEM_TYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    16: "bfloat16",
}
#: ONNX Runtime's ``NodeArg.type`` strings -> the same names
ORT_TYPES = {f"tensor({n})": n for n in
             ("float", "float16", "double", "uint8", "int8", "uint16", "int16", "int32",
              "int64", "bool", "string", "bfloat16", "uint32", "uint64")}
ORT_TYPES.update({"tensor(float)": "float32", "tensor(double)": "float64"})



@dataclass(frozen=True)
class TensorInfo:
    """One model input or output: name, element type ('float32', 'float16', ...), dims.

    A dim is an ``int`` when fixed, a ``str`` for a named symbolic dim and ``None``
    for an unnamed dynamic one.
    """

    name: str
    dtype: str
    shape: tuple

    @property
    def rank(self) -> int:
        return len(self.shape)

    def dim(self, i: int) -> int | None:
        """The fixed size of dim ``i``, or None if it is dynamic."""
        d = self.shape[i]
        return d if isinstance(d, int) else None

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


# --------------------------------------------------------------------------- reader

class _Bad(Exception):
    pass


def _varint(buf, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _Bad("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise _Bad("varint too long")


def _fields(buf, start: int, end: int):
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if field == 0:
            raise _Bad("field number 0")
        if wt == 0:
            val, pos = _varint(buf, pos)
            yield field, wt, val
        elif wt == 1:
            yield field, wt, (pos, pos + 8)
            pos += 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > end:
                raise _Bad("length past the end of its message")
            yield field, wt, (pos, pos + ln)
            pos += ln
        elif wt == 5:
            yield field, wt, (pos, pos + 4)
            pos += 4
        else:
            raise _Bad(f"unsupported wire type {wt}")
    if pos != end:
        raise _Bad("message overruns its length")


def _str(buf, span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")  # works for bytes and mmap


def _value_info(buf, span) -> tuple[str, str, tuple]:
    name, dtype, shape = "", "unknown", ()
    for f, wt, v in _fields(buf, *span):
        if f == 1 and wt == 2:
            name = _str(buf, v)
        elif f == 2 and wt == 2:  # TypeProto
            for f2, wt2, v2 in _fields(buf, *v):
                if f2 == 1 and wt2 == 2:  # tensor_type
                    dims: list = []
                    for f3, wt3, v3 in _fields(buf, *v2):
                        if f3 == 1 and wt3 == 0:
                            dtype = ELEM_TYPES.get(v3, f"type{v3}")
                        elif f3 == 2 and wt3 == 2:  # TensorShapeProto
                            for f4, wt4, v4 in _fields(buf, *v3):
                                if f4 == 1 and wt4 == 2:
                                    d: int | str | None = None
                                    for f5, wt5, v5 in _fields(buf, *v4):
                                        if f5 == 1 and wt5 == 0:
                                            d = v5 if v5 < (1 << 63) else None
                                        elif f5 == 2 and wt5 == 2:
                                            d = _str(buf, v5) or None
                                    dims.append(d)
                            shape = tuple(dims)
    return name, dtype, shape


def _parse(buf) -> tuple[list[TensorInfo], list[TensorInfo], int]:
    graph = None
    opset = 0
    for f, wt, v in _fields(buf, 0, len(buf)):
        if f == 7 and wt == 2:
            graph = v
        elif f == 8 and wt == 2:  # OperatorSetIdProto
            domain, version = "", 0
            for f2, wt2, v2 in _fields(buf, *v):
                if f2 == 1 and wt2 == 2:
                    domain = _str(buf, v2)
                elif f2 == 2 and wt2 == 0:
                    version = v2
            if domain in ("", "ai.onnx"):
                opset = version
    if graph is None:
        raise _Bad("no graph")
    inputs, outputs, init_names = [], [], set()
    for f, wt, v in _fields(buf, *graph):
        if f == 11 and wt == 2:
            inputs.append(TensorInfo(*_value_info(buf, v)))
        elif f == 12 and wt == 2:
            outputs.append(TensorInfo(*_value_info(buf, v)))
        elif f == 5 and wt == 2:  # initializer: only its name (field 8)
            for f2, wt2, v2 in _fields(buf, *v):
                if f2 == 8 and wt2 == 2:
                    init_names.add(_str(buf, v2))
    # before IR version 4 the initializers were also listed as graph inputs
    inputs = [t for t in inputs if t.name not in init_names]
    if not outputs:
        raise _Bad("the graph has no outputs")
    return inputs, outputs, opset


def read_io(path: str | Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """(inputs, outputs) of the ONNX model at ``path``; :class:`AIError` if it is not one."""
    inputs, outputs, _ = read_model_header(path)
    return inputs, outputs


def read_model_header(path: str | Path) -> tuple[list[TensorInfo], list[TensorInfo], int]:
    """(inputs, outputs, default-domain opset) of the ONNX model at ``path``."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                raise AIError("not an ONNX model (empty file)", path=p)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse(mm)  # indexing an mmap exports no buffer
    except FileNotFoundError:
        raise AIError("ONNX file missing", path=p) from None
    except (_Bad, IndexError) as e:
        raise AIError(f"not a valid ONNX model ({e})", path=p) from None
    except OSError as e:
        raise AIError(f"cannot read ONNX model: {e.strerror}", path=p) from None


def read_io_bytes(data: bytes) -> tuple[list[TensorInfo], list[TensorInfo]]:
    try:
        i, o, _ = _parse(bytes(data))
    except (_Bad, IndexError) as e:
        raise AIError(f"not a valid ONNX model ({e})") from None
    return i, o


# --------------------------------------------------------------------------- writer

def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _int_field(field: int, value: int) -> bytes:
    return _enc_varint(field << 3) + _enc_varint(value)


def _ld_field(field: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _enc_varint((field << 3) | 2) + _enc_varint(len(payload)) + payload


def _value_info_bytes(name: str, elem_type: int, dims: tuple[int, ...]) -> bytes:
    shape = b"".join(_ld_field(1, _int_field(1, d)) for d in dims)
    tensor_type = _int_field(1, elem_type) + _ld_field(2, shape)
    return _ld_field(1, name) + _ld_field(2, _ld_field(1, tensor_type))


PROBE_SHAPE = (1, 3, 8, 8)


def probe_model_bytes() -> bytes:
    """A tiny ONNX model, ``y = Add(x, x)`` on float32 ``[1, 3, 8, 8]`` (IR 7, opset 13)."""
    node = _ld_field(1, "x") + _ld_field(1, "x") + _ld_field(2, "y") + _ld_field(3, "add") \
        + _ld_field(4, "Add")
    graph = _ld_field(1, node) + _ld_field(2, "pixelpipe_probe") \
        + _ld_field(11, _value_info_bytes("x", 1, PROBE_SHAPE)) \
        + _ld_field(12, _value_info_bytes("y", 1, PROBE_SHAPE))
    opset = _int_field(2, 13)
    return _int_field(1, 7) + _ld_field(2, "pixelpipe") + _ld_field(7, graph) + _ld_field(8, opset)
