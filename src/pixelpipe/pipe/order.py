"""Module order: darktable's iop order lists, rules, moves, instances and forms.

An :class:`IopOrder` is the pipe order as a list of entries ``(op, instance)``;
the position in the list *is* the order (darktable renumbers its floats at
run time, so they carry no information and are not kept here).

The facts (the five built-in tables, the 14 rules, the migration pairs, the
enum values) live in ``pipe/data/darktable_iop_order.json``; pixelpipe-only
modules and their anchors in ``pipe/data/pixelpipe_anchors.json``.

Loading a stored list (text or binary form) normalises it the way darktable
does, plus one step of our own:

1. the list must start with ``rawprepare`` and end with ``gamma``;
2. modules newer than the list are inserted by darktable's migration pairs
   (``[anchor, new]``: ``new`` goes right before ``anchor``);
3. any darktable module still missing goes right after the last entry of its
   nearest predecessor in the reference table (v5.0 unless told otherwise) that
   the list has, so a run of missing modules keeps its reference order;
4. pixelpipe-only modules go next to their anchor.

An insertion that would break a rule is moved to the nearest position that
keeps every rule. The result must pass :meth:`IopOrder.check`.

Moves mirror darktable's Ctrl+Shift drag: the entries passed over are walked
one by one and the move is refused at the first rule or fence module; the
ends (rawprepare first, gamma last) never change.
"""
from __future__ import annotations

import json
import re
import struct
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator, Literal, NamedTuple, overload

from pixelpipe import userdirs
from pixelpipe.errors import OrderError
from pixelpipe.io.atomic import atomic_write

# --------------------------------------------------------------------------
# package data


def _load_json(name: str) -> dict:
    ref = resources.files("pixelpipe.pipe") / "data" / name
    return json.loads(ref.read_text(encoding="utf-8"))


_DT = _load_json("darktable_iop_order.json")
_PP = _load_json("pixelpipe_anchors.json")

#: enum ``dt_iop_order_t`` (custom=0, legacy=1, ... v50_jpg=5)
ORDER_VERSIONS: dict[str, int] = dict(_DT["enum_dt_iop_order_t"])
#: the built-in order names, in enum order (kind detection tries them in this order)
ORDER_PRESETS: tuple[str, ...] = tuple(
    k for k, _ in sorted(ORDER_VERSIONS.items(), key=lambda kv: kv[1]) if k != "custom"
)
#: darktable's UI names ("v5.0 RAW", ...), including "custom"
UI_NAMES: dict[str, str] = dict(_DT["ui_names"])
#: [prev, next]: prev may never move after next
RULES: tuple[tuple[str, str], ...] = tuple((a, b) for a, b in _DT["rules"])
#: [anchor, new]: a stored list lacking new gets it right before anchor
MIGRATION_INSERT_BEFORE: tuple[tuple[str, str], ...] = tuple(
    (a, n) for a, n in _DT["migration_insert_before"]
)
_TABLES: dict[str, tuple[str, ...]] = {name: tuple(_DT[name]) for name in ORDER_PRESETS}
#: every operation darktable's tables know
DARKTABLE_OPS: frozenset[str] = frozenset(_TABLES["v50"])
#: pixelpipe-only modules: op -> {"after": anchor} or {"before": anchor}
PIXELPIPE_ONLY: dict[str, dict[str, str]] = {k: dict(v) for k, v in _PP["modules"].items()}
#: ops with darktable's IOP_FLAGS_FENCE (can neither move nor be crossed)
DEFAULT_FENCES: frozenset[str] = frozenset(_PP.get("fences", []))

FIRST_OP, LAST_OP = "rawprepare", "gamma"  # darktable's sanity check on every list
MAX_INSTANCE = 1000  # darktable's limit in the binary form; we apply it everywhere
MAX_NAME_LEN = 20
_RULE_SET = frozenset(RULES)
_OP_RE = re.compile(r"[a-z][a-z0-9_]{0,19}")
_INSTANCE_RE = re.compile(r"[0-9]{1,4}")


