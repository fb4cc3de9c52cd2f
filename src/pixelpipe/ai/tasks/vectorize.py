"""Binary mask -> closed cubic Bézier paths (potrace's approach, written from Selinger's
paper "Potrace: a polygon-based tracing algorithm", 2003), pure NumPy/Python.

1. **trace**: every boundary between mask and background pixels is followed on the
   pixel-corner lattice, mask on the right (outer contours clockwise on screen, holes
   the other way); at a corner where two mask pixels touch only diagonally the trace
   turns right, so the contours match the 4-connected components of
   :mod:`.postprocess`;
2. **simplify**: the staircase is replaced by the midpoints of its unit edges and
   reduced with Ramer-Douglas-Peucker (tolerance ``tolerance`` px, default 0.75);
3. **curves**: for each polygon vertex potrace's corner measure
   ``alpha = (1 - 1/|d|) / 0.75`` (``d``: the vertex's distance from the chord of its
   neighbours in potrace's L-infinity units); ``alpha >= alphamax`` (the
   ``mask.object.smoothing`` preference, 0..1.33; 0 = a polygon) makes a corner,
   otherwise a cubic from the midpoint of the previous edge to the midpoint of the
   next with control points at ``0.5 + 0.5 alpha`` (alpha clamped to 0.55..1) of the
   way to the vertex;
4. contours enclosing less than ``min_area`` px are dropped (potrace's turdsize).

:func:`trace_shapes` returns :class:`Shape` objects (cubics in pixel coordinates,
whether it is a hole, the nesting depth); :func:`rasterize` fills cubic paths back
into a mask (non-zero winding), for tests and PNG output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# direction vectors (dx, dy) on screen: 0 right, 1 down, 2 left, 3 up
_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))


@dataclass
class Shape:
    cubics: list          # [(p0, c1, c2, p1), ...] in pixel coordinates (corners at integers)
    hole: bool
    depth: int            # 0: outermost; holes at odd depths
    area: float           # enclosed area, px


def boundary_edges(mask: np.ndarray) -> np.ndarray:
    """Directed unit edges (x0, y0, dir) with the mask on the right (screen coordinates)."""
    m = np.pad(np.asarray(mask, bool), 1)
    inner = m[1:-1, 1:-1]
    ys, xs = np.nonzero(inner & ~m[:-2, 1:-1])          # top side: go right along y
    e = [np.stack([xs, ys, np.zeros_like(xs)], 1)]
    ys, xs = np.nonzero(inner & ~m[1:-1, 2:])           # right side: go down along x+1
    e.append(np.stack([xs + 1, ys, np.ones_like(xs)], 1))
    ys, xs = np.nonzero(inner & ~m[2:, 1:-1])           # bottom side: go left from (x+1, y+1)
    e.append(np.stack([xs + 1, ys + 1, np.full_like(xs, 2)], 1))
    ys, xs = np.nonzero(inner & ~m[1:-1, :-2])          # left side: go up from (x, y+1)
    e.append(np.stack([xs, ys + 1, np.full_like(xs, 3)], 1))
    return np.concatenate(e) if e else np.zeros((0, 3), int)


def trace(mask: np.ndarray) -> list[np.ndarray]:
    """Closed lattice contours (each an (n, 2) array of corner points, last != first)."""
    edges = boundary_edges(mask)
    out: dict[tuple[int, int], list[int]] = {}
    for k, (x, y, d) in enumerate(edges.tolist()):
        out.setdefault((x, y), []).append(k)
    used = np.zeros(len(edges), bool)
    contours = []
    for start in range(len(edges)):
        if used[start]:
            continue
        pts = []
        k = start
        while not used[k]:
            used[k] = True
            x, y, d = edges[k]
            pts.append((x, y))
            nx, ny = x + _DIRS[d][0], y + _DIRS[d][1]
            cands = [c for c in out.get((int(nx), int(ny)), ()) if not used[c] or c == start]
            if not cands:
                break
            if len(cands) > 1:  # diagonal contact: right turn first, then straight, then left
                pref = {(d + 1) % 4: 0, d: 1, (d + 3) % 4: 2}
                cands.sort(key=lambda c: pref.get(int(edges[c][2]), 3))
            k = cands[0]
            if k == start:
                break
        contours.append(np.array(pts, np.float64))
    return contours


def signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _rdp(pts: np.ndarray, eps: float) -> np.ndarray:
    """Ramer-Douglas-Peucker on an open polyline (keeps both ends)."""
    keep = np.zeros(len(pts), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        seg = pts[b] - pts[a]
        n = np.hypot(*seg)
        rel = pts[a + 1:b] - pts[a]
        if n < 1e-12:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / n
        i = int(np.argmax(dist))
        if dist[i] > eps:
            m = a + 1 + i
            keep[m] = True
            stack += [(a, m), (m, b)]
    return pts[keep]


def simplify(contour: np.ndarray, tolerance: float = 0.75) -> np.ndarray:
    """Edge midpoints of a lattice contour, reduced by RDP (closed)."""
    mids = (contour + np.roll(contour, -1, axis=0)) / 2.0
    if len(mids) <= 4:
        return mids
    # split the closed ring at its two most distant points so RDP keeps the extremes
    i0 = 0
    d = np.hypot(*(mids - mids[i0]).T)
    i1 = int(np.argmax(d))
    a = _rdp(np.concatenate([mids[i0:i1 + 1]]), tolerance)
    b = _rdp(np.concatenate([mids[i1:], mids[:1]]), tolerance)
    poly = np.concatenate([a[:-1], b[:-1]])
    return poly if len(poly) >= 3 else mids


def _interval(t, a, b):
    return a + t * (b - a)


def curves(poly: np.ndarray, alphamax: float = 1.0) -> list:
    """Potrace's smoothing of a closed polygon into cubic segments (p0, c1, c2, p1)."""
    m = len(poly)
    segs = []
    for i in range(m):
        j, k = (i + 1) % m, (i + 2) % m
        vi, vj, vk = poly[i], poly[j], poly[k]
        start = _interval(0.5, vi, vj)
        end = _interval(0.5, vk, vj)
        ry, rx = np.sign(vk[0] - vi[0]), -np.sign(vk[1] - vi[1])
        denom = ry * (vk[0] - vi[0]) - rx * (vk[1] - vi[1])
        if denom != 0:
            dd = abs(((vj[0] - vi[0]) * (vk[1] - vi[1]) - (vk[0] - vi[0]) * (vj[1] - vi[1])) / denom)
            alpha = (1 - 1.0 / dd if dd > 1 else 0.0) / 0.75
        else:
            alpha = 4 / 3.0
        if alpha >= alphamax:  # corner: two straight pieces through the vertex
            segs.append(_line(start, vj))
            segs.append(_line(vj, end))
        else:
            a = min(max(alpha, 0.55), 1.0)
            segs.append((start, _interval(0.5 + 0.5 * a, vi, vj), _interval(0.5 + 0.5 * a, vk, vj), end))
    return [tuple(np.asarray(p, np.float64) for p in s) for s in segs]


