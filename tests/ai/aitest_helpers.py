"""Builders for the AI tests: small real ONNX models, .dtmodel packages, a GitHub-like server."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"


# --------------------------------------------------------------------------- ONNX models

def _model(nodes, inputs, outputs, inits=(), opset=17) -> bytes:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(shape))


def box_blur(k: int = 5, channels: int = 3, elem=TensorProto.FLOAT,
             shape=("batch", None, "height", "width"), out_channels: int | None = None,
             num_inputs: int = 1) -> bytes:
    """Depthwise k x k box blur with internal reflect padding: [1,3,H,W] -> [1,3,H,W].
    With num_inputs=2 a sigma map [1,1,H,W] is added to every channel."""
    shape = list(shape)
    shape[1] = channels
    r = k // 2
    dt = np.float16 if elem == TensorProto.FLOAT16 else np.float32
    w = np.full((channels, 1, k, k), 1.0 / (k * k), dt)
    inits = [helper.make_tensor("W", elem, w.shape, w.flatten().tolist()),
             helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, r, r, 0, 0, r, r])]
    nodes = [helper.make_node("Pad", ["input", "pads"], ["padded"], mode="reflect"),
             helper.make_node("Conv", ["padded", "W"], ["blur"], group=channels,
                              kernel_shape=[k, k])]
    inputs = [_vi("input", shape, elem)]
    if num_inputs == 2:
        inputs.append(_vi("sigma", [shape[0], 1, shape[2], shape[3]], elem))
        nodes.append(helper.make_node("Add", ["blur", "sigma"], ["output"]))
    else:
        nodes[-1].output[0] = "output"
    out_shape = list(shape)
    if out_channels is not None:
        out_shape[1] = out_channels
    return _model(nodes, inputs, [_vi("output", out_shape, elem)], inits)


def upscaler(scale: int = 2) -> bytes:
    """3x3 box blur (reflect padded) then nearest x``scale``: [1,3,H,W] -> [1,3,sH,sW]."""
    w = np.full((3, 1, 3, 3), 1.0 / 9, np.float32)
    inits = [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.flatten().tolist()),
             helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1]),
             helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, scale, scale])]
    nodes = [helper.make_node("Pad", ["input", "pads"], ["padded"], mode="reflect"),
             helper.make_node("Conv", ["padded", "W"], ["blur"], group=3, kernel_shape=[3, 3]),
             helper.make_node("Resize", ["blur", "", "scales"], ["output"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    return _model(nodes, [_vi("input", ["batch", 3, "h", "w"])],
                  [_vi("output", ["batch", 3, "h2", "w2"])], inits)


def bayer_model(tile: int | str = "t") -> bytes:
    """bayer_v1: [1,4,T,T] -> 1x1 conv to 12 channels -> DepthToSpace 2 -> [1,3,2T,2T]."""
    w = np.zeros((12, 4, 1, 1), np.float32)
    for c in range(12):
        w[c, c % 4, 0, 0] = 1.0
    inits = [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.flatten().tolist())]
    nodes = [helper.make_node("Conv", ["input", "W"], ["c12"]),
             helper.make_node("DepthToSpace", ["c12"], ["output"], blocksize=2, mode="CRD")]
    t2 = tile * 2 if isinstance(tile, int) else "t2"
    return _model(nodes, [_vi("input", [1, 4, tile, tile])], [_vi("output", [1, 3, t2, t2])], inits)


def sam2_pair() -> tuple[bytes, bytes]:
    """A SAM2-shaped encoder/decoder pair (tiny arithmetic, right names and shapes)."""
    w = np.full((256, 3, 1, 1), 0.01, np.float32)
    enc = _model(
        [helper.make_node("AveragePool", ["image"], ["p16"], kernel_shape=[16, 16], strides=[16, 16]),
         helper.make_node("Conv", ["p16", "W"], ["image_embed"])],
        [_vi("image", [1, 3, 1024, 1024])], [_vi("image_embed", [1, 256, 64, 64])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.flatten().tolist())])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 4, 4])
    dec = _model(
        [helper.make_node("Concat", ["mask_input", "mask_input", "mask_input"], ["low_res_masks"], axis=1),
         helper.make_node("Resize", ["low_res_masks", "", "scales"], ["masks"], mode="nearest"),
         helper.make_node("ReduceMean", ["low_res_masks"], ["iou_predictions"], axes=[2, 3], keepdims=0)],
        [_vi("image_embed", [1, 256, 64, 64]), _vi("point_coords", [1, "num_points", 2]),
         _vi("point_labels", [1, "num_points"]), _vi("mask_input", [1, 1, 256, 256]),
         _vi("has_mask_input", [1])],
        [_vi("masks", [1, 3, 1024, 1024]), _vi("iou_predictions", [1, 3]),
         _vi("low_res_masks", [1, 3, 256, 256])], [scales], opset=17)
    return enc, dec


def box_blur_reference(x: np.ndarray, k: int = 5) -> np.ndarray:
    """NumPy reference of :func:`box_blur` on [1,C,H,W]."""
    r = k // 2
    p = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect").astype(np.float64)
    out = np.zeros_like(x, dtype=np.float64)
    H, W = x.shape[2:]
    for dy in range(k):
        for dx in range(k):
            out += p[:, :, dy:dy + H, dx:dx + W]
    return (out / (k * k)).astype(np.float32)


# --------------------------------------------------------------------------- packages

def config(model_id: str, task: str, **extra) -> dict:
    c = {"id": model_id, "name": model_id.replace("-", " "), "description": f"test {task} model",
         "task": task, "backend": "onnx", "version": "1.0", "tiling": task != "mask"}
    c.update(extra)
    return c


def files_for(task: str, **kw) -> dict[str, bytes]:
    if task == "denoise":
        return {"model.onnx": box_blur(num_inputs=kw.get("num_inputs", 1))}
    if task == "upscale":
        return {"model_x2.onnx": upscaler(2), "model_x4.onnx": upscaler(4)}
    if task == "rawdenoise":
        return {"model_bayer.onnx": bayer_model(), "model_linear.onnx": box_blur()}
    if task == "mask":
        enc, dec = sam2_pair()
        return {"encoder.onnx": enc, "decoder.onnx": dec}
    raise ValueError(task)


def make_package(path: Path, model_id: str, task: str, *, cfg: dict | None = None,
                 files: dict[str, bytes] | None = None, root: str | None = None,
                 padding: int = 0, extra_members: list | None = None) -> Path:
    """A darktable-ai style ``<id>.dtmodel``: ``<root>/config.json`` + ONNX files (stored)."""
    root = model_id if root is None else root
    cfg = config(model_id, task) if cfg is None else cfg
    if task == "rawdenoise" and "variants" not in cfg:
        cfg = {**cfg, "variants": {"bayer": {"input_kind": "bayer_v1", "onnx": "model_bayer.onnx"},
                                   "linear": {"input_kind": "linear_v1", "onnx": "model_linear.onnx"}}}
    files = files_for(task, num_inputs=cfg.get("num_inputs", 1)) if files is None else files
    pre = f"{root}/" if root else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{pre}config.json", json.dumps(cfg, indent=2))
        for name, data in files.items():
            zf.writestr(pre + name, data)
        if padding:
            zf.writestr(pre + "weights.bin", np.random.default_rng(0).bytes(padding))
        for info, data in extra_members or []:
            zf.writestr(info, data)
    return path


def symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    info.create_system = 3
    return info, target.encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- server

class ReleaseServer:
    """A loopback GitHub look-alike: releases API + release downloads with Range support.

    ``assets[name] = bytes``; ``modes[name]``: ``"truncate_once"`` (first response sends
    half and closes), ``"corrupt"`` (serves other bytes than the digest says), ``"nodigest"``.
    """

    def __init__(self, repo: str = "darktable-org/darktable-ai", tag: str = "release-5.6.0.2"):
        self.repo = repo
        self.tag = tag
        self.other_tags = ["release-5.6.0", "release-5.6.0.1", "nightly-5.7.0", "release-5.5.0"]
        self.assets: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.log: list[dict] = []
        self._truncated: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                server.log.append({"path": self.path, "range": self.headers.get("Range"),
                                   "ua": self.headers.get("User-Agent")})
                api = f"/repos/{server.repo}/releases"
                dl = f"/{server.repo}/releases/download/"
                if self.path.split("?")[0] == api:
                    return self._json(server.releases())
                if self.path.startswith(dl):
                    tag, _, name = self.path[len(dl):].partition("/")
                    if tag != server.tag or name not in server.assets:
                        return self._send(404, b"not found")
                    return self._asset(name)
                return self._send(404, b"not found")

            def _json(self, obj):
                self._send(200, json.dumps(obj).encode(), "application/json")

            def _send(self, code, body, ctype="application/octet-stream", extra=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _asset(self, name):
                data = server.served_bytes(name)
                mode = server.modes.get(name)
                rng = self.headers.get("Range")
                start = 0
                if rng:
                    m = re.match(r"bytes=(\d+)-$", rng)
                    start = int(m.group(1))
                    if start >= len(data):
                        return self._send(416, b"", extra={"Content-Range": f"bytes */{len(data)}"})
                body = data[start:]
                if mode == "truncate_once" and name not in server._truncated:
                    server._truncated.add(name)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if rng:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def served_bytes(self, name: str) -> bytes:
        data = self.assets[name]
        if self.modes.get(name) == "corrupt":
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def releases(self) -> list[dict]:
        rels = []
        for tag in [self.tag] + self.other_tags:
            assets = []
            if tag == self.tag:
                for name, data in self.assets.items():
                    a = {"name": name, "size": len(data),
                         "browser_download_url": f"{self.url}/{self.repo}/releases/download/{tag}/{name}"}
                    if self.modes.get(name) != "nodigest":
                        a["digest"] = "sha256:" + sha256(data)
                    assets.append(a)
            rels.append({"tag_name": tag, "draft": False, "prerelease": False, "assets": assets})
        return rels

    def downloads(self, name: str) -> list[dict]:
        return [e for e in self.log if e["path"].endswith("/" + name)]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- subprocess

def cli(args: list[str], *, block_ort: bool = False, timeout: float = 60):
    """``python -m pixelpipe.cli_ai ARGS`` in a fresh interpreter (with ``block_ort``, an
    interpreter where ``import onnxruntime`` fails); returns CompletedProcess."""
    import subprocess

    if block_ort:
        cmd = [sys.executable, "-c",
               "import sys, runpy; sys.modules['onnxruntime'] = None; "
               "sys.argv = ['pixelpipe.cli_ai'] + sys.argv[1:]; "
               "runpy.run_module('pixelpipe.cli_ai', run_name='__main__', alter_sys=True)", *args]
    else:
        cmd = [sys.executable, "-m", "pixelpipe.cli_ai", *args]
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in members:
            zf.writestr(n, d)
    return buf.getvalue()


def cli_session(commands: list[list[str]], *, block_ort: bool = False, timeout: float = 60):
    """Run several ``pixelpipe.cli_ai`` commands in ONE fresh interpreter; the last stdout
    line is JSON ``{"rcs": [...], "ort_loaded": bool}``."""
    import subprocess

    code = "import sys, json\n"
    if block_ort:
        code += "sys.modules['onnxruntime'] = None\n"
    code += (
        "from pixelpipe.cli_ai import main\n"
        "rcs = [main(a) for a in json.loads(sys.argv[1])]\n"
        "print(json.dumps({'rcs': rcs, 'ort_loaded': sys.modules.get('onnxruntime') is not None}))\n"
    )
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(commands)], capture_output=True,
                       text=True, env=e, timeout=timeout)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    return result, p.stdout, p.stderr
