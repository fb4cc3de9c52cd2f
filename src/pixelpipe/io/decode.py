"""Decode an input file into a :class:`~pixelpipe.io.source.SourceImage`.

Raw files go through rawpy (LibRaw): the mosaic of the visible/active area in
sensor units, the CFA, levels, white balance, colour matrix and orientation.
TIFF-based raws and DNGs are also read with tifffile for what LibRaw does not
expose (EXIF fields, DNG colour matrices, NoiseProfile, OpcodeList GainMaps,
AsShotNeutral, BlackLevel patterns). Make and model come from LibRaw's own
identification (its C API, through the library rawpy ships).

Non-raw inputs (JPEG, PNG, TIFF) become planar float32 RGB. Whether a file is
raw is decided by its content (magic bytes, DNG/CFA tags), the extension
only breaking ties for TIFF-based raw containers.

Every failure a user can cause is an :class:`~pixelpipe.errors.InputError`
(or its :class:`~pixelpipe.errors.UnsupportedFormatError` subclass) naming the
file; no rawpy/Pillow traceback escapes.
"""
from __future__ import annotations

import ctypes
import datetime as _dt
import functools
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UnsupportedFormatError
from .source import CFA, SourceImage

#: extensions of raw formats (darktable's list); used only to break ties
RAW_EXTENSIONS = frozenset(
    "3fr ari arw bay cap cr2 cr3 crw dcr dcs dng drf eip erf fff gpr iiq k25 kdc mdc mef mfw mos "
    "mrw nef nrw orf ori pef ptx pxn qtk r3d raf raw rw2 rwl rwz sr2 srf srw sti x3f".split())

#: LibRaw ``sizes.flip`` -> EXIF orientation
FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}

#: DNG opcode ids -> names
OPCODE_NAMES = {1: "WarpRectilinear", 2: "WarpFisheye", 3: "FixVignetteRadial",
                4: "FixBadPixelsConstant", 5: "FixBadPixelsList", 6: "TrimBounds", 7: "MapTable",
                8: "MapPolynomial", 9: "GainMap", 10: "DeltaPerRow", 11: "DeltaPerColumn",
                12: "ScalePerRow", 13: "ScalePerColumn", 14: "WarpRectilinear2"}

#: EXIF LightSource -> correlated colour temperature (K), to pick a DNG matrix
_ILLUMINANT_CCT = {1: 5500, 2: 4200, 3: 2856, 4: 5500, 9: 5500, 10: 6500, 11: 7500, 12: 6400,
                   13: 5000, 14: 4150, 15: 3450, 17: 2856, 18: 4874, 19: 6774, 20: 5503,
                   21: 6504, 22: 7504, 23: 5003, 24: 3200}

_GPR_MESSAGE = ("unsupported format: LibRaw cannot read this file (GoPro VC-5 GPR: a DNG with "
                "VC-5 compression). Convert it to a plain DNG first, e.g. with GoPro's gpr_tools: "
                "gpr_tools -i IN.GPR -o OUT.DNG")


# --------------------------------------------------------------------------- entry point

def load(path: str | os.PathLike) -> SourceImage:
    """Decode ``path`` (raw or JPEG/PNG/TIFF) into a :class:`SourceImage`."""
    p = Path(path)
    _check_readable(p)
    with open(p, "rb") as f:
        head = f.read(64)
    ext = p.suffix.lower().lstrip(".")
    magic = _sniff(head)

    if magic in ("jpeg", "png"):
        return _load_pillow(p)
    if magic == "tiff":
        probe = _probe_tiff(p)
        if probe.is_raw or ext in RAW_EXTENSIONS:
            return _load_raw(p, probe)
        try:
            return _load_tiff_image(p, probe)
        except InputError as tiff_err:
            try:  # maybe a TIFF-based raw with an unknown extension
                return _load_raw(p, probe)
            except InputError:
                raise tiff_err from None
    # anything else: a raw by content (CRW, RAF, ORF, RW2, CR3, X3F, Kodak .raw ...)
    try:
        return _load_raw(p, None)
    except UnsupportedFormatError as raw_err:
        try:
            return _load_pillow(p)  # BMP, WebP, GIF, ... if Pillow knows them
        except InputError:
            pass
        if ext in RAW_EXTENSIONS or magic == "raw":
            raise raw_err from None
        raise InputError("not a raw or image file pixelpipe can read "
                         "(neither LibRaw nor the image readers recognise it)", path=str(p)) from None


