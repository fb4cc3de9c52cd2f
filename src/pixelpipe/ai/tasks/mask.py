"""The ``mask`` task: interactive object masks (SAM 2.1, SegNext), darktable's protocol
(segmentation.c, masks/object.c), and the classical fallback.

**Encoding.** The photo is rendered through a temporary export pipe in sRGB
(the user's whole edit, crop/rotate/perspective included), longest side 1024 px,
never upscaled, as uint8 RGB. Pre-processing: bilinear resize so that the longest
side is 1024, zero padding (bottom/right) to 1024x1024, CHW float32; SAM
normalises with ImageNet's mean (123.675, 116.28, 103.53) and std (58.395, 57.12,
57.375) on 0–255, SegNext only divides by 255 (its normalisation is in the
graph). The encoder runs on the preferred provider (the CPU when it fails).

**Embedding cache.** In memory (the last few images) and on disk in
``<cache dir>/pixelpipe/objmasks/<key>.seg``; the key hashes the model id and
version, the file (path, size, mtime), the encoded size and the edit's geometry
(``distort_hash``: every distorting module's parameters and the output size), so
a crop or rotation invalidates it while a colour change does not. File format
(little-endian), after darktable's "DTSG": magic ``DTSG``, u32 version 1, u64
distort hash, model id and version (u16 length + UTF-8), u32 encoded w, h, f64
scale, u32 number of outputs, per output its name, u32 ndim, i64 shape, float32
data; then the stored RGB (u32 h, w + uint8 HWC) for the edge-aware threshold.
Written atomically.

**Decoding** (always on the CPU). Encoder outputs are fed to the decoder inputs
of the same name, else the first whose name contains or is contained in the
input's name. Prompts: ``point_coords`` ``[1, N, 2]`` (x, y in the 1024 frame:
encoded pixel x scale), ``point_labels`` ``[1, N]`` (1 positive, 0 negative);
SAM: a box adds its corners with labels 2 and 3, otherwise one padding point
(0, 0) with label -1 is appended; ``mask_input`` ``[1, 1, 256, 256]`` and
``has_mask_input`` ``[1]`` carry the previous low-resolution logits (0 on the
first click); ``orig_im_size`` (when the export has it) is (1024, 1024). SegNext:
``prev_mask`` ``[1, 1, 1024, 1024]`` (the previous probability). SAM returns
three masks and ``iou_predictions``: the one with the highest predicted IoU is
taken. ``mask.object.refine_passes`` more decoder runs feed each result back.
The padding is cropped, the map resized bilinearly to the encoded size and (SAM)
passed through a sigmoid.

**Post-processing** (:mod:`.postprocess`, the ``mask.object.*`` preferences):
edge-aware threshold (``threshold``, ``edge_refine``), the component(s) under
the positive clicks, open/close (``morph_radius``), clean-up (``cleanup``); then
:mod:`.vectorize` (``smoothing`` = potrace's alphamax, ``cleanup`` = its
turdsize) and the curves are carried back through the pipe's distortions into
normalised input-image coordinates (:func:`pixelpipe.blend.geometry.backward`),
so the drawn mask follows any later crop or rotation. Outer contours are
``union`` members of a mask group, holes ``difference`` members, in nesting
order.

:class:`ClassicalMasker` offers the same interface without a model
(:mod:`.classical_mask`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelpipe.errors import AIError, ParamsError

from . import common
from .postprocess import refine, resize_bilinear

ENC = 1024
LOW = 256
SAM_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
SAM_STD = np.array([58.395, 57.12, 57.375], np.float32)
PROMPTS = {"point_coords", "point_labels", "mask_input", "has_mask_input", "prev_mask", "orig_im_size"}
MAGIC = b"DTSG"
CACHE_VERSION = 1


# --------------------------------------------------------------------------- the image to segment

@dataclass
class Target:
    """What is segmented: the sRGB render (uint8 HWC, longest side <= 1024), how it maps to
    the full-size output (``scale`` = render px per output px) and the pipe's stages
    (for carrying points back to the input image)."""

    rgb: np.ndarray
    scale: float
    full_size: tuple[int, int]
    stages: list = field(default_factory=list)
    input_size: tuple[int, int] = (0, 0)
    identity: str = ""
    distort_hash: int = 0

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def to_render(self, x: float, y: float) -> tuple[float, float]:
        return x * self.scale, y * self.scale


def distort_hash(stages, full_size) -> int:
    h = hashlib.sha1(json.dumps(list(full_size)).encode())
    for st in stages:
        if st.module.is_distorting():
            h.update(f"{st.module.op}#{st.instance.instance}:{st.piece.params.digest()}".encode())
    return int.from_bytes(h.digest()[:8], "little")


def render_target(photo, edit=None, max_side: int = ENC) -> Target:
    """Render ``photo`` through its edit (export pipe, sRGB, longest side <= ``max_side``)."""
    import copy

    from pixelpipe.pipe.pipeline import Pipe

    e = copy.deepcopy(edit if edit is not None else photo.edit)
    e.set_params("colorout", photo.image, profile="srgb")
    pipe = Pipe(photo.image, e, "export")
    stages, full = pipe.plan()
    s = min(1.0, max_side / max(full))
    out = pipe.render(max_side, max_side) if s < 1 else pipe.render()
    rgb = (np.clip(np.moveaxis(out, 0, 2), 0, 1) * 255 + 0.5).astype(np.uint8)
    scale = rgb.shape[1] / full[0]
    try:
        ident = photo.image.identity()
    except OSError:
        ident = str(photo.image.path)
    return Target(rgb, scale, tuple(full), stages, (photo.image.width, photo.image.height), ident,
                  distort_hash(stages, full))


def target_from_rgb(rgb: np.ndarray, identity: str = "") -> Target:
    """A plain image (tests, benchmarks): no pipe, the image is its own input."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    h, w = a.shape[:2]
    return Target(a, 1.0, (w, h), [], (w, h), identity or hashlib.sha1(a.tobytes()).hexdigest(), 0)


