"""darktable XMP sidecars: the module-order fields only.

darktable keeps the pipe order of an edit in two top-level properties of its
sidecar ``IMAGE.EXT.xmp``:

- ``darktable:iop_order_version``: the ``dt_iop_order_t`` enum (0 custom,
  1 legacy, 2 v3.0 RAW, 3 v3.0 JPEG, 4 v5.0 RAW, 5 v5.0 JPEG);
- ``darktable:iop_order_list``: the text list ``op,inst,...``, present only for
  a custom order or one with multiple instances.

Exiv2 writes them as attributes of ``rdf:Description``; the element form
(``<darktable:iop_order_list>...</...>``) is equally valid XMP and is read too.
darktable reads these only from sidecars with ``darktable:xmp_version`` >= 4;
older sidecars mean the legacy order (version 3: a stored version < 3 is
legacy, otherwise v3.0). A sidecar without any of these fields says nothing
about the order: ``read_xmp_order`` then returns ``(None, None)``.

Sidecars are read, never modified; :func:`write_xmp_order` only creates new files.
"""
from __future__ import annotations

import codecs
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

from pixelpipe import __version__
from pixelpipe.errors import OrderError, SidecarError
from pixelpipe.io.atomic import atomic_write
from pixelpipe.pipe.order import IopOrder, kind_name, when_list_written

NS_DARKTABLE = "http://darktable.sf.net/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_X = "adobe:ns:meta/"
_VERSION_KEY = f"{{{NS_DARKTABLE}}}iop_order_version"
_LIST_KEY = f"{{{NS_DARKTABLE}}}iop_order_list"
_XMP_VERSION_KEY = f"{{{NS_DARKTABLE}}}xmp_version"
#: darktable's DT_XMP_EXIF_VERSION; it reads the order fields only from version >= 4
XMP_VERSION = 5
MAX_SIDECAR_BYTES = 64 * 1024 * 1024  # sidecars are kilobytes; refuse anything absurd

