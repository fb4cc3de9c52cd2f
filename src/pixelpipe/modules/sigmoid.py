"""sigmoid: scene-referred to display tone mapping with a log-logistic curve.

The curve (darktable's sigmoid model): ``f(v) = W * (F / (P + F))^p`` with
``F = (fog + v)^c`` — contrast ``c`` (film power), skew ``p`` (paper power),
``P`` (paper exposure) and ``fog`` solved so that scene 0 maps to the target
black, scene middle grey (0.1845) to display middle grey, scene infinity to
the target white, and the slope at grey depends on contrast only.
Colour (darktable's, the same in 4.2 and 5.x):

* "per channel": the curve on each channel, then hue preservation: the middle
  channel moves towards ``min + (max - min) * midscale`` (``midscale`` the
  input's middle-channel position between its min and max) by
  ``hue_preservation``; the channel sum is interpolated between that of the
  per-channel result (input near grey: ``2 min / (min + mid)`` close to 1) and
  that of the hue-corrected triple (saturated input), and the min channel
  (middle moved down) or the max channel (middle moved up) absorbs the
  difference;
* "rgb ratio": the curve on the channel mean, ratios kept, then a hyperbolic
  chroma compression that keeps small chroma and pulls large chroma inside
  the display range (white target above, black target below).

Negative inputs are first desaturated towards their (non-negative) mean
until no channel is negative; NaN inputs become 0.
Output: display-referred linear RGB in the working space.
Region of interest: a point operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import halide as hl
import numpy as np

from ..engine.halide_ops import c, x, y
from .base import Flags, HalideModule, HInput, Params, Piece, ROI, param

MIDDLE_GREY = 0.1845


@dataclass
class SigmoidParams(Params):
    """Sigmoid tone mapper.

    middle_grey_contrast: slope at middle grey, 0.1..10.
    contrast_skewness: shifts contrast towards shadows (<0) or highlights (>0), -1..1.
    display_white_target: % of display white, 20..1600.
    display_black_target: % of display white, 0..15.
    color_processing: "per_channel" or "rgb_ratio".
    hue_preservation: % of the input hue kept in per-channel mode, 0..100.
    """

    middle_grey_contrast: float = param(1.5, min=0.1, max=10.0)
    contrast_skewness: float = param(0.0, min=-1.0, max=1.0)
    display_white_target: float = param(100.0, min=20.0, max=1600.0, unit="%")
    display_black_target: float = param(0.0152, min=0.0, max=15.0, unit="%")
    color_processing: str = param("per_channel", choices=("per_channel", "rgb_ratio"))
    hue_preservation: float = param(100.0, min=0.0, max=100.0, unit="%")


def _curve_np(v, white, paper_exp, fog, film_power, paper_power):
    v = np.asarray(v, dtype=np.float64)
    film = np.where(fog + v > 0, np.power(np.maximum(fog + v, 0), film_power), 0.0)
    return white * np.power(film / (paper_exp + film), paper_power)


def curve_parameters(p: SigmoidParams, grey_target: float = MIDDLE_GREY) -> dict:
    """Solve the curve's constants from the user parameters (see module docstring)."""
    d = 1e-6
    ref_power = p.middle_grey_contrast
    ref_paper_exp = MIDDLE_GREY ** ref_power * (1.0 / MIDDLE_GREY - 1.0)
    ref_slope = (_curve_np(MIDDLE_GREY + d, 1, ref_paper_exp, 0, ref_power, 1)
                 - _curve_np(MIDDLE_GREY - d, 1, ref_paper_exp, 0, ref_power, 1)) / (2 * d)
    paper_power = 5.0 ** (-p.contrast_skewness)
    white = 0.01 * p.display_white_target
    t_rel = (white / grey_target) ** (1.0 / paper_power) - 1.0
    t_paper = MIDDLE_GREY * t_rel
    t_slope = (_curve_np(MIDDLE_GREY + d, white, t_paper, 0, 1, paper_power)
               - _curve_np(MIDDLE_GREY - d, white, t_paper, 0, 1, paper_power)) / (2 * d)
    film_power = float(ref_slope / t_slope)
    black = 0.01 * p.display_black_target
    wg = (white / grey_target) ** (1.0 / paper_power) - 1.0
    wb = (max(black, 1e-9) / white) ** (-1.0 / paper_power) - 1.0
    fog = MIDDLE_GREY * wg ** (1 / film_power) / (wb ** (1 / film_power) - wg ** (1 / film_power))
    paper_exp = (fog + MIDDLE_GREY) ** film_power * wg
    return {"white": white, "black": black, "paper_exp": float(paper_exp), "fog": float(fog),
            "film_power": film_power, "paper_power": paper_power}