# --------------------------------------------------------------------------- pre-processing

def preprocess(rgb: np.ndarray, arch: str) -> tuple[np.ndarray, float]:
    """uint8 HWC -> ([1, 3, 1024, 1024] float32, scale to the 1024 frame)."""
    h, w = rgb.shape[:2]
    s = ENC / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    chw = resize_bilinear(np.moveaxis(rgb.astype(np.float32), 2, 0), nh, nw)
    if arch == "segnext":
        chw = chw / np.float32(255.0)
    else:
        chw = (chw - SAM_MEAN[:, None, None]) / SAM_STD[:, None, None]
    x = np.zeros((1, 3, ENC, ENC), np.float32)
    x[0, :, :nh, :nw] = chw
    return x, s


def arch_of(model, decoder_inputs=()) -> str:
    a = (model.config.arch if model is not None and model.config else "") or ""
    if a in ("sam2", "segnext"):
        return a
    names = {t.name for t in decoder_inputs}
    return "segnext" if "prev_mask" in names else "sam2"


def map_inputs(decoder_inputs, encoder_outputs: list[str]) -> dict[str, str]:
    """decoder input -> encoder output: same name, else one name contains the other."""
    out = {}
    for t in decoder_inputs:
        if t.name in PROMPTS:
            continue
        if t.name in encoder_outputs:
            out[t.name] = t.name
            continue
        cand = [e for e in encoder_outputs if e in t.name or t.name in e]
        if not cand:
            raise AIError(f"decoder input '{t.name}' matches no encoder output ({', '.join(encoder_outputs)})")
        out[t.name] = max(cand, key=len)
    return out


# --------------------------------------------------------------------------- embedding cache

@dataclass
class Embedding:
    outputs: dict
    scale: float
    size: tuple[int, int]       # encoded (render) w, h
    rgb: np.ndarray | None = None


_MEMORY: "OrderedDict[str, Embedding]" = OrderedDict()
MEMORY_ITEMS = 4


def cache_dir() -> Path:
    from pixelpipe import userdirs

    return userdirs.cache_dir() / "objmasks"


