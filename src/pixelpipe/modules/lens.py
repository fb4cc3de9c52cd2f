"""lens: lens correction from the lensfun database (through lensfunpy).

Where the camera and lens are known (from the EXIF data, or named in the
parameters) and lensfun has calibration data, this corrects distortion,
transversal chromatic aberration (TCA) and vignetting as darktable's lens
module does; where they are unknown it is a clear no-op and adds a notice.

Parameters: ``camera``/``lens`` (lensfun names, "" = from EXIF), ``focal``
(mm) and ``aperture`` (f-number), 0 = from EXIF, ``distance`` (m, default
1000), ``crop`` (crop factor, 0 = the camera's), ``distortion``/``tca``/
``vignetting`` (which corrections), ``autoscale`` (scale so that no pixel
outside the source shows) or ``scale``, ``target_geometry`` ("same" or a
lensfun lens type to convert to, e.g. "rectilinear").

Geometry: lensfun's ``apply_subpixel_geometry_distortion`` gives, for each
corrected pixel, where each colour is sampled in the distorted image. It is
evaluated on a grid every 16 pixels (whole rows, lensfun pixel-centre
coordinates) when the parameters are committed, and interpolated bilinearly
(linearly extrapolated beyond the frame). Scaling ``k`` acts about the image
centre: the output point u samples the map at ``c + (u - c) / k``. Points use
pixel-edge coordinates (pixel i covers [i, i+1)); lensfun's are ours - 0.5.
``distort_backtransform`` is that map (green channel); ``distort_transform``
inverts it by Newton's method (round trip well below 0.1 px).
Vignetting: lensfun's "pa" model ``1 + k1 r^2 + k2 r^4 + k3 r^6`` with r the
distance from the centre over the half diagonal times (camera crop / lens
calibration crop); the sampled value is divided by it at the source position.
Pixels are sampled with a Catmull-Rom cubic; samples from outside the source
frame are black.
Region of interest: the output region's border mapped back through every
channel's map, its bounding box padded by 3 pixels (cubic taps + rounding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import GUARD, VEC, c, x, y
from ..engine.kernels import f32, get_kernel, source_tag_of
from ._nbhd import bbox_roi, border_points, sample_cubic, sane, via_2x2
from .base import Flags, Module, Params, Piece, ROI, Tags, param, window

STEP = 16  # grid spacing of the geometry map, px at full resolution
PAD = 3
GEOMETRIES = ("same", "rectilinear", "fisheye", "panoramic", "equirectangular", "fisheye_orthographic",
              "fisheye_stereographic", "fisheye_equisolid", "fisheye_thoby")


@dataclass
class LensParams(Params):
    """Lens correction (lensfun).

    camera, lens: lensfun model names; "" = from the file's EXIF data.
    focal: focal length, mm (0 = EXIF); aperture: f-number (0 = EXIF); distance: focus distance, m.
    crop: crop factor (0 = the camera's from lensfun).
    distortion, tca, vignetting: which corrections to apply.
    autoscale: scale so the corrected frame has no empty corners; else ``scale`` (0.1..4).
    target_geometry: "same" or the projection to convert to.
    """

    camera: str = param("")
    lens: str = param("")
    focal: float = param(0.0, min=0.0, max=10000.0, unit="mm")
    aperture: float = param(0.0, min=0.0, max=128.0)
    distance: float = param(1000.0, min=0.01, max=1000.0, unit="m")
    crop: float = param(0.0, min=0.0, max=100.0)
    distortion: bool = param(True)
    tca: bool = param(True)
    vignetting: bool = param(True)
    autoscale: bool = param(True)
    scale: float = param(1.0, min=0.1, max=4.0)
    target_geometry: str = param("same", choices=GEOMETRIES)


_DB = None
_GEOMETRIES: dict = {}


def database():
    global _DB
    if _DB is None:
        import lensfunpy

        _DB = lensfunpy.Database()
    return _DB


def find_camera(image, name: str = ""):
    db = database()
    ex = image.exif
    tries = [(None, name)] if name else [
        (ex.get("camera_maker"), ex.get("camera_model")), (ex.get("maker"), ex.get("model")),
        (ex.get("camera_maker"), f"{ex.get('camera_maker', '')} {ex.get('camera_model', '')}".strip())]
    for maker, model in tries:
        if not model:
            continue
        found = db.find_cameras(maker, model)
        if found:
            return found[0]
    return None


def find_lens(cam, image, name: str = ""):
    db = database()
    ex = image.exif
    model = name or ex.get("lens") or ""
    if model:
        found = db.find_lenses(cam, None if name else ex.get("lens_maker"), model)
        if not found and not name:
            found = db.find_lenses(cam, None, model)
        return found[0] if found else None
    found = db.find_lenses(cam)  # a fixed-lens camera: exactly one lens fits its mount
    return found[0] if len(found) == 1 else None


class _Geometry:
    """The corrected -> distorted map of one (lens, size, settings), gridded."""

    def __init__(self, lens, crop, w, h, focal, aperture, distance, distortion, tca, target):
        import lensfunpy

        self.w, self.h = w, h
        flags = 0
        if distortion:
            flags |= lensfunpy.ModifyFlags.DISTORTION
        if tca:
            flags |= lensfunpy.ModifyFlags.TCA
        if target != "same":
            flags |= lensfunpy.ModifyFlags.GEOMETRY
        tg = getattr(lensfunpy.LensType, target.upper()) if target != "same" else lens.type
        self.nx = int(math.ceil((w - 1) / STEP)) + 2
        self.ny = int(math.ceil((h - 1) / STEP)) + 2
        xs = np.arange(self.nx) * STEP
        grid = np.empty((self.ny, self.nx, 3, 2), np.float64)
        m = lensfunpy.Modifier(lens, crop, w, h)
        m.initialize(focal, aperture, distance, scale=1.0, targeom=tg, pixel_format=np.float32, flags=flags)
        width = int(xs[-1]) + 1
        for j in range(self.ny):
            row = m.apply_subpixel_geometry_distortion(0, float(j * STEP), width, 1) if flags else None
            if row is None:
                grid[j, :, :, 0] = xs[:, None]
                grid[j, :, :, 1] = j * STEP
            else:
                grid[j] = row[0, xs]
        self.grid = np.nan_to_num(grid, nan=-1e6, posinf=1e6, neginf=-1e6).clip(-1e6, 1e6)

    def sample(self, lf: np.ndarray, channel: int) -> np.ndarray:
        """Bilinear (extrapolating) map of lensfun coordinates (N, 2) for one colour."""
        gx, gy = lf[:, 0] / STEP, lf[:, 1] / STEP
        ix = np.clip(np.floor(gx).astype(int), 0, self.nx - 2)
        iy = np.clip(np.floor(gy).astype(int), 0, self.ny - 2)
        fx, fy = (gx - ix)[:, None], (gy - iy)[:, None]
        g = self.grid[:, :, channel, :]
        return ((1 - fy) * ((1 - fx) * g[iy, ix] + fx * g[iy, ix + 1])
                + fy * ((1 - fx) * g[iy + 1, ix] + fx * g[iy + 1, ix + 1]))


def _build():
    rgb = hl.ImageParam(hl.Float(32), 3, "rgb")
    grid = hl.ImageParam(hl.Float(32), 3, "grid")  # [k, gx, gy]: k = 2 * channel + (0 x, 1 y)
    names = ("k", "cx", "cy", "s", "wf", "hf", "v1", "v2", "v3", "vcx", "vcy", "vnorm")
    P = {n: hl.Param(hl.Float(32), n) for n in names}
    I = {n: hl.Param(hl.Int(32), n) for n in ("ix0", "iy0", "ox0", "oy0")}
    w, h = rgb.dim(0).extent(), rgb.dim(1).extent()
    nx, ny = grid.dim(1).extent(), grid.dim(2).extent()
    v = hl.Func("v")
    v[x, y, c] = sane(rgb[x, y, c])
    # output pixel centre in full-resolution pixel-edge coordinates, scaled about the centre
    ux = (hl.f32(x + I["ox0"]) + 0.5) / P["s"]
    uy = (hl.f32(y + I["oy0"]) + 0.5) / P["s"]
    lx = P["cx"] + (ux - P["cx"]) / P["k"] - 0.5
    ly = P["cy"] + (uy - P["cy"]) / P["k"] - 0.5
    gx, gy = lx * hl.f32(1.0 / STEP), ly * hl.f32(1.0 / STEP)
    ix = hl.clamp(hl.i32(hl.floor(gx)), 0, nx - 2)
    iy = hl.clamp(hl.i32(hl.floor(gy)), 0, ny - 2)
    fx, fy = gx - hl.f32(ix), gy - hl.f32(iy)

    def at(kk):
        return ((1 - fy) * ((1 - fx) * grid[kk, ix, iy] + fx * grid[kk, ix + 1, iy])
                + fy * ((1 - fx) * grid[kk, ix, iy + 1] + fx * grid[kk, ix + 1, iy + 1]))

    src = hl.Func("src")  # distorted lensfun coordinates of each channel's sample
    k2 = hl.Var("k2")
    src[x, y, k2] = at(k2)
    sx, sy = src[x, y, 2 * c], src[x, y, 2 * c + 1]
    inside = (sx >= -0.5) & (sx <= P["wf"] - 0.5) & (sy >= -0.5) & (sy <= P["hf"] - 0.5)
    bx = (sx + 0.5) * P["s"] - 0.5 - hl.f32(I["ix0"])
    by = (sy + 0.5) * P["s"] - 0.5 - hl.f32(I["iy0"])
    val = sample_cubic(v, bx, by, c, w, h)
    r2 = ((sx - P["vcx"]) * (sx - P["vcx"]) + (sy - P["vcy"]) * (sy - P["vcy"])) * P["vnorm"]
    vig = 1 + r2 * (P["v1"] + r2 * (P["v2"] + r2 * P["v3"]))
    out = hl.Func("lens_corrected")
    out[x, y, c] = hl.select(inside, val / hl.max(vig, hl.f32(0.05)), hl.f32(0))
    out.bound(c, 0, 3).reorder(x, c, y).parallel(y, 8, GUARD).vectorize(x, VEC, GUARD)
    src.compute_at(out, y).bound(k2, 0, 6).reorder(k2, x).unroll(k2).vectorize(x, VEC, GUARD)
    return out, [rgb, grid] + [P[n] for n in names] + [I[n] for n in ("ix0", "iy0", "ox0", "oy0")]


class Lens(Module):
    op = "lens"
    name = "lens correction"
    Params = LensParams
    flags = Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES | Flags.ONE_INSTANCE
    tags = Tags.DISTORT
    works_on = "rgb"
    summary = "lens distortion, TCA and vignetting (lensfun)"

    # ---- parameters
    def commit(self, piece: Piece) -> None:
        p = piece.params
        d = piece.data
        d["ok"] = False
        img = piece.image
        try:
            database()
        except ImportError:
            piece.notices.append("lens: lensfunpy is not installed; lens correction skipped")
            return
        cam = find_camera(img, p.camera)
        if cam is None:
            who = p.camera or f"{img.exif.get('maker', '?')} {img.exif.get('model', '?')}"
            piece.notices.append(f"lens: camera {who!r} is not in the lensfun database; lens correction skipped")
            return
        lens = find_lens(cam, img, p.lens)
        if lens is None:
            who = p.lens or img.exif.get("lens") or "unknown"
            piece.notices.append(f"lens: lens {who!r} on {cam.model} is not in the lensfun database; "
                                 "lens correction skipped")
            return
        focal = p.focal or float(img.exif.get("focal_length") or 0.0)
        if focal <= 0:
            piece.notices.append("lens: the focal length is unknown; lens correction skipped")
            return
        aperture = p.aperture or float(img.exif.get("fnumber") or 0.0) or 8.0
        crop = p.crop or float(cam.crop_factor)
        w, h = piece.buf_in
        key = (cam.model, lens.model, crop, w, h, focal, aperture, p.distance, p.distortion, p.tca,
               p.target_geometry)
        geo = _GEOMETRIES.get(key)
        if geo is None:
            geo = _Geometry(lens, crop, w, h, focal, aperture, p.distance, p.distortion, p.tca, p.target_geometry)
            if len(_GEOMETRIES) > 8:
                _GEOMETRIES.clear()
            _GEOMETRIES[key] = geo
        d.update(ok=True, geo=geo, lens=lens.model, camera=cam.model, cx=w / 2.0, cy=h / 2.0)
        d["k"] = self._autoscale(d, w, h) if p.autoscale else p.scale
        vig = (0.0, 0.0, 0.0)
        if p.vignetting:
            import lensfunpy

            cal = lens.interpolate_vignetting(focal, aperture, p.distance)
            if cal is not None and cal.model == lensfunpy.VignettingModel.PA:
                vig = tuple(float(t) for t in cal.terms[:3])
            elif cal is not None:
                piece.notices.append("lens: this lens's vignetting model is not supported; vignetting not corrected")
        half = math.hypot((w - 1) / 2.0, (h - 1) / 2.0) * crop / float(lens.crop_factor or crop)
        d["vig"] = vig
        d["vnorm"] = 1.0 / max(half * half, 1e-12)

    def _autoscale(self, d, w, h) -> float:
        """The smallest scale at which the whole output frame samples inside the source."""
        pts = border_points(0, 0, w, h, max(w, h) / 256.0)

        def inside(k):
            for ch in range(3):
                s = self._back(d, pts, ch, k)
                if ((s < -0.01) | (s > np.array([w, h]) + 0.01)).any():
                    return False
            return True

        lo, hi = 0.25, 4.0
        if not inside(hi):
            return 1.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if inside(mid) else (mid, hi)
        return hi

    # ---- geometry
    def _back(self, d, pts, channel: int = 1, k: float | None = None) -> np.ndarray:
        k = d["k"] if k is None else k
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        cen = np.array([d["cx"], d["cy"]])
        lf = cen + (p - cen) / k - 0.5
        return d["geo"].sample(lf, channel) + 0.5

    def distort_backtransform(self, piece, pts):
        if not piece.data.get("ok"):
            return np.asarray(pts, np.float64).reshape(-1, 2)
        return self._back(piece.data, pts)

    def distort_transform(self, piece, pts):
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        if not piece.data.get("ok"):
            return p
        u = p.copy()
        e = 1e-3
        for _ in range(30):
            f = self._back(piece.data, u) - p
            if np.abs(f).max() < 1e-6:
                break
            jx = (self._back(piece.data, u + [e, 0]) - self._back(piece.data, u - [e, 0])) / (2 * e)
            jy = (self._back(piece.data, u + [0, e]) - self._back(piece.data, u - [0, e])) / (2 * e)
            det = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            du = (jy[:, 1] * f[:, 0] - jy[:, 0] * f[:, 1]) / det
            dv = (-jx[:, 1] * f[:, 0] + jx[:, 0] * f[:, 1]) / det
            u = u - np.stack([du, dv], 1)
        return u

    # ---- regions (next to the algorithm): the output border mapped back, padded for the cubic taps
    def modify_roi_in(self, piece: Piece, roi_out: ROI) -> ROI:
        d = piece.data
        if not d.get("ok"):
            return roi_out
        s = roi_out.scale
        pts = border_points(roi_out.x / s, roi_out.y / s, roi_out.width / s, roi_out.height / s, 4.0 / s)
        src = np.concatenate([self._back(d, pts, ch) for ch in range(3)])
        w, h = piece.buf_in
        return bbox_roi(src, s, PAD, ROI, (max(1, round(w * s)), max(1, round(h * s))))

    # ---- pixels
    def process(self, piece: Piece, inp, roi_in: ROI, roi_out: ROI):
        d = piece.data
        if not d.get("ok"):
            return np.ascontiguousarray(window(inp, roi_in, roi_out.x, roi_out.y, roi_out.width, roi_out.height))
        return via_2x2(lambda i, ri, ro: self._run(piece, i, ri, ro), inp, roi_in, roi_out)

    def _run(self, piece, inp, roi_in, roi_out):
        d = piece.data
        geo = d["geo"]
        if "grid32" not in d:
            d["grid32"] = f32(geo.grid.reshape(geo.ny, geo.nx, 6))
        w, h = piece.buf_in
        v1, v2, v3 = d["vig"]
        k = get_kernel("lens", _build, device=piece.device, source_tag=source_tag_of(_build))
        out = np.empty((3, roi_out.height, roi_out.width), np.float32)
        k(f32(inp), d["grid32"], d["k"], d["cx"], d["cy"], roi_out.scale, float(w), float(h), v1, v2, v3,
          (w - 1) / 2.0, (h - 1) / 2.0, d["vnorm"], roi_in.x, roi_in.y, roi_out.x, roi_out.y, out)
        return out