_DECL_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_DECL_RE = re.compile(r"\A\s*<\?xml[^>]*\?>")
_ENCODING_RE = re.compile(r"""\A\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_INT_RE = re.compile(r"[+-]?[0-9]{1,18}")


def _decode(data: bytes, path: Path) -> str:
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                     (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            break
    else:
        m = _ENCODING_RE.match(data[:200].decode("latin-1"))
        enc = m.group(1) if m else "utf-8"
    try:
        codecs.lookup(enc)
        return data.decode(enc)
    except (LookupError, UnicodeError, ValueError) as exc:
        raise SidecarError(f"cannot decode the XMP as {enc}: {exc}", path=path) from None


def _parse(path: Path) -> ET.Element:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise SidecarError(f"cannot read the XMP sidecar: {exc.strerror or exc}", path=path) from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"XMP sidecar larger than {MAX_SIDECAR_BYTES} bytes", path=path)
    text = _decode(data, path)
    # No DTD means no entity expansion (billion laughs) and no external entities.
    if _DECL_RE.search(text):
        raise SidecarError("XMP with DOCTYPE/ENTITY declarations is refused", path=path)
    # Already decoded: the declared encoding must not be applied a second time.
    text = _XML_DECL_RE.sub("", text, count=1)
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise SidecarError(f"XMP is not well-formed XML: {exc}", path=path) from None
    except (ValueError, RecursionError) as exc:
        raise SidecarError(f"XMP cannot be parsed: {exc}", path=path) from None


def _descriptions(root: ET.Element, path: Path) -> list[ET.Element]:
    if root.tag == f"{{{NS_RDF}}}RDF":
        rdfs = [root]
    elif root.tag in (f"{{{NS_X}}}xmpmeta", f"{{{NS_X}}}xapmeta"):
        rdfs = root.findall(f"{{{NS_RDF}}}RDF")
        if not rdfs:
            raise SidecarError("XMP has no rdf:RDF element", path=path)
    else:
        raise SidecarError(f"not an XMP packet (root element {root.tag})", path=path)
    return [d for rdf in rdfs for d in rdf.findall(f"{{{NS_RDF}}}Description")]


def _property(descs: list[ET.Element], key: str, name: str, path: Path) -> str | None:
    # A property may be an attribute or a child element, in any rdf:Description;
    # several differing values make the sidecar ambiguous.
    values: list[str] = []
    for d in descs:
        if key in d.attrib:
            values.append(d.attrib[key])
        for el in d.findall(key):
            if len(el) or (el.text is None and el.attrib):
                raise SidecarError(f"darktable:{name} is not a simple text value", path=path)
            values.append(el.text or "")
    values = [v.strip() for v in values]
    if not values:
        return None
    if len(set(values)) > 1:
        raise SidecarError(f"darktable:{name} has conflicting values", path=path)
    return values[0]


def _int_property(descs: list[ET.Element], key: str, name: str, path: Path) -> int | None:
    raw = _property(descs, key, name, path)
    if raw is None:
        return None
    if not _INT_RE.fullmatch(raw):
        raise SidecarError(f"darktable:{name} is not an integer: {raw[:40]!r}", path=path)
    return int(raw)


def read_xmp_order(path: str | os.PathLike) -> tuple[int | None, str | None]:
    """``(iop_order_version, iop_order_list)`` of a darktable sidecar; each None when absent.

    Sidecars written before darktable's xmp_version 4 are mapped as darktable
    maps them (legacy, or v3.0 for xmp_version 3 with a stored version >= 3),
    with no list. Malformed files raise :class:`SidecarError`.
    """
    p = Path(path)
    descs = _descriptions(_parse(p), p)
    xmp_version = _int_property(descs, _XMP_VERSION_KEY, "xmp_version", p)
    version = _int_property(descs, _VERSION_KEY, "iop_order_version", p)
    text = _property(descs, _LIST_KEY, "iop_order_list", p)
    if xmp_version is not None and xmp_version < 4:
        if xmp_version == 3 and version is not None and version >= 3:
            return 2, None  # v3.0
        return 1, None  # legacy
    return version, (text or None)


def order_from_xmp(version: int | None, text: str | None, *,
                   path: str | os.PathLike | None = None) -> IopOrder:
    """The :class:`IopOrder` described by a sidecar's two fields.

    A list, when present, wins (it carries instances or a custom order); else
    the version names a built-in order. CUSTOM without a list is rejected, as
    darktable does. No field at all means the legacy order (pre-3.0 sidecars).
    Problems raise :class:`SidecarError` naming ``path``.
    """
    if text is not None and text.strip():
        if version is not None:
            _check_version(version, path)
        try:
            return IopOrder.from_text(text)
        except OrderError as exc:
            raise SidecarError(f"bad darktable:iop_order_list: {exc}", path=path) from None
    if version is None:
        return IopOrder.from_preset("legacy")
    name = _check_version(version, path)
    if name == "custom":
        raise SidecarError("darktable:iop_order_version is custom (0) but there is no iop_order_list",
                           path=path)
    return IopOrder.from_preset(name)


def _check_version(version: int, path) -> str:
    try:
        return kind_name(version)
    except OrderError as exc:
        raise SidecarError(f"darktable:iop_order_version: {exc}", path=path) from None


def load_xmp_order(path: str | os.PathLike) -> IopOrder:
    """read_xmp_order + order_from_xmp."""
    version, text = read_xmp_order(path)
    return order_from_xmp(version, text, path=path)


def xmp_order_document(order: IopOrder) -> tuple[str, list[str]]:
    """The text of a minimal darktable sidecar carrying ``order``, and notices."""
    order.check()
    attrs = [("darktable:xmp_version", str(XMP_VERSION)),
             ("darktable:iop_order_version", str(order.version()))]
    notices: list[str] = []
    if when_list_written(order):
        text, notices = order.to_text(for_darktable=True)
        attrs.append(("darktable:iop_order_list", text))
    else:
        _, notices = order.without_pixelpipe_only()
    attr_lines = "".join(f"\n   {k}={quoteattr(v)}" for k, v in attrs)
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<x:xmpmeta xmlns:x="{NS_X}" x:xmptk={quoteattr("pixelpipe " + __version__)}>\n'
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:darktable="{NS_DARKTABLE}"{attr_lines}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
    )
    return doc, notices


def write_xmp_order(path: str | os.PathLike, order: IopOrder, *, overwrite: bool = False) -> list[str]:
    """Write a NEW minimal sidecar with the order fields; return notices (dropped
    pixelpipe-only modules). An existing file is refused unless ``overwrite``.

    ``darktable:xmp_version`` is written too: darktable ignores the order fields
    of sidecars below version 4.
    """
    doc, notices = xmp_order_document(order)
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(doc.encode("utf-8"))
    return notices