def cache_key(model, target: Target) -> str:
    ver = model.config.version if model is not None and model.config else ""
    mid = model.id if model is not None else ""
    s = f"{mid}|{ver}|{target.identity}|{target.distort_hash}|{target.size}"
    return hashlib.sha1(s.encode()).hexdigest()


def _w_str(f, s: str) -> None:
    b = s.encode("utf-8")
    f.write(struct.pack("<H", len(b)) + b)


def _r_str(f) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n).decode("utf-8")


def save_embedding(path: Path, emb: Embedding, model_id: str, model_version: str, dhash: int) -> None:
    from pixelpipe.io.atomic import atomic_write

    buf = io.BytesIO()
    buf.write(MAGIC + struct.pack("<IQ", CACHE_VERSION, dhash & 0xFFFFFFFFFFFFFFFF))
    _w_str(buf, model_id)
    _w_str(buf, model_version)
    buf.write(struct.pack("<IIdI", emb.size[0], emb.size[1], emb.scale, len(emb.outputs)))
    for name, arr in emb.outputs.items():
        a = np.ascontiguousarray(arr, np.float32)
        _w_str(buf, name)
        buf.write(struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape))
        buf.write(a.astype("<f4").tobytes())
    rgb = emb.rgb if emb.rgb is not None else np.zeros((0, 0, 3), np.uint8)
    buf.write(struct.pack("<II", rgb.shape[0], rgb.shape[1]) + np.ascontiguousarray(rgb, np.uint8).tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, overwrite=True) as tmp:
        Path(tmp).write_bytes(buf.getvalue())


