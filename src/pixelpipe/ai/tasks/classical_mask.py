"""Click-to-mask without a model (darktable keeps classical tools beside the AI ones).

The method is a **random walker with colour priors, re-estimated GrabCut-style**
(Grady, "Random walks for image segmentation", PAMI 2006, with the prior-model
extension of Grady 2005; Rother, Kolmogorov, Blake, "GrabCut", SIGGRAPH 2004, for
the iterated colour models), in pure NumPy:

* the image (sRGB-encoded, longest side at most 512 px for the solve) is taken to
  an approximate CIELAB; 4-neighbour edge weights ``w = exp(-beta |dLab|^2)`` with
  GrabCut's ``beta = 1 / (2 mean |dLab|^2)``;
* clicks become seed disks (radius 1 % of the image diagonal, at least 2 px):
  positive clicks fix the probability at 1, negative ones at 0; a box fixes
  everything outside it at 0; without any background seed the image's border is
  background (GrabCut's assumption that the object does not fill the frame);
* colour models: 3-D histograms (16 bins per Lab axis, smoothed) of the foreground
  samples (the positive seed disks and 3x their radius around them) and the
  background seeds give the per-pixel posterior ``pf = lf / (lf + lb)``;
* the probability ``x`` minimises ``sum w (x_i - x_j)^2 + gamma sum ((1 - pf) x^2 + pf (1 - x)^2)``
  with the seeds fixed: ``(L + gamma I) x = gamma pf`` on the free pixels
  (``gamma`` = 0.001: mostly a random walker, the colour prior decides far from
  any seed), solved by Jacobi-preconditioned conjugate gradients, coarse to fine
  (the same problem at half size, recursively, starts the solve);
* two rounds: the colour models are re-estimated from the segmentation
  ``x > 0.5`` and the system is solved again.

``gamma`` and the number of rounds were chosen on 10 of the 50 GrabCut images
(NoC@90 9.7 -> 8.3 from the first guess). The probability is then refined like
a model's (:mod:`.postprocess`).
"""
from __future__ import annotations

import numpy as np

from .postprocess import resize_bilinear