def _check_readable(p: Path) -> None:
    if not p.exists():
        raise InputError("no such file", path=str(p))
    if p.is_dir():
        raise InputError("is a directory, not an image file", path=str(p))
    if not p.is_file():
        raise InputError("not a regular file", path=str(p))
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror or e}", path=str(p)) from None
    if size == 0:
        raise InputError("empty file", path=str(p))


def _sniff(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if (head[:4] in (b"IIRO", b"IIRS", b"IIU\x00", b"MMOR") or head[6:14] == b"HEAPCCDR"
            or head.startswith(b"FUJIFILM") or head[4:12] == b"ftypcrx " or head.startswith(b"FOVb")):
        return "raw"
    return "other"


# --------------------------------------------------------------------------- TIFF probe

@dataclass
class _TiffProbe:
    """What tifffile sees in a TIFF container (DNG tags of IFD0 + the raw IFD)."""

    ok: bool = False
    dng_version: tuple | None = None
    is_raw: bool = False
    vc5: bool = False
    truncated: bool = False
    tags: dict[str, Any] = field(default_factory=dict)  # IFD0, then raw IFD overriding
    exif: dict[str, Any] = field(default_factory=dict)


def _probe_tiff(p: Path) -> _TiffProbe:
    import tifffile

    pr = _TiffProbe()
    try:
        size = p.stat().st_size
        with tifffile.TiffFile(p) as t:
            pages = list(t.pages)
            ifd0 = pages[0]
            pr.tags = {tag.name: _tag_value(tag) for tag in ifd0.tags.values()}
            dv = pr.tags.get("DNGVersion")
            if dv is not None:
                pr.dng_version = tuple(bytes(dv)) if isinstance(dv, (bytes, bytearray)) else tuple(dv)
            candidates = list(pages)
            for page in pages:
                for sub in (page.pages if getattr(page, "subifds", None) else []):
                    candidates.append(sub)
            raw_ifd = None
            for page in candidates:
                phot = int(page.tags.get("PhotometricInterpretation").value) \
                    if "PhotometricInterpretation" in page.tags else None
                sft = int(page.tags["NewSubfileType"].value) if "NewSubfileType" in page.tags else 0
                if phot in (32803, 34892) and not (sft & 1):
                    raw_ifd = page
                    break
            if raw_ifd is not None:
                pr.is_raw = True
                comp = int(raw_ifd.tags["Compression"].value) if "Compression" in raw_ifd.tags else 1
                pr.vc5 = comp == 9
                if raw_ifd is not ifd0:
                    pr.tags.update({tag.name: _tag_value(tag) for tag in raw_ifd.tags.values()})
                offs = raw_ifd.dataoffsets or ()
                cnts = raw_ifd.databytecounts or ()
                if offs and cnts and max(o + c for o, c in zip(offs, cnts)) > size:
                    pr.truncated = True
            if pr.dng_version:
                pr.is_raw = True
            ex = pr.tags.get("ExifTag")
            pr.exif = dict(ex) if isinstance(ex, dict) else {}
            pr.ok = True
    except Exception:  # noqa: BLE001 - a TIFF-ish raw tifffile cannot parse: leave it to LibRaw
        pr.ok = False
    return pr


def _tag_value(tag) -> Any:
    """A tifffile tag's value, RATIONAL/SRATIONAL pairs turned into floats."""
    v = tag.value
    try:
        dtype = int(tag.dtype)
    except (TypeError, ValueError):
        return v
    if dtype in (5, 10) and isinstance(v, tuple) and len(v) % 2 == 0 \
            and all(isinstance(x, (int, np.integer)) for x in v):
        f = tuple(v[i] / v[i + 1] if v[i + 1] else 0.0 for i in range(0, len(v), 2))
        return f[0] if len(f) == 1 else f
    return v


# --------------------------------------------------------------------------- raw

def _libraw_lib():
    import rawpy

    return _load_libraw(os.path.dirname(rawpy.__file__))


@functools.lru_cache(maxsize=1)
def _load_libraw(folder: str):
    for name in ("libraw_r.so", "libraw_r.so.25", "libraw_r.dylib", "libraw.dll", "raw_r.dll"):
        cand = os.path.join(folder, name)
        if os.path.exists(cand):
            try:
                lib = ctypes.CDLL(cand)
                lib.libraw_init.restype = ctypes.c_void_p
                lib.libraw_init.argtypes = [ctypes.c_uint]
                lib.libraw_open_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                lib.libraw_open_file.restype = ctypes.c_int
                lib.libraw_get_iparams.restype = ctypes.c_void_p
                lib.libraw_get_iparams.argtypes = [ctypes.c_void_p]
                lib.libraw_close.argtypes = [ctypes.c_void_p]
                return lib
            except (OSError, AttributeError):
                return None
    return None


def libraw_identity(path: str | os.PathLike) -> tuple[str, str]:
    """LibRaw's normalised (make, model) of a raw file, or ("", "").

    rawpy does not expose ``imgdata.idata``; LibRaw's C API does. Only the
    first two fields of ``libraw_iparams_t`` are read (guard[4], make[64],
    model[64]), whose layout has been stable since LibRaw 0.18.
    """
    lib = _libraw_lib()
    if lib is None:
        return "", ""
    h = lib.libraw_init(0)
    if not h:
        return "", ""
    try:
        if lib.libraw_open_file(h, os.fsencode(os.fspath(path))) != 0:
            return "", ""
        ip = lib.libraw_get_iparams(h)
        if not ip:
            return "", ""
        buf = ctypes.string_at(ip, 4 + 64 + 64)
        make = buf[4:68].split(b"\0")[0].decode("latin-1").strip()
        model = buf[68:132].split(b"\0")[0].decode("latin-1").strip()
        if not (make + model).isprintable():
            return "", ""
        return make, model
    except Exception:  # noqa: BLE001
        return "", ""
    finally:
        lib.libraw_close(h)


def _raise_rawpy(p: Path, err: Exception, probe: _TiffProbe | None) -> None:
    import rawpy

    name = type(err).__name__
    detail = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) \
        else str(err)
    if probe is not None and probe.vc5:
        raise UnsupportedFormatError(_GPR_MESSAGE, path=str(p)) from None
    if probe is not None and probe.truncated:
        raise InputError(f"file is truncated (image data runs past the end; LibRaw: {detail})",
                         path=str(p)) from None
    if isinstance(err, rawpy.LibRawFileUnsupportedError):
        raise UnsupportedFormatError(
            f"unsupported format: LibRaw cannot read this file ({detail}); it may be damaged, "
            "truncated or from a camera this LibRaw does not know", path=str(p)) from None
    if isinstance(err, rawpy.LibRawIOError):
        raise InputError(f"cannot read the raw data: file truncated or damaged (LibRaw: {detail})",
                         path=str(p)) from None
    if isinstance(err, (rawpy.LibRawDataError, rawpy.LibRawUnspecifiedError)):
        raise InputError(f"corrupt raw data (LibRaw: {detail})", path=str(p)) from None
    if isinstance(err, (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError,
                        rawpy.LibRawMemPoolOverflowError)):
        raise InputError(f"raw image too big for LibRaw ({detail})", path=str(p)) from None
    if isinstance(err, rawpy.LibRawError):
        raise InputError(f"LibRaw failed: {name}: {detail}", path=str(p)) from None
    raise InputError(f"cannot decode the raw file ({name}: {detail})", path=str(p)) from None


