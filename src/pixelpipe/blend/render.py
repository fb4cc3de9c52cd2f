"""Rendering drawn mask forms into a module's output region (NumPy, vectorised).

Shape rasterisation is geometry, not a per-pixel pipeline stage, so it is
written with NumPy rather than Halide:

* circle, ellipse, gradient: *backward mapping* — the centres of the ROI
  pixels inside the shape's forward-transformed bounding box are carried back
  through the distortion chain into input pixels and the shape is evaluated
  there analytically (exact under any distortion);
* path and brush: the Bézier outline is flattened in input space, carried
  *forward* to the ROI and rasterised there: non-zero-winding scanline fill
  for paths, exact point-to-segment distances (per segment, inside its own
  bounding box) for feathers and brush strokes. Feather widths are scaled by
  the ROI scale (distortions are assumed locally area-preserving).
"""
from __future__ import annotations

import math

import numpy as np

from .forms import Brush, Circle, Ellipse, Gradient, MaskGroup, Path, PathNode
from .geometry import Geometry, bbox_of


def render_group(group: MaskGroup | None, geom: Geometry) -> np.ndarray:
    """The group's mask over the ROI of ``geom`` (float32, 0..1)."""
    h, w = geom.roi.height, geom.roi.width
    acc = None
    for k, m in enumerate(group.members if group is not None else []):
        v = render_group(m.form, geom) if isinstance(m.form, MaskGroup) else render_form(m.form, geom)
        if m.inverted:
            v = 1.0 - v
        v = v * np.float32(m.opacity)
        if acc is None:
            acc = v
        elif m.op == "union":
            acc = np.maximum(acc, v)
        elif m.op == "intersection":
            acc = np.minimum(acc, v)
        elif m.op == "difference":
            acc = acc * (1.0 - v)
        else:  # exclusion
            acc = acc + v - 2.0 * acc * v
    if acc is None:
        return np.zeros((h, w), np.float32)
    return np.clip(acc, 0.0, 1.0).astype(np.float32)


def render_form(form, geom: Geometry) -> np.ndarray:
    if isinstance(form, (Circle, Ellipse)):
        return _analytic(form, geom)
    if isinstance(form, Gradient):
        return _gradient(form, geom)
    if isinstance(form, Path):
        return _path(form, geom)
    if isinstance(form, Brush):
        return _brush(form, geom)
    raise TypeError(f"not a mask form: {form!r}")


# --------------------------------------------------------------------------- analytic shapes

def _ring(cx, cy, rx, ry, rot, n=96):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ex, ey = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * ex - s * ey, cy + s * ex + c * ey], axis=1)


def _analytic(form, geom: Geometry) -> np.ndarray:
    h, w = geom.roi.height, geom.roi.width
    out = np.zeros((h, w), np.float32)
    u = geom.unit
    (cx, cy), = geom.to_px([form.center])
    if isinstance(form, Circle):
        r, f = form.radius * u, form.feather * u
        outline = _ring(cx, cy, r + f, r + f, 0.0)
    else:
        rx, ry = form.radii[0] * u, form.radii[1] * u
        f = form.feather * u
        if form.feather_mode == "proportional":
            ox, oy = rx * (1 + form.feather), ry * (1 + form.feather)
        else:
            ox, oy = rx + f, ry + f
        outline = _ring(cx, cy, ox, oy, math.radians(form.rotation))
    outline = np.vstack([outline, [[cx, cy]]])
    roi_pts = geom.to_roi(outline)
    span = np.ptp(roi_pts, axis=0).max() if len(roi_pts) else 0
    box = bbox_of(roi_pts, w, h, margin=2 + 0.05 * span)
    if box is None or form.density <= 0:
        return out
    x0, y0, x1, y1 = box
    p = geom.roi_centres_to_input(x0, y0, x1, y1)
    dx, dy = p[:, 0] - cx, p[:, 1] - cy
    if isinstance(form, Circle):
        d = np.hypot(dx, dy)
        v = np.clip((r + f - d) / f, 0, 1) if f > 0 else (d <= r).astype(np.float64)
    else:
        rot = math.radians(form.rotation)
        c, s = math.cos(rot), math.sin(rot)
        qx, qy = c * dx + s * dy, -s * dx + c * dy  # into the ellipse's own frame
        eps = 1e-9
        rho = np.sqrt((qx / max(rx, eps)) ** 2 + (qy / max(ry, eps)) ** 2)
        if form.feather_mode == "proportional":
            fr = form.feather
            v = np.clip((1 + fr - rho) / fr, 0, 1) if fr > 0 else (rho <= 1).astype(np.float64)
            if rx <= 0 or ry <= 0:
                v = np.zeros_like(rho)
        else:
            q = np.hypot(qx, qy)
            with np.errstate(divide="ignore", invalid="ignore"):
                r_ray = np.where(rho > 0, q / rho, min(rx, ry))
            r_ray = np.nan_to_num(r_ray, nan=0.0, posinf=0.0)
            d = np.maximum(q - r_ray, 0)
            v = np.clip(1 - d / f, 0, 1) if f > 0 else (rho <= 1).astype(np.float64)
            if f <= 0 and (rx <= 0 or ry <= 0):
                v = np.zeros_like(rho)
    out[y0:y1, x0:x1] = (v * form.density).reshape(y1 - y0, x1 - x0)
    return out


