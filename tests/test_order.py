"""Module order: built-in tables, rules, moves, instances, forms, user presets."""
from __future__ import annotations

import json
import os
import struct
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelpipe import userdirs
from pixelpipe.errors import OrderError
from pixelpipe.pipe.order import (
    DARKTABLE_OPS,
    DEFAULT_FENCES,
    MIGRATION_INSERT_BEFORE,
    ORDER_PRESETS,
    ORDER_VERSIONS,
    PIXELPIPE_ONLY,
    RULES,
    UI_NAMES,
    Entry,
    IopOrder,
    default_preset_name,
    delete_order_preset,
    kind_name,
    list_order_presets,
    load_order_preset,
    save_order_preset,
    when_list_written,
)

# The autouse user-dir isolation is function scoped; sharing it across the
# examples of one hypothesis test is harmless.
hyp = settings(max_examples=200, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


def dt_ops(order: IopOrder) -> list[str]:
    """The order as darktable sees it (pixelpipe-only modules left out)."""
    return [e.op for e in order if e.op not in PIXELPIPE_ONLY]


def text_of(ops, instances=None) -> str:
    instances = instances or {}
    return ",".join(f"{op},{instances.get(op, 0)}" for op in ops)


# ---------------------------------------------------------------- the tables


def test_enum_and_ui_names():
    assert ORDER_PRESETS == ("legacy", "v30", "v30_jpg", "v50", "v50_jpg")
    assert ORDER_VERSIONS == {"custom": 0, "legacy": 1, "v30": 2, "v30_jpg": 3, "v50": 4, "v50_jpg": 5}
    assert UI_NAMES["v50"] == "v5.0 RAW" and UI_NAMES["v30_jpg"] == "v3.0 JPEG"
    assert [kind_name(v) for v in range(6)] == ["custom", *ORDER_PRESETS]
    with pytest.raises(OrderError):
        kind_name(6)


@pytest.mark.parametrize("name", ORDER_PRESETS)
def test_preset_loads_93_ops_and_is_detected(name):
    order = IopOrder.from_preset(name)
    ops = dt_ops(order)
    assert len(ops) == 93 and set(ops) == DARKTABLE_OPS
    assert ops[0] == "rawprepare" and ops[-1] == "gamma"
    assert order.kind() == name
    assert order.version() == ORDER_VERSIONS[name]
    assert order.ui_name() == UI_NAMES[name]
    assert all(e.instance == 0 for e in order)
    order.check()
    assert not when_list_written(order)


def test_presets_are_all_different():
    tables = {tuple(dt_ops(IopOrder.from_preset(n))) for n in ORDER_PRESETS}
    assert len(tables) == len(ORDER_PRESETS)


def test_unknown_preset():
    with pytest.raises(OrderError, match="unknown order preset"):
        IopOrder.from_preset("v60")


def test_v50_and_v30_differ_only_in_finalscale():
    v30, v50 = (dt_ops(IopOrder.from_preset(n)) for n in ("v30", "v50"))
    assert [o for o in v30 if o != "finalscale"] == [o for o in v50 if o != "finalscale"]
    assert v30 != v50
    # v5.0 downscales before the output colour transform
    assert v50.index("finalscale") < v50.index("colorout")
    assert v30.index("finalscale") > v30.index("colorout")
    assert v50[v50.index("finalscale") - 1] == "colorreconstruct"


@pytest.mark.parametrize("raw, jpg", [("v50", "v50_jpg"), ("v30", "v30_jpg")])
def test_jpeg_variants_move_the_23_module_block(raw, jpg):
    r = dt_ops(IopOrder.from_preset(raw))
    j = dt_ops(IopOrder.from_preset(jpg))
    a, b = r.index("denoiseprofile"), r.index("equalizer")
    block = r[a:b + 1]
    assert len(block) == 23 and "exposure" in block and "crop" in block
    rest = r[:a] + r[b + 1:]
    k = rest.index("colorin") + 1
    expect = rest[:k] + block + rest[k:]
    if jpg == "v30_jpg":  # v3.0 JPEG also has agx before sigmoid
        i, s = expect.index("agx"), expect.index("sigmoid")
        expect[i], expect[s] = expect[s], expect[i]
    assert j == expect


def test_default_order_choice():
    assert IopOrder.default_for(True).kind() == "v50"
    assert IopOrder.default_for(False).kind() == "v50_jpg"
    assert IopOrder.default_for(True, "scene-referred (sigmoid)").kind() == "v50"
    assert IopOrder.default_for(False, "none").kind() == "v50_jpg"
    for is_raw in (True, False):
        assert IopOrder.default_for(is_raw, "display-referred (legacy)").kind() == "legacy"
        assert default_preset_name(is_raw, "display-referred") == "legacy"
    with pytest.raises(OrderError, match="unknown workflow"):
        IopOrder.default_for(True, "cinematic")


def test_rules_data():
    assert len(RULES) == 14
    assert ("demosaic", "colorin") in RULES and ("ashift", "clipping") in RULES


# ---------------------------------------------------------------- checks


def test_check_names_problems():
    v50 = [e.op for e in IopOrder.from_preset("v50")]
    with pytest.raises(OrderError, match="start with rawprepare"):
        IopOrder([(op, 0) for op in v50[1:]]).check()
    with pytest.raises(OrderError, match="end with gamma"):
        IopOrder([(op, 0) for op in v50[:-1]]).check()
    swapped = list(v50)
    i, j = swapped.index("demosaic"), swapped.index("colorin")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    with pytest.raises(OrderError, match="rule: demosaic must stay before colorin"):
        IopOrder([(op, 0) for op in swapped]).check()
    with pytest.raises(OrderError, match="duplicate entry exposure"):
        IopOrder([("rawprepare", 0), ("exposure", 0), ("exposure", 0), ("gamma", 0)])
    with pytest.raises(OrderError, match="empty"):
        IopOrder([]).check()


def test_entry_validation():
    for bad in [("Exposure", 0), ("exposure", -1), ("exposure", 1001), ("", 0), ("a" * 21, 0),
                ("exposure", True), ("exposure", "0"), "exposure", None]:
        with pytest.raises(OrderError):
            IopOrder([bad])


# ---------------------------------------------------------------- moves


@pytest.mark.parametrize("rule", RULES, ids=[f"{a}<{b}" for a, b in RULES])
def test_each_rule_refuses_violating_moves(rule):
    a, b = rule
    order = IopOrder.from_preset("v50")
    before = order.entries()
    messages = []
    for move in (lambda: order.move_after(a, 0, b, 0), lambda: order.move_before(b, 0, a, 0)):
        with pytest.raises(OrderError) as info:
            move()
        messages.append(str(info.value))
        assert order.entries() == before  # refused moves change nothing
    assert any(f"rule: {a} must stay before {b}" in m for m in messages), messages


def test_rule_named_when_walking_past_several_modules():
    order = IopOrder.from_preset("v50")
    with pytest.raises(OrderError, match="rule: demosaic must stay before colorin"):
        order.move_after("demosaic", 0, "sharpen", 0)
    with pytest.raises(OrderError, match="rule: rawdenoise must stay before demosaic"):
        order.move_before("demosaic", 0, "rawprepare", 0)


def test_legal_moves_are_applied():
    order = IopOrder.from_preset("v50")
    order.move_after("exposure", 0, "colorin", 0)
    assert order.position("exposure") == order.position("colorin") + 1
    assert order.kind() == "custom" and when_list_written(order)
    order.check()
    order.move_before("sharpen", 0, "demosaic", 0)
    assert order.position("sharpen") == order.position("demosaic") - 1
    order.check()
    # moving back restores the built-in order
    order.move_after("exposure", 0, "retouch", 0)
    order.move_after("sharpen", 0, "highpass", 0)
    assert order == IopOrder.from_preset("v50") and order.kind() == "v50"


def test_the_ends_stay_fixed():
    order = IopOrder.from_preset("v50")
    with pytest.raises(OrderError, match="rawprepare must stay the first module"):
        order.move_before("lens", 0, "rawprepare", 0)
    with pytest.raises(OrderError, match="gamma must stay the last module"):
        order.move_after("vignette", 0, "gamma", 0)
    with pytest.raises(OrderError, match="gamma must stay the last module"):
        order.move_before("gamma", 0, "watermark", 0)
    order.move_after("lens", 0, "rawprepare", 0)  # right after the start is fine
    assert order.position("lens") == 1
    order.check()


def test_move_onto_itself_or_unknown_is_refused():
    order = IopOrder.from_preset("v50")
    with pytest.raises(OrderError, match="same entry"):
        order.move_before("exposure", 0, "exposure", 0)
    with pytest.raises(OrderError, match="not in the order"):
        order.move_before("exposure", 3, "colorin", 0)
    with pytest.raises(OrderError, match="not in the order"):
        order.move_before("exposure", 0, "nosuchmodule", 0)


def test_fences():
    assert DEFAULT_FENCES == frozenset()
    order = IopOrder.from_preset("v50", fences={"exposure"})
    before = order.entries()
    with pytest.raises(OrderError, match="exposure is a fence module"):
        order.move_after("exposure", 0, "colorin", 0)
    # lens sits before exposure, crop after it
    with pytest.raises(OrderError, match="cross the fence module exposure"):
        order.move_after("lens", 0, "crop", 0)
    with pytest.raises(OrderError, match="cross the fence module exposure"):
        order.move_before("crop", 0, "exposure", 0)
    assert order.entries() == before
    # up to the fence, but not across it, is fine from both sides
    order.move_before("lens", 0, "exposure", 0)
    assert order.position("lens") == order.position("exposure") - 1
    order.move_after("crop", 0, "exposure", 0)
    assert order.position("crop") == order.position("exposure") + 1
    order.check()
    # fences survive copies and reloads with the same argument
    assert order.copy().fences == {"exposure"}
    again = IopOrder.from_text(order.to_text(), fences={"exposure"})
    with pytest.raises(OrderError, match="fence"):
        again.move_after("lens", 0, "crop", 0)


def test_why_not_move():
    order = IopOrder.from_preset("v50")
    assert "rule: colorin must stay before channelmixerrgb" in order.why_not_move(
        "channelmixerrgb", 0, "colorin", 0)
    assert order.why_not_move("exposure", 0, "colorin", 0, after=True) is None
    assert order == IopOrder.from_preset("v50")


# ---------------------------------------------------------------- instances


def test_add_instance_goes_before_the_highest_instance():
    order = IopOrder.from_preset("v50")
    p = order.position("exposure")
    assert order.add_instance("exposure") == 1
    assert order.position("exposure", 1) == p and order.position("exposure", 0) == p + 1
    assert order.add_instance("exposure") == 2
    assert [e for e in order if e.op == "exposure"] == [Entry("exposure", 2), Entry("exposure", 1),
                                                       Entry("exposure", 0)]
    # consecutive instances are one entry for kind detection
    assert order.kind() == "v50" and order.has_multi_instances() and when_list_written(order)
    # the highest instance decides, wherever it is
    order.move_after("exposure", 2, "colorin", 0)
    assert order.kind() == "custom"
    assert order.add_instance("exposure") == 3
    assert order.position("exposure", 3) == order.position("exposure", 2) - 1
    assert order.position("exposure", 3) == order.position("colorin") + 1
    order.check()


def test_instances_move_among_themselves_and_remove():
    order = IopOrder.from_preset("v50")
    order.add_instance("colorin")
    # an instance may pass its own op even where a rule names the op
    order.move_after("colorin", 1, "colorin", 0)
    assert order.instances("colorin") == [0, 1]
    with pytest.raises(OrderError, match="rule: colorin must stay before channelmixerrgb"):
        order.move_after("colorin", 1, "channelmixerrgb", 0)
    order.remove_instance("colorin", 0)
    assert order.instances("colorin") == [1]
    with pytest.raises(OrderError, match="only instance"):
        order.remove_instance("colorin", 1)
    with pytest.raises(OrderError, match="not in the order"):
        order.add_instance("nosuchmodule")


# ---------------------------------------------------------------- text form


@pytest.mark.parametrize("name", ORDER_PRESETS)
def test_text_round_trip_presets(name):
    order = IopOrder.from_preset(name)
    text = order.to_text()
    assert text.startswith("rawprepare,0,invert,0,") and text.endswith(",gamma,0")
    back = IopOrder.from_text(text)
    assert back == order and back.kind() == name
    dt_text, notices = order.to_text(for_darktable=True)
    only_ours = sorted(json.loads((resources.files("pixelpipe.pipe") / "data" / "pixelpipe_anchors.json")
                                  .read_text())["modules"])
    assert "neural_denoise" in only_ours
    assert not any(op in dt_text.split(",") for op in only_ours)
    assert sorted(notices) == sorted(f"dropped pixelpipe-only module {op}" for op in only_ours)
    # darktable's text gets the pixelpipe-only modules back at their anchors
    assert IopOrder.from_text(dt_text) == order


def test_text_round_trip_custom_with_instances():
    order = IopOrder.from_preset("v50")
    order.add_instance("exposure")
    order.add_instance("denoiseprofile")
    order.move_after("exposure", 1, "colorbalancergb", 0)
    order.move_before("sharpen", 0, "lens", 0)
    text = order.to_text()
    assert "exposure,1" in text and "denoiseprofile,1,denoiseprofile,0,neural_denoise,0" in text
    back = IopOrder.from_text(text)
    assert back == order and back.kind() == "custom"
    assert back.to_text() == text


def test_pixelpipe_only_module_placement():
    order = IopOrder.from_preset("v50")
    assert PIXELPIPE_ONLY["neural_denoise"] == {"after": "denoiseprofile"}
    assert order.position("neural_denoise") == order.position("denoiseprofile") + 1
    # after the last denoiseprofile instance when a darktable list has several
    dt = dt_ops(order)
    i = dt.index("denoiseprofile")
    text = text_of(dt[:i + 1]) + ",denoiseprofile,1," + text_of(dt[i + 1:])
    loaded = IopOrder.from_text(text)
    assert loaded.position("neural_denoise") == loaded.position("denoiseprofile", 1) + 1
    assert loaded.kind() == "v50"


def test_kind_detection_with_instances():
    dt = dt_ops(IopOrder.from_preset("v30_jpg"))
    i = dt.index("exposure")
    adjacent = IopOrder.from_text(text_of(dt[:i + 1]) + ",exposure,1," + text_of(dt[i + 1:]))
    assert adjacent.kind() == "v30_jpg" and adjacent.version() == 3 and when_list_written(adjacent)
    j = dt.index("colorin")
    split = IopOrder.from_text(text_of(dt[:j + 1]) + ",exposure,1," + text_of(dt[j + 1:]))
    assert split.kind() == "custom" and split.version() == 0


def test_migration_inserts_sigmoid_before_filmicrgb():
    dt = dt_ops(IopOrder.from_preset("v50"))
    order = IopOrder.from_text(text_of([o for o in dt if o != "sigmoid"]))
    assert order.position("sigmoid") == order.position("filmicrgb") - 1
    order.check()
    # a list that also lacks agx gets both in v5.0 order: sigmoid, agx, filmicrgb
    order = IopOrder.from_text(text_of([o for o in dt if o not in ("sigmoid", "agx")]))
    assert order.kind() == "v50"


def test_migration_chain_and_every_pair():
    dt = dt_ops(IopOrder.from_preset("v50"))
    order = IopOrder.from_text(text_of([o for o in dt if o not in ("negadoctor", "channelmixerrgb")]))
    n = order.position("negadoctor")
    assert order.position("nlmeans") == n + 1 and order.position("channelmixerrgb") < n
    for anchor, new in MIGRATION_INSERT_BEFORE:
        loaded = IopOrder.from_text(text_of([o for o in dt if o != new]))
        assert loaded.position(new) == loaded.position(anchor) - 1, (anchor, new)


def test_missing_modules_go_after_their_reference_predecessor():
    for name in ("v50", "legacy"):
        dt = dt_ops(IopOrder.from_preset(name))
        gone = {"bilateral", "rotatepixels", "scalepixels", "lut3d", "finalscale", "watermark"}
        order = IopOrder.from_text(text_of([o for o in dt if o not in gone]), reference=name)
        assert order.kind() == name
    # a minimal list is completed to the full set
    order = IopOrder.from_text("rawprepare,0,gamma,0")
    assert set(dt_ops(order)) == DARKTABLE_OPS
    order.check()


def test_inserted_module_keeps_the_rules():
    # clipping's v5.0 predecessor (overlay) was moved before ashift and flip;
    # clipping must still follow both (and has no migration pair)
    dt = dt_ops(IopOrder.from_preset("v50"))
    dt = [o for o in dt if o not in ("clipping", "overlay")]
    dt.insert(dt.index("lens"), "overlay")
    order = IopOrder.from_text(text_of(dt))
    assert order.position("overlay") < order.position("ashift") < order.position("flip")
    assert order.position("clipping") == order.position("flip") + 1
    order.check()


def test_unknown_darktable_ops_are_kept():
    dt = dt_ops(IopOrder.from_preset("v50"))
    dt.insert(dt.index("exposure") + 1, "futuremodule")
    order = IopOrder.from_text(text_of(dt))
    assert order.position("futuremodule") == order.position("exposure") + 1
    assert order.kind() == "custom"
    assert "futuremodule,0" in order.to_text(for_darktable=True)[0]


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("   ", "empty"),
    ("rawprepare", "pairs"),
    ("rawprepare,0,gamma", "pairs"),
    ("rawprepare,0,gamma,0,", "pairs"),
    ("rawprepare,x,gamma,0", "invalid instance"),
    ("rawprepare,-1,gamma,0", "invalid instance"),
    ("rawprepare,1001,gamma,0", "invalid instance"),
    ("rawprepare,0x1,gamma,0", "invalid instance"),
    ("rawprepare,0,Exposure,0,gamma,0", "invalid module name"),
    ("rawprepare,0,,0,gamma,0", "invalid module name"),
    ("gamma,0,rawprepare,0", "start with rawprepare"),
    ("rawprepare,0,exposure,0,exposure,0,gamma,0", "duplicate"),
    ("rawprepare,0,colorin,0,demosaic,0,gamma,0", "rule: demosaic must stay before colorin"),
])
def test_malformed_text(text, match):
    with pytest.raises(OrderError, match=match):
        IopOrder.from_text(text)


