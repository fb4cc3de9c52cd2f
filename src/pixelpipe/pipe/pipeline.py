"""The pixelpipe: runs an edit's enabled modules in order over a region of interest.

Planning (darktable's two passes):
* forward, at full resolution: each module's full input/output buffer size
  (``modify_roi_out``) and buffer description (channels, CFA, colour space);
* backward, from the requested output region: each module states the input
  region it needs (``modify_roi_in``), clamped to its input buffer.
Processing then runs forward; every module output is cached under a hash of
the image, pipe kind, region and all earlier parameters (see cache.py).
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..blend import pipe_hooks as blend_hooks
from ..engine.fusion import run_fused
from ..engine.halide_ops import resample
from ..engine.target import resolve_device
from ..errors import PixelpipeError
from ..io.source import SourceImage
from ..modules import registry
from ..modules.base import BufferDesc, Flags, HalideModule, Module, Piece, ROI, Tags
from .cache import PipeCache, memory_budget as memory_budget_default
from .history import Edit, ModuleInstance, parse_label
from .kinds import CACHE_LINES, canonical


def scaled(n: int, s: float) -> int:
    return max(1, int(round(n * s)))


@dataclass
class Stage:
    module: Module
    instance: ModuleInstance
    piece: Piece
    roi_in: ROI | None = None
    roi_out: ROI | None = None
    hash: str = ""
    skipped: bool = False

    @property
    def label(self) -> str:
        return self.instance.label()


@dataclass
class RunRecord:
    """What the last run did, for tests and profiling."""

    stages: list[tuple[str, ROI, ROI]] = field(default_factory=list)
    pieces: dict[str, Piece] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    from_cache: str | None = None
    tiles: int = 1
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per executed stage (or fused run)


class Pipe:
    """One pipe over one image and edit.

    kind: "export", "full" (darkroom), "preview", "preview2", "thumbnail".
    hq: late scaling (finalscale) — export high quality or darkroom HQ mode.
    focused: label of the module focused in the darkroom (cut-down pipe, skip rule).
    """

    def __init__(self, image: SourceImage, edit: Edit, kind: str = "export", *, hq: bool = False,
                 focused: str | None = None, device: str = "cpu", cache: PipeCache | None = None):
        self.image = image
        self.edit = edit
        self.kind = canonical(kind)
        self.hq = hq
        self.focused = focused
        self.device = resolve_device(device)
        self.cache = cache if cache is not None else PipeCache(CACHE_LINES[self.kind])
        self.executions: Counter[str] = Counter()
        self.last = RunRecord()
        self.notices: list[str] = list(edit.notices) + list(image.notices)
        # blending & masks (pixelpipe.blend): published raster masks; darkroom "display mask" label
        self.raster_masks = blend_hooks.RasterStore()
        self.show_mask: str | None = None
        #: fuse runs of modules into one kernel (export and thumbnail pipes keep no intermediate
        # anyway): on a GPU the whole chain, so buffers stay on the device; on the CPU runs of
        # per-pixel modules, a row at a time (12 MP: 25-35 % less time than module by module,
        # BENCHMARKS.md). PIXELPIPE_NO_FUSION=1 turns it off (for comparisons).
        self.fuse = self.kind in ("export", "thumbnail") and not os.environ.get("PIXELPIPE_NO_FUSION")
        if image.is_raw:
            # Bayer, X-Trans, four-colour, monochrome and planar non-CFA raws are
            # processed; anything else (an unknown CFA) is refused here, clearly
            from ..modules.demosaic import check_cfa

            check_cfa(image)

    # ------------------------------------------------------------------ flags
    @property
    def is_basic(self) -> bool:
        return self.kind in ("full", "preview")

    @property
    def fast(self) -> bool:
        """The cut-down pipe: a module that shows the whole image with overlays is focused."""
        if not (self.focused and self.is_basic):
            return False
        op, _ = parse_label(self.focused)
        cls = registry().get(op)
        return bool(cls and cls.flags & Flags.ALLOW_FAST_PIPE)

    def finalscale_enabled(self, upscale: bool = False) -> bool:
        return (self.kind == "export" and (self.hq or upscale)) or (self.kind == "full" and self.hq)

    # ------------------------------------------------------------------ stages
    def stages(self, upscale: bool = False) -> list[Stage]:
        reg = registry()
        by_entry = {(i.op, i.instance): i for i in self.edit.instances}
        out: list[Stage] = []
        focus_pos, focus_filter = None, Tags.NONE
        if self.focused:
            fop, finst = parse_label(self.focused)
            if (fop, finst) in self.edit.order:
                focus_pos = self.edit.order.position(fop, finst)
                focus_filter = reg[fop].tags_filter if fop in reg else Tags.NONE
        for pos, entry in enumerate(self.edit.order.entries()):
            op, n = entry.op, entry.instance
            cls = reg.get(op)
            if cls is None:
                continue
            inst = by_entry.get((op, n))
            if op == "finalscale":
                if not self.finalscale_enabled(upscale):
                    continue
                inst = inst or ModuleInstance("finalscale", 0, True, None)
            if inst is None or not inst.enabled:
                continue
            if cls.works_on == "raw" and not self.image.is_raw:
                continue
            if op == "demosaic" and not self.image.is_raw:
                continue
            module = cls()
            params = inst.params if inst.params is not None else module.default_params(self.image)
            piece = Piece(op, n, params, self.image, pipe=self.kind, fast=self.fast, hq=self.hq,
                          device=self.device,
                          focused=self.is_basic and self.focused is not None and pos == focus_pos)
            st = Stage(module, inst, piece)
            # darktable's skip rule: a focused distorting module shows the full frame
            if (self.is_basic and focus_pos is not None and pos > focus_pos
                    and focus_filter & cls.tags):
                st.skipped = True
                continue
            out.append(st)
        if not out or out[-1].module.op != "gamma":
            raise PixelpipeError("the module order must end with gamma")
        return out

    # ------------------------------------------------------------------ planning
    def _input_desc(self) -> BufferDesc:
        if self.image.is_raw:  # planar non-CFA raw data has its channels from the start
            return BufferDesc(3 if self.image.data.ndim == 3 else 1, self.image.cfa, "raw")
        return BufferDesc(3, None, "file-rgb")

    def plan(self, upscale: bool = False) -> tuple[list[Stage], tuple[int, int]]:
        """Forward pass at scale 1: buffer sizes and descriptions; returns the final size."""
        stages = self.stages(upscale)
        w, h = self.image.width, self.image.height
        dsc = self._input_desc()
        base = hashlib.sha256(f"{self.image.identity()}|{self.kind}|fast={self.fast}".encode()).hexdigest()
        running = base
        for st in stages:
            p = st.piece
            p.buf_in = (w, h)
            p.dsc_in = dsc
            st.module.commit(p)
            r = st.module.modify_roi_out(p, ROI(0, 0, w, h, 1.0))
            w, h = r.width, r.height
            p.buf_out = (w, h)
            dsc = st.module.output_desc(p, dsc)
            p.dsc_out = dsc
            ph = (f"{st.module.op}|{st.instance.instance}|{type(p.params).VERSION}|{p.params.digest()}"
                  f"|focused={p.focused}|{blend_hooks.piece_salt(st)}")
            running = hashlib.sha256(f"{running}|{ph}".encode()).hexdigest()
            st.hash = running
            for n in p.notices:
                if n not in self.notices:
                    self.notices.append(n)
        return stages, (w, h)

    def full_size(self) -> tuple[int, int]:
        """Output size at scale 1 (after crops and rotations)."""
        return self.plan()[1]

    def _backward(self, stages: list[Stage], roi_out: ROI) -> None:
        roi = roi_out
        for st in reversed(stages):
            st.roi_out = roi
            r = st.module.modify_roi_in(st.piece, roi)
            bw, bh = scaled(st.piece.buf_in[0], r.scale), scaled(st.piece.buf_in[1], r.scale)
            x0, y0 = max(0, r.x), max(0, r.y)
            x1, y1 = min(bw, r.x + r.width), min(bh, r.y + r.height)
            r = ROI(x0, y0, max(1, x1 - x0), max(1, y1 - y0), r.scale)
            st.roi_in = r
            roi = r

    # ------------------------------------------------------------------ running
    def _input(self, roi: ROI) -> np.ndarray:
        data = self.image.data
        if self.image.is_raw:
            if roi.scale != 1.0:
                raise PixelpipeError("internal: a raw pipe must read its input at scale 1")
            # a mosaic (H, W), or planar non-CFA raw data (C, H, W)
            return data[..., roi.y: roi.y + roi.height, roi.x: roi.x + roi.width]
        if roi.scale == 1.0:
            return data[:, roi.y: roi.y + roi.height, roi.x: roi.x + roi.width]
        # non-raw: downscale at the pipe input (darktable's clip-and-zoom)
        return resample(data, 0, 0, 1.0, roi.x, roi.y, roi.width, roi.height, roi.scale, self.device)

    def process(self, roi_out: ROI, upscale: bool = False, u8: bool = False) -> np.ndarray:
        """Process the region ``roi_out`` (in the final output's scaled space); ``u8``: return it
        quantised to interleaved 8-bit (H, W, 3), in the last fused kernel when there is one."""
        stages, _ = self.plan(upscale)
        self._backward(stages, roi_out)
        rec = RunRecord(stages=[(st.label, st.roi_in, st.roi_out) for st in stages],
                        pieces={st.label: st.piece for st in stages})
        keys = [hashlib.sha256(f"{st.hash}|{st.roi_out}|{st.roi_in}".encode()).hexdigest() for st in stages]
        start, buf = 0, None
        for i in range(len(stages) - 1, -1, -1):
            hit = self.cache.get(keys[i])
            if hit is not None:
                start, buf = i + 1, hit
                rec.from_cache = stages[i].label
                break
        start, buf = blend_hooks.ensure_raster_sources(self, stages, keys, start, buf, rec)
        if buf is None:
            buf = self._input(stages[0].roi_in)
        # the input of the focused module is kept (darktable's next_important_module)
        focus_in = None
        if self.focused:
            fop, finst = parse_label(self.focused)
            for i, st in enumerate(stages):
                if (st.module.op, st.instance.instance) == (fop, finst) and i > 0:
                    focus_in = i - 1
        if focus_in is not None and focus_in < start:
            self.cache.mark_important(keys[focus_in])
        i = start
        while i < len(stages):
            st = stages[i]
            p = st.piece
            t_stage = time.perf_counter()
            run = self._fusable_run(stages, i)
            # an 8-bit result straight from the last kernel (only fusable runs can end in one)
            to_u8 = (u8 and self.fuse and i + len(run) == len(stages)
                     and stages[-1].piece.dsc_out.channels == 3 and self._fusable(run[0], first=True))
            if len(run) > 1 or to_u8:
                # export pipes need no intermediate: one kernel for the whole point-wise run
                out = run_fused([(s.module, s.piece) for s in run], buf,
                                [(s.roi_in, s.roi_out) for s in run], self.device, output_u8=to_u8)
                for s in run[:-1]:
                    self.executions[s.label] += 1
                    rec.executed.append(s.label)
                i += len(run) - 1
                st, p = stages[i], stages[i].piece
            elif p.fast and st.module.flags & Flags.EXPENSIVE:
                out = st.module.process_fast(p, buf, st.roi_in, st.roi_out)
            else:
                out = st.module.process(p, buf, st.roi_in, st.roi_out)
            out = blend_hooks.after_process(self, stages, keys, i, buf, out)  # masks and blending
            exp = (p.dsc_out.channels, st.roi_out.height, st.roi_out.width)
            got = out.transpose(2, 0, 1).shape if to_u8 else out.shape if out.ndim == 3 else (1,) + out.shape
            if tuple(got) != exp:
                raise PixelpipeError(f"internal: module {st.label} returned {tuple(got)}, expected {exp}")
            self.executions[st.label] += 1
            rec.executed.append(st.label)
            rec.seconds[st.label if len(run) == 1 else "+".join(s.label for s in run)] = \
                time.perf_counter() - t_stage
            if i == focus_in:
                self.cache.mark_important("")  # only one important line at a time
            if not to_u8:  # (a quantised result is not the stage's output)
                self.cache.put(keys[i], out, important=i == focus_in, slot=(st.label, st.roi_out))
            buf = out
            i += 1
        self.last = rec
        if os.environ.get("PIXELPIPE_PROFILE"):
            print("pixelpipe: profile: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in rec.seconds.items()),
                  file=sys.stderr)
        buf = blend_hooks.show_mask_overlay(self, stages, keys, buf)
        if u8 and buf.dtype != np.uint8:
            from ..engine.convert import quantise_planar

            buf = quantise_planar(buf, 8)
        return buf

    def _fusable(self, st: Stage, first: bool = False) -> bool:
        m = st.module
        if not isinstance(m, HalideModule):
            return False
        # on a GPU the whole same-scale chain fuses (data stays on the device); on a CPU
        # runs of per-pixel modules (one row of each intermediate at a time), which a
        # mirror may start (it reads the run's input)
        if self.device == "cpu":
            per_pixel = m.pointwise_for(st.piece) or m.staged or (first and m.gathers_for(st.piece))
            shape_ok = per_pixel and st.roi_in == st.roi_out
        else:
            shape_ok = st.roi_in.scale == st.roi_out.scale
        return (shape_ok and not (st.piece.fast and m.flags & Flags.EXPENSIVE)
                and not getattr(st.instance, "blend", None))

    def _fusable_run(self, stages: list[Stage], i: int) -> list[Stage]:
        """The stages from ``i`` on that may run as one kernel (export-like pipes only)."""
        if not self.fuse or not self._fusable(stages[i], first=True):
            return [stages[i]]
        run = [stages[i]]
        for st in stages[i + 1:]:
            prev = run[-1].module
            if not self._fusable(st) or st.module.channels_in != prev.channels_out:
                break
            run.append(st)
        return run

    def distort_points(self, pts, upto: str | None = None, *, backward: bool = False,
                       include: bool = True) -> np.ndarray:
        """(N, 2) full-resolution points from the pipe's input image through every distorting
        module up to ``upto`` (its output; its input with ``include=False``; the whole pipe
        when None), or back from there to the input with ``backward=True``."""
        return blend_hooks.distort_points(self, pts, upto, backward_=backward, include=include)

    def fit_scale(self, width: int | None = None, height: int | None = None,
                  allow_upscale: bool = False) -> tuple[float, int, int]:
        w, h = self.full_size()
        s = 1.0
        if width:
            s = width / w
        if height:
            s = min(s, height / h) if width else height / h
        if not allow_upscale:
            s = min(s, 1.0)
        if s <= 0 or not math.isfinite(s):
            raise PixelpipeError("width and height must be positive")
        return s, scaled(w, s), scaled(h, s)

    def render(self, width: int | None = None, height: int | None = None, *,
               allow_upscale: bool = False, memory_budget: int | None = None, u8: bool = False) -> np.ndarray:
        """The whole image fitted into width x height: planar (3, h, w) display-encoded; with
        ``u8``, interleaved (h, w, 3) 8-bit (``x * 255 + 0.5`` truncated, as the writers round).

        An image whose processing would need more than the memory budget is
        processed in horizontal bands; each band's region of interest carries
        the padding every module asks for, so the result equals an untiled run.
        """
        s, w, h = self.fit_scale(width, height, allow_upscale)
        roi = ROI(0, 0, w, h, s)
        budget = memory_budget if memory_budget is not None else memory_budget_default()
        need = self.estimate_bytes(roi, upscale=s > 1.0)
        if need <= budget or h < 16:
            return self.process(roi, upscale=s > 1.0, u8=u8)
        bands = min(h // 8, max(2, math.ceil(need / max(budget, 1) * 1.25)))
        step = math.ceil(h / bands)
        out = np.empty((h, w, 3), np.uint8) if u8 else np.empty((3, h, w), np.float32)
        keep, self.cache = self.cache, PipeCache(2, cap_bytes=0)  # bands are not worth caching
        try:
            for y0 in range(0, h, step):
                band = ROI(0, y0, w, min(step, h - y0), s)
                part = self.process(band, upscale=s > 1.0, u8=u8)
                if u8:
                    out[y0: y0 + band.height] = part
                else:
                    out[:, y0: y0 + band.height] = part
        finally:
            self.cache = keep
        self.last.tiles = bands
        return out

    def release(self) -> None:
        """Forget the cached module outputs, handing their buffers to the buffer pool.

        For one-shot pipes (an export, a batch file): the next image's modules then write
        into memory that is already mapped instead of faulting in fresh pages.
        An array the caller still holds is never taken (see engine/buffers.py).
        """
        self.cache.release()

    def estimate_bytes(self, roi_out: ROI, upscale: bool = False) -> int:
        """Peak bytes of the largest step (its input and output buffers) for ``roi_out``."""
        stages, _ = self.plan(upscale)
        self._backward(stages, roi_out)
        peak = 0
        for st in stages:
            cin = st.piece.dsc_in.channels if st.piece.dsc_in else 3
            cout = st.piece.dsc_out.channels if st.piece.dsc_out else 3
            peak = max(peak, 4 * (cin * st.roi_in.area + cout * st.roi_out.area))
        return peak + 4 * self.image.data.size  # the decoded input stays resident

    def output_profile(self) -> str:
        st = [s for s in self.stages() if s.module.op == "colorout"]
        return st[-1].piece.params.profile if st else "srgb"
