"""darktable XMP sidecars: reading and writing the module-order fields."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelpipe.errors import OutputError, SidecarError
from pixelpipe.io.xmp import (
    NS_DARKTABLE,
    load_xmp_order,
    order_from_xmp,
    read_xmp_order,
    write_xmp_order,
)
from pixelpipe.pipe.order import PIXELPIPE_ONLY, IopOrder

#: the notices of an order written for darktable: every pixelpipe-only module is dropped
DROPPED = [f"dropped pixelpipe-only module {op}" for op in PIXELPIPE_ONLY]

hyp = settings(max_examples=200, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

# What darktable 4.x writes next to IMG_0042.CR2 (history shortened, blobs cut).
DT_XMP = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
   exif:DateTimeOriginal="2023:05:14 10:21:33.000"
   xmp:Rating="1"
   xmpMM:DerivedFrom="IMG_0042.CR2"
   darktable:import_timestamp="63819202893000000"
   darktable:change_timestamp="63819203001000000"
   darktable:export_timestamp="0"
   darktable:print_timestamp="0"
   darktable:xmp_version="{xmp_version}"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="3"{attrs}>
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="rawprepare"
      darktable:enabled="1"
      darktable:modversion="2"
      darktable:params="c6000000c6000000c6000000c6000000ff3f0000"
      darktable:multi_name=""
      darktable:multi_name_hand_edited="0"
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz08eJxjYGBgYAFiCQYYOOHEgAZY0QWAgBGLGANDgz0Ej1Q+dcPSz1W3"/>
     <rdf:li
      darktable:num="1"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="00000000000080b93333333f00004842000080c0"
      darktable:multi_name=""
      darktable:multi_name_hand_edited="0"
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz08eJxjYGBgYAFiCQYYOOHEgAZY0QWAgBGLGANDgz0Ej1Q+dcPSz1W3"/>
     <rdf:li
      darktable:num="2"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000cdcc4c3e00004842000080c0"
      darktable:multi_name="1"
      darktable:multi_name_hand_edited="0"
      darktable:multi_priority="1"
      darktable:blendop_version="13"
      darktable:blendop_params="gz08eJxjYGBgYAFiCQYYOOHEgAZY0QWAgBGLGANDgz0Ej1Q+dcPSz1W3"/>
    </rdf:Seq>
   </darktable:history>{elements}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def dt_xmp(*, version=None, text=None, form="attr", xmp_version=5) -> str:
    attrs = elements = ""
    if form == "attr":
        if version is not None:
            attrs += f"\n   darktable:iop_order_version={quoteattr(str(version))}"
        if text is not None:
            attrs += f"\n   darktable:iop_order_list={quoteattr(text)}"
    else:
        if version is not None:
            elements += f"\n   <darktable:iop_order_version>{escape(str(version))}</darktable:iop_order_version>"
        if text is not None:
            elements += f"\n   <darktable:iop_order_list>{escape(text)}</darktable:iop_order_list>"
    return DT_XMP.format(xmp_version=xmp_version, attrs=attrs, elements=elements)


def dt_text(order: IopOrder) -> str:
    return order.to_text(for_darktable=True)[0]


def custom_order() -> IopOrder:
    order = IopOrder.from_preset("v50")
    order.add_instance("exposure")
    order.move_after("exposure", 1, "colorbalancergb", 0)
    order.move_before("sharpen", 0, "lens", 0)
    return order


@pytest.fixture
def sidecar(tmp_path):
    def make(content: str | bytes, name="IMG_0042.CR2.xmp"):
        p = tmp_path / name
        p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return p
    return make


# ---------------------------------------------------------------- reading


def test_read_builtin_version_attribute_form(sidecar):
    p = sidecar(dt_xmp(version=2))
    before, mtime = p.read_bytes(), p.stat().st_mtime_ns
    assert read_xmp_order(p) == (2, None)
    order = load_xmp_order(p)
    assert order.kind() == "v30" and order == IopOrder.from_preset("v30")
    assert p.read_bytes() == before and p.stat().st_mtime_ns == mtime  # never modified


@pytest.mark.parametrize("form", ["attr", "element"])
def test_read_custom_list(sidecar, form):
    want = custom_order()
    p = sidecar(dt_xmp(version=0, text=dt_text(want), form=form))
    before = p.read_bytes()
    version, text = read_xmp_order(p)
    assert version == 0 and text == dt_text(want)
    order = order_from_xmp(version, text)
    assert order == want and order.kind() == "custom"
    assert order.position("exposure", 1) == order.position("colorbalancergb") + 1
    assert p.read_bytes() == before


@pytest.mark.parametrize("form", ["attr", "element"])
def test_read_builtin_with_instances(sidecar, form):
    order = IopOrder.from_preset("v50")
    order.add_instance("exposure")
    p = sidecar(dt_xmp(version=4, text=dt_text(order), form=form))
    loaded = load_xmp_order(p)
    assert loaded == order and loaded.kind() == "v50" and loaded.instances("exposure") == [1, 0]


def test_read_rdf_root_without_xmpmeta_and_utf16(sidecar):
    doc = dt_xmp(version=5)
    rdf = doc[doc.index("<rdf:RDF"):doc.index("</rdf:RDF>") + len("</rdf:RDF>")]
    assert read_xmp_order(sidecar(rdf, "a.jpg.xmp")) == (5, None)
    utf16 = doc.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert read_xmp_order(sidecar(utf16, "b.jpg.xmp")) == (5, None)


def test_read_foreign_xmp_has_no_order(sidecar):
    lightroom = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
      xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
      xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" crs:Exposure2012="+0.50"/>
      </rdf:RDF></x:xmpmeta>"""
    p = sidecar(lightroom)
    assert read_xmp_order(p) == (None, None)
    assert order_from_xmp(None, None).kind() == "legacy"


