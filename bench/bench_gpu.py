#!/usr/bin/env python3
"""Time the default export pipe as Halide pipelines on a GPU (or the CPU) on a 24 MP mosaic.

What it measures (medians of --runs):
* kernel time: device-resident mosaic in, device-resident 8-bit RGB out, the
  whole same-scale chain compiled as one pipeline (Li2018 GPU schedule);
* effective bandwidth: bytes the chain must read and write (mosaic in, 8-bit
  RGB out) over the kernel time, beside the device's copy bandwidth measured in
  the same run (PyTorch device-to-device copy when available);
* end to end per image: host mosaic -> device -> pipe -> host 8-bit (images/s);
* parity: the GPU output of a crop against the CPU pipe's (written as .npy for
  a CIEDE2000 comparison on the machine that has colour-science installed).

    python bench/bench_gpu.py --crop bench/out/crop.npz --device cuda --runs 20 --out DIR
    python bench/bench_gpu.py --make-crop RAW --crop bench/out/crop.npz   # prepare the input (needs rawpy)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def make_crop(raw: str, dest: str, w: int = 1600, h: int = 1200) -> None:
    from pixelpipe.io.decode import load

    img = load(raw)
    y0, x0 = (img.height - h) // 2 // 2 * 2, (img.width - w) // 2 // 2 * 2
    np.savez_compressed(dest, mosaic=img.data[y0:y0 + h, x0:x0 + w].astype(np.uint16),
                        pattern=img.cfa.pattern, colors=np.array(img.cfa.colors), black=np.array(img.black),
                        white=np.array(img.white), wb=np.array(img.wb_as_shot), cam_to_xyz=img.cam_to_xyz,
                        orientation=np.array(img.orientation))
    print(f"wrote {dest} ({w}x{h} crop of {raw})")


def source_from_crop(path: str, width: int, height: int):
    from pixelpipe.io.source import CFA, SourceImage

    z = np.load(path)
    crop = z["mosaic"].astype(np.float32)
    ch, cw = crop.shape
    reps = (-(-height // ch), -(-width // cw))  # the crop has even size: tiling keeps the CFA phase
    mosaic = np.ascontiguousarray(np.tile(crop, reps)[:height, :width])
    return SourceImage(path=path, kind="raw", data=mosaic, cfa=CFA("bayer", z["pattern"], str(z["colors"])),
                       black=tuple(float(b) for b in z["black"]), white=float(z["white"]),
                       wb_as_shot=tuple(float(v) for v in z["wb"]), cam_to_xyz=z["cam_to_xyz"],
                       orientation=int(z["orientation"]))


def chain_for(img, device: str, demosaic_method: str | None = None):
    """The default edit's stages at full resolution, split into Halide-fusable segments."""
    from pixelpipe.modules.base import HalideModule, ROI
    from pixelpipe.pipe.history import Edit
    from pixelpipe.pipe.pipeline import Pipe

    edit = Edit.default_for(img)
    if demosaic_method:
        from pixelpipe.modules.demosaic import DemosaicParams

        for mi in edit.instances:
            if mi.op == "demosaic":
                mi.params = DemosaicParams(demosaic_method)
    pipe = Pipe(img, edit, "export", device=device)
    stages, (w, h) = pipe.plan()
    pipe._backward(stages, ROI(0, 0, w, h, 1.0))
    segments, cur = [], []
    for st in stages:
        if isinstance(st.module, HalideModule):
            cur.append(st)
        else:
            if cur:
                segments.append(cur)
            segments.append([st])
            cur = []
    if cur:
        segments.append(cur)
    return pipe, segments, (w, h)


