"""Export writers: JPEG, PNG (8/16-bit) and TIFF (8/16-bit integer, 32-bit float).

:func:`write_image` takes display-referred RGB already encoded for the output
profile (float32 ``(H, W, 3)``, nominally in [0, 1]) and writes it with the
ICC profile and EXIF embedded, always through a temporary file in the
destination folder that is renamed over the output (:mod:`.atomic`).

EXIF is given as bytes (an ``Exif\\0\\0`` block or a bare TIFF structure, as
Pillow and cameras produce) or as a dict of friendly keys (see
:data:`EXIF_KEYS`) and/or numeric tag ids. The orientation written is always 1:
exports are rendered upright.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .atomic import atomic_write

FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}
BPP = {"jpeg": (8,), "png": (8, 16), "tiff": (8, 16, 32)}

#: friendly EXIF keys -> (IFD, tag id). IFD 0 is the main IFD, 0x8769 the EXIF IFD.
EXIF_KEYS: dict[str, tuple[int, int]] = {
    "description": (0, 0x010E),
    "maker": (0, 0x010F),
    "model": (0, 0x0110),
    "software": (0, 0x0131),
    "datetime": (0, 0x0132),
    "artist": (0, 0x013B),
    "copyright": (0, 0x8298),
    "exposure_time": (0x8769, 0x829A),
    "fnumber": (0x8769, 0x829D),
    "iso": (0x8769, 0x8827),
    "datetime_original": (0x8769, 0x9003),
    "exposure_bias": (0x8769, 0x9204),
    "focal_length": (0x8769, 0x920A),
    "lens_maker": (0x8769, 0xA433),
    "lens": (0x8769, 0xA434),
}
_IFD0_TAGS = {0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298}
_RATIONAL_TAGS = {0x829A, 0x829D, 0x920A}
_SRATIONAL_TAGS = {0x9204}
_SKIP_EXIF_TAGS = {0x0112, 0xA005, 0x927C, 0x0201, 0x0202}  # orientation, interop, makernote, thumb


# --------------------------------------------------------------------------- EXIF

def _rational(value: float, signed: bool = False):
    from fractions import Fraction

    from PIL import TiffImagePlugin

    if isinstance(value, tuple) and len(value) == 2:
        return TiffImagePlugin.IFDRational(int(value[0]), int(value[1]) or 1)
    f = Fraction(float(value)).limit_denominator(1_000_000 if abs(float(value)) < 2000 else 1000)
    if not signed and f < 0:
        f = -f
    return TiffImagePlugin.IFDRational(f.numerator, f.denominator)


def _exif_value(tag: int, value: Any):
    if tag in _RATIONAL_TAGS:
        return _rational(value)
    if tag in _SRATIONAL_TAGS:
        return _rational(value, signed=True)
    if tag == 0x8827:
        return int(round(float(value)))
    if tag in (0x0132, 0x9003) and not isinstance(value, str):
        value = value.strftime("%Y:%m:%d %H:%M:%S")
    return value


def exif_to_bytes(exif: bytes | dict | None, *, orientation: int | None = 1) -> bytes | None:
    """EXIF bytes (``Exif\\0\\0`` + TIFF) from bytes or a dict; orientation forced to ``orientation``.

    Unknown friendly keys and empty values are skipped; a thumbnail and the
    MakerNote are dropped (their offsets do not survive being moved).
    """
    if exif is None:
        return None
    from PIL import Image

    e = Image.Exif()
    if isinstance(exif, (bytes, bytearray, memoryview)):
        raw = bytes(exif)
        if not raw:
            return None
        if not raw.startswith(b"Exif\x00\x00"):
            raw = b"Exif\x00\x00" + raw
        try:
            e.load(raw)
            sub = dict(e.get_ifd(0x8769))
            gps = dict(e.get_ifd(0x8825))
        except Exception as err:  # noqa: BLE001 - any parser failure: invalid EXIF
            raise OutputError(f"invalid EXIF data: {err}") from err
        for t in list(sub):
            if t in _SKIP_EXIF_TAGS:
                del sub[t]
        e2 = Image.Exif()
        for t, v in e.items():
            if t not in (0x8769, 0x8825, 0x0112) and t not in _SKIP_EXIF_TAGS:
                e2[t] = v
        if sub:
            e2[0x8769] = sub
        if gps:
            e2[0x8825] = gps
        e = e2
    elif isinstance(exif, dict):
        sub: dict[int, Any] = {}
        for k, v in exif.items():
            if v is None or v == "" or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                        and k in ("iso", "exposure_time", "fnumber", "focal_length")
                                        and float(v) <= 0):
                continue
            if isinstance(k, str):
                if k not in EXIF_KEYS:
                    continue
                ifd, tag = EXIF_KEYS[k]
            else:
                tag = int(k)
                ifd = 0 if tag in _IFD0_TAGS else 0x8769
            if tag in _SKIP_EXIF_TAGS:
                continue
            val = _exif_value(tag, v)
            if ifd == 0:
                e[tag] = val
            else:
                sub[tag] = val
            if k == "datetime" and 0x9003 not in sub:
                sub[0x9003] = val
        if sub:
            e[0x8769] = sub
    else:
        raise OutputError(f"EXIF must be bytes or a dict, not {type(exif).__name__}")
    if orientation is not None:
        e[0x0112] = int(orientation)
    out = e.tobytes()
    return out if out.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + out


# --------------------------------------------------------------------------- TIFF IFD patching

_TYPE_FMT = {1: "B", 2: "s", 3: "H", 4: "I", 5: "II", 6: "b", 7: "s", 8: "h", 9: "i",
             10: "ii", 11: "f", 12: "d", 13: "I", 16: "Q", 17: "q", 18: "Q"}
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
              16: 8, 17: 8, 18: 8}


def _read_ifd(buf: bytes, off: int, bo: str) -> list[tuple[int, int, int, Any]]:
    """Entries (tag, type, count, values) of the classic-TIFF IFD at ``off``."""
    (n,) = struct.unpack_from(bo + "H", buf, off)
    out = []
    for i in range(n):
        tag, typ, cnt = struct.unpack_from(bo + "HHI", buf, off + 2 + 12 * i)
        if typ not in _TYPE_SIZE:
            continue
        size = _TYPE_SIZE[typ] * cnt
        voff = off + 2 + 12 * i + 8
        if size > 4:
            (voff,) = struct.unpack_from(bo + "I", buf, voff)
        data = buf[voff:voff + size]
        if len(data) < size:
            continue
        if typ in (1, 2, 6, 7):
            vals: Any = bytes(data)
        else:
            f = _TYPE_FMT[typ]
            vals = struct.unpack(bo + f * cnt, data)
        out.append((tag, typ, cnt, vals))
    return out


def _serialize_ifd(entries: list[tuple[int, int, int, Any]], base: int, bo: str) -> bytes:
    """A classic-TIFF IFD placed at file offset ``base`` (even), data after the table."""
    entries = sorted(entries, key=lambda e: e[0])
    n = len(entries)
    table = struct.pack(bo + "H", n)
    data = b""
    data_base = base + 2 + 12 * n + 4
    for tag, typ, cnt, vals in entries:
        if typ in (1, 2, 6, 7):
            raw = bytes(vals)
        else:
            raw = struct.pack(bo + _TYPE_FMT[typ] * cnt, *vals)
        if len(raw) <= 4:
            table += struct.pack(bo + "HHI", tag, typ, cnt) + raw.ljust(4, b"\0")
        else:
            if len(data) % 2:
                data += b"\0"
            table += struct.pack(bo + "HHII", tag, typ, cnt, data_base + len(data))
            data += raw
    return table + struct.pack(bo + "I", 0) + data


def exif_sub_ifds(exif_bytes: bytes | None) -> dict[int, list]:
    """The EXIF (0x8769) and GPS (0x8825) sub-IFD entries of an EXIF block, by pointer tag."""
    if not exif_bytes:
        return {}
    buf = exif_bytes[6:] if exif_bytes.startswith(b"Exif\x00\x00") else exif_bytes
    bo = "<" if buf[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(bo + "I", buf, 4)
    out: dict[int, list] = {}
    for tag, typ, cnt, vals in _read_ifd(buf, ifd0, bo):
        if tag in (0x8769, 0x8825) and typ in (4, 13) and cnt == 1:
            entries = [e for e in _read_ifd(buf, vals[0], bo) if e[0] not in _SKIP_EXIF_TAGS]
            if entries:
                out[tag] = entries
    return out


def exif_ifd0_ascii(exif_bytes: bytes | None) -> list[tuple[int, str]]:
    """ASCII tags of an EXIF block's main IFD (Make, Model, DateTime, ...)."""
    if not exif_bytes:
        return []
    buf = exif_bytes[6:] if exif_bytes.startswith(b"Exif\x00\x00") else exif_bytes
    bo = "<" if buf[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(bo + "I", buf, 4)
    return [(t, v.split(b"\0")[0].decode("latin-1")) for t, typ, _, v in _read_ifd(buf, ifd0, bo)
            if typ == 2 and t in _IFD0_TAGS]


def add_sub_ifds(path: str | os.PathLike, sub_ifds: dict[int, list]) -> None:
    """Append ``sub_ifds`` (e.g. EXIF 0x8769, GPS 0x8825) to a classic TIFF's IFD0.

    tifffile will not write the pointer tags itself, so the sub-IFDs go at the
    end of the file, followed by a copy of IFD0 with the pointers added (its
    other entries are copied verbatim: their data offsets stay valid); the
    header is then pointed at the new IFD0.
    """
    if not sub_ifds:
        return
    with open(path, "r+b") as f:
        head = f.read(8)
        bo = "<" if head[:2] == b"II" else ">"
        magic, ifd0 = struct.unpack(bo + "HI", head[2:8])
        if magic != 42:
            raise OutputError("EXIF can only be added to a classic TIFF", path=str(path))
        f.seek(ifd0)
        (n,) = struct.unpack(bo + "H", f.read(2))
        raw_entries = {struct.unpack_from(bo + "H", e)[0]: e
                       for e in (f.read(12) for _ in range(n))}
        (next_ifd,) = struct.unpack(bo + "I", f.read(4))
        f.seek(0, os.SEEK_END)
        for tag, entries in sorted(sub_ifds.items()):
            end = f.tell()
            if end % 2:
                f.write(b"\0")
                end += 1
            f.write(_serialize_ifd(entries, end, bo))
            raw_entries[tag] = struct.pack(bo + "HHII", tag, 4, 1, end)
        end = f.tell()
        if end % 2:
            f.write(b"\0")
            end += 1
        table = struct.pack(bo + "H", len(raw_entries))
        table += b"".join(raw_entries[t] for t in sorted(raw_entries))
        f.write(table + struct.pack(bo + "I", next_ifd))
        f.seek(4)
        f.write(struct.pack(bo + "I", end))


# --------------------------------------------------------------------------- pixels

def _prepare(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise OutputError(f"expected an (H, W, 3) image, got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise OutputError(f"empty image {a.shape}")
    if a.dtype in (np.uint8, np.uint16):  # already quantised: back to [0, 1]
        a = a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    elif not np.issubdtype(a.dtype, np.floating):
        raise OutputError(f"expected float RGB in [0, 1], got {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    return a


def _planar_quantised(rgb, bits: int) -> np.ndarray | None:
    """The integer samples of ``rgb`` through the Halide kernel (the same rounding, NaN and
    infinities included), when ``rgb`` is a view of a planar float32 buffer (the pipe's output);
    None otherwise."""
    from ..engine.convert import fast_path, quantise_planar

    planar = fast_path(np.asarray(rgb)) if isinstance(rgb, np.ndarray) else None
    return None if planar is None else quantise_planar(planar, bits)


def quantise(rgb: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] float -> unsigned integers: ``x * max + 0.5`` clipped, truncated."""
    top = (1 << bits) - 1
    q = np.clip(rgb.astype(np.float32) * np.float32(top) + np.float32(0.5), 0, top)
    return q.astype(np.uint8 if bits == 8 else np.uint16)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(path: str | os.PathLike, u16: np.ndarray, *, icc: bytes | None = None,
                exif: bytes | None = None, text: dict[str, str] | None = None,
                xmp: bytes | None = None, level: int = 6) -> None:
    """A minimal, correct 16-bit RGB PNG (filter "Up" on every row, zlib)."""
    h, w, c = u16.shape
    be = u16.astype(">u2").reshape(h, w * c).view(np.uint8).reshape(h, w * c * 2)
    up = be.copy()
    up[1:] = be[1:] - be[:-1]  # uint8 wraps mod 256, as PNG wants
    rows = np.empty((h, 1 + up.shape[1]), dtype=np.uint8)
    rows[:, 0] = 2
    rows[:, 1:] = up
    out = [b"\x89PNG\r\n\x1a\n",
           _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0))]
    if icc:
        out.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc, 9)))
    if exif:
        out.append(_png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    for k, v in (text or {}).items():
        key = str(k).encode("latin-1", "replace")[:79]
        out.append(_png_chunk(b"iTXt", key + b"\0\0\0\0\0" + str(v).encode("utf-8")))
    if xmp:
        out.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + bytes(xmp)))
    z = zlib.compress(rows.tobytes(), level)
    step = 1 << 23
    for i in range(0, len(z), step):
        out.append(_png_chunk(b"IDAT", z[i:i + step]))
    out.append(_png_chunk(b"IEND", b""))
    with open(path, "wb") as f:
        for part in out:
            f.write(part)


# --------------------------------------------------------------------------- the writer

def output_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """"jpeg", "png" or "tiff" from ``fmt`` or the extension; OutputError otherwise."""
    if fmt:
        f = fmt.lower().lstrip(".")
        f = {"jpg": "jpeg", "tif": "tiff"}.get(f, f)
        if f not in BPP:
            raise OutputError(f"unknown output format {fmt!r} (use jpeg, png or tiff)", path=str(path))
        return f
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise OutputError(f"unknown output format {ext or '(no extension)'!r} "
                          "(use .jpg, .png or .tif)", path=str(path))
    return FORMATS[ext]


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, fmt: str | None = None, bpp: int = 8,
                icc: bytes | None = None, exif: bytes | dict | None = None, quality: int = 95,
                overwrite: bool = False, metadata: dict | None = None,
                xmp: bytes | str | None = None) -> Path:
    """Write display-referred ``rgb`` (float32 ``(H, W, 3)``, encoded; for 8-bit files also
    uint8 samples) to ``path``.

    ``fmt`` defaults to the extension (.jpg/.jpeg, .png, .tif/.tiff); ``bpp``:
    JPEG 8, PNG 8/16, TIFF 8/16 (integer) or 32 (float, unclipped). ``icc`` is
    embedded as is; ``exif`` (bytes or dict) is embedded with orientation 1;
    ``metadata`` (str -> str) becomes PNG text chunks, a JPEG comment or the
    TIFF ImageDescription; ``xmp`` an XMP packet. The file appears atomically;
    an existing one is replaced only with ``overwrite``.
    """
    path = Path(path)
    kind = output_format(path, fmt)
    if bpp not in BPP[kind]:
        allowed = "/".join(str(b) for b in BPP[kind])
        raise OutputError(f"{kind.upper()} supports {allowed} bits per sample, not {bpp}", path=str(path))
    if not 1 <= int(quality) <= 100:
        raise OutputError(f"JPEG quality must be 1..100, not {quality}", path=str(path))
    bits = 8 if kind == "jpeg" else bpp
    if bits == 8 and isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 \
            and rgb.shape[2] == 3 and rgb.size:
        img = np.ascontiguousarray(rgb)  # already 8-bit samples (the pipe's 8-bit rendering)
    else:
        img = None if bits == 32 else _planar_quantised(rgb, bits)
    if img is None:
        img = _prepare(rgb)
        if bits != 32:
            img = quantise(img, bits)
    exif_b = exif_to_bytes(exif)
    xmp_b = xmp.encode("utf-8") if isinstance(xmp, str) else (bytes(xmp) if xmp else None)
    text = {str(k): str(v) for k, v in (metadata or {}).items()}

    with atomic_write(path, overwrite=overwrite) as tmp:
        if kind == "jpeg":
            _write_jpeg(tmp, img, icc, exif_b, quality, text, xmp_b)
        elif kind == "png":
            if bpp == 8:
                _write_png8(tmp, img, icc, exif_b, text, xmp_b)
            else:
                write_png16(tmp, img, icc=icc, exif=exif_b, text=text, xmp=xmp_b)
        else:
            _write_tiff(tmp, img, icc, exif_b, text, xmp_b)
    return path


def _write_jpeg(tmp, u8, icc, exif_b, quality, text, xmp_b) -> None:
    from PIL import Image

    # no Huffman-table optimisation: a second pass over the coefficients that cost 2-3x the
    # encoding time of a 12 MP image for files ~10 % smaller (libjpeg's default is off too)
    kw: dict[str, Any] = {"quality": int(quality), "subsampling": 0 if quality >= 90 else 2,
                          "optimize": False}
    if icc:
        kw["icc_profile"] = icc
    if exif_b:
        kw["exif"] = exif_b
    if xmp_b:
        kw["xmp"] = xmp_b
    if text:
        kw["comment"] = "\n".join(f"{k}: {v}" for k, v in text.items()).encode("utf-8")
    Image.fromarray(u8, "RGB").save(tmp, format="JPEG", **kw)


def _write_png8(tmp, u8, icc, exif_b, text, xmp_b) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_itxt(k, v)
    if xmp_b:
        info.add_itxt("XML:com.adobe.xmp", xmp_b.decode("utf-8", "replace"))
    kw: dict[str, Any] = {"pnginfo": info, "compress_level": 6}
    if icc:
        kw["icc_profile"] = icc
    if exif_b:
        kw["exif"] = exif_b
    Image.fromarray(u8, "RGB").save(tmp, format="PNG", **kw)


def _write_tiff(tmp, data, icc, exif_b, text, xmp_b) -> None:
    import tifffile

    subs = exif_sub_ifds(exif_b)
    extratags: list[tuple] = [(t, 2, 0, v, True) for t, v in exif_ifd0_ascii(exif_b)
                              if t not in (0x010E, 0x0131)]
    if xmp_b:
        extratags.append((700, 1, len(xmp_b), xmp_b, True))
    description = "\n".join(f"{k}: {v}" for k, v in text.items()) or None
    tifffile.imwrite(tmp, data, photometric="rgb", planarconfig="contig",
                     compression="zlib", iccprofile=icc or None, description=description,
                     metadata=None, software="pixelpipe", extratags=extratags, bigtiff=False)
    add_sub_ifds(tmp, subs)
