"""The edit: module instances, their parameters and enabled state, and the order.

An :class:`Edit` is what a sidecar stores. pixelpipe's own sidecar is
``IMAGE.EXT.pixelpipe.json``; darktable's ``IMAGE.EXT.xmp`` is only read (for
its module order) and never modified.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..blend.params import BlendParams, from_sidecar as blend_from_sidecar
from ..errors import OrderError, ParamsError, PixelpipeError, SidecarError
from ..io.source import SourceImage
from ..modules import registry
from ..modules.base import Flags, Params
from .order import IopOrder

SIDECAR_FORMAT = "pixelpipe-edit"
SIDECAR_VERSION = 1


@functools.lru_cache(maxsize=None)
def workflows() -> dict:
    return json.loads(resources.files(__package__).joinpath("data/workflows.json").read_text())


def workflow_names() -> list[str]:
    w = workflows()
    return list(w["workflows"]) + list(w["aliases"])


CHROMATIC_ADAPTATIONS = ("modern", "legacy")


def chromatic_adaptation_for(workflow: str, chromatic_adaptation: str | None = None) -> str:
    """The chromatic adaptation a new edit of ``workflow`` gets: ``chromatic_adaptation``, else
    the workflow's default ("modern" for the scene-referred ones, "legacy" otherwise)."""
    if chromatic_adaptation is None:
        return workflows()["workflows"][canonical_workflow(workflow)].get("chromatic_adaptation", "legacy")
    if chromatic_adaptation not in CHROMATIC_ADAPTATIONS:
        raise PixelpipeError(f"unknown chromatic adaptation {chromatic_adaptation!r}; choose one of "
                             f"{', '.join(CHROMATIC_ADAPTATIONS)}")
    return chromatic_adaptation


def canonical_workflow(name: str) -> str:
    w = workflows()
    name = w["aliases"].get(name, name)
    if name not in w["workflows"]:
        raise PixelpipeError(f"unknown workflow {name!r}; choose one of {', '.join(workflow_names())}")
    return name


@dataclass
class ModuleInstance:
    """One instance of one module in an edit."""

    op: str
    instance: int = 0
    enabled: bool = True
    params: Params | None = None  # None: the module's defaults for the image
    name: str = ""
    #: blending & masks (pixelpipe.blend.BlendParams); None: no blending
    blend: "BlendParams | None" = None

    def label(self) -> str:
        return self.op if self.instance == 0 else f"{self.op}#{self.instance}"


