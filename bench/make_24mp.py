#!/usr/bin/env python3
"""Build a larger benchmark DNG by tiling the real mosaic of a smaller one.

    python bench/make_24mp.py IN.dng OUT.dng [--width 6000 --height 4000]
                              [--x0 0 --y0 0] [--opcodes stretch|drop]
                              [--check-peers]

Made for the 12 MP GoPro HERO6 DNG (4000x3000, RGGB, uncompressed 16-bit,
one strip): the mosaic is repeated 2x2 (8000x6000) and cropped to
6000x4000 = 24.0 MP at an even origin, so the CFA phase (and the 2x2
BlackLevelRepeatDim phase) is unchanged. Photo content has seams where the
tiles meet; that is irrelevant for timing.

The output is a byte copy of the input in which only what depends on the
image size is patched, so every other tag (ColorMatrix1/2, AsShotNeutral,
BlackLevel/WhiteLevel, CFA tags, Orientation, EXIF/GPS IFDs, XMP ...) is
kept as is:
  ImageWidth, ImageLength, RowsPerStrip, StripOffsets, StripByteCounts
  (rewritten as one LONG strip), ActiveArea, DefaultCropSize,
  RawImageDigest / NewRawImageDigest (zeroed: readers do not check them).
DNG opcode lists (OpcodeList1/2/3): the GoPro file has four GainMap opcodes
(lens shading, one per CFA plane) covering the full 4000x3000 frame. With
``--opcodes stretch`` (default) each GainMap whose area is the full frame
gets the new full frame as its area, i.e. the same 23x23 map stretched over
6000x4000 (map spacing is relative, so that is a valid GainMap; the work a
reader does for it scales with the pixel count as for the original). With
``--opcodes drop`` the opcode lists are emptied (count set to 0).

The new strip replaces the old one at the end of the file when the old one
is the last thing in it (it is in the GoPro file), otherwise it is appended.
Written to a temporary name next to OUT, then renamed.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import tifffile

CFA = 32803
TAG = {
    "NewSubfileType": 254, "ImageWidth": 256, "ImageLength": 257,
    "BitsPerSample": 258, "Compression": 259, "Photometric": 262,
    "StripOffsets": 273, "SamplesPerPixel": 277, "RowsPerStrip": 278,
    "StripByteCounts": 279, "TileWidth": 322, "SubIFDs": 330,
    "CFARepeatPatternDim": 33421, "BlackLevelRepeatDim": 50713,
    "DefaultCropOrigin": 50719, "DefaultCropSize": 50720,
    "RawImageDigest": 50972, "ActiveArea": 50829, "NewRawImageDigest": 51111,
    "OpcodeList1": 51008, "OpcodeList2": 51009, "OpcodeList3": 51022,
}
GAINMAP = 9
TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def fail(msg: str) -> None:
    print(f"make_24mp: {msg}", file=sys.stderr)
    sys.exit(2)


def all_pages(tif: tifffile.TiffFile):
    """Every IFD: top level pages and their SubIFDs."""
    todo = list(tif.pages)
    while todo:
        page = todo.pop(0)
        yield page
        if TAG["SubIFDs"] in page.tags:
            for off in page.tags[TAG["SubIFDs"]].value:
                tif.filehandle.seek(off)
                todo.append(tifffile.TiffPage(tif, index=0))


def find_raw_page(tif):
    for page in all_pages(tif):
        t = page.tags
        if (TAG["Photometric"] in t and int(t[TAG["Photometric"]].value) == CFA
                and int(t[TAG["NewSubfileType"]].value if TAG["NewSubfileType"] in t else 0) == 0):
            return page
    fail("no full-resolution CFA IFD (Photometric=CFA, NewSubfileType=0) found")


class Patcher:
    """Patch classic-TIFF IFD entries of a byte copy in place."""

    def __init__(self, buf: bytearray, byteorder: str):
        self.buf = buf
        self.bo = byteorder  # '<' or '>'

    def set_long(self, tag: tifffile.TiffTag, value: int) -> None:
        """Rewrite the entry as type LONG, count 1, value inline."""
        struct.pack_into(self.bo + "HHII", self.buf, tag.offset, tag.code, 4, 1, value)

    def set_values(self, tag: tifffile.TiffTag, values) -> None:
        """Overwrite the values of an entry, same type and count."""
        fmt = {3: "H", 4: "I", 5: "I", 8: "h", 9: "i", 10: "i"}[int(tag.dtype)]
        n = tag.count * (2 if int(tag.dtype) in (5, 10) else 1)
        if len(values) != n:
            raise ValueError(f"tag {tag.code}: {len(values)} values for {n} slots")
        struct.pack_into(self.bo + fmt * n, self.buf, tag.valueoffset, *values)

    def zero(self, tag: tifffile.TiffTag) -> None:
        size = tag.count * TYPE_SIZE[int(tag.dtype)]
        self.buf[tag.valueoffset:tag.valueoffset + size] = bytes(size)


def patch_opcodes(p: Patcher, tag, old_hw, new_hw, mode: str) -> str:
    """Opcode lists are always big-endian, whatever the TIFF byte order."""
    base = tag.valueoffset
    buf = p.buf
    if mode == "drop":
        struct.pack_into(">I", buf, base, 0)
        return f"{tag.name}: dropped (count set to 0)"
    (n,) = struct.unpack_from(">I", buf, base)
    o = base + 4
    done = []
    for _ in range(n):
        oid, _ver, _flags, size = struct.unpack_from(">4I", buf, o)
        o += 16
        if oid != GAINMAP:
            fail(f"{tag.name} holds opcode {oid}, which this script does not know "
                 "how to resize; use --opcodes drop")
        top, left, bottom, right = struct.unpack_from(">4I", buf, o)
        if (bottom, right) != old_hw:
            fail(f"{tag.name}: GainMap area {top},{left},{bottom},{right} is not the "
                 "full frame; use --opcodes drop")
        struct.pack_into(">2I", buf, o + 8, new_hw[0], new_hw[1])
        done.append(f"({top},{left},{new_hw[0]},{new_hw[1]})")
        o += size
    return f"{tag.name}: {n} GainMap(s) stretched to " + " ".join(done)


def build(src: str, dst: str, width: int, height: int, x0: int, y0: int, opcodes: str) -> None:
    with open(src, "rb") as f:
        data = f.read()
    with tifffile.TiffFile(src) as tif:
        if tif.is_bigtiff:
            fail("BigTIFF is not supported")
        bo = tif.byteorder
        page = find_raw_page(tif)
        t = page.tags
        if int(t[TAG["Compression"]].value) != 1:
            fail("the raw IFD is compressed; only uncompressed strips are supported")
        if TAG["TileWidth"] in t:
            fail("the raw IFD is tiled; only strips are supported")
        if int(t[TAG["SamplesPerPixel"]].value) != 1 or int(t[TAG["BitsPerSample"]].value) != 16:
            fail("expected 1 sample of 16 bits per pixel")
        h, w = int(t[TAG["ImageLength"]].value), int(t[TAG["ImageWidth"]].value)
        mosaic = page.asarray()
        assert mosaic.shape == (h, w) and mosaic.dtype == np.uint16, mosaic.shape

        # Phase: offsets and source size must be multiples of every repeat period.
        periods = [tuple(t[TAG[k]].value) for k in ("CFARepeatPatternDim", "BlackLevelRepeatDim")
                   if TAG[k] in t]
        for pr, pc in periods:
            if y0 % pr or x0 % pc or h % pr or w % pc:
                fail(f"origin ({x0},{y0}) or size {w}x{h} breaks the {pr}x{pc} pattern phase")
        if TAG["ActiveArea"] in t and tuple(t[TAG["ActiveArea"]].value) != (0, 0, h, w):
            fail(f"ActiveArea {t[TAG['ActiveArea']].value} is not the whole image: "
                 "tiling would repeat masked pixels")

        reps = (math.ceil((y0 + height) / h), math.ceil((x0 + width) / w))
        big = np.tile(mosaic, reps)[y0:y0 + height, x0:x0 + width]
        newbytes = big.astype(bo + "u2", copy=False).tobytes()

        offs = list(t[TAG["StripOffsets"]].value)
        cnts = list(t[TAG["StripByteCounts"]].value)
        start, end = min(offs), max(o + c for o, c in zip(offs, cnts))
        # Can we cut the old strip off? Only if nothing else lives after it.
        last_other = 0
        for pg in all_pages(tif):
            for tg in pg.tags.values():
                size = tg.count * TYPE_SIZE.get(int(tg.dtype), 1)
                if size > 4:
                    last_other = max(last_other, tg.valueoffset + size)
            if pg.offset != page.offset:
                for o, c in zip(pg.dataoffsets, pg.databytecounts):
                    last_other = max(last_other, o + c)
            last_other = max(last_other, pg.offset)
        if end == len(data) and last_other <= start:
            buf = bytearray(data[:start])
        else:
            buf = bytearray(data)
        buf += bytes((-len(buf)) % 4)
        newoff = len(buf)
        buf += newbytes

        p = Patcher(buf, bo)
        p.set_long(t[TAG["ImageWidth"]], width)
        p.set_long(t[TAG["ImageLength"]], height)
        p.set_long(t[TAG["RowsPerStrip"]], height)
        p.set_long(t[TAG["StripOffsets"]], newoff)
        p.set_long(t[TAG["StripByteCounts"]], len(newbytes))
        notes = []
        if TAG["ActiveArea"] in t:
            p.set_values(t[TAG["ActiveArea"]], [0, 0, height, width])
        if TAG["DefaultCropSize"] in t:
            tg = t[TAG["DefaultCropSize"]]
            ox, oy = 0.0, 0.0
            if TAG["DefaultCropOrigin"] in t:
                v = t[TAG["DefaultCropOrigin"]].value
                if int(t[TAG["DefaultCropOrigin"]].dtype) in (5, 10):
                    ox, oy = v[0] / v[1], v[2] / v[3]
                else:
                    ox, oy = float(v[0]), float(v[1])
            cw, ch = int(width - 2 * ox), int(height - 2 * oy)
            if int(tg.dtype) in (5, 10):
                p.set_values(tg, [cw, 1, ch, 1])
            else:
                p.set_values(tg, [cw, ch])
        for k in ("RawImageDigest", "NewRawImageDigest"):
            if TAG[k] in t:
                p.zero(t[TAG[k]])
        # Opcode lists may sit in the raw IFD (DNG 1.3+) - look there only.
        for k in ("OpcodeList1", "OpcodeList2", "OpcodeList3"):
            if TAG[k] in t:
                notes.append(patch_opcodes(p, t[TAG[k]], (h, w), (height, width), opcodes))

    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".make_24mp.", suffix=".dng",
                               dir=os.path.dirname(os.path.abspath(dst)))
    with os.fdopen(fd, "wb") as f:
        f.write(buf)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600
    os.replace(tmp, dst)
    print(f"wrote {dst}: {width}x{height} ({width * height / 1e6:.1f} MP) from {w}x{h}, "
          f"tiled {reps[0]}x{reps[1]}, crop origin ({x0},{y0}), {len(buf):,} B")
    for n in notes:
        print("  " + n)


def verify(src: str, dst: str, width: int, height: int, x0: int, y0: int) -> None:
    import rawpy

    with rawpy.imread(src) as a, rawpy.imread(dst) as b:
        ok = True
        if b.raw_image.shape != (height, width):
            print(f"  rawpy: shape {b.raw_image.shape}, expected {(height, width)}")
            ok = False
        if not np.array_equal(a.raw_pattern, b.raw_pattern) or a.color_desc != b.color_desc:
            print(f"  rawpy: pattern {b.raw_pattern.tolist()} {b.color_desc}, "
                  f"source {a.raw_pattern.tolist()} {a.color_desc}")
            ok = False
        h, w = a.raw_image.shape
        ra, rb = a.raw_image, b.raw_image
        # Every output pixel must equal the source pixel it was tiled from.
        ys = (np.arange(height) + y0) % h
        xs = (np.arange(width) + x0) % w
        if not np.array_equal(rb, ra[np.ix_(ys, xs)]):
            print("  rawpy: mosaic differs from the tiled source")
            ok = False
        same = (list(a.black_level_per_channel) == list(b.black_level_per_channel)
                and a.white_level == b.white_level
                and list(a.camera_whitebalance) == list(b.camera_whitebalance)
                and np.allclose(a.rgb_xyz_matrix, b.rgb_xyz_matrix))
        if not same:
            print("  rawpy: black/white level, camera WB or colour matrix differ")
            ok = False
        print(f"  rawpy: shape {rb.shape}, pattern {b.raw_pattern.tolist()} {b.color_desc.decode()}, "
              f"black {list(b.black_level_per_channel)}, white {b.white_level}, "
              f"wb {[round(x, 3) for x in b.camera_whitebalance]}: {'OK' if ok else 'FAILED'}")
        if not ok:
            sys.exit(1)


def check_peers(dst: str) -> None:
    """Export with darktable-cli and rawtherapee-cli and check the JPEG size."""
    from PIL import Image

    tmp = tempfile.mkdtemp(prefix="make24_peers_")
    try:
        jobs = {
            "darktable-cli": ["darktable-cli", dst, os.path.join(tmp, "dt.jpg"), "--core",
                              "--configdir", os.path.join(tmp, "dtconf"), "--library", ":memory:"],
            "rawtherapee-cli": ["rawtherapee-cli", "-q", "-Y", "-o", os.path.join(tmp, "rt.jpg"),
                                "-d", "-j90", "-c", dst],
        }
        for name, cmd in jobs.items():
            if shutil.which(cmd[0]) is None:
                print(f"  {name}: not installed (bench/setup_peers.sh)")
                continue
            r = subprocess.run(cmd, capture_output=True, text=True)
            out = cmd[2] if name == "darktable-cli" else cmd[4]
            if r.returncode != 0 or not os.path.exists(out):
                err = (r.stderr or r.stdout).strip().splitlines()
                print(f"  {name}: FAILED rc={r.returncode}: {err[-1] if err else ''}")
                continue
            with Image.open(out) as im:
                print(f"  {name}: exported {im.size[0]}x{im.size[1]} JPEG OK")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--x0", type=int, default=0, help="crop origin in the tiled mosaic (even)")
    ap.add_argument("--y0", type=int, default=0, help="crop origin in the tiled mosaic (even)")
    ap.add_argument("--opcodes", choices=("stretch", "drop"), default="stretch")
    ap.add_argument("--no-verify", action="store_true", help="skip the rawpy check")
    ap.add_argument("--check-peers", action="store_true",
                    help="also export with darktable-cli and rawtherapee-cli")
    a = ap.parse_args(argv)
    if os.path.abspath(a.src) == os.path.abspath(a.dst):
        fail("OUT must differ from IN (originals are never written)")
    build(a.src, a.dst, a.width, a.height, a.x0, a.y0, a.opcodes)
    if not a.no_verify:
        verify(a.src, a.dst, a.width, a.height, a.x0, a.y0)
    if a.check_peers:
        check_peers(a.dst)


if __name__ == "__main__":
    main()