BINS = 16
MAX_SIDE = 512
GAMMA = 0.001
ROUNDS = 2


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded (H, W, 3) in [0, 1] -> CIELAB (D65), float32."""
    a = np.clip(np.asarray(rgb, np.float32), 0, 1)
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32)
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    A = 500 * (f[..., 0] - f[..., 1])
    B = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, A, B], -1).astype(np.float32)


class ClassicalSegmenter:
    """Interactive segmentation of one image; :meth:`predict` returns a probability map."""

    def __init__(self, rgb: np.ndarray, *, gamma: float = GAMMA, rounds: int = ROUNDS, max_side: int = MAX_SIDE,
                 border: bool = True):
        a = np.asarray(rgb)
        if a.dtype == np.uint8:
            a = a.astype(np.float32) / 255.0
        self.full_shape = a.shape[:2]
        H, W = self.full_shape
        s = min(1.0, max_side / max(H, W))
        self.scale = s
        self.h, self.w = max(1, int(round(H * s))), max(1, int(round(W * s)))
        work = np.moveaxis(resize_bilinear(np.moveaxis(a.astype(np.float32), 2, 0), self.h, self.w), 0, 2) \
            if s < 1 else a.astype(np.float32)
        self.lab = srgb_to_lab(work)
        self.gamma, self.rounds, self.border = gamma, rounds, border
        lab = self.lab
        dh = np.sum((lab[:, 1:] - lab[:, :-1]) ** 2, -1)
        dv = np.sum((lab[1:] - lab[:-1]) ** 2, -1)
        mean = (dh.sum() + dv.sum()) / max(dh.size + dv.size, 1)
        beta = 1.0 / (2 * mean) if mean > 0 else 1.0
        self.wh = (np.exp(-beta * dh) + 1e-4).astype(np.float32)
        self.wv = (np.exp(-beta * dv) + 1e-4).astype(np.float32)
        deg = np.zeros((self.h, self.w), np.float32)
        deg[:, :-1] += self.wh
        deg[:, 1:] += self.wh
        deg[:-1] += self.wv
        deg[1:] += self.wv
        self.deg = deg
        q = np.clip(((lab + np.array([0, 110, 110], np.float32)) / np.array([100, 220, 220], np.float32))
                    * BINS, 0, BINS - 1).astype(np.int32)
        self.bin = (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]
        self.x = None
        # coarse-to-fine: the same problem at half the size gives CG its low frequencies
        self.coarse = None
        if max(self.h, self.w) >= 192:
            self.coarse = ClassicalSegmenter(work, gamma=gamma, rounds=rounds,
                                             max_side=max(self.h, self.w) // 2, border=border)

    # ---- pieces
    def _hist(self, weights: np.ndarray) -> np.ndarray:
        h = np.bincount(self.bin.ravel(), weights=weights.ravel(), minlength=BINS ** 3).reshape(BINS, BINS, BINS)
        h = h + 1e-3 * max(h.sum(), 1e-6) / h.size
        for ax in range(3):  # smooth with [1 2 1] along each axis
            h = 0.5 * h + 0.25 * (np.roll(h, 1, ax) + np.roll(h, -1, ax))
        return (h / h.sum()).astype(np.float32)

    def _lap(self, v: np.ndarray) -> np.ndarray:
        out = (self.deg + self.gamma) * v
        out[:, :-1] -= self.wh * v[:, 1:]
        out[:, 1:] -= self.wh * v[:, :-1]
        out[:-1] -= self.wv * v[1:]
        out[1:] -= self.wv * v[:-1]
        return out

    def _solve(self, rhs: np.ndarray, fixed: np.ndarray, x0: np.ndarray, iters: int = 400, tol: float = 2e-3):
        free = ~fixed
        x = x0.copy()
        r = (rhs - self._lap(x)) * free
        minv = free / (self.deg + self.gamma)
        z = r * minv
        p = z.copy()
        rz = float(np.sum(r * z))
        norm0 = float(np.sqrt(np.sum(rhs * rhs * free))) + 1e-12
        for _ in range(iters):
            if np.sqrt(float(np.sum(r * r))) < tol * norm0:
                break
            ap = self._lap(p) * free
            alpha = rz / max(float(np.sum(p * ap)), 1e-30)
            x += alpha * p
            r -= alpha * ap
            z = r * minv
            rz_new = float(np.sum(r * z))
            p = z + (rz_new / max(rz, 1e-30)) * p
            rz = rz_new
        return x

    def _disks(self, clicks, radius: float):
        fg = np.zeros((self.h, self.w), bool)
        bg = np.zeros((self.h, self.w), bool)
        yy, xx = np.mgrid[0:self.h, 0:self.w]
        for x, y, pos in clicks:
            cx, cy = x * self.scale, y * self.scale
            d = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= radius ** 2
            if not d.any():
                d[int(np.clip(cy, 0, self.h - 1)), int(np.clip(cx, 0, self.w - 1))] = True
            (fg if pos else bg)[...] |= d
        return fg, bg & ~fg

    # ---- the segmentation
    def predict(self, clicks, box=None) -> np.ndarray:
        """Probability (H, W) at the image's full size for ``clicks`` [(x, y, positive)] in
        full-size pixel coordinates (and an optional box x0, y0, x1, y1)."""
        x = self._predict_work(clicks, box)
        H, W = self.full_shape
        return resize_bilinear(x, H, W) if (H, W) != (self.h, self.w) else x

    def _predict_work(self, clicks, box=None) -> np.ndarray:
        h, w = self.h, self.w
        diag = np.hypot(h, w)
        r = max(2.0, 0.01 * diag)
        fg, bg = self._disks(clicks, r)
        yy, xx = np.mgrid[0:h, 0:w]
        if box is not None:
            x0, y0, x1, y1 = (v * self.scale for v in box)
            outside = (xx + 0.5 < x0) | (xx + 0.5 > x1) | (yy + 0.5 < y0) | (yy + 0.5 > y1)
            bg |= outside & ~fg
        if self.border and not bg.any():  # GrabCut's assumption: the object does not fill the frame
            ring = np.zeros((h, w), bool)
            ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
            bg |= ring & ~fg
        fixed = fg | bg
        near = np.zeros((h, w), bool)
        for x_, y_, p in clicks:
            if p:
                near |= (xx + 0.5 - x_ * self.scale) ** 2 + (yy + 0.5 - y_ * self.scale) ** 2 <= (3 * r) ** 2
        wf = (fg | near).astype(np.float32)
        wb = bg.astype(np.float32) if bg.any() else (1.0 - wf)
        if self.coarse is not None:
            cclicks = [(x_ * self.scale, y_ * self.scale, p) for x_, y_, p in clicks]  # in the work image
            cbox = None if box is None else tuple(v * self.scale for v in box)
            x = resize_bilinear(self.coarse._predict_work(cclicks, cbox), h, w)
        elif self.x is not None and self.x.shape == (h, w):
            x = self.x
        else:
            x = np.full((h, w), 0.5, np.float32)
        for _ in range(self.rounds):
            lf, lb = self._hist(wf).ravel()[self.bin], self._hist(wb).ravel()[self.bin]
            pf = (lf / (lf + lb + 1e-12)).astype(np.float32)
            x = np.where(fg, 1.0, np.where(bg, 0.0, x)).astype(np.float32)
            x = np.clip(self._solve(self.gamma * pf, fixed, x), 0, 1)
            seg = x > 0.5
            wf = (seg | fg).astype(np.float32)
            wb = (~seg | bg).astype(np.float32)
        self.x = x
        return x