def test_from_text_rejects_non_text_and_bad_reference():
    with pytest.raises(OrderError):
        IopOrder.from_text(b"rawprepare,0,gamma,0")
    with pytest.raises(OrderError, match="reference"):
        IopOrder.from_text("rawprepare,0,gamma,0", reference="v99")


# ---------------------------------------------------------------- binary form


@pytest.mark.parametrize("name", ORDER_PRESETS)
def test_binary_round_trip(name):
    order = IopOrder.from_preset(name)
    blob = order.to_binary()
    assert blob.startswith(struct.pack("<i", 10) + b"rawprepare" + struct.pack("<i", 0))
    assert blob.endswith(struct.pack("<i", 5) + b"gamma" + struct.pack("<i", 0))
    assert IopOrder.from_binary(blob) == order
    dt_blob, notices = order.to_binary(for_darktable=True)
    assert b"neural_denoise" not in dt_blob and notices
    assert IopOrder.from_binary(dt_blob) == order


def test_binary_custom_with_instances():
    order = IopOrder.from_preset("v50")
    order.add_instance("exposure")
    order.move_after("exposure", 1, "colorin", 0)
    assert IopOrder.from_binary(order.to_binary()) == order


def _rec(name: bytes, inst: int, n: int | None = None) -> bytes:
    return struct.pack("<i", len(name) if n is None else n) + name + struct.pack("<i", inst)


