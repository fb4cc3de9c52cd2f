"""Writing a rendered image fast: the 8-bit JPEG path of batch exports.

``io.writers.write_image`` hands Pillow (H, W, 3) RGB. Here the pipe's last
kernel writes interleaved 8-bit samples (a planar float output is quantised by
``engine.convert`` with the same rounding), which libjpeg-turbo encodes through
imagecodecs straight from the array; EXIF (APP1), the ICC profile (APP2, split
as the ICC spec says) and the comment with the recipe are inserted after the
JFIF header. Quality
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

from ..engine.convert import quantise_planar
from ..io.atomic import atomic_write
from ..io.writers import exif_to_bytes, write_image


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


def write_output(path: str | os.PathLike, pixels: np.ndarray, *, fmt: str, bpp: int, quality: int,
                 icc: bytes | None, exif, metadata: dict[str, str], overwrite: bool) -> Path:
    """Write the pipe's output to ``path`` (atomically) with ICC, EXIF and ``metadata``: planar
    float (3, H, W), or for 8-bit JPEG also the pipe's interleaved 8-bit (H, W, 3) rendering."""
    path = Path(path)
    if fmt == "jpg" and bpp == 8:
        u8 = pixels if pixels.dtype == np.uint8 else quantise_planar(pixels, 8)
        comment = "\n".join(f"{k}: {v}" for k, v in metadata.items())
        data = jpeg_bytes(u8, quality=quality, icc=icc, exif=exif_to_bytes(exif), comment=comment)
        with atomic_write(path, overwrite=overwrite) as tmp:
            Path(tmp).write_bytes(data)
        return path
    return write_image(path, pixels.transpose(1, 2, 0), bpp=bpp, icc=icc, exif=exif, quality=quality,
                       overwrite=overwrite, metadata=metadata)
