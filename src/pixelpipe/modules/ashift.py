"""ashift: rotation and perspective (keystone) correction by a homography.

darktable's "rotate and perspective" module in its manual form (no automatic
line detection). Parameters: ``rotation`` (degrees, positive turns the image
counter-clockwise on screen), ``lensshift_v``/``lensshift_h`` (vertical and
horizontal keystone: the image plane is turned by ``atan(lensshift)`` about its
horizontal / vertical axis; a positive ``lensshift_v`` widens the top, a
positive ``lensshift_h`` widens the right side), ``shear``, ``f_length`` and
``crop_factor`` (the lens, which sets how strong a given keystone is; 35 mm
equivalent focal length = f_length * crop_factor, over the frame diagonal),
``aspect`` (stretch x by sqrt(aspect), y by 1/sqrt(aspect)), ``cropmode``
("off", "largest": the largest axis-aligned rectangle inside the corrected
frame, "aspect": the largest one with the original aspect ratio).

Model (pixel-edge coordinates, centred on the frame centre c = (W/2, H/2)):
``P = K R K^-1`` with ``K = diag(f, f, 1)``, ``R = R_y(atan lensshift_h) R_x(atan
lensshift_v)``; P is followed by the affine map that puts the centre back on
the centre with unit area scale there, then shear ``[[1, s], [s, 1]] /
sqrt(1 - s^2)``, aspect, the rotation, and the translation to the output centre
(minus the crop's origin). ``distort_transform`` applies this 3x3 matrix,
``distort_backtransform`` its inverse: round trips are exact to rounding.
Output pixels sample the input with a Catmull-Rom cubic at the back-projected
point; points outside the source frame (or behind the virtual camera) are black.
While ashift is focused in the darkroom the crop is not applied (the whole
frame shows, as darktable), and the pipe runs its cut-down (fast) mode.
Region of interest: the output region's border mapped back, bounding box
padded by 3 pixels (cubic taps and rounding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from ._nbhd import bbox_roi, border_points, sample_cubic, sane, via_2x2
from .base import Flags, Module, Params, Piece, ROI, Tags, param

PAD = 3
CROPMODES = ("off", "largest", "aspect")


@dataclass
class AshiftParams(Params):
    """Rotate and perspective.

    rotation: degrees, -180..180 (positive = counter-clockwise).
    lensshift_v, lensshift_h: keystone, -2..2 (tan of the virtual tilt).
    shear: -0.5..0.5.
    f_length: mm, 1..2000; crop_factor: 0.5..10.
    aspect: 0.5..2.
    cropmode: "off", "largest" or "aspect".
    """

    rotation: float = param(0.0, min=-180.0, max=180.0, unit="deg")
    lensshift_v: float = param(0.0, min=-2.0, max=2.0)
    lensshift_h: float = param(0.0, min=-2.0, max=2.0)
    shear: float = param(0.0, min=-0.5, max=0.5)
    f_length: float = param(28.0, min=1.0, max=2000.0, unit="mm")
    crop_factor: float = param(1.0, min=0.5, max=10.0)
    aspect: float = param(1.0, min=0.5, max=2.0)
    cropmode: str = param("largest", choices=CROPMODES)


def homography(p: AshiftParams, w: int, h: int) -> np.ndarray:
    """3x3 matrix from source to (uncropped) output, pixel-edge coordinates."""
    f = p.f_length * p.crop_factor * math.hypot(w, h) / math.hypot(36.0, 24.0)
    av, ah = math.atan(p.lensshift_v), math.atan(p.lensshift_h)
    Rx = np.array([[1, 0, 0], [0, math.cos(av), -math.sin(av)], [0, math.sin(av), math.cos(av)]])
    Ry = np.array([[math.cos(ah), 0, math.sin(ah)], [0, 1, 0], [-math.sin(ah), 0, math.cos(ah)]])
    K = np.diag([f, f, 1.0])
    P = K @ Ry @ Rx @ np.linalg.inv(K)
    # put the centre back on the centre, with unit area scale there
    o = P @ np.array([0.0, 0.0, 1.0])
    o2 = o[:2] / o[2]
    eps = 1e-3
    jac = np.zeros((2, 2))
    for i in range(2):
        e = np.zeros(3)
        e[i] = eps
        q = P @ (np.array([0.0, 0.0, 1.0]) + e)
        jac[:, i] = (q[:2] / q[2] - o2) / eps
    det = abs(np.linalg.det(jac))
    A = np.eye(3)
    A[:2, 2] = -o2
    A = np.diag([1 / math.sqrt(det), 1 / math.sqrt(det), 1.0]) @ A
    s = p.shear
    S = np.array([[1, s, 0], [s, 1, 0], [0, 0, math.sqrt(1 - s * s)]])
    a = math.sqrt(p.aspect)
    Asp = np.diag([a, 1 / a, 1.0])
    phi = math.radians(p.rotation)
    Rot = np.array([[math.cos(phi), math.sin(phi), 0], [-math.sin(phi), math.cos(phi), 0], [0, 0, 1]])
    C = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    Cb = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1.0]])
    M = Cb @ Rot @ Asp @ S @ A @ P @ C
    return M / M[2, 2] if abs(M[2, 2]) > 1e-12 else M


def apply_h(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.concatenate([p, np.ones((len(p), 1))], 1) @ M.T
    with np.errstate(divide="ignore", invalid="ignore"):
        out = q[:, :2] / q[:, 2:3]
    out[q[:, 2] <= 1e-12] = np.nan
    return out


def _inside_convex(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points inside a convex polygon (any orientation)."""
    n = len(poly)
    sgn = []
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        sgn.append((b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]))
    sgn = np.stack(sgn, 1)
    return (sgn >= -1e-9).all(1) | (sgn <= 1e-9).all(1)