@pytest.mark.parametrize("blob, match", [
    (b"", "empty"),
    (b"\x0a\x00", "truncated"),
    (_rec(b"rawprepare", 0)[:-2], "truncated"),
    (_rec(b"x" * 21, 0), "name length"),
    (_rec(b"", 0), "name length"),
    (_rec(b"rawprepare", 0, n=-1), "name length"),
    (_rec(b"rawprepare", 1001) + _rec(b"gamma", 0), "invalid instance"),
    (_rec(b"rawprepare", -1) + _rec(b"gamma", 0), "invalid instance"),
    (_rec(b"raw\xffprepare", 0) + _rec(b"gamma", 0), "invalid module name"),
    (_rec(b"gamma", 0) + _rec(b"rawprepare", 0), "start with rawprepare"),
])
def test_malformed_binary(blob, match):
    with pytest.raises(OrderError, match=match):
        IopOrder.from_binary(blob)


# ---------------------------------------------------------------- user presets


def test_user_presets_save_list_load():
    assert list_order_presets() == []
    order = IopOrder.from_preset("v50")
    order.add_instance("exposure")
    order.move_after("exposure", 1, "colorin", 0)
    path = save_order_preset("my order", order)
    assert path == userdirs.config_dir() / "orders" / "my order.json"
    assert path.is_relative_to(Path(os.environ["XDG_CONFIG_HOME"]))  # the isolated config dir
    doc = json.loads(path.read_text())
    assert doc["name"] == "my order" and doc["iop_order_list"] == order.to_text()
    assert list_order_presets() == ["my order"]
    assert load_order_preset("my order") == order
    # the built-in names resolve too
    assert load_order_preset("v30").kind() == "v30"
    # no temporary file left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["my order.json"]
    # replace, or refuse to
    save_order_preset("my order", IopOrder.from_preset("legacy"))
    assert load_order_preset("my order").kind() == "legacy"
    with pytest.raises(OrderError, match="exists"):
        save_order_preset("my order", order, overwrite=False)
    delete_order_preset("my order")
    assert list_order_presets() == []
    with pytest.raises(OrderError, match="no order preset"):
        load_order_preset("my order")