class Sigmoid(HalideModule):
    op = "sigmoid"
    name = "sigmoid"
    Params = SigmoidParams
    flags = Flags.SUPPORTS_BLENDING | Flags.ALLOW_TILING | Flags.INCLUDE_IN_STYLES
    summary = "scene-to-display tone mapping (log-logistic curve)"
    staged = True  # point-wise; the curve values are a per-pixel stage (self._stages)
    inputs = tuple(HInput(n) for n in ("white", "paper_exp", "fog", "film_power", "paper_power",
                                       "hue", "black"))

    def variant(self, piece):
        return "ratio" if piece.params.color_processing == "rgb_ratio" else ""

    # -- algorithm
    def algorithm(self, rgb, p, piece):
        white, paper_exp, fog = p["white"], p["paper_exp"], p["fog"]
        film_power, paper_power, hue = p["film_power"], p["paper_power"], p["hue"]

        def curve(v):
            film = hl.select(fog + v > 0, hl.pow(hl.max(fog + v, hl.f32(1e-30)), film_power), 0.0)
            res = white * hl.pow(film / (paper_exp + film), paper_power)
            return hl.select(hl.is_nan(res), white, res)  # overflow of huge inputs -> white

        def sane(v):  # NaN -> 0, +-Inf -> +-1e6 (NaN/Inf never leave the module)
            return hl.select(hl.is_nan(v), hl.f32(0), hl.clamp(v, -1e6, 1e6))

        inp = hl.Func("sigmoid_in")
        inp[x, y, c] = sane(rgb[x, y, c])
        r, g, b = inp[x, y, 0], inp[x, y, 1], inp[x, y, 2]
        # negative values: desaturate towards the (non-negative) mean until none is negative
        avg = hl.max((r + g + b) / 3.0, 0.0)
        lo = hl.min(hl.min(r, g), b)
        sat = hl.select(lo < 0, -avg / hl.select(lo < 0, lo - avg, hl.f32(-1)), 1.0)
        positive = hl.Func("positive")
        positive[x, y, c] = avg + sat * (inp[x, y, c] - avg)
        pr, pg, pb = positive[x, y, 0], positive[x, y, 1], positive[x, y, 2]
        vmin = hl.min(hl.min(pr, pg), pb)
        vmax = hl.max(hl.max(pr, pg), pb)
        vmid = pr + pg + pb - vmin - vmax
        mean = (pr + pg + pb) / 3.0
        # the curve (two pow each) once per pixel for every value an output channel needs, not
        # once per channel: a stage the schedule computes per pixel (staged, see base.HalideModule)
        ratio_path = self.variant(piece) == "ratio"
        curves = hl.Func("sigmoid_curves")  # [x, y, k]: per channel, curve(min, mid, max); ratio: curve(mean)
        curves[x, y, c] = curve(mean) if ratio_path else curve(hl.select(c == 0, vmin, c == 1, vmid, vmax))
        self._stages = [curves]
        omin, omid, omax = curves[x, y, 0], curves[x, y, 1], curves[x, y, 2]
        # darktable's hue and energy preservation: the middle channel moves towards the input hue;
        # the channel sum goes from the per-channel one (input near grey) to that of the
        # hue-corrected triple (saturated input), and the channel opposite the correction absorbs it
        chroma = vmax - vmin
        midscale = hl.select(chroma != 0, (vmid - vmin) / hl.select(chroma != 0, chroma, hl.f32(1)), 0.0)
        naive_mid = (1 - hue) * omid + hue * (omin + (omax - omin) * midscale)
        e_channel = omin + omid + omax
        e_naive = omin + naive_mid + omax
        s_lo = vmin + vmid
        blend = hl.select(s_lo != 0, 2.0 * vmin / hl.select(s_lo != 0, s_lo, hl.f32(1)), 0.0)
        target = blend * e_channel + (1 - blend) * e_naive
        down = naive_mid <= omid
        mid_down = ((1 - hue) * omid + hue * (midscale * omax + (1 - midscale) * (target - omax))) \
            / (1 + hue * (1 - midscale))
        mid_up = ((1 - hue) * omid + hue * (omin * (1 - midscale) + midscale * (target - omin))) / (1 + hue * midscale)
        new_min = hl.select(down, target - omax - mid_down, omin)
        new_mid = hl.select(down, mid_down, mid_up)
        new_max = hl.select(down, omax, target - omin - mid_up)
        v = positive[x, y, c]
        per_channel = hl.select(v == vmax, new_max, v == vmin, new_min, new_mid)
        # rgb ratio: the curve on the mean, ratios kept, then darktable's hyperbolic chroma compression
        # towards the display gamut (white target above, black target below)
        m_luma = curves[x, y, 0]  # (only the "ratio" variant compiles this path)
        k = hl.select(mean > hl.f32(1e-9), m_luma / hl.select(mean > hl.f32(1e-9), mean, hl.f32(1)), 0.0)
        pre = [hl.select(mean > hl.f32(1e-9), q * k, m_luma) for q in (pr, pg, pb)]
        p_min = hl.min(hl.min(pre[0], pre[1]), pre[2])
        p_max = hl.max(hl.max(pre[0], pre[1]), pre[2])
        eps = 1e-6
        to_white = (white - m_luma) / (p_max - m_luma + eps)
        to_black = (p["black"] - m_luma) / (p_min - m_luma - eps)
        border = hl.min(to_white, to_black)
        c_map = (m_luma - p_min) / hl.max(m_luma, hl.f32(1e-30))
        hyp = 2.0 * c_map / (1.0 - c_map * c_map + eps) / (c_map * border + eps)
        c_factor = hyp / (1.0 + hl.sqrt(hyp * hyp + 1.0)) * border
        pre_c = hl.select(mean > hl.f32(1e-9), v * k, m_luma)
        ratio = m_luma + c_factor * (pre_c - m_luma)
        mapped = hl.Func("mapped")
        # the colour processing is structural (variant): only the chosen path is compiled
        mapped[x, y, c] = ratio if self.variant(piece) == "ratio" else per_channel
        return mapped

    def schedule(self, out, piece):
        from ..engine.halide_ops import GUARD, VEC, rows

        rows(out.reorder(c, x, y).bound(c, 0, 3).unroll(c))
        n_curves = 1 if self.variant(piece) == "ratio" else 3
        for f in self._stages:
            f.compute_at(out, x).reorder(c, x, y).bound(c, 0, n_curves).unroll(c).vectorize(x, VEC, GUARD)

    def commit(self, piece):
        piece.data.update(curve_parameters(piece.params))

    def output_desc(self, piece, dsc_in):
        w = piece.data["white"]
        return dsc_in.copy(processed_maximum=(w, w, w))

    def values(self, piece: Piece, roi_in: ROI, roi_out: ROI) -> dict:
        d, p = piece.data, piece.params
        return {"white": d["white"], "paper_exp": d["paper_exp"], "fog": d["fog"], "film_power": d["film_power"],
                "paper_power": d["paper_power"], "hue": p.hue_preservation / 100.0,
                "black": d["black"]}
