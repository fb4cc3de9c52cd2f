"""Drawn forms: rendering against analytic NumPy references, groups, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pixelpipe.blend import Brush, Circle, Ellipse, Gradient, MaskGroup, Member, Path, PathNode
from pixelpipe.blend.forms import form_from_dict, group_from_dict
from pixelpipe.blend.geometry import Geometry
from pixelpipe.blend.render import render_form, render_group
from pixelpipe.errors import ParamsError
from pixelpipe.modules.base import ROI

W, H = 120, 80
U = min(W, H)


def geom(scale=1.0, roi=None):
    return Geometry(W, H, roi or ROI(0, 0, round(W * scale), round(H * scale), scale))


def centres(scale=1.0):
    ys, xs = np.mgrid[0:round(H * scale), 0:round(W * scale)]
    return (xs + 0.5) / scale, (ys + 0.5) / scale


def test_circle_matches_its_definition_at_any_scale():
    c = Circle((0.4, 0.55), radius=0.2, feather=0.1, density=0.8)
    for s in (1.0, 0.5):
        got = render_form(c, geom(s))
        X, Y = centres(s)
        d = np.hypot(X - 0.4 * W, Y - 0.55 * H)
        ref = np.clip((0.3 * U - d) / (0.1 * U), 0, 1) * 0.8
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_ellipse_equidistant_and_proportional():
    X, Y = centres()
    cx, cy, rx, ry = 0.5 * W, 0.5 * H, 0.3 * U, 0.15 * U
    th = math.radians(30)
    qx = math.cos(th) * (X - cx) + math.sin(th) * (Y - cy)
    qy = -math.sin(th) * (X - cx) + math.cos(th) * (Y - cy)
    rho = np.hypot(qx / rx, qy / ry)
    prop = render_form(Ellipse((0.5, 0.5), (0.3, 0.15), 30, feather=0.5, feather_mode="proportional"), geom())
    np.testing.assert_allclose(prop, np.clip((1.5 - rho) / 0.5, 0, 1), atol=1e-6)
    eq = render_form(Ellipse((0.5, 0.5), (0.3, 0.15), 30, feather=0.05, feather_mode="equidistant"), geom())
    q = np.hypot(qx, qy)
    d = np.maximum(q - q / np.maximum(rho, 1e-12), 0)
    np.testing.assert_allclose(eq, np.clip(1 - d / (0.05 * U), 0, 1), atol=1e-6)
    # along the axes the equidistant feather is exactly the distance to the ellipse
    assert eq[40, 60] == 1.0


def test_gradient_is_linear_across_its_feather_and_can_curve():
    X, Y = centres()
    g = render_form(Gradient((0.5, 0.5), rotation=0, feather=0.1), geom())
    ref = np.clip(0.5 + (Y - 0.5 * H) / U / 0.2, 0, 1)
    np.testing.assert_allclose(g, ref, atol=1e-6)
    g90 = render_form(Gradient((0.5, 0.5), rotation=90, feather=0.1), geom())
    np.testing.assert_allclose(g90, np.clip(0.5 - (X - 0.5 * W) / U / 0.2, 0, 1), atol=1e-6)
    curved = render_form(Gradient((0.5, 0.5), rotation=0, feather=0.1, curvature=1.0), geom())
    t = (X - 0.5 * W) / U
    np.testing.assert_allclose(curved, np.clip(0.5 + ((Y - 0.5 * H) / U - t * t) / 0.2, 0, 1), atol=1e-6)


def test_polygon_path_fill_and_feather():
    sq = Path.from_polygon([(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)], feather=0.05)
    got = render_form(sq, geom())
    X, Y = centres()
    dx = np.maximum(np.maximum(0.25 * W - X, X - 0.75 * W), 0)
    dy = np.maximum(np.maximum(0.25 * H - Y, Y - 0.75 * H), 0)
    ref = np.clip(1 - np.hypot(dx, dy) / (0.05 * U), 0, 1)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_bezier_path_approximates_a_circle():
    k = 0.5522847498  # cubic Bézier circle constant
    cx, cy, r = 0.5, 0.5, 0.25
    rx, ry = r * U / W, r * U / H  # normalised by width and height
    pts = [(cx + rx, cy), (cx, cy + ry), (cx - rx, cy), (cx, cy - ry)]
    tang = [(0, ry), (-rx, 0), (0, -ry), (rx, 0)]
    cubics = []
    for i in range(4):
        j = (i + 1) % 4
        p0, p1 = pts[i], pts[j]
        c1 = (p0[0] + k * tang[i][0], p0[1] + k * tang[i][1])
        c2 = (p1[0] - k * tang[j][0], p1[1] - k * tang[j][1])
        cubics.append((p0, c1, c2, p1))
    path = render_form(Path.from_cubics(cubics), geom())
    disc = render_form(Circle((cx, cy), r, 0.0), geom())
    assert (path != disc).mean() < 0.01


def test_self_crossing_path_fills_both_lobes_and_degenerate_paths_do_not_crash():
    eight = Path.from_polygon([(0.2, 0.2), (0.8, 0.8), (0.8, 0.2), (0.2, 0.8)])  # a bow tie
    m = render_form(eight, geom())
    assert m[40, 30] == 1 and m[40, 90] == 1 and m[10, 60] == 0 and m[70, 60] == 0
    for p in (Path([]), Path([PathNode((0.5, 0.5), feather=0.0)]),
              Path.from_polygon([(0.1, 0.1), (0.9, 0.9)], feather=0.0),
              Path.from_polygon([(0.5, 0.5)] * 5, feather=0.0)):
        assert render_form(p, geom()).max() == 0
    line = render_form(Path.from_polygon([(0.1, 0.5), (0.9, 0.5)], feather=0.02), geom())
    assert 0 < line.max() <= 1 and np.isfinite(line).all()


def test_brush_stroke_width_and_hardness():
    b = Brush.stroke([(0.2, 0.5), (0.8, 0.5)], width=0.1, hardness=0.5)
    got = render_form(b, geom())
    X, Y = centres()
    t = np.clip((X - 0.2 * W) / (0.6 * W), 0, 1)
    d = np.hypot(X - (0.2 * W + t * 0.6 * W), Y - 0.5 * H)
    w = 0.1 * U
    ref = np.where(d <= 0.5 * w, 1, np.clip((w - d) / (0.5 * w), 0, 1))
    np.testing.assert_allclose(got, ref, atol=1e-5)
    dot = render_form(Brush.stroke([(0.5, 0.5)], width=0.1, hardness=1.0), geom())
    assert dot[40, 60] == 1 and dot[0, 0] == 0


def test_shapes_outside_the_image_and_zero_area_shapes_render_empty():
    for f in (Circle((5.0, -3.0), 0.2, 0.1), Circle((0.5, 0.5), 0.0, 0.0), Ellipse((0.5, 0.5), (0.0, 0.0), 0, 0.0),
              Ellipse((0.5, 0.5), (0.0, 0.2), 10, 0.0, "proportional"), Brush.stroke([(0.5, 0.5)], width=0.0),
              Path.from_polygon([(-50, -50), (-49, -50), (-49, -49)], feather=0.1), Circle((0.5, 0.5), 0.3, 0.1, 0.0)):
        m = render_form(f, geom())
        assert m.shape == (H, W) and m.max() == 0 and np.isfinite(m).all(), f
    soft = render_form(Circle((0.5, 0.5), 0.0, 0.1), geom())  # radius 0, feather > 0: a soft dot
    assert 0 < soft.max() <= 1


def test_group_operations_and_nesting():
    a = Circle((0.4, 0.5), 0.2, 0.0)
    b = Circle((0.6, 0.5), 0.2, 0.0)
    A, B = render_form(a, geom()), render_form(b, geom())
    for op, ref in (("union", np.maximum(A, B)), ("intersection", np.minimum(A, B)),
                    ("difference", A * (1 - B)), ("exclusion", A + B - 2 * A * B)):
        np.testing.assert_array_equal(render_group(MaskGroup.of([a, b], [op, op]), geom()), ref)
    g = MaskGroup([Member(a), Member(b, "union", inverted=True, opacity=0.5)])
    np.testing.assert_allclose(render_group(g, geom()), np.maximum(A, 0.5 * (1 - B)), atol=1e-6)
    nested = MaskGroup.of([MaskGroup.of([a, b], ["union", "difference"]), Circle((0.5, 0.5), 0.05, 0.0)])
    assert render_group(nested, geom()).shape == (H, W)
    assert render_group(MaskGroup(), geom()).max() == 0


def test_round_trip_and_bad_dicts():
    g = MaskGroup.of([Circle((0.1, 0.2)), Ellipse(), Gradient(), Brush.stroke([(0, 0), (1, 1)]),
                      Path.from_polygon([(0, 0), (1, 0), (0, 1)], feather=0.01)], name="all")
    assert group_from_dict(g.to_dict()).to_dict() == g.to_dict()
    bad = [
        {"type": "circle"}, {"type": "circle", "center": [0, float("nan")]}, {"type": "circle", "center": [0, 0],
                                                                               "radius": -1},
        {"type": "hexagon"}, {"type": "path", "nodes": [{"p": [0, 0], "feather": "x"}]},
        {"type": "circle", "center": [1e9, 0]}, {"type": "brush", "nodes": [{"p": [0]}]}, [], "circle",
        {"type": "group", "members": [{"form": {"type": "circle", "center": [0, 0]}, "op": "xor"}]},
        {"type": "ellipse", "center": [0, 0], "feather_mode": "weird"},
        {"type": "circle", "center": [0, 0], "extra": 1},
    ]
    for d in bad:
        with pytest.raises(ParamsError):
            form_from_dict(d)
    deep = {"type": "circle", "center": [0, 0]}
    for _ in range(12):
        deep = {"type": "group", "members": [{"form": deep}]}
    with pytest.raises(ParamsError, match="nest"):
        group_from_dict(deep)