@pytest.mark.parametrize("name", ["v50", "legacy", "custom", "V5.0 RAW", "v3.0 jpeg", "CUSTOM"])
def test_user_preset_refuses_builtin_names(name):
    with pytest.raises(OrderError, match="built-in"):
        save_order_preset(name, IopOrder.from_preset("v50"))


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "trailing ", "dot.", "x" * 65, None])
def test_user_preset_refuses_bad_names(name):
    with pytest.raises(OrderError, match="invalid order preset name"):
        save_order_preset(name, IopOrder.from_preset("v50"))


def test_user_preset_refuses_invalid_order():
    bad = IopOrder([("gamma", 0), ("rawprepare", 0)])
    with pytest.raises(OrderError, match="start with rawprepare"):
        save_order_preset("bad", bad)
    assert list_order_presets() == []


@pytest.mark.parametrize("content", [
    "not json", "[]", '{"format": "other", "iop_order_list": "rawprepare,0,gamma,0"}',
    '{"format": "pixelpipe.module-order", "iop_order_list": "gamma,0"}', "\udcff",
])
def test_corrupt_user_preset(content):
    d = userdirs.config_dir() / "orders"
    d.mkdir(parents=True)
    (d / "broken.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(OrderError) as info:
        load_order_preset("broken")
    assert info.value.path == str(d / "broken.json")


# ---------------------------------------------------------------- properties

KNOWN_OPS = sorted(DARKTABLE_OPS | set(PIXELPIPE_ONLY))
op_names = st.one_of(st.sampled_from(KNOWN_OPS), st.text(max_size=24))
instances = st.one_of(st.integers(0, 3), st.integers(-5, 2000), st.text(max_size=5))


@hyp
@given(st.text(max_size=400))
def test_from_text_random_strings_raise_only_order_error(s):
    try:
        order = IopOrder.from_text(s)
    except OrderError:
        return
    order.check()


@hyp
@given(st.lists(st.tuples(op_names, instances), max_size=60), st.booleans())
def test_from_text_random_lists(pairs, framed):
    if framed:
        pairs = [("rawprepare", 0), *pairs, ("gamma", 0)]
    text = ",".join(f"{op},{inst}" for op, inst in pairs)
    try:
        order = IopOrder.from_text(text)
    except OrderError:
        return
    order.check()
    assert DARKTABLE_OPS <= set(order.ops())
    assert IopOrder.from_text(order.to_text()) == order


@hyp
@given(st.binary(max_size=300))
def test_from_binary_random_bytes_raise_only_order_error(blob):
    try:
        IopOrder.from_binary(blob).check()
    except OrderError:
        pass


moves = st.lists(
    st.tuples(st.sampled_from(sorted(DARKTABLE_OPS)), st.sampled_from(sorted(DARKTABLE_OPS)),
              st.booleans(), st.booleans()),
    max_size=40,
)


@hyp
@given(st.sampled_from(ORDER_PRESETS), moves)
def test_moves_keep_the_order_valid(preset, steps):
    fence = "exposure"
    order = IopOrder.from_preset(preset, fences={fence})
    ahead = {e.op for e in order.entries()[: order.position(fence)]}
    def ops_ahead():  # other instances of the fence op itself may sit either side
        return {e.op for e in order.entries()[: order.position(fence)]} - {fence}
    for op, anchor, after, new_instance in steps:
        inst = order.add_instance(op) if new_instance else 0
        try:
            (order.move_after if after else order.move_before)(op, inst, anchor, 0)
        except OrderError as exc:
            assert any(w in str(exc) for w in ("rule:", "fence", "same entry", "must stay the"))
    order.check()  # legal moves never break a rule, the start or the end
    # nothing ever crosses the fence
    assert ops_ahead() == ahead
    assert IopOrder.from_text(order.to_text(), fences={fence}) == order
    assert IopOrder.from_binary(order.to_binary(), fences={fence}) == order