def _normalise_wb(values, colors: str, ncolors: int) -> tuple[float, float, float, float] | None:
    v = np.array(list(values)[:4] + [0.0] * (4 - len(values)), dtype=np.float64)
    if ncolors == 3 and v[3] <= 0:
        v[3] = v[1]
    used = v[: max(ncolors, 3)]
    if not np.all(np.isfinite(used)) or used[0] <= 0 or np.any(used <= 0):
        return None
    if np.allclose(used, used[0]):
        return None  # all equal (e.g. all 1.0): the file carries no white balance
    g = colors.index("G") if "G" in colors else int(np.argmax(used))
    v = v / v[g]
    return tuple(float(x) for x in v)  # type: ignore[return-value]


def _choose_dng_matrix(tags: dict, ncolors: int) -> tuple[np.ndarray | None, int | None]:
    mats = []
    for i in (1, 2, 3):
        m = tags.get(f"ColorMatrix{i}")
        if m is None:
            continue
        vals = _floats(m)
        if len(vals) != 3 * ncolors:
            continue
        ill = tags.get(f"CalibrationIlluminant{i}", 21 if i == 1 else 17)
        ill = int(ill) if not isinstance(ill, (tuple, list)) else int(ill[0])
        mats.append((ill, np.array(vals, dtype=np.float64).reshape(ncolors, 3)))
    if not mats:
        return None, None
    for ill, m in mats:
        if ill == 21:
            return m, ill
    ill, m = min(mats, key=lambda im: abs(_ILLUMINANT_CCT.get(im[0], 5000) - 6504))
    return m, ill


def _floats(v) -> list[float]:
    """A tag value (scalar or tuple; rationals already converted) as floats."""
    if isinstance(v, (tuple, list, np.ndarray)):
        return [float(x) for x in v]
    return [float(v)]


