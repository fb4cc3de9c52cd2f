"""Writing a rendered image fast: the 8-bit JPEG path of batch exports.

``io.writers.write_image`` takes (H, W, 3) float RGB: for a 12 MP image it
copies, clips and quantises on one core and hands Pillow a strided array,
which costs more than the whole pixel pipe's point-wise part. Here the
planar (3, H, W) pipe output is quantised and interleaved by one Halide
kernel (multi-threaded, the same rounding: ``x * 255 + 0.5`` clamped and
truncated) and encoded by libjpeg-turbo through imagecodecs straight from
the array; EXIF (APP1), the ICC profile (APP2, split as the ICC spec says)
and the comment with the recipe are inserted after the JFIF header. Quality
and chroma subsampling are write_image's (4:4:4 from quality 90); Huffman
tables are not optimised (2% larger files, 2.5x faster encoding). Other
formats and depths go through write_image. Either way the file appears
atomically (``io.atomic``).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..engine.kernels import get_kernel, source_tag_of
from ..io.atomic import atomic_write
from ..io.writers import exif_to_bytes, write_image


def _build_quantise():
    import halide as hl

    from ..engine import halide_ops as ho

    x, y, c = ho.x, ho.y, ho.c
    src = hl.ImageParam(hl.Float(32), 3, "planar")  # numpy (3, H, W) -> f[x, y, c]
    out = hl.Func("interleaved")  # numpy (H, W, 3) -> f[c, x, y]
    val = src[x, y, c]
    val = hl.select(hl.is_nan(val), hl.f32(0), val)
    out[c, x, y] = hl.cast(hl.UInt(8), hl.clamp(val * hl.f32(255) + hl.f32(0.5), hl.f32(0), hl.f32(255)))
    out.bound(c, 0, 3).reorder(c, x, y).unroll(c).vectorize(x, 16, ho.GUARD).parallel(y, 16, ho.GUARD)
    return out, [src]


def quantise_u8(planar: np.ndarray) -> np.ndarray:
    """Planar float (3, H, W) in [0, 1] -> interleaved uint8 (H, W, 3), rounded to nearest."""
    k = get_kernel("batch_quantise_u8", _build_quantise, source_tag=source_tag_of(_build_quantise))
    _, h, w = planar.shape
    out = np.empty((h, w, 3), np.uint8)
    k(np.ascontiguousarray(planar, dtype=np.float32), out)
    return out


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("JPEG segment too large")
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _icc_segments(icc: bytes) -> list[bytes]:
    step = 65519 - 14
    chunks = [icc[i:i + step] for i in range(0, len(icc), step)] or [b""]
    return [_segment(0xE2, b"ICC_PROFILE\0" + bytes([k + 1, len(chunks)]) + ch) for k, ch in enumerate(chunks)]


def jpeg_bytes(u8: np.ndarray, *, quality: int, icc: bytes | None, exif: bytes | None,
               comment: str | None) -> bytes:
    import imagecodecs

    data = bytes(imagecodecs.jpeg8_encode(u8, level=int(quality),
                                          subsampling="444" if quality >= 90 else "420", optimize=False))
    # after SOI and the JFIF APP0 (if any): APP1 EXIF, APP2 ICC, COM
    pos = 2
    if data[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", data[4:6])[0]
    extra = []
    if exif:
        body = exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif
        if len(body) + 2 <= 0xFFFF:
            extra.append(_segment(0xE1, body))
    if icc:
        extra += _icc_segments(icc)
    if comment:
        extra.append(_segment(0xFE, comment.encode("utf-8")[:65000]))
    return data[:pos] + b"".join(extra) + data[pos:]


def write_output(path: str | os.PathLike, planar: np.ndarray, *, fmt: str, bpp: int, quality: int,
                 icc: bytes | None, exif, metadata: dict[str, str], overwrite: bool) -> Path:
    """Write the pipe's planar output to ``path`` (atomically) with ICC, EXIF and ``metadata``."""
    path = Path(path)
    if fmt == "jpg" and bpp == 8:
        u8 = quantise_u8(planar)
        comment = "\n".join(f"{k}: {v}" for k, v in metadata.items())
        data = jpeg_bytes(u8, quality=quality, icc=icc, exif=exif_to_bytes(exif), comment=comment)
        with atomic_write(path, overwrite=overwrite) as tmp:
            Path(tmp).write_bytes(data)
        return path
    return write_image(path, planar.transpose(1, 2, 0), bpp=bpp, icc=icc, exif=exif, quality=quality,
                       overwrite=overwrite, metadata=metadata)