@pytest.mark.parametrize("xmp_version, stored, expect", [(3, 2, 1), (3, 3, 2), (2, 4, 1), (1, None, 1)])
def test_old_sidecars_map_like_darktable(sidecar, xmp_version, stored, expect):
    p = sidecar(dt_xmp(version=stored, text="rawprepare,0,gamma,0", xmp_version=xmp_version))
    assert read_xmp_order(p) == (expect, None)


def test_list_without_version_and_empty_list(sidecar):
    p = sidecar(dt_xmp(text=dt_text(custom_order())))
    assert load_xmp_order(p) == custom_order()
    p = sidecar(dt_xmp(version=4, text="  "))
    assert read_xmp_order(p) == (4, None)


# ---------------------------------------------------------------- errors


def _assert_sidecar_error(p, match):
    with pytest.raises(SidecarError, match=match) as info:
        load_xmp_order(p)
    assert info.value.path == str(p)


@pytest.mark.parametrize("content, match", [
    ("this is not xml", "well-formed"),
    ("<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF", "well-formed"),
    ("", "well-formed"),
    ("<html><body/></html>", "not an XMP packet"),
    ("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", "no rdf:RDF"),
    ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
     "<lolz>&lol2;</lolz>", "DOCTYPE/ENTITY"),
    ('<!doctype x SYSTEM "file:///etc/passwd"><x/>', "DOCTYPE/ENTITY"),
    ('<?xml version="1.0" encoding="no-such-codec"?><x/>', "decode"),
    (b"\xff\xfe\xfd not utf-8", "decode"),
    (b"<x:xmpmeta>caf\xe9</x:xmpmeta>", "decode"),
])
def test_malformed_files(sidecar, content, match):
    _assert_sidecar_error(sidecar(content), match)


@pytest.mark.parametrize("version, text, match", [
    ("abc", None, "not an integer"),
    ("4.0", None, "not an integer"),
    ("9", None, "unknown module order version"),
    ("-1", None, "unknown module order version"),
    ("0", None, "custom .0. but there is no iop_order_list"),
    ("0", "rawprepare,0,gamma", "bad darktable:iop_order_list"),
    ("0", "gamma,0,rawprepare,0", "bad darktable:iop_order_list"),
    ("7", "rawprepare,0,gamma,0", "unknown module order version"),
])
def test_bad_order_fields(sidecar, version, text, match):
    _assert_sidecar_error(sidecar(dt_xmp(version=version, text=text)), match)


def test_missing_file_and_directory(tmp_path):
    _assert_sidecar_error(tmp_path / "nope.CR2.xmp", "cannot read")
    _assert_sidecar_error(tmp_path, "cannot read")


def test_conflicting_and_structured_values(sidecar):
    doc = dt_xmp(version=4).replace(
        "</darktable:history>",
        "</darktable:history>\n   <darktable:iop_order_version>2</darktable:iop_order_version>")
    _assert_sidecar_error(sidecar(doc), "conflicting")
    doc = dt_xmp().replace(
        "</darktable:history>",
        "</darktable:history>\n   <darktable:iop_order_list><rdf:Seq/></darktable:iop_order_list>")
    _assert_sidecar_error(sidecar(doc), "not a simple text value")