def _exif_number(v) -> float | None:
    """An EXIF value from tifffile: a (num, den) pair, a number or a converted tuple."""
    try:
        if isinstance(v, (tuple, list)):
            if len(v) == 2 and all(isinstance(x, (int, np.integer)) for x in v):
                return v[0] / v[1] if v[1] else None
            return float(v[0]) if v else None
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def parse_opcode_list(buf: bytes, list_no: int = 2) -> tuple[list[str], list[dict]]:
    """(opcode names, GainMap dicts) of a DNG OpcodeList (big-endian)."""
    names: list[str] = []
    maps: list[dict] = []
    buf = bytes(buf)
    if len(buf) < 4:
        return names, maps
    (count,) = struct.unpack_from(">I", buf, 0)
    pos = 4
    for _ in range(count):
        if pos + 16 > len(buf):
            break
        opid, ver, flags, size = struct.unpack_from(">IIII", buf, pos)
        pos += 16
        params = buf[pos:pos + size]
        pos += size
        names.append(OPCODE_NAMES.get(opid, f"opcode{opid}"))
        if opid != 9 or len(params) < 76:
            continue
        top, left, bottom, right, plane, planes, rpitch, cpitch, nv, nh = struct.unpack_from(">10I", params, 0)
        sv, sh, ov, oh = struct.unpack_from(">4d", params, 40)
        (mplanes,) = struct.unpack_from(">I", params, 72)
        n = nv * nh * mplanes
        if 76 + 4 * n > len(params):
            continue
        gain = np.frombuffer(params, dtype=">f4", count=n, offset=76).astype(np.float32)
        maps.append({
            "opcode_list": list_no, "optional": bool(flags & 1), "preview_skip": bool(flags & 2),
            "top": top, "left": left, "bottom": bottom, "right": right,
            "plane": plane, "planes": planes, "row_pitch": rpitch, "col_pitch": cpitch,
            "map_points_v": nv, "map_points_h": nh, "map_spacing_v": sv, "map_spacing_h": sh,
            "map_origin_v": ov, "map_origin_h": oh, "map_planes": mplanes,
            "gain": gain.reshape(nv, nh, mplanes),
        })
    return names, maps


def _fmt_datetime(v) -> str | None:
    if isinstance(v, _dt.datetime):
        if v.year <= 1970:
            return None
        return v.strftime("%Y:%m:%d %H:%M:%S")
    if isinstance(v, str):
        v = v.strip().strip("\0")
        return v if v and not v.startswith("0000") else None
    return None


def _positive(v) -> float | None:
    x = _exif_number(v)
    if x is None or not np.isfinite(x) or x <= 0:
        return None
    return float(x)


def _exif_from_tiff(tags: dict, exif: dict, invalid: set | None = None) -> dict[str, Any]:
    """Friendly EXIF fields from tifffile's IFD0 tags and EXIF dict.

    Keys whose tag is present but empty/zero (e.g. Magic Lantern writes
    ExposureTime 0/1000000) are added to ``invalid``.
    """
    out: dict[str, Any] = {}
    invalid = set() if invalid is None else invalid

    def pick(name):
        return exif.get(name, tags.get(name))

    for key, name in (("maker", "Make"), ("model", "Model"), ("software", "Software"),
                      ("artist", "Artist")):
        v = tags.get(name)
        if isinstance(v, str) and v.strip("\0 "):
            out[key] = v.strip("\0 ")
    dt = _fmt_datetime(exif.get("DateTimeOriginal")) or _fmt_datetime(tags.get("DateTimeOriginal")) \
        or _fmt_datetime(tags.get("DateTime"))
    if dt:
        out["datetime"] = dt
    for key, name in (("exposure_time", "ExposureTime"), ("fnumber", "FNumber"),
                      ("focal_length", "FocalLength")):
        v = _positive(pick(name))
        if v:
            out[key] = v
        elif pick(name) is not None:
            invalid.add(key)
    iso = pick("ISOSpeedRatings") or pick("PhotographicSensitivity")
    if isinstance(iso, (tuple, list)):
        iso = iso[0] if iso else None
    if iso:
        out["iso"] = float(iso)
    elif pick("ISOSpeedRatings") is not None:
        invalid.add("iso")
    eb = _exif_number(pick("ExposureBiasValue"))
    if eb is not None and np.isfinite(eb):
        out["exposure_bias"] = float(eb)
    lens = exif.get("LensModel") or tags.get("LensModel") or tags.get("LensInfo_") or None
    if isinstance(lens, str) and lens.strip("\0 "):
        out["lens"] = lens.strip("\0 ")
    return out