def load_embedding(path: Path, model_id: str, model_version: str, dhash: int) -> Embedding | None:
    """The cached embedding, or None when absent, damaged or made for another model/geometry."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != MAGIC:
                return None
            ver, h = struct.unpack("<IQ", f.read(12))
            if ver != CACHE_VERSION or h != (dhash & 0xFFFFFFFFFFFFFFFF):
                return None
            if _r_str(f) != model_id or _r_str(f) != model_version:
                return None
            w, hh, scale, n = struct.unpack("<IIdI", f.read(20))
            outs = {}
            for _ in range(n):
                name = _r_str(f)
                (nd,) = struct.unpack("<I", f.read(4))
                shape = struct.unpack(f"<{nd}q", f.read(8 * nd))
                cnt = int(np.prod(shape))
                data = np.frombuffer(f.read(4 * cnt), "<f4")
                if data.size != cnt:
                    return None
                outs[name] = data.reshape(shape).astype(np.float32)
            rh, rw = struct.unpack("<II", f.read(8))
            rgb = np.frombuffer(f.read(rh * rw * 3), np.uint8)
            rgb = rgb.reshape(rh, rw, 3) if rgb.size == rh * rw * 3 and rh * rw else None
            return Embedding(outs, scale, (w, hh), rgb)
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- preferences

@dataclass
class MaskPrefs:
    threshold: float = 0.5
    refine_passes: int = 2
    morph_radius: int = 1
    edge_refine: float = 0.5
    cleanup: int = 10
    smoothing: float = 0.5

    @classmethod
    def from_prefs(cls) -> "MaskPrefs":
        from pixelpipe import prefs

        return cls(*(prefs.get(f"mask.object.{k}") for k in
                     ("threshold", "refine_passes", "morph_radius", "edge_refine", "cleanup", "smoothing")))


# --------------------------------------------------------------------------- the maskers

Click = tuple  # (x, y, positive) in full-size output pixels


class _Base:
    target: Target
    prefs: MaskPrefs

    def probability(self, clicks, box=None) -> np.ndarray:
        raise NotImplementedError

    def mask(self, clicks, box=None) -> np.ndarray:
        """The refined binary mask over the render (h, w)."""
        prob = self.probability(clicks, box)
        pos = [self.target.to_render(x, y) for x, y, p in clicks if p]
        p = self.prefs
        return refine(prob, self.target.rgb, pos, threshold=p.threshold, edge_refine=p.edge_refine,
                      morph_radius=p.morph_radius, cleanup=p.cleanup)

    def shapes(self, mask: np.ndarray):
        return mask_to_group(mask, self.target, self.prefs)


class ObjectMasker(_Base):
    """SAM 2.1 / SegNext object masks for one target (keeps the previous mask between clicks)."""

    def __init__(self, model, target: Target, *, prefs: MaskPrefs | None = None, disk_cache: bool = True):
        self.model = model
        self.target = target
        self.prefs = prefs or MaskPrefs.from_prefs()
        self.disk_cache = disk_cache
        self.decoder = common.session_for(model, role="decoder")
        self.arch = arch_of(model, self.decoder.inputs)
        self.prev = None
        self.encoder_runs = 0
        self._emb: Embedding | None = None

    # ---- encoder
    def embedding(self) -> Embedding:
        if self._emb is not None:
            return self._emb
        key = cache_key(self.model, self.target)
        emb = _MEMORY.get(key)
        ver = self.model.config.version if self.model.config else ""
        path = cache_dir() / f"{key}.seg"
        if emb is None and self.disk_cache:
            emb = load_embedding(path, self.model.id, ver, self.target.distort_hash)
        if emb is None:
            enc = common.session_for(self.model, role="encoder")
            x, s = preprocess(self.target.rgb, self.arch)
            try:
                outs = enc.run({enc.inputs[0].name: x})
            except AIError:
                if enc.provider == "cpu":
                    raise
                enc = common.session_for(self.model, role="encoder", provider="cpu")  # darktable: retry on CPU
                outs = enc.run({enc.inputs[0].name: x})
            self.encoder_runs += 1
            emb = Embedding({k: np.asarray(v, np.float32) for k, v in outs.items()}, s, self.target.size,
                            self.target.rgb)
            if self.disk_cache:
                try:
                    save_embedding(path, emb, self.model.id, ver, self.target.distort_hash)
                except Exception:  # noqa: BLE001 - a cache that cannot be written is no error
                    pass
        _MEMORY[key] = emb
        _MEMORY.move_to_end(key)
        while len(_MEMORY) > MEMORY_ITEMS:
            _MEMORY.popitem(last=False)
        self._emb = emb
        return emb

    # ---- decoder
    def _feed(self, emb: Embedding, clicks, box, prev):
        s = emb.scale
        pts, labels = [], []
        for x, y, p in clicks:
            rx, ry = self.target.to_render(x, y)
            pts.append((rx * s, ry * s))
            labels.append(1.0 if p else 0.0)
        if self.arch == "sam2":
            if box is not None:
                x0, y0 = self.target.to_render(box[0], box[1])
                x1, y1 = self.target.to_render(box[2], box[3])
                pts += [(x0 * s, y0 * s), (x1 * s, y1 * s)]
                labels += [2.0, 3.0]
            else:
                pts.append((0.0, 0.0))
                labels.append(-1.0)
        elif box is not None:
            raise AIError("box prompts need a SAM model (SegNext takes clicks only)")
        feed = {"point_coords": np.array([pts], np.float32), "point_labels": np.array([labels], np.float32)}
        names = {t.name for t in self.decoder.inputs}
        mapping = map_inputs(self.decoder.inputs, list(emb.outputs))
        for dst, src in mapping.items():
            feed[dst] = emb.outputs[src]
        if "mask_input" in names:
            feed["mask_input"] = prev if prev is not None else np.zeros((1, 1, LOW, LOW), np.float32)
            feed["has_mask_input"] = np.array([1.0 if prev is not None else 0.0], np.float32)
        if "prev_mask" in names:
            feed["prev_mask"] = prev if prev is not None else np.zeros((1, 1, ENC, ENC), np.float32)
        if "orig_im_size" in names:
            feed["orig_im_size"] = np.array([ENC, ENC], np.float32)
        return {k: v for k, v in feed.items() if k in names}

    def _decode(self, emb: Embedding, clicks, box, prev):
        out = self.decoder.run(self._feed(emb, clicks, box, prev))
        w, h = emb.size
        if self.arch == "segnext" or "mask" in out and "masks" not in out:
            m = np.asarray(out.get("mask", next(iter(out.values()))))[0, 0]
            full = resize_bilinear(m, ENC, ENC) if m.shape != (ENC, ENC) else m
            nxt = full[None, None].astype(np.float32)
            prob_frame = full
            logits = False
        else:
            masks = np.asarray(out["masks"])[0]
            iou = np.asarray(out.get("iou_predictions", np.zeros((1, masks.shape[0]))))[0]
            k = int(np.argmax(iou)) if masks.shape[0] > 1 else 0
            m = masks[k]
            prob_frame = resize_bilinear(m, ENC, ENC) if m.shape != (ENC, ENC) else m
            low = out.get("low_res_masks")
            low = np.asarray(low)[0, k] if low is not None else resize_bilinear(prob_frame, LOW, LOW)
            nxt = low[None, None].astype(np.float32)
            logits = True
        vh, vw = int(round(h * emb.scale)), int(round(w * emb.scale))
        crop = prob_frame[:max(vh, 1), :max(vw, 1)]
        prob = resize_bilinear(crop, h, w)
        if logits:
            prob = 1.0 / (1.0 + np.exp(-np.clip(prob, -50, 50)))
        return prob.astype(np.float32), nxt

    def probability(self, clicks, box=None) -> np.ndarray:
        if not clicks and box is None:
            raise AIError("an object mask needs at least one click or a box")
        emb = self.embedding()
        prob, nxt = self._decode(emb, clicks, box, self.prev)
        for _ in range(int(self.prefs.refine_passes)):
            prob, nxt = self._decode(emb, clicks, box, nxt)
        self.prev = nxt
        return prob


class ClassicalMasker(_Base):
    """The same interface without a model (:mod:`.classical_mask`)."""

    def __init__(self, target: Target, *, prefs: MaskPrefs | None = None):
        from .classical_mask import ClassicalSegmenter

        self.target = target
        self.prefs = prefs or MaskPrefs.from_prefs()
        self.seg = ClassicalSegmenter(target.rgb)

    def probability(self, clicks, box=None) -> np.ndarray:
        if not clicks and box is None:
            raise AIError("an object mask needs at least one click or a box")
        render = [(*self.target.to_render(x, y), p) for x, y, p in clicks]
        rbox = None
        if box is not None:
            rbox = (*self.target.to_render(box[0], box[1]), *self.target.to_render(box[2], box[3]))
            if not any(p for *_, p in render):  # a box alone: its centre is the object
                render.append(((rbox[0] + rbox[2]) / 2, (rbox[1] + rbox[3]) / 2, True))
        return self.seg.predict(render, rbox)


# --------------------------------------------------------------------------- shapes

def mask_to_group(mask: np.ndarray, target: Target, prefs: MaskPrefs | None = None, name: str = "object mask"):
    """Vectorise a render-space mask into a :class:`pixelpipe.blend.forms.MaskGroup` of paths
    in normalised input-image coordinates (outer contours union, holes difference)."""
    from pixelpipe.blend.forms import MaskGroup, Path as PathForm
    from pixelpipe.blend.geometry import backward

    from .vectorize import trace_shapes

    p = prefs or MaskPrefs()
    h, w = mask.shape
    area = p.cleanup * (max(h, w) / 1024.0) ** 2
    shapes = trace_shapes(mask, alphamax=p.smoothing, min_area=area)
    if not shapes:
        raise AIError("the object mask is empty (nothing selected under the clicks)")
    W, H = target.input_size
    forms, ops = [], []
    for sh in shapes:
        pts = np.array([pt for seg in sh.cubics for pt in seg], np.float64) / target.scale
        pts = backward(target.stages, pts) / np.array([W, H], np.float64)
        cubics = [tuple(tuple(map(float, pts[4 * i + j])) for j in range(4)) for i in range(len(sh.cubics))]
        forms.append(PathForm.from_cubics(cubics, feather=0.0))
        ops.append("difference" if sh.hole else "union")
    return MaskGroup.of(forms, ops, name=name)


def attach_to_edit(edit, label: str, group, image) -> None:
    """Add ``group`` to the drawn mask of module instance ``label`` (created with its defaults
    when it is the first instance and absent)."""
    from pixelpipe.blend.params import BlendParams
    from pixelpipe.modules import registry
    from pixelpipe.modules.base import Flags
    from pixelpipe.pipe.history import parse_label

    op, n = parse_label(label)
    cls = registry().get(op)
    if cls is None:
        raise ParamsError(f"unknown module {op!r}")
    if not cls.flags & Flags.SUPPORTS_BLENDING:
        raise ParamsError(f"module {op} does not support blending, so it cannot take a drawn mask")
    inst = edit.find(op, n)
    if inst is None:
        if n != 0:
            raise ParamsError(f"the edit has no module instance {label}; add it first")
        inst = edit.set_params(op, image)
    bp = inst.blend.copy() if inst.blend is not None else BlendParams()
    bp.add_group(group)
    inst.blend = bp.validate(f"module {label}: blend")


def write_mask_png(path, mask: np.ndarray, full_size: tuple[int, int], *, overwrite: bool = False) -> Path:
    """The mask at the full output size as an 8-bit grey PNG (255 = selected)."""
    from pixelpipe.io.atomic import atomic_write
    from PIL import Image

    W, H = full_size
    up = resize_bilinear(mask.astype(np.float32), H, W) >= 0.5
    img = Image.fromarray((up * 255).astype(np.uint8), "L")
    with atomic_write(Path(path), overwrite=overwrite) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def make_masker(photo=None, *, target: Target | None = None, classical: bool = False, prefs=None):
    """A masker for ``photo``: the active mask model's, or the classical one (``classical``,
    or when AI is on but no mask model is active, with a notice in ``masker.notice``)."""
    if target is None:
        target = render_target(photo)
    notice = None
    if not classical:
        from pixelpipe import ai

        ai.require_enabled()
        model = ai.active_model("mask")
        if model is not None:
            return ObjectMasker(model, target, prefs=prefs), None
        notice = "no object-mask model is active; using the classical method (no model)"
    return ClassicalMasker(target, prefs=prefs), notice


def object_mask(image_path, clicks, *, box=None, module: str | None = None, png: str | os.PathLike | None = None,
                sidecar=None, classical: bool = False, overwrite: bool = False, prefs: MaskPrefs | None = None):
    """``pixelpipe ai mask``: the mask for ``clicks`` [(x, y, positive)] (full-size output
    pixels) and ``box`` (x0, y0, x1, y1); written as a PNG (``png``) or added to ``module``'s
    drawn mask in the edit's sidecar. Returns (mask, group, written path, notice)."""
    from pixelpipe.pipe.history import sidecar_path

    if not clicks and box is None:
        raise AIError("give at least one --point (or a --box)")
    if classical:
        photo = common.open_photo(image_path, sidecar)
        masker, notice = make_masker(photo, classical=True, prefs=prefs)
    else:
        from pixelpipe import ai

        ai.require_enabled()  # refuse before decoding anything
        photo = common.open_photo(image_path, sidecar)
        masker, notice = make_masker(photo, prefs=prefs)
    W, H = masker.target.full_size
    for x, y, _ in clicks:
        if not (0 <= x < W and 0 <= y < H):
            raise AIError(f"point ({x:g}, {y:g}) lies outside the {W}x{H} image")
    m = masker.mask(clicks, box)
    if not m.any():
        raise AIError("the object mask is empty (nothing selected under the clicks)")
    if png is not None:
        return m, None, write_mask_png(png, m, (W, H), overwrite=overwrite), notice
    if not module:
        raise AIError("say where the mask goes: --module OP[#N] (or write a PNG with -o FILE)")
    group = masker.shapes(m)
    attach_to_edit(photo.edit, module, group, photo.image)
    dest = Path(sidecar) if sidecar else sidecar_path(image_path)
    photo.edit.save(dest)
    return m, group, dest, notice