# ---------------------------------------------------------------- writing


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_write_builtin_writes_version_only(tmp_path):
    p = tmp_path / "IMG_1.NEF.xmp"
    notices = write_xmp_order(p, IopOrder.from_preset("v50"))
    assert notices == DROPPED
    desc = ET.parse(p).getroot().find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    assert desc.get(f"{{{NS_DARKTABLE}}}iop_order_version") == "4"
    assert desc.get(f"{{{NS_DARKTABLE}}}xmp_version") == "5"
    assert f"{{{NS_DARKTABLE}}}iop_order_list" not in desc.attrib
    assert read_xmp_order(p) == (4, None)
    assert load_xmp_order(p) == IopOrder.from_preset("v50")
    assert _no_temp_files(tmp_path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file, not mkstemp's 0600


@pytest.mark.parametrize("make", ["custom", "instances", "jpg"])
def test_write_read_round_trip(tmp_path, make):
    if make == "custom":
        order = custom_order()
    else:
        order = IopOrder.from_preset("v50_jpg" if make == "jpg" else "v30")
        if make == "instances":
            order.add_instance("colorbalancergb")
    p = tmp_path / "x.tif.xmp"
    notices = write_xmp_order(p, order)
    assert notices == DROPPED
    version, text = read_xmp_order(p)
    assert version == order.version()
    assert (text is not None) == (make != "jpg")
    if text:
        assert not any(op in text for op in PIXELPIPE_ONLY)
    assert order_from_xmp(version, text) == order


def test_write_refuses_to_overwrite(sidecar):
    p = sidecar(dt_xmp(version=2))
    before = p.read_bytes()
    with pytest.raises(OutputError, match="exists") as info:
        write_xmp_order(p, IopOrder.from_preset("v50"))
    assert info.value.path == str(p)
    assert p.read_bytes() == before
    write_xmp_order(p, IopOrder.from_preset("v50"), overwrite=True)
    assert read_xmp_order(p) == (4, None)
    assert _no_temp_files(p.parent)


def test_write_refuses_invalid_order_and_missing_folder(tmp_path):
    from pixelpipe.errors import OrderError

    with pytest.raises(OrderError):
        write_xmp_order(tmp_path / "a.xmp", IopOrder([("gamma", 0), ("rawprepare", 0)]))
    assert not (tmp_path / "a.xmp").exists()
    with pytest.raises(OutputError):
        write_xmp_order(tmp_path / "no" / "such" / "a.xmp", IopOrder.from_preset("v50"))


# ---------------------------------------------------------------- properties


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("xmp-fuzz") / "f.xmp"


def _read_only_sidecar_errors(path):
    try:
        version, text = read_xmp_order(path)
    except SidecarError as exc:
        assert exc.path == str(path)
        return
    try:
        order_from_xmp(version, text, path=path).check()
    except SidecarError as exc:
        assert exc.path == str(path)


@hyp
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_sidecar_error(scratch, data):
    scratch.write_bytes(data)
    _read_only_sidecar_errors(scratch)


fields = st.one_of(st.none(), st.text(max_size=40), st.integers(-3, 9).map(str))
lists = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.lists(st.sampled_from(sorted(IopOrder.from_preset("v50").ops())), max_size=30).map(
        lambda ops: ",".join(f"{o},0" for o in ["rawprepare", *ops, "gamma"])),
)


@hyp
@given(fields, lists, st.sampled_from(["attr", "element", "raw"]),
       st.one_of(st.none(), st.integers(0, 7).map(str), st.text(max_size=5)))
def test_random_xmp_like_text_raises_only_sidecar_error(scratch, version, text, form, xmp_version):
    if form == "raw":  # unescaped values: often not even XML
        doc = DT_XMP.format(xmp_version=xmp_version,
                            attrs=f'\n darktable:iop_order_version="{version}"',
                            elements=f"<darktable:iop_order_list>{text}</darktable:iop_order_list>")
    else:
        doc = dt_xmp(version=version, text=text, form=form,
                     xmp_version=escape(xmp_version or "5", {'"': "&quot;"}))
    scratch.write_bytes(doc.encode("utf-8", "surrogatepass"))
    _read_only_sidecar_errors(scratch)


def test_pixelpipe_only_modules_are_known():
    # guards the notices asserted above: if the anchors file changes, update them
    assert set(PIXELPIPE_ONLY) == {"neural_denoise", "neural_upscale"}