def _load_raw(p: Path, probe: _TiffProbe | None) -> SourceImage:
    import rawpy

    if probe is not None and probe.truncated:
        raise InputError("file is truncated (image data runs past the end of the file)", path=str(p))
    notices: list[str] = []
    try:
        with rawpy.imread(str(p)) as r:
            raw_type = r.raw_type
            colors_all = r.color_desc.decode("ascii", "replace")
            ncolors = int(r.num_colors)
            sizes = r.sizes
            if raw_type == rawpy.RawType.Flat:
                data = np.array(r.raw_image_visible, dtype=np.float32)
                pattern = r.raw_pattern
                if pattern is None:
                    raise InputError("LibRaw returned no CFA pattern for a flat raw", path=str(p))
                pattern = np.array(pattern, dtype=np.uint8)
            else:
                vis = r.raw_image_visible
                nch = min(max(ncolors, 1), vis.shape[2])
                data = np.ascontiguousarray(np.moveaxis(np.asarray(vis[:, :, :nch], dtype=np.float32), 2, 0))
                pattern = np.arange(nch, dtype=np.uint8).reshape(1, nch)
            black = tuple(float(b) for b in r.black_level_per_channel)
            white = float(r.white_level)
            if raw_type != rawpy.RawType.Flat and probe is not None and probe.ok \
                    and probe.tags.get("WhiteLevel") is not None:
                # LibRaw reports WhiteLevel - black for LinearRaw DNGs; the tag is the raw value
                white = float(np.max(np.asarray(probe.tags["WhiteLevel"], dtype=np.float64)))
            cam_wb = list(r.camera_whitebalance)
            day_wb = list(r.daylight_whitebalance)
            xyz_cam = np.array(r.rgb_xyz_matrix, dtype=np.float64)
            flip = int(sizes.flip)
            other = r.other
            lens = r.lens
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - every rawpy/LibRaw failure becomes an InputError
        _raise_rawpy(p, err, probe)
        raise  # unreachable

    # CFA kind
    n = pattern.shape[0]
    colour_letters = set(colors_all[:max(ncolors, 1)])
    if raw_type != rawpy.RawType.Flat:
        kind = "none"
    elif pattern.shape == (1, 1):
        kind = "mono"
    elif n == 6:
        kind = "xtrans"
    elif colour_letters & set("CMY") or (ncolors == 4 and not colour_letters <= set("RGB")):
        kind = "4color"
    else:
        kind = "bayer"
        if n != 2:
            notices.append(f"unusual {n}x{n} Bayer layout")
    cfa = CFA(kind=kind, pattern=pattern, colors=colors_all)

    # geometry: LibRaw's default (inset) crop, relative to the visible area
    crop = None
    if sizes.crop_width and sizes.crop_height:
        cx, cy = sizes.crop_left_margin - sizes.left_margin, sizes.crop_top_margin - sizes.top_margin
        if cx >= 0 and cy >= 0 and cx + sizes.crop_width <= data.shape[-1] \
                and cy + sizes.crop_height <= data.shape[-2]:
            crop = (int(cx), int(cy), int(sizes.crop_width), int(sizes.crop_height))

    wb_as_shot = _normalise_wb(cam_wb, colors_all, ncolors)
    wb_daylight = _normalise_wb(day_wb, colors_all, ncolors)

    tags = probe.tags if (probe is not None and probe.ok) else {}
    is_dng = bool(probe is not None and probe.dng_version)

    # colour matrix: DNG -> from the file; else LibRaw's (its table or the file)
    m_ncol = max(ncolors, 3) if kind != "mono" else 3
    xyz_to_cam = None
    source = None
    illuminant = None
    if is_dng:
        xyz_to_cam, illuminant = _choose_dng_matrix(tags, m_ncol)
        if xyz_to_cam is not None:
            source = "file"
    if xyz_to_cam is None:
        m = xyz_cam[:m_ncol]
        if np.any(m != 0) and np.all(np.isfinite(m)):
            xyz_to_cam, source, illuminant = m, "libraw", 21
    cam_to_xyz = None
    if xyz_to_cam is not None:
        try:
            cam_to_xyz = np.linalg.inv(xyz_to_cam) if xyz_to_cam.shape == (3, 3) else np.linalg.pinv(xyz_to_cam)
        except np.linalg.LinAlgError:
            notices.append("the colour matrix is singular; ignored")
            xyz_to_cam = cam_to_xyz = source = illuminant = None
    if xyz_to_cam is None:
        notices.append("no colour matrix for this camera (neither in the file nor in LibRaw)")

    # DNG extras
    noise_profile = None
    gain_maps = None
    opcodes: dict[str, list[str]] | None = None
    black_map = None
    if is_dng:
        asn = tags.get("AsShotNeutral")
        if asn is not None:
            neutral = np.array(_floats(asn), dtype=np.float64)
            if neutral.size >= 3 and np.all(neutral[:3] > 0) and ncolors == 3:
                mul = 1.0 / neutral[:3]
                mul = mul / mul[1]
                wb_as_shot = (float(mul[0]), float(mul[1]), float(mul[2]), float(mul[1]))
        npf = tags.get("NoiseProfile")
        if npf is not None:
            vals = [float(x) for x in (npf if isinstance(npf, (tuple, list)) else [npf])]
            if len(vals) >= 2 and len(vals) % 2 == 0:
                noise_profile = [(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
        for i in (1, 2, 3):
            buf = tags.get(f"OpcodeList{i}")
            if buf is None:
                continue
            try:
                names, maps = parse_opcode_list(buf, i)
            except struct.error:
                notices.append(f"OpcodeList{i} is malformed; ignored")
                continue
            opcodes = opcodes or {}
            opcodes[str(i)] = names
            if i == 2 and maps:
                gain_maps = maps
            others = sorted({nm for nm in names if not (i == 2 and nm == "GainMap")})
            if others:
                notices.append(f"DNG OpcodeList{i} has {', '.join(others)} (not applied)")
        black_map = _dng_black_map(tags, cfa, black, notices)
        if black_map is not None:
            black = _per_colour_mean(black_map, cfa)

    # EXIF: LibRaw's parsed fields, then the file's TIFF/EXIF tags where present
    exif: dict[str, Any] = {}
    make, model = libraw_identity(p)
    if make:
        exif["camera_maker"] = make
        exif["maker"] = make
    if model:
        exif["camera_model"] = model
        exif["model"] = model
    if other.iso_speed > 0:
        exif["iso"] = float(other.iso_speed)
    if other.shutter_speed > 0:
        exif["exposure_time"] = float(other.shutter_speed)
    if other.aperture > 0:
        exif["fnumber"] = float(other.aperture)
    if other.focal_length > 0:
        exif["focal_length"] = float(other.focal_length)
    dt = _fmt_datetime(other.timestamp)
    if dt:
        exif["datetime"] = dt
    if other.artist:
        exif["artist"] = other.artist
    if lens.model:
        exif["lens"] = lens.model
    if lens.make:
        exif["lens_maker"] = lens.make
    if tags:
        invalid: set[str] = set()
        exif.update(_exif_from_tiff(tags, probe.exif if probe else {}, invalid))
        for key in invalid:  # the file says "unknown": do not keep LibRaw's defaults (1 s, f/1)
            exif.pop(key, None)
        be = tags.get("BaselineExposure")
        if be is not None:
            try:
                exif["baseline_exposure"] = _floats(be)[0]
            except (IndexError, TypeError, ValueError):
                pass

    from .writers import exif_to_bytes

    try:
        raw_exif = exif_to_bytes({k: v for k, v in exif.items() if not k.startswith("camera_")},
                                 orientation=None)
    except Exception:  # noqa: BLE001 - EXIF for exports is best effort
        raw_exif = None

    if wb_as_shot is None:
        notices.append("the file has no as-shot white balance")

    return SourceImage(
        path=str(p), kind="raw", data=data, cfa=cfa, black=black,  # type: ignore[arg-type]
        white=white, wb_as_shot=wb_as_shot, wb_daylight=wb_daylight, cam_to_xyz=cam_to_xyz,
        xyz_to_cam_source=source, orientation=FLIP_TO_ORIENTATION.get(flip, 1), exif=exif,
        raw_exif_bytes=raw_exif, noise_profile=noise_profile, gain_maps=gain_maps,
        encoding="linear", notices=notices, xyz_to_cam=xyz_to_cam,
        calibration_illuminant=illuminant, black_map=black_map, crop=crop, dng_opcodes=opcodes,
    )


def _dng_black_map(tags: dict, cfa: CFA, black: tuple, notices: list[str]) -> np.ndarray | None:
    """The DNG BlackLevel pattern when per-colour black cannot express it."""
    if "BlackLevelDeltaH" in tags or "BlackLevelDeltaV" in tags:
        notices.append("DNG BlackLevelDeltaH/V present (not applied)")
    bl = tags.get("BlackLevel")
    if bl is None:
        return None
    dims = tags.get("BlackLevelRepeatDim", (1, 1))
    rows, cols = (int(dims[0]), int(dims[1])) if isinstance(dims, (tuple, list)) else (1, 1)
    vals = np.array(_floats(bl), dtype=np.float64)
    if cfa.kind == "none" or vals.size != rows * cols or vals.size <= 1:
        return None
    bmap = vals.reshape(rows, cols)
    pat = cfa.pattern
    pr, pc = pat.shape
    # expressible per colour when every cell of the common period has one black per colour
    lr, lc = int(np.lcm(rows, pr)), int(np.lcm(cols, pc))
    tiled_b = np.tile(bmap, (lr // rows, lc // cols))
    tiled_c = np.tile(pat, (lr // pr, lc // pc))
    for c in np.unique(tiled_c):
        if np.ptp(tiled_b[tiled_c == c]) > 0:
            return bmap.astype(np.float32)
    if np.allclose([tiled_b[tiled_c == c].mean() for c in np.unique(tiled_c)],
                   [black[int(c)] for c in np.unique(tiled_c)]):
        return None
    return bmap.astype(np.float32)


def _per_colour_mean(bmap: np.ndarray, cfa: CFA) -> tuple[float, float, float, float]:
    pat = cfa.pattern
    rows, cols = bmap.shape
    pr, pc = pat.shape
    lr, lc = int(np.lcm(rows, pr)), int(np.lcm(cols, pc))
    tb = np.tile(bmap, (lr // rows, lc // cols))
    tc = np.tile(pat, (lr // pr, lc // pc))
    out = []
    for c in range(4):
        sel = tb[tc == c]
        out.append(float(sel.mean()) if sel.size else float(bmap.mean()))
    return tuple(out)  # type: ignore[return-value]


# --------------------------------------------------------------------------- non-raw

def _to_planar_rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] in (1, 2):  # grey (+ alpha)
        a = np.repeat(a[:, :, :1], 3, axis=2)
    elif a.shape[2] >= 3:
        a = a[:, :, :3]
    return np.ascontiguousarray(np.moveaxis(a, 2, 0), dtype=np.float32)


def _normalise_ints(a: np.ndarray) -> tuple[np.ndarray, str]:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255.0), "srgb"
    if a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(65535.0), "srgb"
    if a.dtype == np.bool_:
        return a.astype(np.float32), "srgb"
    if np.issubdtype(a.dtype, np.floating):
        return np.nan_to_num(a.astype(np.float32)), "linear"
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return (a.astype(np.float64) / float(info.max)).clip(0, None).astype(np.float32), "srgb"
    raise ValueError(f"unsupported sample type {a.dtype}")


def _encoding_for(icc: bytes | None, default: str) -> str:
    from .icc import is_srgb_like, profile_description

    if not icc or default == "linear":
        return default
    if is_srgb_like(icc):
        return "srgb"
    d = (profile_description(icc) or "").lower()
    if "linear" in d and "srgb" in d:
        return "linear"
    return "icc"


def _exif_from_pillow(ex) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        sub = ex.get_ifd(0x8769)
    except Exception:  # noqa: BLE001
        sub = {}
    for key, tag in (("maker", 0x010F), ("model", 0x0110), ("software", 0x0131), ("artist", 0x013B)):
        v = ex.get(tag)
        if isinstance(v, str) and v.strip("\0 "):
            out[key] = v.strip("\0 ")
    dt = _fmt_datetime(sub.get(0x9003)) or _fmt_datetime(ex.get(0x0132))
    if dt:
        out["datetime"] = dt
    for key, tag in (("exposure_time", 0x829A), ("fnumber", 0x829D), ("focal_length", 0x920A),
                     ("iso", 0x8827)):
        v = sub.get(tag)
        if isinstance(v, tuple):
            v = v[0] if v else None
        try:
            if v is not None and float(v) > 0:
                out[key] = float(v)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    eb = sub.get(0x9204)
    if eb is not None:
        try:
            out["exposure_bias"] = float(eb)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    lens = sub.get(0xA434)
    if isinstance(lens, str) and lens.strip("\0 "):
        out["lens"] = lens.strip("\0 ")
    return out


def _png_bit_depth(p: Path) -> int:
    with open(p, "rb") as f:
        head = f.read(33)
    return head[24] if len(head) >= 25 and head[12:16] == b"IHDR" else 8


def _load_pillow(p: Path) -> SourceImage:
    from PIL import Image, UnidentifiedImageError

    notices: list[str] = []
    try:
        with Image.open(p) as im:
            fmt = im.format
            icc = im.info.get("icc_profile") or None
            ex = im.getexif()
            orientation = int(ex.get(0x0112, 1) or 1)
            raw_exif = im.info.get("exif") or (ex.tobytes() if len(ex) else None)
            exif = _exif_from_pillow(ex)
            im.load()
            mode = im.mode
            if fmt == "PNG" and _png_bit_depth(p) == 16 and mode not in ("I", "I;16", "I;16B"):
                arr = _decode_png16(p)
            elif mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBa", "RGBX"):
                if mode == "CMYK":
                    notices.append("CMYK input converted to RGB naively (no CMYK colour management)")
                arr = np.asarray(im.convert("RGBA" if "A" in mode or mode == "P" else "RGB"))
            elif mode == "I":
                a = np.asarray(im)
                arr = a.astype(np.uint16) if a.min() >= 0 and a.max() <= 65535 else a
            elif mode.startswith("I;16"):
                arr = np.asarray(im).astype(np.uint16)
            else:
                arr = np.asarray(im)
    except UnidentifiedImageError:
        raise InputError("not a raw or image file pixelpipe can read", path=str(p)) from None
    except Image.DecompressionBombError as e:
        raise InputError(f"image too large to open safely ({e})", path=str(p)) from None
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, struct.error) as e:
        raise InputError(f"cannot decode the image (damaged or truncated?): {e}", path=str(p)) from None
    try:
        vals, enc = _normalise_ints(arr)
    except ValueError as e:
        raise InputError(str(e), path=str(p)) from None
    data = _to_planar_rgb(vals)
    enc = _encoding_for(icc, enc)
    return SourceImage(path=str(p), kind="rgb", data=data, orientation=orientation if 1 <= orientation <= 8 else 1,
                       exif=exif, raw_exif_bytes=raw_exif, icc_profile=icc, encoding=enc, notices=notices)


def _decode_png16(p: Path) -> np.ndarray:
    try:
        import imagecodecs
    except ImportError:
        raise InputError("16-bit RGB PNG needs the 'imagecodecs' package (pip install imagecodecs); "
                         "Pillow would truncate it to 8 bits", path=str(p)) from None
    try:
        return np.asarray(imagecodecs.png_decode(p.read_bytes()))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot decode the PNG: {e}", path=str(p)) from None


def _load_tiff_image(p: Path, probe: _TiffProbe) -> SourceImage:
    import tifffile

    notices: list[str] = []
    try:
        with tifffile.TiffFile(p) as t:
            page = t.pages[0]
            phot = int(page.photometric) if page.photometric is not None else 1
            if phot in (3, 5, 6, 8, 9, 10):  # palette, CMYK, YCbCr, CIELab ...: let Pillow convert
                raise _UsePillow
            arr = page.asarray()
            axes = page.axes
            if arr.ndim == 3 and axes.startswith("S"):  # planar (separate) samples
                arr = np.moveaxis(arr, 0, 2)
            if arr.ndim > 3:
                raise InputError(f"unsupported TIFF layout {arr.shape}", path=str(p))
            if phot == 0:  # min-is-white
                arr = (np.iinfo(arr.dtype).max - arr) if np.issubdtype(arr.dtype, np.integer) else 1.0 - arr
            tg = {tag.name: tag.value for tag in page.tags.values()}
            icc = tg.get("InterColorProfile")
            icc = bytes(icc) if icc is not None else None
            orientation = int(tg.get("Orientation", 1) or 1)
            ex = tg.get("ExifTag")
            exif = _exif_from_tiff(tg, dict(ex) if isinstance(ex, dict) else {})
    except _UsePillow:
        return _load_pillow(p)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - tifffile failure: try Pillow before giving up
        try:
            return _load_pillow(p)
        except InputError:
            raise InputError(f"cannot decode the TIFF: {e}", path=str(p)) from None
    try:
        vals, enc = _normalise_ints(arr)
    except ValueError as e:
        raise InputError(str(e), path=str(p)) from None
    data = _to_planar_rgb(vals)
    enc = _encoding_for(icc, enc)
    from .writers import exif_to_bytes

    try:
        raw_exif = exif_to_bytes(exif, orientation=None) if exif else None
    except Exception:  # noqa: BLE001
        raw_exif = None
    return SourceImage(path=str(p), kind="rgb", data=data,
                       orientation=orientation if 1 <= orientation <= 8 else 1, exif=exif,
                       raw_exif_bytes=raw_exif, icc_profile=icc, encoding=enc, notices=notices)


class _UsePillow(Exception):
    pass
