"""Blend parameters and mask forms in the sidecar: round trips, and property tests in the
style of tests/test_sidecar_props.py (generated input never raises anything but the
project's errors; whatever is accepted round-trips and renders)."""
from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import raw_image
from pixelpipe.blend import (BlendParams, Brush, Circle, Ellipse, Gradient, MaskGroup, Member, Path, PathNode,
                             add_drawn_group, blend_of)
from pixelpipe.blend import modes as M
from pixelpipe.blend.geometry import Geometry
from pixelpipe.blend.render import render_group
from pixelpipe.errors import PixelpipeError, SidecarError
from pixelpipe.modules.base import ROI
from pixelpipe.pipe.history import Edit

IMG = raw_image(np.zeros((8, 8)))


def full_edit() -> Edit:
    e = Edit.default_for(IMG)
    g = MaskGroup.of([Circle((0.2, 0.3), 0.1, 0.02, 0.9), Ellipse((0.5, 0.5), (0.3, 0.1), 15, 0.2, "proportional"),
                      Gradient((0.5, 0.2), 45, 0.1, 0.3, 0.7), Brush.stroke([(0.1, 0.9), (0.4, 0.8)], 0.02, 0.3),
                      Path([PathNode((0.6, 0.6), (0.55, 0.6), (0.65, 0.6), 0.01), PathNode((0.7, 0.8)),
                            PathNode((0.5, 0.9), feather=0.03)], 0.8)],
                     ["union", "intersection", "difference", "exclusion", "union"], name="everything")
    bp = add_drawn_group(e, "exposure", g, opacity=0.7)
    bp.add_group(MaskGroup.of([Circle((0.9, 0.9), 0.05, 0.0)], name="ai object group #1"), op="difference")
    bp.mask_mode, bp.colorspace, bp.mode, bp.reverse = "drawn+parametric", "lab", "softlight", True
    bp.opacity, bp.combine, bp.invert, bp.drawn_inverted = 80.0, "inclusive", True, True
    bp.channel("L_in", 0.1, 0.2, 0.7, 0.9, invert=True).channel("h_out", 0.0, 0.1, 0.2, 0.3)
    bp.feather_radius, bp.feather_guide, bp.blur_radius = 12.5, "output_before_blur", 3.0
    bp.brightness, bp.contrast = -0.25, 0.5
    s = blend_of(e, "sigmoid")
    s.mask_mode, s.raster_source, s.raster_inverted, s.fulcrum = "raster", "exposure", True, -1.5
    return e


def test_sidecar_round_trips_every_mask(tmp_path):
    e = full_edit()
    p = tmp_path / "x.pixelpipe.json"
    e.save(p)
    back = Edit.load(p)
    assert back.to_dict() == e.to_dict()
    assert back.get("exposure").blend.digest() == e.get("exposure").blend.digest()
    kinds = {type(f).__name__ for f in back.get("exposure").blend.forms.walk()}
    assert kinds == {"Circle", "Ellipse", "Gradient", "Brush", "Path"}
    # modules without blend settings write none; old sidecars load unchanged
    plain = Edit.default_for(IMG).to_dict()
    assert all("blend" not in m for m in plain["modules"])
    assert Edit.from_dict(plain).to_dict() == plain


def test_blend_on_a_module_without_blending_is_refused():
    d = Edit.default_for(IMG).to_dict()
    m = next(m for m in d["modules"] if m["op"] == "rawprepare")
    m["blend"] = BlendParams().to_dict()
    try:
        Edit.from_dict(d)
    except SidecarError as e:
        assert "does not support blending" in str(e)
    else:
        raise AssertionError("accepted")


# --------------------------------------------------------------------------- strategies