def _gradient(form: Gradient, geom: Geometry) -> np.ndarray:
    h, w = geom.roi.height, geom.roi.width
    out = np.empty((h, w), np.float32)
    u = geom.unit
    (ax, ay), = geom.to_px([form.anchor])
    th = math.radians(form.rotation)
    nx, ny = -math.sin(th), math.cos(th)  # growth direction
    tx, ty = math.cos(th), math.sin(th)   # along the line
    rows = max(1, (1 << 20) // max(1, w))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        p = geom.roi_centres_to_input(0, y0, w, y1)
        qx, qy = (p[:, 0] - ax) / u, (p[:, 1] - ay) / u
        t = tx * qx + ty * qy
        sdist = nx * qx + ny * qy - form.curvature * t * t
        if form.feather > 0:
            v = np.clip(0.5 + sdist / (2 * form.feather), 0, 1)
        else:
            v = (sdist >= 0).astype(np.float64)
        out[y0:y1] = (v * form.density).reshape(y1 - y0, w)
    return out


# --------------------------------------------------------------------------- paths and brushes

def _flatten(nodes: list[PathNode], closed: bool, geom: Geometry, attrs: tuple[str, ...]):
    """Flattened outline in input pixels plus per-vertex attributes (linear along each segment)."""
    n = len(nodes)
    if n == 0:
        return np.zeros((0, 2)), {a: np.zeros(0) for a in attrs}
    P = geom.to_px([nd.p for nd in nodes])
    C1 = geom.to_px([nd.handles()[0] for nd in nodes])
    C2 = geom.to_px([nd.handles()[1] for nd in nodes])
    vals = {a: np.array([getattr(nd, a) for nd in nodes], dtype=np.float64) for a in attrs}
    pts, out_vals = [], {a: [] for a in attrs}
    segs = n if closed else n - 1
    scale = geom.px_scale
    for k in range(segs):
        j = (k + 1) % n
        p0, c0, c1, p1 = P[k], C2[k], C1[j], P[j]
        straight = np.allclose(c0, p0) and np.allclose(c1, p1)
        ctrl_len = (np.linalg.norm(c0 - p0) + np.linalg.norm(c1 - c0) + np.linalg.norm(p1 - c1)) * scale
        m = 1 if straight else int(np.clip(np.ceil(ctrl_len / 3.0), 2, 64))
        t = np.arange(m) / m
        mt = 1 - t
        seg = (mt ** 3)[:, None] * p0 + (3 * mt * mt * t)[:, None] * c0 + (3 * mt * t * t)[:, None] * c1 \
            + (t ** 3)[:, None] * p1
        pts.append(seg)
        for a in attrs:
            out_vals[a].append(vals[a][k] * mt + vals[a][j] * t)
    if not closed or segs == 0:
        pts.append(P[-1:])
        for a in attrs:
            out_vals[a].append(vals[a][-1:])
    return np.vstack(pts), {a: np.concatenate(v) for a, v in out_vals.items()}


def _winding_fill(poly: np.ndarray, w: int, h: int) -> np.ndarray:
    """Non-zero winding fill of the closed polygon ``poly`` (ROI pixel coords) at pixel centres."""
    inside = np.zeros((h, w), bool)
    if len(poly) < 3:
        return inside
    a, b = poly, np.roll(poly, -1, axis=0)
    y0, y1 = a[:, 1], b[:, 1]
    keep = y0 != y1
    a, b, y0, y1 = a[keep], b[keep], y0[keep], y1[keep]
    if len(a) == 0:
        return inside
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    # rows i whose centre i + 0.5 lies in [lo, hi)
    r0 = np.clip(np.ceil(lo - 0.5), 0, h).astype(np.int64)
    r1 = np.clip(np.ceil(hi - 0.5), 0, h).astype(np.int64)
    cnt = np.maximum(r1 - r0, 0)
    total = int(cnt.sum())
    if total == 0:
        return inside
    edge = np.repeat(np.arange(len(a)), cnt)
    row = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt) + r0[edge]
    yc = row + 0.5
    t = (yc - y0[edge]) / (y1[edge] - y0[edge])
    xc = a[edge, 0] + t * (b[edge, 0] - a[edge, 0])
    col = np.clip(np.ceil(xc - 0.5), 0, w).astype(np.int64)
    direction = np.where(y1[edge] > y0[edge], 1, -1)
    diff = np.zeros((h, w + 1), np.int32)
    np.add.at(diff, (row, col), direction)
    return np.cumsum(diff[:, :w], axis=1) != 0