def _line(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a, a + (b - a) / 3.0, a + 2 * (b - a) / 3.0, b)


def _inside(pt, poly) -> bool:
    x, y = pt
    xs, ys = poly[:, 0], poly[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    cross = ((ys > y) != (yj > y)) & (x < (xj - xs) * (y - ys) / np.where(yj - ys == 0, 1e-12, yj - ys) + xs)
    return bool(np.count_nonzero(cross) % 2)


def trace_shapes(mask: np.ndarray, *, alphamax: float = 1.0, tolerance: float = 0.75,
                 min_area: float = 0.0) -> list[Shape]:
    """Vectorise a binary mask (see the module docstring), shapes ordered by nesting depth."""
    shapes = []
    polys = []
    for c in trace(mask):
        area = signed_area(c)
        if abs(area) < max(min_area, 0.5):
            continue
        poly = simplify(c, tolerance)
        polys.append((c, poly, area))
    for idx, (c, poly, area) in enumerate(polys):
        depth = sum(1 for j, (c2, _, _) in enumerate(polys) if j != idx and abs(signed_area(c2)) > abs(area)
                    and _inside(c[0] + 0.25, c2))
        shapes.append(Shape(curves(poly, alphamax), hole=area < 0, depth=depth, area=abs(area)))
    shapes.sort(key=lambda s: (s.depth, s.hole))
    return shapes


# --------------------------------------------------------------------------- back to pixels

def flatten(cubics, steps: int = 12) -> np.ndarray:
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]
    out = []
    for p0, c1, c2, p1 in cubics:
        p0, c1, c2, p1 = (np.asarray(v, np.float64) for v in (p0, c1, c2, p1))
        out.append(((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * c1 + 3 * (1 - t) * t * t * c2 + t ** 3 * p1)
    return np.concatenate(out) if out else np.zeros((0, 2))


def rasterize(shapes, h: int, w: int, steps: int = 12) -> np.ndarray:
    """Fill shapes (in order: holes subtract, outers add) at pixel centres, even-odd per shape."""
    out = np.zeros((h, w), bool)
    yc = np.arange(h) + 0.5
    xc = np.arange(w) + 0.5
    for s in shapes:
        poly = flatten(s.cubics, steps)
        inside = _fill(poly, yc, xc, h, w)
        out = (out & ~inside) if s.hole else (out | inside)
    return out


def _fill(poly, yc, xc, h, w) -> np.ndarray:
    inside = np.zeros((h, w), bool)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for r, y in enumerate(yc):
        cross = (y0 > y) != (y1 > y)
        if not cross.any():
            continue
        xs = x0[cross] + (y - y0[cross]) * (x1[cross] - x0[cross]) / (y1[cross] - y0[cross])
        xs.sort()
        for a, b in zip(xs[0::2], xs[1::2]):
            lo = int(np.ceil(a - 0.5))
            hi = int(np.floor(b - 0.5))
            if hi >= lo:
                inside[r, max(lo, 0):min(hi + 1, w)] = True
    return inside
