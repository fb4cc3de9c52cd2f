"""``pixelpipe style …`` and ``pixelpipe preset …``: named styles and module presets.

    pixelpipe style list
    pixelpipe style show NAME
    pixelpipe style save NAME IMAGE [--sidecar EDIT.json] [--modules op,op#1] [--description TEXT] [--overwrite]
    pixelpipe style delete NAME
    pixelpipe preset list [--module OP]
    pixelpipe preset save OP[#N] NAME IMAGE [--sidecar EDIT.json] [--auto-apply [--maker M] [--model M]
                          [--lens L] [--iso-min N] [--iso-max N] [--format raw|non-raw] [--workflow W]]
                          [--description TEXT] [--overwrite]
    pixelpipe preset apply IMAGE OP[#N] NAME [--sidecar EDIT.json]

``save`` reads the image's edit (its sidecar, else the workflow's defaults);
``preset apply`` writes the changed edit to the sidecar (``IMAGE.pixelpipe.json``
unless ``--sidecar``). Files live in the user's config folder
(``presets/``, ``styles/``). The lead wires :func:`register` into ``cli.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import presets as P


def _photo(image: str, sidecar: str | None, workflow: str | None = None):
    from .api import open as open_photo

    sc = sidecar if sidecar and Path(sidecar).exists() else None
    return open_photo(image, sidecar=sc, workflow=workflow)


def _warn(errors: list[str]) -> None:
    for e in errors:
        print(f"pixelpipe: warning: {e}", file=sys.stderr)


def cmd_style(a) -> int:
    if a.style_cmd == "list":
        errors: list[str] = []
        for s in P.list_styles(errors):
            tag = " (built-in)" if s.builtin else ""
            mods = ", ".join(i.op if i.instance == 0 else f"{i.op}#{i.instance}" for i in s.items)
            print(f"{s.name}{tag}: {mods}" + (f" -- {s.description}" if s.description else ""))
        _warn(errors)
        return 0
    if a.style_cmd == "show":
        s = P.get_style(a.name)
        d = s.to_dict()
        d["builtin"] = s.builtin
        d["file"] = s.path
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return 0
    if a.style_cmd == "save":
        photo = _photo(a.image, a.sidecar, a.workflow)
        ops = [o.strip() for o in a.modules.split(",") if o.strip()] if a.modules else None
        style = P.style_from_edit(photo.edit, a.name, ops=ops, description=a.description or "", image=photo.image)
        path = P.save_style(style, overwrite=a.overwrite)
        print(f"saved style {a.name!r} ({len(style.items)} modules) to {path}")
        return 0
    if a.style_cmd == "delete":
        path = P.delete_style(a.name)
        print(f"deleted style {a.name!r} ({path})")
        return 0
    raise AssertionError(a.style_cmd)


def cmd_preset(a) -> int:
    if a.preset_cmd == "list":
        errors: list[str] = []
        for p in P.list_presets(a.module, errors):
            flags = []
            if p.builtin:
                flags.append("built-in")
            if p.auto_apply:
                m = p.match
                what = ", ".join(f"{k}={v!r}" for k, v in (("maker", m.maker), ("model", m.model),
                                                           ("lens", m.lens)) if v)
                flags.append("auto-apply" + (f" for {what}" if what else ""))
            print(f"{p.op}: {p.name}" + (f" ({'; '.join(flags)})" if flags else ""))
        _warn(errors)
        return 0
    if a.preset_cmd == "save":
        from .pipe.history import canonical_workflow

        photo = _photo(a.image, a.sidecar, a.workflow)
        match = None
        if a.auto_apply:
            match = P.Match(maker=a.maker or "", model=a.model or "", lens=a.lens or "",
                            iso_min=a.iso_min if a.iso_min is not None else 0.0, iso_max=a.iso_max,
                            formats=tuple(a.format) if a.format else P.FORMATS)
        workflows = [canonical_workflow(w) for w in a.only_workflow] if a.only_workflow else None
        preset = P.preset_from_edit(photo.edit, a.module, a.name, description=a.description or "",
                                    auto_apply=a.auto_apply, match=match, workflows=workflows,
                                    image=photo.image)
        path = P.save_preset(preset, overwrite=a.overwrite)
        print(f"saved preset {preset.op}/{a.name!r} to {path}")
        return 0
    if a.preset_cmd == "apply":
        from .pipe.history import sidecar_path

        photo = _photo(a.image, a.sidecar)
        inst = P.apply_preset(photo.edit, photo.image, a.module, a.name)
        target = Path(a.sidecar) if a.sidecar else sidecar_path(a.image)
        photo.edit.save(target)
        print(f"applied preset {inst.op}/{a.name!r} to {inst.label()}; edit written to {target}")
        return 0
    raise AssertionError(a.preset_cmd)


def register(subparsers) -> None:
    """Add the ``style`` and ``preset`` commands to ``subparsers`` (the ``pixelpipe`` parser's)."""
    from .cli import WORKFLOWS

    def common(sp):
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    st = subparsers.add_parser("style", help="list, show, save and delete styles (several modules at once)")
    common(st)
    ss = st.add_subparsers(dest="style_cmd", required=True)
    sp = ss.add_parser("list", help="built-in and saved styles")
    common(sp)
    sp = ss.add_parser("show", help="a style's modules and parameters (JSON)")
    common(sp)
    sp.add_argument("name")
    sp = ss.add_parser("save", help="save the modules of an image's edit as a style")
    common(sp)
    sp.add_argument("name")
    sp.add_argument("image")
    sp.add_argument("--sidecar", help="the edit to read (default: IMAGE.pixelpipe.json, else the workflow)")
    sp.add_argument("--workflow", choices=WORKFLOWS, default=None)
    sp.add_argument("--modules", help="comma-separated op or op#N (default: every module included in styles)")
    sp.add_argument("--description")
    sp.add_argument("--overwrite", action="store_true", help="replace a saved style of that name")
    sp = ss.add_parser("delete", help="delete a saved style")
    common(sp)
    sp.add_argument("name")
    st.set_defaults(func=cmd_style)

    pr = subparsers.add_parser("preset", help="list, save and apply module presets")
    common(pr)
    ps = pr.add_subparsers(dest="preset_cmd", required=True)
    sp = ps.add_parser("list", help="built-in and saved presets")
    common(sp)
    sp.add_argument("--module", help="only this module's presets")
    sp = ps.add_parser("save", help="save a module's parameters from an image's edit")
    common(sp)
    sp.add_argument("module", help="op or op#N")
    sp.add_argument("name")
    sp.add_argument("image")
    sp.add_argument("--sidecar")
    sp.add_argument("--workflow", choices=WORKFLOWS, default=None)
    sp.add_argument("--description")
    sp.add_argument("--auto-apply", action="store_true", help="apply to new edits of matching images")
    sp.add_argument("--maker", help="camera maker pattern (SQL LIKE: %% and _)")
    sp.add_argument("--model", help="camera model pattern")
    sp.add_argument("--lens", help="lens pattern")
    sp.add_argument("--iso-min", type=float)
    sp.add_argument("--iso-max", type=float)
    sp.add_argument("--format", action="append", choices=P.FORMATS, help="raw and/or non-raw (repeatable)")
    sp.add_argument("--only-workflow", action="append", choices=WORKFLOWS,
                    help="auto-apply only in this workflow (repeatable)")
    sp.add_argument("--overwrite", action="store_true")
    sp = ps.add_parser("apply", help="apply a preset to an image's edit and save the sidecar")
    common(sp)
    sp.add_argument("image")
    sp.add_argument("module", help="op or op#N")
    sp.add_argument("name")
    sp.add_argument("--sidecar", help="edit to read and write (default: IMAGE.pixelpipe.json)")
    pr.set_defaults(func=cmd_preset)
