"""demosaic: interpolate the missing colours at every photosite.

Bayer methods (``method``):

* ``"rcd"`` (default, as darktable): Ratio Corrected Demosaicing, followed by a
  correlation-gated colour-difference refinement of the green (ours; see
  ``_demosaic_bayer.build_rcd``);
* ``"rcd_classic"``: RCD exactly as published and as darktable runs it, without the
  refinement (about 4x faster; 37.0 dB on Kodak24 against 39.8);
* ``"ppg"``: Patterned Pixel Grouping;
* ``"mlri"``: the high-quality method (AMaZE's class): minimised-Laplacian
  residual interpolation with gradient-weighted directional fusion and an
  adaptive colour-difference refinement (several times slower than RCD);
* ``"mhc"``: Malvar-He-Cutler gradient-corrected bilinear (5x5 filters);
* ``"bilinear"``: normalised convolution of each colour's samples with a 3x3 tent;
* ``"passthrough"``: no interpolation, each photosite's value in R, G and B
  (darktable's "passthrough (monochrome)").

The algorithms are in ``_demosaic_bayer.py`` and ``_demosaic_xtrans.py`` (all
Halide). Other sensors:

* X-Trans (6x6): ``"markesteijn"`` (one pass; the default whatever Bayer
  method is set, as darktable keeps separate defaults per sensor type);
* four-colour (CYGM, e.g. Canon PowerShot G1): each of the four colours is
  interpolated bilinearly (darktable runs VNG here), then the four channels are
  converted to linear Rec.2020 by the pseudo-inverse of the camera's 4x3
  XYZ->camera matrix times Rec.2020->XYZ, rows normalised so that a
  white-balanced neutral stays neutral (dcraw's and darktable's convention);
  ``colorin`` then applies no further matrix;
* non-CFA data (``cfa.kind == "none"``: LinearRaw DNG, Kodak YRGB), already
  three planes, and monochrome sensors are passed through (monochrome values
  go to all three channels).

The approximate path (darktable's): in preview and thumbnail pipes (and the
cut-down pipe) at output scales <= 0.5 (X-Trans: <= 2/3), each 2x2 block
(X-Trans: 3x3) becomes one pixel, the mean of each colour's samples in it;
the result is resampled to the output scale.

Region of interest (darktable's rule): the input is requested at scale 1
covering the output region divided by its scale, padded by the method's
support radius (so a crop equals the same region of a whole-image run) and
aligned to the CFA period; demosaic then resamples to the output scale, so a
non-HQ export or darkroom pipe is downscaled right here. Beyond the buffer
the mosaic is mirrored about its edge pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..engine.halide_ops import resample
from ..engine.kernels import f32, get_kernel, source_tag_of
from ..errors import UnsupportedCFAError
from . import _demosaic_bayer as bayer
from . import _demosaic_xtrans as xtrans
from .base import Flags, Module, Params, Piece, ROI, cfa_at, param

BAYER_METHODS = ("rcd", "rcd_classic", "ppg", "mlri", "mhc", "bilinear")
XTRANS_METHODS = ("markesteijn",)
METHODS = BAYER_METHODS + XTRANS_METHODS + ("passthrough",)
#: support radius (pixels) of each method, + 2 for the resampler's partial pixels
PADS = {"bilinear": 3, "mhc": 4, "ppg": 7, "rcd": 20, "rcd_classic": 12, "mlri": 96, "markesteijn": 20, "passthrough": 2,
        "half": 2, "third": 3, "cygm": 3}
PAD = PADS["rcd"]  # the default method's
KINDS = ("bayer", "xtrans", "4color", "none", "mono")


@dataclass
class DemosaicParams(Params):
    """Demosaic.

    method: "rcd" (default for Bayer), "rcd_classic" (darktable's RCD, faster), "ppg", "mlri" (high quality, slower), "mhc",
            "bilinear", "markesteijn" (X-Trans; the default there) or "passthrough"
            (monochrome: no interpolation). A Bayer method on an X-Trans raw, or
            "markesteijn" on a Bayer raw, uses the sensor's default.
    """

    method: str = param("rcd", choices=METHODS)


# --------------------------------------------------------------------------- CFA checks

def check_cfa(image) -> str:
    """The CFA kind of a raw ``image`` when this module can process it; else a clear error."""
    cfa = image.cfa
    kind = cfa.kind if cfa is not None else "unknown"
    pat = np.asarray(cfa.pattern) if cfa is not None else None
    problem = None
    if kind == "bayer":
        rgb = cfa.rgb_pattern()
        if pat.shape != (2, 2) or sorted(set(rgb.ravel().tolist())) != [0, 1, 2]:
            problem = f"a Bayer pattern of shape {pat.shape} with colours {cfa.colors!r}"
        elif not ((rgb[0, 0] == rgb[1, 1] == 1) or (rgb[0, 1] == rgb[1, 0] == 1)):
            # the Bayer kernels work on 2x2 quads with the greens on a diagonal (every real Bayer sensor)
            problem = f"a Bayer pattern whose greens are not on a diagonal ({rgb.tolist()})"
    elif kind == "xtrans":
        rgb = cfa.rgb_pattern()
        if pat.shape != (6, 6) or sorted(set(rgb.ravel().tolist())) != [0, 1, 2]:
            problem = f"an X-Trans pattern of shape {pat.shape} with colours {cfa.colors!r}"
    elif kind == "4color":
        if pat.shape != (2, 2) or len(set(pat.ravel().tolist())) != 4 or pat.max() >= len(cfa.colors):
            problem = f"a four-colour pattern of shape {pat.shape} ({cfa.colors!r})"
    elif kind == "none":
        if image.data.ndim != 3 or image.data.shape[0] != 3:
            problem = f"non-CFA data with {image.data.shape[0] if image.data.ndim == 3 else 1} channel(s)"
    elif kind == "mono":
        if image.data.ndim != 2:
            problem = "monochrome data that is not one plane"
    else:
        problem = f"{kind} colour filter arrays"
    if problem is not None:
        raise UnsupportedCFAError(f"not supported: {problem} (demosaic handles Bayer 2x2, X-Trans 6x6, "
                                  "four-colour 2x2, monochrome and three-channel non-CFA raws)",
                                  path=image.path)
    return kind


def cygm_matrix(image) -> tuple[np.ndarray, str | None]:
    """(3 x 4 matrix: white-balanced four-colour camera values -> linear Rec.2020, notice).

    The pseudo-inverse of ``xyz_to_cam`` (4x3, rows in the CFA's colour order)
    times Rec.2020->XYZ with each row normalised to sum 1 (a balanced neutral maps
    to neutral). Without a matrix, the complementary-colour identities
    (C = G + B, M = R + B, Y = R + G) are used, with a notice.
    """
    from . import colorspaces as cs

    m = image.xyz_to_cam
    colors = image.cfa.colors
    if m is not None and np.asarray(m).shape == (4, 3) and np.isfinite(m).all():
        cam_from_work = np.asarray(m, np.float64) @ cs.rgb_to_xyz(cs.WORKING)
        sums = cam_from_work.sum(axis=1, keepdims=True)
        if np.all(np.abs(sums) > 1e-9):
            return np.linalg.pinv(cam_from_work / sums), None
    # R = (M + Y - C) / 2, G = (Y + C - M) / 2 averaged with G, B = (C + M - Y) / 2
    rows = {"R": {"M": .5, "Y": .5, "C": -.5}, "G": {"Y": .25, "C": .25, "M": -.25, "G": .5},
            "B": {"C": .5, "M": .5, "Y": -.5}}
    out = np.zeros((3, 4))
    for ci, ch in enumerate("RGB"):
        for k, letter in enumerate(colors[:4]):
            out[ci, k] = rows[ch].get(letter, 0.0)
    return out, "no colour matrix for this four-colour camera: CYGM converted to RGB by complementary-colour sums"


# --------------------------------------------------------------------------- kernels

_BAYER_BUILDERS = {"bilinear": bayer.build_bilinear, "mhc": bayer.build_mhc, "ppg": bayer.build_ppg,
                   "rcd": bayer.build_rcd,
                   "rcd_classic": bayer.build_rcd_classic, "mlri": bayer.build_mlri, "half": bayer.build_half}


def _kernel(name: str, builder, device: str):
    def build():
        # the Bayer builders schedule every stage as a GPU kernel while this is set; the
        # high-quality method's dozens of stages do not compile for CUDA in reasonable
        # time (Halide 21 bounds inference), so it keeps its CPU schedule (runs on the host)
        token = bayer.GPU.set("roots" if device != "cpu" and name != "mlri" else "")
        try:
            return builder()
        finally:
            bayer.GPU.reset(token)
    return get_kernel(f"demosaic_{name}", build, source_tag=source_tag_of(builder), device=device)


def _widen(mosaic: np.ndarray) -> np.ndarray:
    """A mosaic with both sides >= 2 (kernels mirror about the edge pixels)."""
    h, w = mosaic.shape
    if h >= 2 and w >= 2:
        return f32(mosaic)
    return f32(np.pad(mosaic, ((0, max(0, 2 - h)), (0, max(0, 2 - w))), mode="edge"))


def run_kernel(kind: str, mosaic: np.ndarray, pattern: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Demosaic a whole (H, W) Bayer mosaic whose (0, 0) has ``pattern`` (rows x cols, 0 R, 1 G, 2 B).

    ``kind``: a Bayer method or "half" (one pixel per 2x2 block: (3, H // 2, W // 2)).
    """
    h, w = mosaic.shape
    k = _kernel(kind, _BAYER_BUILDERS[kind], device)
    pat = np.ascontiguousarray(pattern, dtype=np.int32)
    if kind == "half":
        out = np.empty((3, max(1, h // 2), max(1, w // 2)), np.float32)
        k(_widen(mosaic), pat, out)
        return out
    src = _widen(mosaic)
    out = np.empty((3,) + src.shape, np.float32)
    k(src, pat, out)
    return out[:, :h, :w]


def run_xtrans(mosaic: np.ndarray, pattern: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Markesteijn-class demosaic of a whole (H, W) X-Trans mosaic (``pattern`` 6x6 at (0, 0))."""
    h, w = mosaic.shape
    off, wts = xtrans.tables(pattern)
    k = _kernel("markesteijn", xtrans.build_markesteijn, device)
    src = _widen(mosaic)
    out = np.empty((3,) + src.shape, np.float32)
    k(src, np.ascontiguousarray(pattern, dtype=np.int32), off, wts, out)
    return out[:, :h, :w]


def run_blocks(mosaic: np.ndarray, pattern: np.ndarray, n: int, matrix: np.ndarray | None = None,
               device: str = "cpu") -> np.ndarray:
    """One pixel per n x n block: (3, H // n, W // n); ``matrix`` (3 x colours) maps colour means to RGB."""
    ncol = 3 if matrix is None else matrix.shape[1]
    mat = np.eye(3) if matrix is None else matrix
    h, w = mosaic.shape
    src = mosaic if h >= n and w >= n else np.pad(mosaic, ((0, max(0, n - h)), (0, max(0, n - w))), mode="edge")
    builder = _blocks_builder(n, ncol)
    k = _kernel(f"blocks{n}_{ncol}", builder, device)
    out = np.empty((3, src.shape[0] // n, src.shape[1] // n), np.float32)
    k(f32(src), np.ascontiguousarray(pattern, dtype=np.int32), f32(mat), out)
    return out


def run_four_colour(mosaic: np.ndarray, pattern: np.ndarray, matrix: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Bilinear interpolation of the four colours of a 2x2 mosaic, then ``matrix`` (3 x 4) to RGB."""
    h, w = mosaic.shape
    builder = _nconv_builder(matrix.shape[1])
    k = _kernel(f"nconv_{matrix.shape[1]}", builder, device)
    src = _widen(mosaic)
    out = np.empty((3,) + src.shape, np.float32)
    k(src, np.ascontiguousarray(pattern, dtype=np.int32), f32(matrix), out)
    return out[:, :h, :w]


def _blocks_builder(n, ncol):
    def build_blocks():
        return xtrans.build_blocks(n, ncol)
    build_blocks.__module__ = xtrans.__name__
    return build_blocks


def _nconv_builder(ncol):
    def build_nconv():
        return xtrans.build_nconv(ncol)
    build_nconv.__module__ = xtrans.__name__
    return build_nconv


# --------------------------------------------------------------------------- the module

class Demosaic(Module):
    op = "demosaic"
    name = "demosaic"
    Params = DemosaicParams
    flags = Flags.ONE_INSTANCE | Flags.ALLOW_TILING | Flags.ALLOW_FAST_PIPE
    default_enabled = True
    works_on = "raw"
    summary = "CFA mosaic to RGB (RCD, PPG, MLRI, X-Trans, CYGM, passthrough)"

    def default_params(self, image):
        cfa = getattr(image, "cfa", None)
        if cfa is not None and cfa.kind == "xtrans":
            return DemosaicParams("markesteijn")
        return DemosaicParams("rcd")

    # -- what runs
    def path(self, piece: Piece, roi_out: ROI) -> str:
        """The algorithm this piece runs: a method, "half", "third", "cygm", "passthrough" or "planar"."""
        kind = check_cfa(piece.image)
        method = piece.params.method
        if kind == "none":
            return "planar"
        if kind == "mono" or method == "passthrough":
            return "passthrough"
        approx = piece.pipe in ("preview", "preview2", "thumbnail") or piece.fast
        if kind == "xtrans":
            return "third" if approx and roi_out.scale <= 2 / 3 else "markesteijn"
        if approx and roi_out.scale <= 0.5:
            return "half"
        if kind == "4color":
            return "cygm"
        return method if method in BAYER_METHODS else "rcd"

    def commit(self, piece):
        kind = check_cfa(piece.image)
        method = piece.params.method
        if kind == "bayer" and method not in BAYER_METHODS + ("passthrough",):
            piece.notices.append(f"demosaic: {method!r} is an X-Trans method; this Bayer raw uses rcd")
        if kind == "4color":
            mat, notice = cygm_matrix(piece.image)
            piece.data["cygm_matrix"] = mat
            if notice:
                piece.notices.append(notice)

    def output_desc(self, piece, dsc_in):
        kind = piece.image.cfa.kind if piece.image.cfa is not None else "bayer"
        # four-colour data leaves here already in the working space (see cygm_matrix)
        space = "rec2020" if kind == "4color" else "camera"
        return dsc_in.copy(channels=3, cfa=None, space=space)

    # -- regions of interest
    def _period(self, piece) -> int:
        kind = piece.image.cfa.kind if piece.image.cfa is not None else "bayer"
        return {"xtrans": 6, "none": 1, "mono": 1}.get(kind, 2)

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        s = roi_out.scale
        w_in, h_in = piece.buf_in
        pad = PADS.get(self.path(piece, roi_out), PAD)
        n = self._period(piece)
        x0 = math.floor(roi_out.x / s) - pad
        y0 = math.floor(roi_out.y / s) - pad
        x1 = math.ceil((roi_out.x + roi_out.width) / s) + pad
        y1 = math.ceil((roi_out.y + roi_out.height) / s) + pad
        x0, y0 = max(0, x0 - x0 % n), max(0, y0 - y0 % n)  # keep the CFA phase (and blocks) aligned
        x1, y1 = min(w_in, x1), min(h_in, y1)
        return ROI(x0, y0, min(w_in - x0, max(8, x1 - x0)), min(h_in - y0, max(8, y1 - y0)), 1.0)

    # -- pixels
    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        path = self.path(piece, roi_out)
        piece.data["path"] = path
        dev = piece.device
        img = piece.image
        if path == "planar":
            full = f32(inp)
        elif path == "passthrough":
            plane = inp if inp.ndim == 2 else inp[0]
            full = np.ascontiguousarray(np.broadcast_to(f32(plane), (3,) + plane.shape))
        else:
            cfa = cfa_at(img.cfa, roi_in.x, roi_in.y)
            if path in ("half", "third"):
                n = 2 if path == "half" else 3
                h, w = inp.shape
                pat = cfa.rgb_pattern() if img.cfa.kind != "4color" else cfa.pattern
                small = run_blocks(inp, pat, n, piece.data.get("cygm_matrix"), dev)
                return resample(small, roi_in.x // n, roi_in.y // n, 1.0 / n, roi_out.x, roi_out.y,
                                roi_out.width, roi_out.height, roi_out.scale, dev)
            if path == "cygm":
                full = run_four_colour(inp, cfa.pattern, piece.data["cygm_matrix"], dev)
            elif path == "markesteijn":
                full = run_xtrans(inp, cfa.rgb_pattern(), dev)
            else:
                full = run_kernel(path, inp, cfa.rgb_pattern(), dev)
        if roi_out.scale == 1.0:
            ox, oy = roi_out.x - roi_in.x, roi_out.y - roi_in.y
            return np.ascontiguousarray(full[:, oy: oy + roi_out.height, ox: ox + roi_out.width])
        return resample(full, roi_in.x, roi_in.y, 1.0, roi_out.x, roi_out.y,
                        roi_out.width, roi_out.height, roi_out.scale, dev)
