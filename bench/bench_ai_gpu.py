#!/usr/bin/env python3
"""Time the AI tasks' networks per 24 MP image with PyTorch on a GPU (CUDA).

    python bench/bench_ai_gpu.py --weights DIR [--device cuda] [--repeat 3] [--half] [--out FILE.json]
    python bench/bench_ai_gpu.py --export-npz DIR --weights SHARED_MODELS   # once, where h5py exists

The same networks as the ``denoise`` and ``upscale`` tasks, rebuilt by the converters
in tools/ (tools/convert_ffdnet.py, tools/convert_rlfn.py) and loaded from ``--weights``:

* FFDNet colour, sigma 25, on a 6000x4000 image, tiled as pixelpipe's runtime tiles
  (pixelpipe.ai.tiling: square tiles, 64 px overlap, mirrored borders, only each
  tile's centre kept; the first size of the ladder 2048 ... 256 unless ``--tile``);
* RLFN x2 from 3000x2000 and x4 from 1500x1000 (a 24 MP output), 16 px overlap,
  the ladder 768 ... 192.

Each figure is the median of ``--repeat`` runs after one warm-up, from the image in
host memory to the result back in host memory (uploads, tile gathering, the network,
downloads, all inside the timing). The image content is synthetic (the time of a
convolutional network does not depend on it). Before timing, the tiled result is
compared with an untiled run on a 1024x768 crop with a small tile (max abs
difference, whole and away from the border, printed), which checks the tile arithmetic.

``--weights`` is a folder searched (recursively) for ``rlfn_x2.pth``, ``rlfn_x4.pth``
(PyTorch state dicts, read with torch alone) and for FFDNet either
``ffdnet_color.npz`` (written by ``--export-npz``, read with numpy alone) or
``FFDNet_color.mat`` (MatConvNet, needs h5py). So on a machine with only torch and
numpy: run ``--export-npz`` where h5py is installed, carry that folder (and the two
.pth files) over, and point ``--weights`` at it. Nothing is downloaded.

Prints one JSON object (and writes it to ``--out`` when given).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tools/

LADDER_X1 = (2048, 1536, 1024, 768, 512, 384, 256)   # pixelpipe.ai.tiling (darktable's)
LADDER_SR = (768, 512, 384, 256, 192)
OVERLAP_DENOISE = 64
OVERLAP_UPSCALE = 16
FFDNET_NPZ = "ffdnet_color.npz"


# --------------------------------------------------------------------------- weights

def _find(root: Path, name: str) -> Path | None:
    hits = sorted(root.rglob(name))
    return hits[0] if hits else None


def ffdnet_convs(root: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], Path]:
    npz = _find(root, FFDNET_NPZ)
    if npz is not None:
        with np.load(npz) as z:
            n = len([k for k in z.files if k.startswith("w")])
            return [(z[f"w{i}"], z[f"b{i}"]) for i in range(n)], npz
    mat = _find(root, "FFDNet_color.mat")
    if mat is None:
        raise SystemExit(f"error: {root}: neither {FFDNET_NPZ} nor FFDNet_color.mat found "
                         f"(make the .npz with --export-npz where h5py is installed)")
    try:
        import h5py  # noqa: F401
    except ImportError:
        raise SystemExit(f"error: {mat}: reading MatConvNet weights needs h5py; run --export-npz "
                         f"on a machine that has it and pass that folder") from None
    from tools.convert_ffdnet import read_matconvnet

    return read_matconvnet(mat), mat


def load_ffdnet(root: Path):
    from tools.convert_ffdnet import build

    convs, path = ffdnet_convs(root)
    if len(convs) != 12 or convs[0][0].shape != (96, 13, 3, 3) or convs[-1][0].shape != (12, 96, 3, 3):
        raise SystemExit(f"error: {path}: these are not FFDNet colour weights "
                         f"({len(convs)} conv layers, first {convs[0][0].shape if convs else None})")
    return build(convs), path


def load_rlfn(root: Path, scale: int):
    import torch

    from tools.convert_rlfn import RLFN

    path = _find(root, f"rlfn_x{scale}.pth")
    if path is None:
        raise SystemExit(f"error: {root}: rlfn_x{scale}.pth not found")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if "params" in sd:
        sd = sd["params"]
    net = RLFN(scale)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise SystemExit(f"error: {path}: not RLFN x{scale} weights: {str(e).splitlines()[0]}") from None
    return net.eval(), path


def export_npz(weights: Path, dest: Path) -> None:
    convs, src = ffdnet_convs(weights)
    dest.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (w, b) in enumerate(convs):
        arrays[f"w{i}"], arrays[f"b{i}"] = w, b
    np.savez(dest / FFDNET_NPZ, **arrays)
    copied = []
    for s in (2, 4):
        p = _find(weights, f"rlfn_x{s}.pth")
        if p is not None:
            shutil.copy2(p, dest / p.name)
            copied.append(p.name)
    print(json.dumps({"ffdnet": str(src), "wrote": [FFDNET_NPZ] + copied, "folder": str(dest)}))


# --------------------------------------------------------------------------- tiling (pixelpipe.ai.tiling in torch)

def _mirror(idx, n: int):
    import torch

    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    m = torch.remainder(idx, period)
    return torch.where(m >= n, period - m, m)


def run_tiled(fn, x, scale: int, overlap: int, tile: int, extra=None):
    """``fn(tile[, extra tile])`` over ``x`` [1,C,H,W] (on the device) as the runtime tiles it."""
    import torch

    _, _, H, W = x.shape
    step = tile - 2 * overlap
    out = None
    n = 0
    ar = torch.arange(tile, device=x.device)
    for y0 in range(0, H, step):
        yi = _mirror(ar + (y0 - overlap), H)
        hh = min(step, H - y0)
        for x0 in range(0, W, step):
            xi = _mirror(ar + (x0 - overlap), W)
            ww = min(step, W - x0)
            t = x[:, :, yi[:, None], xi[None, :]]
            args = (t,) if extra is None else (t, extra[:, :, yi[:, None], xi[None, :]])
            r = fn(*args)
            if out is None:
                out = torch.empty((1, r.shape[1], H * scale, W * scale), dtype=r.dtype, device=x.device)
            s = scale
            out[:, :, y0 * s:(y0 + hh) * s, x0 * s:(x0 + ww) * s] = \
                r[:, :, overlap * s:(overlap + hh) * s, overlap * s:(overlap + ww) * s]
            n += 1
    return out, n


def tile_for(side_h: int, side_w: int, overlap: int, ladder, forced: int | None) -> int:
    """The ladder's first size, or a smaller aligned one when the image is smaller (as the runtime)."""
    t = forced or ladder[0]
    need = -(-(max(side_h, side_w) + 2 * overlap) // 64) * 64
    return min(t, need)


# --------------------------------------------------------------------------- timing

def synthetic(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([0.5 + 0.3 * np.sin(xx / 97 + c) * np.cos(yy / 61 - c) for c in range(3)])
    return np.clip(base + rng.normal(0, 25 / 255, (3, h, w)).astype(np.float32), 0, 1)[None]


def sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_one(name, net, img: np.ndarray, scale: int, overlap: int, tile: int, dev, dtype, repeat: int,
              sigma: float | None = None) -> dict:
    import torch

    net = net.to(dev, dtype)

    def fn(t, s=None):
        return net(t, s) if s is not None else net(t)

    def once():
        x = torch.from_numpy(img).to(dev, dtype, non_blocking=False)
        extra = None if sigma is None else torch.full((1, 1) + x.shape[2:], sigma / 255, dtype=dtype, device=dev)
        y, n = run_tiled(fn, x, scale, overlap, tile, extra)
        host = y.float().cpu().numpy()
        return host, n

    # tiling check on a crop: tiled against untiled, the same tile arithmetic as the runtime
    crop = np.ascontiguousarray(img[:, :, :768, :1024])
    with torch.inference_mode():
        xc = torch.from_numpy(crop).to(dev, dtype)
        ec = None if sigma is None else torch.full((1, 1) + xc.shape[2:], sigma / 255, dtype=dtype, device=dev)
        small = 256 if scale == 1 else 192
        yt, _ = run_tiled(fn, xc, scale, overlap, small, ec)
        yu = fn(xc, ec) if ec is not None else fn(xc)
        d = (yt.float() - yu.float()).abs()
        b = overlap * scale  # at the image's border the tiles see mirrored context, the whole image zeros
        check = (float(d.max()), float(d[:, :, b:-b, b:-b].max()))
        del xc, ec, yt, yu
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        once()  # warm-up (cuDNN autotuning, allocations)
        times = []
        for _ in range(repeat):
            sync(dev)
            t0 = time.perf_counter()
            out, n = once()
            sync(dev)
            times.append(time.perf_counter() - t0)
    res = {"input": [img.shape[3], img.shape[2]], "output": [out.shape[3], out.shape[2]],
           "output_mp": round(out.shape[2] * out.shape[3] / 1e6, 2), "tile": tile, "overlap": overlap,
           "tiles": n, "seconds": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times],
           "tiled_vs_untiled_1024x768": {"tile": small, "max_abs_diff": check[0],
                                         f"max_abs_diff_{overlap * scale}px_inside": check[1]}}
    if dev.type == "cuda":
        res["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 30, 2)
    print(f"{name}: {res}", file=sys.stderr, flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="folder with the weights (see above)")
    ap.add_argument("--export-npz", metavar="DIR", help="write ffdnet_color.npz (+ copy the RLFN .pth) to DIR and stop")
    ap.add_argument("--device", default="cuda", help="torch device (default cuda; cpu works, slowly)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--half", action="store_true", help="float16 weights and activations (default float32)")
    ap.add_argument("--no-tf32", action="store_true", help="disable TF32 in cuDNN convolutions")
    ap.add_argument("--tile-denoise", type=int, default=None, help="force the denoise tile (default 2048)")
    ap.add_argument("--tile-upscale", type=int, default=None, help="force the upscale tile (default 768)")
    ap.add_argument("--size", default="6000x4000", help="the 24 MP size WxH (smaller for a quick check)")
    ap.add_argument("--only", choices=["ffdnet", "rlfn_x2", "rlfn_x4"], action="append")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)

    weights = Path(a.weights)
    if not weights.is_dir():
        raise SystemExit(f"error: {weights}: not a folder")
    if a.export_npz:
        export_npz(weights, Path(a.export_npz))
        return 0

    import torch

    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: CUDA is not available to this PyTorch (torch.cuda.is_available() is False)")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = not a.no_tf32
    torch.backends.cuda.matmul.allow_tf32 = not a.no_tf32
    dtype = torch.float16 if a.half else torch.float32
    W, H = (int(v) for v in a.size.lower().split("x"))
    only = set(a.only or ["ffdnet", "rlfn_x2", "rlfn_x4"])
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "dtype": str(dtype).replace("torch.", ""), "tf32": not a.no_tf32, "repeat": a.repeat,
           "timing": "median wall seconds per image, host array in -> host array out, after one warm-up"}
    if "ffdnet" in only:
        net, p = load_ffdnet(weights)
        img = synthetic(H, W)
        t = tile_for(H, W, OVERLAP_DENOISE, LADDER_X1, a.tile_denoise)
        res["ffdnet_sigma25"] = bench_one("ffdnet", net, img, 1, OVERLAP_DENOISE, t, dev, dtype, a.repeat, 25.0)
        res["ffdnet_sigma25"]["weights"] = p.name
        del img
    for s in (2, 4):
        if f"rlfn_x{s}" not in only:
            continue
        net, p = load_rlfn(weights, s)
        img = synthetic(H // s, W // s, seed=s)
        t = tile_for(H // s, W // s, OVERLAP_UPSCALE, LADDER_SR, a.tile_upscale)
        res[f"rlfn_x{s}"] = bench_one(f"rlfn_x{s}", net, img, s, OVERLAP_UPSCALE, t, dev, dtype, a.repeat)
        res[f"rlfn_x{s}"]["weights"] = p.name
        del img
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
