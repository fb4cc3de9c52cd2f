"""Property tests: generated sidecars and labels never raise anything but the project's errors."""
from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import raw_image
from pixelpipe.errors import PixelpipeError
from pixelpipe.modules import registry
from pixelpipe.pipe.history import Edit, parse_label

IMG = raw_image(np.zeros((8, 8)))
BASE = Edit.default_for(IMG).to_dict()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_is_refused_cleanly(doc):
    try:
        Edit.from_dict(doc)
    except PixelpipeError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_sidecars_are_refused_or_valid(data):
    d = json.loads(json.dumps(BASE))
    mods = d["modules"]
    k = data.draw(st.integers(0, len(mods) - 1))
    field = data.draw(st.sampled_from(["op", "instance", "enabled", "params", "params_version", "name"]))
    mods[k][field] = data.draw(json_values)
    if data.draw(st.booleans()):
        d["order"] = {"list": data.draw(st.text(max_size=60))}
    try:
        e = Edit.from_dict(d)
    except PixelpipeError:
        return
    # whatever was accepted round-trips and validates
    again = Edit.from_dict(json.loads(json.dumps(e.to_dict())))
    assert [i.label() for i in again.instances] == [i.label() for i in e.instances]


@settings(max_examples=200)
@given(st.sampled_from(sorted(registry())), st.dictionaries(st.text(max_size=12), json_values, max_size=4))
def test_random_params_are_refused_or_valid(op, params):
    try:
        registry()[op].Params.from_dict(op, params)
    except PixelpipeError:
        pass


@given(st.text(max_size=30))
def test_labels(label):
    try:
        op, n = parse_label(label)
        assert 0 <= n <= 1000
    except PixelpipeError:
        pass


def test_sidecar_round_trip_keeps_everything(tmp_path):
    e = Edit.default_for(IMG)
    e.set_params("exposure", IMG, exposure=1.25, compensate_exposure_bias=False)
    e.get("flip").enabled = False
    e.order.move_after("exposure", 0, "colorin", 0)
    p = tmp_path / "x.pixelpipe.json"
    e.save(p)
    back = Edit.load(p)
    assert back.to_dict() == e.to_dict()
    assert back.order.kind() == "custom"
    assert back.get("exposure").params.exposure == 1.25
