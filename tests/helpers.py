"""Small helpers shared by tests: synthetic images and running one module alone."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixelpipe.testdata import raw_dir

REQUIRE = os.environ.get("PIXELPIPE_REQUIRE_TESTDATA", "") not in ("", "0")


def need(path: Path, what: str) -> Path:
    """Return ``path`` if it exists, else skip (or fail under CI's flag)."""
    if path.exists():
        return path
    reason = f"{what} not found at {path} (set PIXELPIPE_TESTDATA)"
    if REQUIRE:
        pytest.fail(reason + " and PIXELPIPE_REQUIRE_TESTDATA is set")
    pytest.skip(reason)


def raw_file(name: str) -> Path:
    return need(raw_dir() / name, f"raw file {name}")


import numpy as np

from pixelpipe.io.source import CFA, SourceImage
from pixelpipe.modules import registry
from pixelpipe.modules.base import BufferDesc, Piece, ROI

RGGB = np.array([[0, 1], [3, 2]])


def raw_image(data, pattern=RGGB, colors="RGBG", black=(0, 0, 0, 0), white=1.0, wb=(2.0, 1.0, 1.5, 1.0),
              cam_to_xyz=None, orientation=1, path="synthetic.dng") -> SourceImage:
    return SourceImage(path=path, kind="raw", data=np.asarray(data, np.float32),
                       cfa=CFA("bayer", np.asarray(pattern), colors), black=tuple(black), white=white,
                       wb_as_shot=wb, cam_to_xyz=cam_to_xyz, orientation=orientation)


def rgb_image(data, encoding="linear", path="synthetic.tif", orientation=1) -> SourceImage:
    return SourceImage(path=path, kind="rgb", data=np.asarray(data, np.float32), encoding=encoding,
                       orientation=orientation)


def run_module(op, image, inp, params=None, dsc=None, roi_in=None, roi_out=None, pipe="export", **piece_kw):
    """Run one module on a whole buffer (point ops) or the given regions."""
    mod = registry()[op]()
    p = params if params is not None else mod.default_params(image)
    piece = Piece(op, 0, p, image, pipe=pipe, **piece_kw)
    h, w = inp.shape[-2:]
    piece.buf_in = (w, h)
    piece.dsc_in = dsc or (BufferDesc(1, image.cfa, "raw") if inp.ndim == 2 else BufferDesc(3, None, "rec2020"))
    mod.commit(piece)
    full_out = mod.modify_roi_out(piece, ROI(0, 0, w, h, 1.0))
    piece.buf_out = (full_out.width, full_out.height)
    piece.dsc_out = mod.output_desc(piece, piece.dsc_in)
    roi_out = roi_out or full_out
    if roi_in is None:
        # the buffer given is the whole input: cut out the region the module asks for
        from pixelpipe.modules.base import window

        roi_in = mod.modify_roi_in(piece, roi_out)
        inp = np.ascontiguousarray(window(inp, ROI(0, 0, w, h), roi_in.x, roi_in.y, roi_in.width, roi_in.height))
    return mod.process(piece, inp, roi_in, roi_out), piece


def run_at(op, img, params, buf, scale=1.0, roi_out=None, space="rec2020", **kw):
    """Run one module as the pipe does: ``buf`` is the whole input at ``scale`` (its colour space
    ``space``); the input region the module asks for is clamped to the buffer and cut out of it.
    ``fast=True`` (a Piece field) runs the module's fast path."""
    mod = registry()[op]()
    piece = Piece(op, 0, params, img, **kw)
    h, w = buf.shape[-2:]
    W, H = int(round(w / scale)), int(round(h / scale))
    piece.buf_in = (W, H)
    piece.dsc_in = BufferDesc(3, None, space)
    mod.commit(piece)
    fo = mod.modify_roi_out(piece, ROI(0, 0, W, H, 1.0))
    piece.buf_out = (fo.width, fo.height)
    piece.dsc_out = mod.output_desc(piece, piece.dsc_in)
    if roi_out is None:
        roi_out = ROI(0, 0, max(1, round(fo.width * scale)), max(1, round(fo.height * scale)), scale)
    r = mod.modify_roi_in(piece, roi_out)
    x0, y0 = max(0, r.x), max(0, r.y)
    x1, y1 = min(w, r.x + r.width), min(h, r.y + r.height)
    r = ROI(x0, y0, max(1, x1 - x0), max(1, y1 - y0), r.scale)
    inp = np.ascontiguousarray(buf[..., r.y: r.y + r.height, r.x: r.x + r.width])
    fn = mod.process_fast if kw.get("fast") else mod.process
    return fn(piece, inp, r, roi_out), piece


def hostile_inputs(shape, rng):
    """The inputs every module must survive: all black, all clipped (1.0), and wild values
    (-1..5 with NaN and Inf sprinkled in)."""
    yield np.zeros(shape, np.float32)
    yield np.full(shape, 1.0, np.float32)
    wild = rng.uniform(-1, 5, shape).astype(np.float32)
    wild.flat[::3] = np.nan
    wild.flat[1::4] = np.inf
    yield wild


def mosaic_of(rgb: np.ndarray, pattern=RGGB) -> np.ndarray:
    """(3, H, W) -> (H, W) Bayer mosaic (pattern indices 0 R, 1 G, 2 B, 3 G2)."""
    _, h, w = rgb.shape
    lut = np.array([0, 1, 2, 1])[np.asarray(pattern)]
    yy, xx = np.mgrid[0:h, 0:w]
    ch = lut[yy % 2, xx % 2]
    return np.take_along_axis(rgb, ch[None], axis=0)[0].astype(np.float32)


def smooth_test_image(h=64, w=96, seed=0) -> np.ndarray:
    """A smooth colourful planar image in [0.05, 0.95]."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    r = 0.5 + 0.4 * np.sin(2.1 * xx + 0.3)
    g = 0.5 + 0.4 * np.cos(1.7 * yy + 1.1 * xx)
    b = 0.5 + 0.4 * np.sin(1.3 * yy - 0.7)
    return np.stack([r, g, b]).astype(np.float32)