def crop_box(M: np.ndarray, w: int, h: int, mode: str) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) of the crop in the uncropped output frame."""
    if mode == "off":
        return 0.0, 0.0, float(w), float(h)
    quad = apply_h(M, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64))
    if not np.isfinite(quad).all():
        return 0.0, 0.0, float(w), float(h)
    cen = quad.mean(0)
    aspects = np.array([w / h] if mode == "aspect" else [w / h * 2.0 ** (k / 4.0) for k in range(-8, 9)])
    span = max(w, h)
    offs = np.linspace(-0.1, 0.1, 9) * span
    A, DX, DY = (a.ravel() for a in np.meshgrid(aspects, offs, offs, indexing="ij"))
    cx, cy = cen[0] + DX, cen[1] + DY
    ra, rb = np.sqrt(A) / 2, 1 / np.sqrt(A) / 2
    lo, hi = np.zeros_like(A), np.full_like(A, 2.0 * span)
    for _ in range(30):  # bisection on the size, all candidates at once
        mid = 0.5 * (lo + hi)
        hw, hh = mid * ra, mid * rb
        ok = np.ones_like(A, dtype=bool)
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            ok &= _inside_convex(quad, np.stack([cx + sx * hw, cy + sy * hh], 1))
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    area = (lo * ra) * (lo * rb)
    i = int(np.argmax(area))
    hw, hh = lo[i] * ra[i], lo[i] * rb[i]
    x0, y0, cw, ch = cx[i] - hw, cy[i] - hh, 2 * hw, 2 * hh
    if cw < 1 or ch < 1:
        return 0.0, 0.0, float(w), float(h)
    # whole pixels, strictly inside
    x1, y1 = math.floor(x0 + cw), math.floor(y0 + ch)
    x0, y0 = math.ceil(x0), math.ceil(y0)
    return float(x0), float(y0), float(max(1, x1 - x0)), float(max(1, y1 - y0))


def _build():
    rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
    hinv = hl.ImageParam(hl.Float(32), 1, "hinv")  # row-major 3x3, output -> source
    fp = {n: hl.Param(hl.Float(32), n) for n in ("s", "cx0", "cy0", "wf", "hf")}
    ip = {n: hl.Param(hl.Int(32), n) for n in ("ix0", "iy0", "ox0", "oy0")}
    w, h = rgb.dim(0).extent(), rgb.dim(1).extent()
    v = hl.Func("v")
    v[x, y, c] = sane(rgb[x, y, c])
    ux = (hl.f32(x + ip["ox0"]) + 0.5) / fp["s"] + fp["cx0"]
    uy = (hl.f32(y + ip["oy0"]) + 0.5) / fp["s"] + fp["cy0"]
    src = hl.Func("src")
    k = hl.Var("k")
    X = hinv[0] * ux + hinv[1] * uy + hinv[2]
    Y = hinv[3] * ux + hinv[4] * uy + hinv[5]
    Z = hinv[6] * ux + hinv[7] * uy + hinv[8]
    zs = hl.select(Z > hl.f32(1e-12), Z, hl.f32(1))
    src[x, y, k] = hl.select(k == 0, X / zs, k == 1, Y / zs, hl.select(Z > hl.f32(1e-12), hl.f32(1), hl.f32(0)))
    sx, sy = src[x, y, 0], src[x, y, 1]
    inside = (src[x, y, 2] > 0) & (sx >= 0) & (sx <= fp["wf"]) & (sy >= 0) & (sy <= fp["hf"])
    bx = hl.clamp(sx * fp["s"] - 0.5 - hl.f32(ip["ix0"]), hl.f32(-1e6), hl.f32(1e6))
    by = hl.clamp(sy * fp["s"] - 0.5 - hl.f32(ip["iy0"]), hl.f32(-1e6), hl.f32(1e6))
    out = hl.Func("warped")
    out[x, y, c] = hl.select(inside, sample_cubic(v, bx, by, c, w, h), hl.f32(0))
    out.bound(c, 0, 3).reorder(x, c, y).parallel(y, 8, GUARD).vectorize(x, VEC, GUARD)
    src.compute_at(out, y).bound(k, 0, 3).reorder(k, x).unroll(k).vectorize(x, VEC, GUARD)
    return out, [rgb, hinv] + [fp[n] for n in ("s", "cx0", "cy0", "wf", "hf")] + \
        [ip[n] for n in ("ix0", "iy0", "ox0", "oy0")]


class Ashift(Module):
    op = "ashift"
    name = "rotate and perspective"
    Params = AshiftParams
    flags = Flags.ALLOW_TILING | Flags.ONE_INSTANCE | Flags.ALLOW_FAST_PIPE | Flags.INCLUDE_IN_STYLES
    tags = Tags.DISTORT
    tags_filter = Tags.DECORATION | Tags.CROPPING
    works_on = "rgb"
    summary = "rotation and keystone (homography)"

    def commit(self, piece: Piece) -> None:
        w, h = piece.buf_in
        p = piece.params
        M = homography(p, w, h)
        mode = "off" if piece.focused else p.cropmode
        box = crop_box(M, w, h, mode)
        d = piece.data
        d["M"], d["Minv"], d["box"] = M, np.linalg.inv(M), box

    # ---- geometry
    def distort_transform(self, piece, pts):
        x0, y0, _, _ = piece.data["box"]
        return apply_h(piece.data["M"], pts) - [x0, y0]

    def distort_backtransform(self, piece, pts):
        x0, y0, _, _ = piece.data["box"]
        return apply_h(piece.data["Minv"], np.asarray(pts, np.float64).reshape(-1, 2) + [x0, y0])

    # ---- regions (next to the algorithm): the output border mapped back, padded for the cubic taps
    def modify_roi_out(self, piece, roi_in: ROI) -> ROI:
        _, _, bw, bh = piece.data["box"]
        s = roi_in.scale
        return ROI(0, 0, max(1, int(round(bw * s))), max(1, int(round(bh * s))), s)

    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        s = roi_out.scale
        pts = border_points(roi_out.x / s, roi_out.y / s, roi_out.width / s, roi_out.height / s, 4.0 / s)
        src = self.distort_backtransform(piece, pts)
        w, h = piece.buf_in
        return bbox_roi(src, s, PAD, ROI, (max(1, round(w * s)), max(1, round(h * s))))

    # ---- pixels
    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        return via_2x2(lambda i, ri, ro: self._run(piece, i, ri, ro), inp, roi_in, roi_out)

    def _run(self, piece, inp, roi_in, roi_out):
        d = piece.data
        w, h = piece.buf_in
        x0, y0, _, _ = d["box"]
        k = get_kernel("ashift", _build, device=piece.device, source_tag=source_tag_of(_build))
        out = np.empty((3, roi_out.height, roi_out.width), np.float32)
        k(f32(inp), f32(d["Minv"].ravel()), roi_out.scale, x0, y0, float(w), float(h),
          roi_in.x, roi_in.y, roi_out.x, roi_out.y, out)
        return out