def _validate_data() -> None:
    # A packaging mistake should fail loudly at import, not as a strange order later.
    for name, table in _TABLES.items():
        if len(set(table)) != len(table) or set(table) != DARKTABLE_OPS:
            raise RuntimeError(f"darktable_iop_order.json: table {name} is not a permutation of v50")
        if table[0] != FIRST_OP or table[-1] != LAST_OP:
            raise RuntimeError(f"darktable_iop_order.json: table {name} must run rawprepare..gamma")
    known = set(DARKTABLE_OPS)
    for op, spec in PIXELPIPE_ONLY.items():
        if op in DARKTABLE_OPS or not _OP_RE.fullmatch(op):
            raise RuntimeError(f"pixelpipe_anchors.json: bad pixelpipe-only op {op!r}")
        side, anchor = next(iter(spec.items())) if len(spec) == 1 else (None, None)
        if side not in ("after", "before") or anchor not in known:
            raise RuntimeError(f"pixelpipe_anchors.json: {op} needs one 'after'/'before' known anchor")
        known.add(op)


_validate_data()


# --------------------------------------------------------------------------
# entries


class Entry(NamedTuple):
    """One slot of the pipe: an operation and its instance (darktable's multi_priority)."""

    op: str
    instance: int = 0


def _label(op: str, instance: int) -> str:
    return op if instance == 0 else f"{op} (instance {instance})"


def _check_op(op: object, where: str = "") -> str:
    if not isinstance(op, str) or not _OP_RE.fullmatch(op):
        raise OrderError(
            f"invalid module name {op!r}{where}: expected 1-{MAX_NAME_LEN} characters a-z, 0-9, _"
        )
    return op


def _check_instance(inst: object, where: str = "") -> int:
    if isinstance(inst, bool) or not isinstance(inst, int) or not 0 <= inst <= MAX_INSTANCE:
        raise OrderError(f"invalid instance {inst!r}{where}: expected an integer 0-{MAX_INSTANCE}")
    return inst


def _collapsed(ops: Iterable[str]) -> tuple[str, ...]:
    # darktable's kind detection treats consecutive instances of one op as one entry
    out: list[str] = []
    for op in ops:
        if not out or out[-1] != op:
            out.append(op)
    return tuple(out)


# --------------------------------------------------------------------------
# the order