@dataclass
class Edit:
    """Everything the user changed, independent of pixels."""

    instances: list[ModuleInstance] = field(default_factory=list)
    order: IopOrder = field(default_factory=lambda: IopOrder.from_preset("v50"))
    workflow: str = "scene-referred-sigmoid"
    notices: list[str] = field(default_factory=list)

    # ---- construction
    @classmethod
    def default_for(cls, image: SourceImage, workflow: str = "scene-referred-sigmoid",
                    order: str | IopOrder | None = None, chromatic_adaptation: str | None = None) -> "Edit":
        """A new edit as darktable would start it for this image and workflow.

        ``chromatic_adaptation`` (darktable's preference of that name): "modern" (white
        balance at the camera reference D65, color calibration adapts from the as-shot
        illuminant), "legacy" (as-shot white balance, no color calibration: darktable
        4.2's shipped setting) or None for the workflow's default (workflows.json).
        """
        wf_name = canonical_workflow(workflow)
        wf = workflows()["workflows"][wf_name]
        ca = chromatic_adaptation_for(wf_name, chromatic_adaptation)
        edit = cls(workflow=wf_name)
        if isinstance(order, IopOrder):
            edit.order = order.copy()
        elif order:
            edit.order = order_by_name(order)
        elif "order" in wf:
            edit.order = IopOrder.from_preset(wf["order"])
        else:
            edit.order = IopOrder.default_for(image.is_raw, "scene-referred")
        reg = registry()
        for op, cls_ in reg.items():
            if cls_.default_enabled and _applies(cls_, image):
                edit.instances.append(ModuleInstance(op, 0, True, None))
        for m in workflows()["chromatic_adaptation"][ca] + wf["modules"]:
            if m.get("raw_only") and not image.is_raw:
                continue
            if any(r not in reg for r in m.get("requires", ())):
                continue  # e.g. camera-reference white balance only together with color calibration
            if m["op"] not in reg:
                edit.notices.append(f"workflow {wf_name}: module {m['op']} is not available in this "
                                    "version and was left out")
                continue
            mod = reg[m["op"]]()
            params = mod.Params.from_dict(m["op"], {**mod.default_params(image).to_dict(), **m["params"]})
            inst = edit.find(m["op"])
            if inst is None:
                edit.instances.append(ModuleInstance(m["op"], 0, True, params))
            else:
                inst.enabled, inst.params = True, params
        # darktable's auto-applied presets: matched by camera, lens, ISO and format (user ones win)
        from ..presets import auto_apply_presets

        auto_apply_presets(edit, image, wf_name)
        return edit

    # ---- access
    def find(self, op: str, instance: int = 0) -> ModuleInstance | None:
        for i in self.instances:
            if i.op == op and i.instance == instance:
                return i
        return None

    def get(self, label: str) -> ModuleInstance:
        op, inst = parse_label(label)
        i = self.find(op, inst)
        if i is None:
            raise ParamsError(f"the edit has no module instance {label}")
        return i

    def set_params(self, label: str, image: SourceImage, **values) -> ModuleInstance:
        """Change some parameters of an instance (creating/enabling it if needed)."""
        op, n = parse_label(label)
        mod = registry().get(op)
        if mod is None:
            raise ParamsError(f"unknown module {op!r}")
        inst = self.find(op, n)
        if inst is None:
            if n != 0:
                raise ParamsError(f"the edit has no module instance {label}; add it first")
            inst = ModuleInstance(op, 0, True, None)
            self.instances.append(inst)
        base = (inst.params or mod().default_params(image)).to_dict()
        base.update(values)
        inst.params = mod.Params.from_dict(op, base)
        inst.enabled = True
        return inst

    def add_instance(self, op: str) -> ModuleInstance:
        """A new instance of ``op`` placed right before its highest instance (darktable's rule)."""
        cls_ = registry().get(op)
        if cls_ is None:
            raise ParamsError(f"unknown module {op!r}")
        if cls_.flags & Flags.ONE_INSTANCE:
            raise ParamsError(f"module {op} allows only one instance")
        n = self.order.add_instance(op)
        inst = ModuleInstance(op, n, True, None)
        self.instances.append(inst)
        return inst

    # ---- sidecar (JSON)
    def to_dict(self) -> dict:
        o = self.order
        return {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "workflow": self.workflow,
            "order": {"kind": o.kind(), "list": o.to_text()},
            "modules": [
                {"op": i.op, "instance": i.instance, "enabled": i.enabled, "name": i.name,
                 "params_version": (registry()[i.op].Params.VERSION if i.op in registry() else None),
                 "params": i.params.to_dict() if i.params is not None else None,
                 **({"blend": i.blend.to_dict()} if i.blend is not None else {})}
                for i in self.instances
            ],
        }

    @classmethod
    def from_dict(cls, d: Any, path: str | None = None) -> "Edit":
        def bad(msg):
            return SidecarError(msg, path=path)

        if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT:
            raise bad(f"not a pixelpipe edit (expected \"format\": \"{SIDECAR_FORMAT}\")")
        if d.get("version") != SIDECAR_VERSION:
            raise bad(f"edit version {d.get('version')!r} is not supported (expected {SIDECAR_VERSION})")
        try:
            wf = canonical_workflow(d.get("workflow", "none"))
        except PixelpipeError as e:
            raise bad(str(e)) from None
        order_d = d.get("order")
        try:
            if not isinstance(order_d, dict) or not isinstance(order_d.get("list"), str):
                raise bad("\"order\" must be an object with a \"list\" string")
            order = IopOrder.from_text(order_d["list"])
        except OrderError as e:
            raise bad(f"invalid module order: {e}") from None
        mods = d.get("modules")
        if not isinstance(mods, list):
            raise bad("\"modules\" must be a list")
        edit = cls(order=order, workflow=wf)
        reg = registry()
        seen = set()
        for k, m in enumerate(mods):
            if not isinstance(m, dict) or not isinstance(m.get("op"), str):
                raise bad(f"modules[{k}] must be an object with an \"op\" name")
            op = m["op"]
            if op not in reg:
                raise bad(f"modules[{k}]: unknown module {op!r}")
            inst_n = m.get("instance", 0)
            if not isinstance(inst_n, int) or isinstance(inst_n, bool) or not 0 <= inst_n <= 1000:
                raise bad(f"modules[{k}] ({op}): instance must be an integer 0..1000")
            if (op, inst_n) in seen:
                raise bad(f"modules[{k}]: {op}#{inst_n} appears twice")
            seen.add((op, inst_n))
            enabled = m.get("enabled", True)
            if not isinstance(enabled, bool):
                raise bad(f"modules[{k}] ({op}): enabled must be true or false")
            params = None
            if m.get("params") is not None:
                try:
                    params = reg[op].Params.from_dict(op, m["params"], m.get("params_version"))
                except ParamsError as e:
                    raise bad(str(e)) from None
            name = m.get("name", "")
            try:
                blend = blend_from_sidecar(reg[op], op, m.get("blend"))
            except ParamsError as e:
                raise bad(f"modules[{k}] ({op}): {e}") from None
            edit.instances.append(ModuleInstance(op, inst_n, enabled, params, name if isinstance(name, str) else "",
                                                 blend))
            if (op, inst_n) not in edit.order:
                if inst_n == 0:
                    raise bad(f"module {op} is not in the edit's module order")
                raise bad(f"instance {op}#{inst_n} is not in the edit's module order")
        return edit

    def save(self, path: str | os.PathLike) -> None:
        from ..io.atomic import atomic_write

        data = json.dumps(self.to_dict(), indent=2).encode()
        with atomic_write(Path(path), overwrite=True) as tmp:
            Path(tmp).write_bytes(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Edit":
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SidecarError("sidecar not found", path=str(p)) from None
        except (OSError, UnicodeDecodeError) as e:
            raise SidecarError(f"cannot read sidecar: {e.__class__.__name__}", path=str(p)) from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SidecarError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", path=str(p)) from None
        return cls.from_dict(d, path=str(p))


def _applies(cls_, image: SourceImage) -> bool:
    return cls_.works_on != "raw" or image.is_raw


def parse_label(label: str) -> tuple[str, int]:
    """``op`` or ``op#N`` -> (op, N)."""
    if not isinstance(label, str) or not label:
        raise ParamsError(f"bad module label {label!r}")
    op, _, n = label.partition("#")
    if not n:
        return op, 0
    if not n.isdigit() or int(n) > 1000:
        raise ParamsError(f"bad module instance in {label!r} (expected op#N with N 0..1000)")
    return op, int(n)


def order_by_name(name: str) -> IopOrder:
    from .order import ORDER_PRESETS, load_order_preset

    alias = {"v3.0": "v30", "v5.0": "v50", "v30_jpeg": "v30_jpg", "v50_jpeg": "v50_jpg"}
    name = alias.get(name, name)
    if name in ORDER_PRESETS:
        return IopOrder.from_preset(name)
    return load_order_preset(name)


def sidecar_path(image_path: str | os.PathLike) -> Path:
    return Path(str(image_path) + ".pixelpipe.json")