def demosaic_kernel(st, target, schedule: str = "roots"):
    """The demosaic stage's full-resolution Bayer kernel compiled for the GPU (device buffers in and out)."""
    import halide as hl

    from pixelpipe.modules import _demosaic_bayer as bayer
    from pixelpipe.modules import demosaic as D

    method = st.module.path(st.piece, st.roi_out)
    token = bayer.GPU.set("none" if schedule == "li2018" else "roots")
    try:
        f, args = D._BAYER_BUILDERS[method]()
    finally:
        bayer.GPU.reset(token)
    if schedule == "li2018":
        import os

        hl.load_plugin(os.path.join(os.path.dirname(hl.__file__), "lib64", "libautoschedule_li2018.so"))
        raw, pat = args
        raw.set_estimates([(0, st.roi_in.width), (0, st.roi_in.height)])
        pat.set_estimates([(0, 2), (0, 2)])
        f.set_estimates([(0, st.roi_in.width), (0, st.roi_in.height), (0, 3)])
        hl.Pipeline(f).apply_autoscheduler(target, hl.AutoschedulerParams("Li2018"))
    return jit(f, args, target)


def jit(f, params, target):
    """A runner ``run(*values, out)`` of the pipeline ending at ``f``, JIT-compiled for ``target``.

    Halide's Python ``Callable`` marks every input host-dirty and copies every output
    back to the host on each call (Halide issue #6868), so device-resident timing goes
    through ``Pipeline.realize`` with the inputs bound to device buffers instead.
    """
    import halide as hl

    pipe = hl.Pipeline(f)
    pipe.compile_jit(target)

    def run(*values):
        *vals, out = values
        for p, v in zip(params, vals):
            p.set(v)
        pipe.realize(out, target)
    return run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-crop", metavar="RAW")
    ap.add_argument("--crop", default="bench/out/crop.npz")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--demosaic-method", help="override the default edit's demosaic method (e.g. rcd_classic)")
    ap.add_argument("--demosaic-schedule", choices=("roots", "li2018"), default="roots",
                    help="GPU schedule of the demosaic kernel: every stage a kernel (the pipe's), or Li2018")
    ap.add_argument("--split", action="store_true",
                    help="one kernel per module (per-module times; buffers still stay on the device)")
    ap.add_argument("--profile", action="store_true", help="Halide's profiler (per-Func times printed at exit)")
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/out"))
    a = ap.parse_args()
    if a.make_crop:
        make_crop(a.make_crop, a.crop)
        return 0

    import halide as hl

    from pixelpipe.engine.fusion import build_chain, chain_args
    from pixelpipe.engine.target import target_for
    from pixelpipe.modules.base import cfa_at

    report: dict = {"device": a.device, "size": [a.width, a.height], "demosaic": a.demosaic_method or "default"}
    img = source_from_crop(a.crop, a.width, a.height)
    pipe, segments, (w, h) = chain_for(img, a.device, a.demosaic_method)
    if a.split:
        segments = [[st] for seg in segments for st in seg]
    report["segments"] = [[st.label for st in seg] for seg in segments]
    print("segments:", report["segments"], file=sys.stderr)
    if len(segments) != 1:
        print("note: not every stage is a Halide module; timing the segments separately", file=sys.stderr)

    target = target_for(a.device)
    if a.profile:
        target = target.with_feature(hl.TargetFeature.Profile)
    gpu = a.device != "cpu"
    iface = (hl.DeviceAPI.CUDA, target) if a.device == "cuda" else None
    compiled = []
    t0 = time.perf_counter()
    from pixelpipe.modules.base import HalideModule

    for seg in segments:
        chain = [(st.module, st.piece) for st in seg]
        if not isinstance(seg[0].module, HalideModule):
            compiled.append((seg, chain, demosaic_kernel(seg[0], target, a.demosaic_schedule) if gpu else None, "demosaic"))
            continue
        to8 = seg[-1].module.op == "gamma"
        f_final, args = build_chain(chain, a.device, estimate=(w, h), output_u8=to8)
        compiled.append((seg, chain, jit(f_final, args, target), "u8" if to8 else "f32"))
    report["compile_s"] = round(time.perf_counter() - t0, 2)

    def hbuf(v):
        if isinstance(v, np.ndarray):
            b = hl.Buffer(np.ascontiguousarray(v))
            if iface is not None:
                b.copy_to_device(*iface)
            return b
        return v

    # every segment's arguments and output buffer, allocated once (device-resident)
    plans = []
    for seg, chain, fn, kind in compiled:
        ro = seg[-1].roi_out
        if kind == "demosaic":
            st = seg[0]
            pattern = cfa_at(img.cfa, st.roi_in.x, st.roi_in.y).rgb_pattern().astype(np.int32)
            args = [hbuf(pattern)]
            out = hl.Buffer(hl.Float(32), [st.roi_in.width, st.roi_in.height, 3])
            if (st.roi_in.width, st.roi_in.height, st.roi_in.x, st.roi_in.y) != (ro.width, ro.height, ro.x, ro.y):
                raise SystemExit(f"demosaic changes the region ({st.roi_in} -> {ro}): not a full-frame export")
        else:
            rois = [(st.roi_in, st.roi_out) for st in seg]
            args = [hbuf(v) for v in chain_args(chain, rois)]
            ch = seg[-1].piece.dsc_out.channels
            if kind == "u8":
                out = hl.Buffer(hl.UInt(8), [3, ro.width, ro.height])  # interleaved
            else:
                out = hl.Buffer(hl.Float(32), [ro.width, ro.height] + ([3] if ch == 3 else []))
        if iface is not None:
            out.device_malloc(*iface)
        plans.append((seg, fn, args, out))

    def run_chain(first, times=None):
        """All segments on device buffers; a segment without a device kernel runs on the host."""
        current = first
        for seg, fn, args, out in plans:
            t = time.perf_counter()
            if fn is None:  # host fallback (CPU bench)
                st = seg[0]
                if iface is not None:
                    current.copy_to_host()
                res = st.module.process(st.piece, np.asarray(current).copy(), st.roi_in, st.roi_out)
                out = hbuf(np.ascontiguousarray(res))
            else:
                fn(current, *args, out)
                if iface is not None and times is not None:
                    out.device_sync()
            if times is not None:
                times.append(time.perf_counter() - t)
            current = out
        if iface is not None:
            current.device_sync()
        return current

    host_in = np.ascontiguousarray(img.data, dtype=np.float32)  # the first stage reads the whole mosaic
    inb = hbuf(host_in)
    per_seg, totals = [], []
    for k in range(a.runs + 2):
        seg_t = []
        t = time.perf_counter()
        run_chain(inb, seg_t)
        totals.append(time.perf_counter() - t)
        per_seg.append(seg_t)
    kernel_s = statistics.median(totals[2:])
    report["kernel_ms"] = round(kernel_s * 1000, 3)
    report["segment_ms"] = [round(statistics.median(s[i] for s in per_seg[2:]) * 1000, 3)
                            for i in range(len(plans))]
    bytes_moved = w * h * 4 + w * h * 3  # float mosaic in, 8-bit RGB out
    report["effective_GBps"] = round(bytes_moved / kernel_s / 1e9, 1)

    # copy bandwidth of the device, same run
    try:
        import torch

        if a.device == "cuda" and torch.cuda.is_available():
            src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
            dst = torch.empty_like(src)
            for _ in range(3):
                dst.copy_(src)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(20):
                dst.copy_(src)
            torch.cuda.synchronize()
            dt = (time.perf_counter() - t) / 20
            report["copy_GBps_read_plus_write"] = round(2 * src.numel() / dt / 1e9, 1)
    except ImportError:
        pass

    # end to end: host mosaic -> device -> pipe -> host 8-bit, per image
    e2e = []
    for k in range(max(5, a.runs // 2)):
        t = time.perf_counter()
        b = hbuf(host_in)
        final = run_chain(b)
        if iface is not None:
            final.copy_to_host()
        res = np.asarray(final)
        e2e.append(time.perf_counter() - t)
    report["end_to_end_ms"] = round(statistics.median(e2e[1:]) * 1000, 2)
    report["images_per_s"] = round(1 / statistics.median(e2e[1:]), 1)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    corner = res[:1200, :1600] if res.shape[-1] == 3 else res[:, :1200, :1600]  # 8-bit: (H, W, 3)
    np.save(Path(a.out) / f"gpu_out_{a.device}.npy", corner.copy())
    print(json.dumps(report, indent=1))
    (Path(a.out) / f"bench_gpu_{a.device}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