class IopOrder:
    """An ordered list of ``(op, instance)`` entries; see the module docstring.

    ``fences`` is the set of ops that carry darktable's FENCE flag (default from
    package data). Entries are validated (names, instances 0-1000, no duplicate
    entry); structural rules are checked by :meth:`check`.
    """

    __slots__ = ("_entries", "fences")

    def __init__(self, entries: Iterable[tuple[str, int]] = (), *, fences: Iterable[str] | None = None):
        self.fences: frozenset[str] = DEFAULT_FENCES if fences is None else frozenset(fences)
        self._entries: list[Entry] = []
        seen: set[Entry] = set()
        for item in entries:
            try:
                op, inst = item
            except (TypeError, ValueError):
                raise OrderError(f"invalid order entry {item!r}: expected (op, instance)") from None
            e = Entry(_check_op(op), _check_instance(inst))
            if e in seen:
                raise OrderError(f"duplicate entry {_label(*e)} in the order")
            seen.add(e)
            self._entries.append(e)

    # ---- construction

    @classmethod
    def from_preset(cls, name: str, *, fences: Iterable[str] | None = None) -> IopOrder:
        """A built-in order ("legacy", "v30", "v30_jpg", "v50", "v50_jpg"), instance 0 each."""
        table = _TABLES.get(name) if isinstance(name, str) else None
        if table is None:
            raise OrderError(f"unknown order preset {name!r}; built-in: {', '.join(ORDER_PRESETS)}")
        order = cls(((op, 0) for op in table), fences=fences)
        order._insert_pixelpipe_only()
        return order

    @classmethod
    def default_for(cls, is_raw: bool, workflow: str = "scene-referred", *,
                    fences: Iterable[str] | None = None) -> IopOrder:
        """darktable's default for a new edit: raw (incl. DNG) → v50, other → v50_jpg,
        display-referred workflow → legacy.

        ``workflow`` takes darktable's preference values ("scene-referred (sigmoid)",
        "display-referred (legacy)", "none", ...) or their short forms.
        """
        return cls.from_preset(default_preset_name(is_raw, workflow), fences=fences)

    def copy(self) -> IopOrder:
        new = IopOrder.__new__(IopOrder)
        new.fences = self.fences
        new._entries = list(self._entries)
        return new

    # ---- reading

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def ops(self) -> list[str]:
        """Distinct op names in pipe order (first appearance)."""
        return list(dict.fromkeys(e.op for e in self._entries))

    def instances(self, op: str) -> list[int]:
        """Instances of ``op`` in pipe order."""
        return [e.instance for e in self._entries if e.op == op]

    def position(self, op: str, instance: int = 0) -> int:
        """0-based index of the entry in the pipe."""
        try:
            return self._entries.index(Entry(op, instance))
        except ValueError:
            raise OrderError(f"{_label(op, instance)} is not in the order") from None

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return any(e.op == item for e in self._entries)
        return item in self._entries

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IopOrder):
            return NotImplemented
        return self._entries == other._entries

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"<IopOrder {self.kind()} {len(self._entries)} entries>"

    # ---- kind, checks

    def kind(self) -> str:
        """The built-in name this order matches, else "custom".

        Consecutive instances of one op count as one entry (as in darktable);
        pixelpipe-only modules are ignored, darktable never sees them.
        """
        seq = _collapsed(e.op for e in self._entries if e.op not in PIXELPIPE_ONLY)
        for name in ORDER_PRESETS:
            if seq == _TABLES[name]:
                return name
        return "custom"

    def version(self) -> int:
        """darktable's ``iop_order_version`` enum value of :meth:`kind`."""
        return ORDER_VERSIONS[self.kind()]

    def ui_name(self) -> str:
        return UI_NAMES[self.kind()]

    def has_multi_instances(self) -> bool:
        """True when some darktable op has more than one instance."""
        ops = [e.op for e in self._entries if e.op not in PIXELPIPE_ONLY]
        return len(ops) != len(set(ops))

    def problems(self) -> list[str]:
        """Everything :meth:`check` would refuse, as messages (empty when valid)."""
        es = self._entries
        if not es:
            return ["the order is empty"]
        out: list[str] = []
        if es[0].op != FIRST_OP:
            out.append(f"the order must start with {FIRST_OP}, not {es[0].op}")
        if es[-1].op != LAST_OP:
            out.append(f"the order must end with {LAST_OP}, not {es[-1].op}")
        if len(set(es)) != len(es):
            dups = sorted({_label(*e) for e in es if es.count(e) > 1})
            out.append(f"duplicate entries: {', '.join(dups)}")
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for i, e in enumerate(es):
            first.setdefault(e.op, i)
            last[e.op] = i
        for a, b in RULES:
            if a in first and b in first and last[a] > first[b]:
                out.append(f"rule: {a} must stay before {b}")
        return out

    def check(self) -> None:
        """Raise :class:`OrderError` naming the first problem (start/end, rule, duplicate)."""
        probs = self.problems()
        if probs:
            raise OrderError("invalid module order: " + "; ".join(probs))

    # ---- moves (darktable's Ctrl+Shift drag)

    def move_before(self, op: str, instance: int, anchor_op: str, anchor_instance: int = 0) -> None:
        """Move the entry directly before the anchor entry, or raise OrderError naming the
        rule or fence that forbids it. The order is unchanged on refusal."""
        self._move(Entry(op, instance), Entry(anchor_op, anchor_instance), after=False)

    def move_after(self, op: str, instance: int, anchor_op: str, anchor_instance: int = 0) -> None:
        """Move the entry directly after the anchor entry (see :meth:`move_before`)."""
        self._move(Entry(op, instance), Entry(anchor_op, anchor_instance), after=True)

    def why_not_move(self, op: str, instance: int, anchor_op: str, anchor_instance: int = 0,
                     *, after: bool = False) -> str | None:
        """The reason a move would be refused, or None when it is allowed."""
        try:
            self._plan_move(Entry(op, instance), Entry(anchor_op, anchor_instance), after)
        except OrderError as exc:
            return str(exc)
        return None

    def _plan_move(self, moving: Entry, anchor: Entry, after: bool) -> None:
        i = self.position(*moving)
        j = self.position(*anchor)
        where = "after" if after else "before"
        what = f"cannot move {_label(*moving)} {where} {_label(*anchor)}"
        if i == j:
            raise OrderError(f"{what}: it is the same entry")
        if moving.op in self.fences:
            raise OrderError(f"{what}: {moving.op} is a fence module and cannot be moved")
        # The entries the move passes over, nearest first, like darktable's walk.
        if i < j:
            forward = True
            crossed = self._entries[i + 1: j + 1 if after else j]
        else:
            forward = False
            crossed = self._entries[j + 1 if after else j: i][::-1]
        for other in crossed:
            if other.op in self.fences:
                raise OrderError(f"{what}: it would cross the fence module {other.op}")
            if other.op == moving.op:
                continue  # instances of one op may reorder among themselves
            pair = (moving.op, other.op) if forward else (other.op, moving.op)
            if pair in _RULE_SET:
                raise OrderError(f"{what}: rule: {pair[0]} must stay before {pair[1]}")
        # The ends are fixed too (darktable hides both modules, so nothing is dragged there).
        if moving.op == FIRST_OP or (anchor.op == FIRST_OP and not after):
            raise OrderError(f"{what}: {FIRST_OP} must stay the first module")
        if moving.op == LAST_OP or (anchor.op == LAST_OP and after):
            raise OrderError(f"{what}: {LAST_OP} must stay the last module")

    def _move(self, moving: Entry, anchor: Entry, *, after: bool) -> None:
        self._plan_move(moving, anchor, after)
        self._entries.remove(moving)
        k = self._entries.index(anchor)
        self._entries.insert(k + 1 if after else k, moving)

    # ---- instances

    def add_instance(self, op: str) -> int:
        """Add a new instance of ``op`` and return its number (highest + 1).

        Like darktable, it goes right before the entry with the highest instance.
        """
        idx = [i for i, e in enumerate(self._entries) if e.op == op]
        if not idx:
            raise OrderError(f"{op} is not in the order; cannot add an instance")
        top = max(idx, key=lambda i: self._entries[i].instance)
        new = self._entries[top].instance + 1
        if new > MAX_INSTANCE:
            raise OrderError(f"{op} cannot have more than {MAX_INSTANCE} as instance number")
        self._entries.insert(top, Entry(op, new))
        return new

    def remove_instance(self, op: str, instance: int) -> None:
        """Remove one instance; the last remaining instance of an op cannot be removed."""
        i = self.position(op, instance)
        if len(self.instances(op)) == 1:
            raise OrderError(f"cannot remove {_label(op, instance)}: it is the only instance of {op}")
        del self._entries[i]

    # ---- pixelpipe-only modules

    def without_pixelpipe_only(self) -> tuple[IopOrder, list[str]]:
        """A copy without pixelpipe-only modules, and one notice per dropped op."""
        dropped = list(dict.fromkeys(e.op for e in self._entries if e.op in PIXELPIPE_ONLY))
        kept = self.copy()
        kept._entries = [e for e in self._entries if e.op not in PIXELPIPE_ONLY]
        return kept, [f"dropped pixelpipe-only module {op}" for op in dropped]

    def _insert_pixelpipe_only(self) -> None:
        # Only where the anchor is present; normalised orders always have it.
        for op, spec in PIXELPIPE_ONLY.items():
            if op in self:
                continue
            if "after" in spec and spec["after"] in self:
                idx = max(i for i, e in enumerate(self._entries) if e.op == spec["after"]) + 1
            elif "before" in spec and spec["before"] in self:
                idx = min(i for i, e in enumerate(self._entries) if e.op == spec["before"])
            else:
                continue
            self._insert_legal(Entry(op, 0), idx)

    # ---- normalisation of stored lists

    def _first_index(self, op: str) -> int:
        return next(i for i, e in enumerate(self._entries) if e.op == op)

    def _last_index(self, op: str) -> int:
        return max(i for i, e in enumerate(self._entries) if e.op == op)

    def _insert_legal(self, entry: Entry, idx: int) -> None:
        # Keep rawprepare first and gamma last, and every rule about this op;
        # the nearest legal index to the wanted one is used.
        lo, hi = 1, len(self._entries) - 1
        for a, b in RULES:
            if b == entry.op and a in self:
                lo = max(lo, self._last_index(a) + 1)
            if a == entry.op and b in self:
                hi = min(hi, self._first_index(b))
        if lo > hi:
            raise OrderError(f"no position for {entry.op} keeps the module order rules")
        self._entries.insert(min(max(idx, lo), hi), entry)

    @classmethod
    def _from_stored(cls, pairs: list[tuple[str, int]], reference: str,
                     fences: Iterable[str] | None) -> IopOrder:
        if reference not in _TABLES:
            raise OrderError(f"unknown reference order {reference!r}; built-in: {', '.join(ORDER_PRESETS)}")
        if not pairs:
            raise OrderError("the module order list is empty")
        order = cls(pairs, fences=fences)
        if pairs[0][0] != FIRST_OP or pairs[-1][0] != LAST_OP:
            raise OrderError(
                f"a module order list must start with {FIRST_OP} and end with {LAST_OP} "
                f"(it runs {pairs[0][0]} .. {pairs[-1][0]})"
            )
        for anchor, new in MIGRATION_INSERT_BEFORE:
            if new not in order and anchor in order:
                order._insert_legal(Entry(new, 0), order._first_index(anchor))
        table = _TABLES[reference]
        for k, op in enumerate(table):
            if op in order:
                continue
            prev = next((p for p in reversed(table[:k]) if p in order), None)
            order._insert_legal(Entry(op, 0), order._last_index(prev) + 1 if prev else 1)
        order._insert_pixelpipe_only()
        order.check()
        return order

    # ---- text form: "op,inst,op,inst,..."

    @overload
    def to_text(self, *, for_darktable: Literal[False] = False) -> str: ...
    @overload
    def to_text(self, *, for_darktable: Literal[True]) -> tuple[str, list[str]]: ...

    def to_text(self, *, for_darktable: bool = False):
        """darktable's ``iop_order_list`` text. With ``for_darktable=True`` the
        pixelpipe-only modules are dropped and ``(text, notices)`` is returned."""
        if for_darktable:
            order, notices = self.without_pixelpipe_only()
            return order.to_text(), notices
        return ",".join(f"{e.op},{e.instance}" for e in self._entries)

    @classmethod
    def from_text(cls, text: str, *, reference: str = "v50",
                  fences: Iterable[str] | None = None) -> IopOrder:
        """Parse and normalise a stored text list (see the module docstring).

        Anything malformed raises OrderError. Ops neither darktable's nor ours
        (from a newer darktable) are kept where they are; ``reference`` is the
        table that places missing modules.
        """
        if not isinstance(text, str):
            raise OrderError(f"a module order list must be text, not {type(text).__name__}")
        tokens = [t.strip() for t in text.strip().split(",")]
        if tokens == [""]:
            raise OrderError("the module order list is empty")
        if len(tokens) % 2:
            raise OrderError(f"the module order list has {len(tokens)} items; expected op,instance pairs")
        pairs: list[tuple[str, int]] = []
        for k in range(0, len(tokens), 2):
            where = f" at item {k + 1} of the module order list"
            op = _check_op(tokens[k], where)
            if not _INSTANCE_RE.fullmatch(tokens[k + 1]):
                raise OrderError(f"invalid instance {tokens[k + 1]!r} for {op}{where}")
            pairs.append((op, _check_instance(int(tokens[k + 1]), where)))
        return cls._from_stored(pairs, reference, fences)

    # ---- binary form (presets/styles): [int32 len][name][int32 instance]...

    @overload
    def to_binary(self, *, for_darktable: Literal[False] = False) -> bytes: ...
    @overload
    def to_binary(self, *, for_darktable: Literal[True]) -> tuple[bytes, list[str]]: ...

    def to_binary(self, *, for_darktable: bool = False):
        """darktable's binary form, little-endian int32s (as written on x86/ARM)."""
        if for_darktable:
            order, notices = self.without_pixelpipe_only()
            return order.to_binary(), notices
        out = bytearray()
        for e in self._entries:
            name = e.op.encode("ascii")
            out += struct.pack("<i", len(name)) + name + struct.pack("<i", e.instance)
        return bytes(out)

    @classmethod
    def from_binary(cls, data: bytes, *, reference: str = "v50",
                    fences: Iterable[str] | None = None) -> IopOrder:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise OrderError(f"a binary module order must be bytes, not {type(data).__name__}")
        buf = bytes(data)
        pos = 0
        pairs: list[tuple[str, int]] = []
        while pos < len(buf):
            if pos + 4 > len(buf):
                raise OrderError(f"binary module order truncated at byte {pos}")
            (n,) = struct.unpack_from("<i", buf, pos)
            if not 1 <= n <= MAX_NAME_LEN:
                raise OrderError(f"binary module order: name length {n} at byte {pos} (1-{MAX_NAME_LEN})")
            pos += 4
            if pos + n + 4 > len(buf):
                raise OrderError(f"binary module order truncated at byte {pos}")
            raw = buf[pos:pos + n]
            pos += n
            name = raw.decode("ascii", errors="replace")
            (inst,) = struct.unpack_from("<i", buf, pos)
            pos += 4
            where = f" at byte {pos - n - 8} of the binary module order"
            pairs.append((_check_op(name, where), _check_instance(inst, where)))
        return cls._from_stored(pairs, reference, fences)