def _segments_max(out: np.ndarray, pts: np.ndarray, attrs: dict, reach: np.ndarray, value_fn, closed: bool):
    """For each segment (pts[k], pts[k+1]) update ``out`` with max(out, value_fn(d, t, k)) over the
    pixels within ``reach`` of it (d: distance in ROI pixels, t: position along the segment)."""
    h, w = out.shape
    n = len(pts)
    segs = n if closed else n - 1
    if n == 1:
        segs = 1
    for k in range(segs):
        j = (k + 1) % n if n > 1 else 0
        p, q = pts[k], pts[j]
        r = max(reach[k], reach[j])
        if r <= 0 or not (np.isfinite(p).all() and np.isfinite(q).all()):
            continue
        x0 = max(int(np.floor(min(p[0], q[0]) - r)), 0)
        x1 = min(int(np.ceil(max(p[0], q[0]) + r)) + 1, w)
        y0 = max(int(np.floor(min(p[1], q[1]) - r)), 0)
        y1 = min(int(np.ceil(max(p[1], q[1]) + r)) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        gx = np.arange(x0, x1) + 0.5
        gy = (np.arange(y0, y1) + 0.5)[:, None]
        dx, dy = q[0] - p[0], q[1] - p[1]
        L2 = dx * dx + dy * dy
        t = ((gx - p[0]) * dx + (gy - p[1]) * dy) / L2 if L2 > 0 else np.zeros((y1 - y0, x1 - x0))
        t = np.clip(t, 0, 1)
        d = np.hypot(gx - (p[0] + t * dx), gy - (p[1] + t * dy))
        v = value_fn(d, t, k, j)
        np.maximum(out[y0:y1, x0:x1], v, out=out[y0:y1, x0:x1])


def _path(form: Path, geom: Geometry) -> np.ndarray:
    h, w = geom.roi.height, geom.roi.width
    out = np.zeros((h, w), np.float32)
    if not form.nodes or form.density <= 0:
        return out
    pts_in, attrs = _flatten(form.nodes, True, geom, ("feather",))
    pts = geom.to_roi(pts_in)
    if not np.isfinite(pts).all():
        return out
    feather = attrs["feather"] * geom.unit * geom.px_scale
    out[_winding_fill(pts, w, h)] = 1.0

    def value(d, t, k, j):
        f = feather[k] * (1 - t) + feather[j] * t
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(f > 0, np.clip(1 - d / np.where(f > 0, f, 1), 0, 1), 0).astype(np.float32)

    if feather.max(initial=0) > 0:
        _segments_max(out, pts, attrs, feather, value, closed=True)
    return out * np.float32(form.density)


def _brush(form: Brush, geom: Geometry) -> np.ndarray:
    h, w = geom.roi.height, geom.roi.width
    out = np.zeros((h, w), np.float32)
    if not form.nodes or form.density <= 0:
        return out
    pts_in, attrs = _flatten(form.nodes, False, geom, ("width", "hardness"))
    pts = geom.to_roi(pts_in)
    if not np.isfinite(pts).all():
        return out
    width = attrs["width"] * geom.unit * geom.px_scale
    hard = attrs["hardness"]

    def value(d, t, k, j):
        W = width[k] * (1 - t) + width[j] * t
        H = hard[k] * (1 - t) + hard[j] * t
        soft = np.maximum(W * (1 - H), 1e-9)
        v = np.clip((W - d) / soft, 0, 1)
        return np.where(d <= H * W, 1.0, v).astype(np.float32) * (W > 0)

    _segments_max(out, pts, attrs, width + 1.0, value, closed=False)
    return out * np.float32(form.density)