coord = st.floats(-2.0, 3.0, allow_nan=False)
size = st.floats(0.0, 0.6, allow_nan=False)
unit = st.floats(0.0, 1.0, allow_nan=False)
pt = st.tuples(coord, coord)
node = st.builds(PathNode, pt, st.none() | pt, st.none() | pt, size, size, unit)
forms = st.one_of(
    st.builds(Circle, pt, size, size, unit),
    st.builds(Ellipse, pt, st.tuples(size, size), st.floats(-360, 360), size,
              st.sampled_from(["equidistant", "proportional"]), unit),
    st.builds(Gradient, pt, st.floats(-360, 360), size, st.floats(-3, 3), unit),
    st.builds(Path, st.lists(node, max_size=6), unit),
    st.builds(Brush, st.lists(node, max_size=6), unit),
)
members = st.builds(Member, forms, st.sampled_from(["union", "intersection", "difference", "exclusion"]),
                    st.booleans(), unit)
groups = st.recursive(st.builds(MaskGroup, st.lists(members, max_size=4), st.text(max_size=8)),
                      lambda inner: st.builds(MaskGroup, st.lists(st.builds(Member, inner), max_size=3)),
                      max_leaves=6)


@st.composite
def blend_params(draw):
    space = draw(st.sampled_from(M.SPACE_CHOICES))
    bp = BlendParams(mask_mode=draw(st.sampled_from([m for m in M.MASK_MODES if m != "raster"])),
                     colorspace=space,
                     mode=draw(st.sampled_from(M.MODES_BY_SPACE[space] if space != "auto" else M.MODES)),
                     reverse=draw(st.booleans()), opacity=draw(st.floats(0, 100)), fulcrum=draw(st.floats(-8, 8)),
                     combine=draw(st.sampled_from(M.COMBINE)), invert=draw(st.booleans()),
                     forms=draw(st.none() | groups), feather_radius=draw(st.floats(0, 250)),
                     blur_radius=draw(st.floats(0, 100)), brightness=draw(st.floats(-1, 1)),
                     contrast=draw(st.floats(-1, 1)))
    for key in draw(st.lists(st.sampled_from([f"{c}_{s}" for c in M.ALL_CHANNELS for s in ("in", "out")]),
                             max_size=3)):
        xs = sorted(draw(st.lists(unit, min_size=4, max_size=4)))
        bp.channel(key, *xs, invert=draw(st.booleans()), boost=draw(st.floats(0, 18)))
    return bp


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blend_params())
def test_generated_blend_params_round_trip_through_the_sidecar(bp):
    e = Edit.default_for(IMG)
    e.get("exposure").blend = bp.validate()
    d = json.loads(json.dumps(e.to_dict()))
    back = Edit.from_dict(d)
    assert back.get("exposure").blend.to_dict() == bp.to_dict()
    assert back.get("exposure").blend.digest() == bp.digest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups, st.floats(0.25, 1.0))
def test_generated_forms_render_without_trouble(g, scale):
    geom = Geometry(40, 30, ROI(0, 0, max(1, round(40 * scale)), max(1, round(30 * scale)), scale))
    m = render_group(g, geom)
    assert m.shape == (geom.roi.height, geom.roi.width) and np.isfinite(m).all()
    assert m.min() >= 0 and m.max() <= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)
BASE = full_edit().to_dict()


def _check(d):
    try:
        e = Edit.from_dict(d)
    except PixelpipeError:
        return
    again = Edit.from_dict(json.loads(json.dumps(e.to_dict())))
    assert again.to_dict() == e.to_dict()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_blend_entries_are_refused_cleanly(doc):
    d = json.loads(json.dumps(BASE))
    next(m for m in d["modules"] if m["op"] == "exposure")["blend"] = doc
    _check(d)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_blend_entries_are_refused_or_valid(data):
    d = json.loads(json.dumps(BASE))
    blend = next(m for m in d["modules"] if m["op"] == "exposure")["blend"]
    paths = [p for p in _paths(blend) if p]
    path = data.draw(st.sampled_from(paths))
    parent = blend
    for k in path[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    _check(d)