# --------------------------------------------------------------------------
# helpers


def default_preset_name(is_raw: bool, workflow: str = "scene-referred") -> str:
    """Name of darktable's default order for a new edit (see IopOrder.default_for)."""
    wf = workflow.strip().lower() if isinstance(workflow, str) else ""
    if wf.startswith("display-referred"):
        return "legacy"
    if not (wf.startswith("scene-referred") or wf == "none"):
        raise OrderError(
            f"unknown workflow {workflow!r}; expected scene-referred (sigmoid|filmic|AgX), "
            "display-referred (legacy) or none"
        )
    return "v50" if is_raw else "v50_jpg"


def kind_name(version: int) -> str:
    """The order name of a ``dt_iop_order_t`` value (0 → "custom")."""
    for name, v in ORDER_VERSIONS.items():
        if v == version:
            return name
    raise OrderError(f"unknown module order version {version!r}; known: 0-{max(ORDER_VERSIONS.values())}")


def when_list_written(order: IopOrder) -> bool:
    """darktable stores the list only for a custom order or one with multiple instances
    (otherwise the version alone says it all). Pixelpipe-only modules do not count."""
    return order.kind() == "custom" or order.has_multi_instances()


# --------------------------------------------------------------------------
# user-named order presets: config_dir()/orders/NAME.json

