"""Buffer reuse between darkroom renders: released cache lines feed later outputs, never a
buffer someone still holds, and results stay identical to a fresh pipe's."""
from __future__ import annotations

import numpy as np

from helpers import raw_file
from pixelpipe.engine.buffers import BufferPool
from pixelpipe.io.decode import load
from pixelpipe.pipe import cache as cache_mod
from pixelpipe.pipe.history import Edit
from pixelpipe.pipe.pipeline import Pipe

CHART = "canon_550d_magiclantern_colorchart.dng"


def test_pool_takes_only_unreferenced_buffers_and_hands_them_out_by_shape():
    pool = BufferPool(cap_bytes=64 << 20)
    held = np.ones((3, 512, 512), np.float32)
    alias = held
    assert not pool.give(held)  # another name still refers to it
    del alias
    assert not pool.give(held[:, :10])  # a view: its base is someone's buffer
    a = np.ones((3, 512, 512), np.float32)
    a.setflags(write=False)
    assert pool.give(a)
    assert pool.take((3, 256, 512), np.float32) is None and pool.take((3, 512, 512), np.float64) is None
    b = pool.take((3, 512, 512), np.float32)
    assert b is a and b.flags.writeable and pool.reused == 1
    assert pool.take((3, 512, 512), np.float32) is None
    for _ in range(40):  # the pool keeps at most its cap
        pool.give(np.empty((3, 1024, 1024), np.float32))
    assert pool.nbytes <= 64 << 20


def test_slider_moves_keep_two_lines_per_stage_reuse_buffers_and_match_a_fresh_pipe():
    from pixelpipe.engine import buffers

    img = load(raw_file(CHART))
    edit = Edit.default_for(img)
    pipe = Pipe(img, edit, "full", focused="sigmoid")
    pipe.render(600, 400)
    before = buffers.POOL.reused
    held = []
    for k in range(6):
        edit.set_params("sigmoid", img, middle_grey_contrast=1.3 + 0.05 * k)
        view = pipe.render(600, 400)
        assert pipe.last.executed == ["sigmoid", "colorout", "gamma"]
        fresh = Pipe(img, edit, "full", focused="sigmoid").render(600, 400)
        np.testing.assert_array_equal(view, fresh)
        if k == 1:
            held.append((view, view.copy()))  # a render the caller keeps
    for slot, keys in pipe.cache._slots.items():
        assert len(keys) <= cache_mod.SLOT_KEEP, slot
    assert buffers.POOL.reused > before  # later renders wrote into released buffers
    kept, copy = held[0]
    np.testing.assert_array_equal(kept, copy)  # a buffer the caller holds is never reused


def test_an_export_pipe_released_when_done_feeds_the_next_files_pipe(tmp_path):
    """The batch worker and Photo.export release a finished export pipe: its buffers (not the
    image the caller still holds) go to the pool, the next file's modules write into them,
    and the next result equals a render with an empty pool."""
    from pixelpipe.engine import buffers

    img = load(raw_file(CHART))
    edit = Edit.default_for(img)
    buffers.POOL.clear()
    first = Pipe(img, edit, "export")
    kept = first.render(800, 600)
    copy = kept.copy()
    n_lines, pooled = len(first.cache), len(buffers.POOL._free)
    assert n_lines == 2
    first.release()
    assert len(first.cache) == 0
    assert len(buffers.POOL._free) == pooled + 1  # the line the caller holds stayed out
    before = buffers.POOL.reused
    second = Pipe(img, edit, "export").render(800, 600)
    assert buffers.POOL.reused > before
    np.testing.assert_array_equal(kept, copy)  # never overwritten
    buffers.POOL.clear()
    np.testing.assert_array_equal(second, Pipe(img, edit, "export").render(800, 600))