_PRESET_FORMAT = "pixelpipe.module-order"
_PRESET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")


def _orders_dir() -> Path:
    return userdirs.config_dir() / "orders"


def _builtin_names() -> set[str]:
    return {n.casefold() for n in (*ORDER_VERSIONS, *UI_NAMES.values())}


def _preset_path(name: str) -> Path:
    if (not isinstance(name, str) or not _PRESET_NAME_RE.fullmatch(name)
            or name != name.rstrip() or name.endswith(".")):
        raise OrderError(
            f"invalid order preset name {name!r}: up to 64 letters, digits, space, _ . + -, "
            "starting with a letter or digit"
        )
    return _orders_dir() / f"{name}.json"


def save_order_preset(name: str, order: IopOrder, *, overwrite: bool = True) -> Path:
    """Store ``order`` under a user name; built-in names ("v50", "v5.0 RAW", "custom"...) are refused."""
    path = _preset_path(name)
    if name.casefold() in _builtin_names():
        raise OrderError(f"order preset name {name!r} is a built-in order name; choose another")
    if not isinstance(order, IopOrder):
        raise OrderError(f"not a module order: {type(order).__name__}")
    order.check()
    if path.exists() and not overwrite:
        raise OrderError(f"order preset {name!r} exists", path=path)
    doc = {"format": _PRESET_FORMAT, "version": 1, "name": name, "iop_order_list": order.to_text()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def load_order_preset(name: str, *, fences: Iterable[str] | None = None) -> IopOrder:
    """A built-in order by name, or a user preset saved with :func:`save_order_preset`."""
    if isinstance(name, str) and name in _TABLES:
        return IopOrder.from_preset(name, fences=fences)
    path = _preset_path(name)
    if not path.is_file():
        have = list_order_presets()
        raise OrderError(
            f"no order preset {name!r}; built-in: {', '.join(ORDER_PRESETS)}"
            + (f"; saved: {', '.join(have)}" if have else "")
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OrderError(f"unreadable order preset: {exc}", path=path) from None
    if not isinstance(doc, dict) or doc.get("format") != _PRESET_FORMAT or not isinstance(
        doc.get("iop_order_list"), str
    ):
        raise OrderError("not a pixelpipe module order preset", path=path)
    try:
        return IopOrder.from_text(doc["iop_order_list"], fences=fences)
    except OrderError as exc:
        raise OrderError(str(exc), path=path) from None


def list_order_presets() -> list[str]:
    """Names of the user's saved order presets (built-ins are in ORDER_PRESETS)."""
    d = _orders_dir()
    if not d.is_dir():
        return []
    return sorted(
        p.stem for p in d.glob("*.json")
        if _PRESET_NAME_RE.fullmatch(p.stem) and p.stem.casefold() not in _builtin_names()
    )


def delete_order_preset(name: str) -> None:
    path = _preset_path(name)
    if not path.is_file():
        raise OrderError(f"no saved order preset {name!r}")
    path.unlink()
