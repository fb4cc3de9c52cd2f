"""The ``pixelpipe ai ...`` and ``pixelpipe prefs ...`` commands.

``register(subparsers)`` adds both to an argparse sub-parsers object;
``run(args)`` executes a parsed command and returns the exit status. Errors
print one line, ``pixelpipe: error: <message>``, on stderr and return the
error's exit code; the traceback only with ``--debug``.

Standalone: ``python -m pixelpipe.cli_ai ai models list``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pixelpipe import prefs
from pixelpipe.errors import AIError, PixelpipeError

EXIT_INTERRUPTED = 130


def _p(*a: Any) -> None:
    print(*a, flush=True)


def _note(msg: str) -> None:
    print(f"pixelpipe: note: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- parser

def _add(subparsers, name: str, **kw) -> argparse.ArgumentParser:
    """``subparsers.add_parser`` that also accepts ``--debug`` after the command."""
    p = subparsers.add_parser(name, **kw)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return p


def register(subparsers) -> None:
    """Add the ``ai`` and ``prefs`` commands to ``subparsers``."""
    ai = _add(
        subparsers, "ai", help="AI models and runtime (opt-in: pixelpipe prefs set ai.enabled true)",
        description="AI subsystem: models for the tasks mask, denoise, rawdenoise, upscale; "
                    "ONNX Runtime providers. Off until 'pixelpipe prefs set ai.enabled true'.")
    ai.set_defaults(func=run, _pp_group="ai")
    ai_sub = ai.add_subparsers(dest="ai_command", metavar="COMMAND")
    ai_sub.required = True
    _add(ai_sub, "status", help="is AI on, which runtime, provider, models dir, task slots")
    _add(ai_sub, "providers", help="which execution providers work on this computer")

    models = _add(ai_sub, "models", help="list, download, install, activate, delete models")
    ms = models.add_subparsers(dest="models_command", metavar="ACTION")
    ms.required = True
    p = _add(ms, "list", help="catalogue and installed models, and the active model per task")
    p.add_argument("--task", choices=prefs.TASKS)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = _add(ms, "info", help="one model: description, licence, training data, files")
    p.add_argument("id")
    p = _add(ms, "download", help="download and install models from the model repository")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--force", action="store_true", help="download again even if installed")
    for name, what in (("download-defaults", "the default model of every task"),
                       ("download-all", "every model published in the repository")):
        p = _add(ms, name, help=f"download {what}")
        p.add_argument("--force", action="store_true", help="download again even if installed")
    p = _add(ms, "install", help="install a .dtmodel/zip package from a file")
    p.add_argument("file")
    p = _add(ms, "activate", help="make a model the active one of its task")
    p.add_argument("id")
    p = _add(ms, "deactivate", help="switch a task off (its slot becomes 'none')")
    p.add_argument("task", choices=prefs.TASKS)
    p = _add(ms, "delete", help="remove an installed model (unsets its slot if active)")
    p.add_argument("id")
    p = _add(ms, "check", help="load a model's ONNX files in ONNX Runtime and show their tensors")
    p.add_argument("id")

    _register_tasks(ai_sub)

    pr = _add(subparsers, "prefs", help="get, set and list preferences (prefs.toml)",
                               description="Preferences in prefs.toml (typed and validated).")
    pr.set_defaults(func=run, _pp_group="prefs")
    ps = pr.add_subparsers(dest="prefs_command", metavar="ACTION")
    ps.required = True
    p = _add(ps, "get", help="print a value")
    p.add_argument("key")
    p = _add(ps, "set", help="set a value")
    p.add_argument("key")
    p.add_argument("value")
    p = _add(ps, "unset", help="remove a value (back to its default)")
    p.add_argument("key")
    p = _add(ps, "list", help="every preference and its value")
    p.add_argument("--doc", action="store_true", help="with each key's type and description")
    _add(ps, "path", help="print the preferences file's path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelpipe")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


# --------------------------------------------------------------------------- run

def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``ai``/``prefs`` command; returns the exit status."""
    debug = bool(getattr(args, "debug", False))
    try:
        group = getattr(args, "_pp_group", None) or getattr(args, "command", None)
        if group == "ai":
            return _run_ai(args)
        if group == "prefs":
            return _run_prefs(args)
        raise PixelpipeError(f"not an ai/prefs command: {group!r}")
    except PixelpipeError as e:
        if debug:
            raise
        print(f"pixelpipe: error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("pixelpipe: interrupted; nothing was half-installed (a download resumes when you run "
              "the command again)", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


# --------------------------------------------------------------------------- prefs

def _run_prefs(args) -> int:
    from pixelpipe.ai import enable

    cmd = args.prefs_command
    if cmd == "path":
        _p(prefs.path())
        return 0
    if cmd == "list":
        width = max(len(k) for k, _, _ in prefs.items())
        for key, value, is_set in prefs.items():
            shown = _toml_value(value) if value is not None else '""'
            line = f"{key:<{width}} = {shown}"
            if not is_set:
                line += "  # default"
            if args.doc:
                d = prefs.describe(key)
                line += f"  ({d.describe_range()}) {d.doc}"
            _p(line)
        if args.doc:
            for d in prefs.PREFS:
                if d.is_template:
                    _p(f"{d.key}  ({d.describe_range()}) {d.doc}")
        return 0
    key = args.key
    if cmd == "get":
        value = prefs.get(key)
        if key == "ai.enabled":
            _p(prefs.format_value(enable.ai_enabled()))
            line = enable.status_line()
            if line:
                _note(line)
            return 0
        _p(prefs.format_value(value))
        if value is None and key.startswith("ai.models.active."):
            _note("unset: the first installed model marked default is used")
        return 0
    if cmd == "set":
        value = prefs.parse_value(key, args.value)
        if key == "ai.enabled" and value and not enable.ort_available():
            raise AIError(f"cannot enable AI: ONNX Runtime is not installed; {enable.INSTALL_HINT}")
        if key.startswith("ai.models.active.") and value != "none":
            from pixelpipe.ai import registry

            task = key.rsplit(".", 1)[1]
            m = registry.require_installed(value)
            if m.task != task:
                raise AIError(f"model {value} is a {m.task} model, not a {task} model")
        stored = prefs.put(key, value)
        _p(f"{key} = {_toml_value(stored)}")
        return 0
    if cmd == "unset":
        was = prefs.unset(key)
        d = prefs.describe(key)
        _p(f"{key} = {_toml_value(d.default) if d.default is not None else '(unset)'}"
           + ("" if was else "  # was not set"))
        return 0
    raise PixelpipeError(f"unknown prefs action {cmd!r}")  # pragma: no cover


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


# --------------------------------------------------------------------------- ai

def _run_ai(args) -> int:
    from pixelpipe.ai import enable

    cmd = args.ai_command
    if cmd in TASK_COMMANDS:
        return _run_task(args)
    if cmd == "providers":
        return _providers()
    line = enable.status_line()
    sub = getattr(args, "models_command", None)
    if line and not (cmd == "models" and sub == "check"):
        _note(line)
    if cmd == "status":
        return _status()
    if cmd == "models":
        return _models(args, sub)
    raise PixelpipeError(f"unknown ai command {cmd!r}")  # pragma: no cover


def _status() -> int:
    from pixelpipe.ai import enable, registry

    _p(f"AI enabled:     {'yes' if enable.ai_enabled() else 'no'} "
       f"(pref ai.enabled = {prefs.format_value(prefs.get('ai.enabled'))})")
    v = enable.ort_version()
    _p(f"ONNX Runtime:   {v if v else 'not installed (' + enable.INSTALL_HINT + ')'}")
    _p(f"provider:       {prefs.get('ai.provider')} (pref ai.provider)")
    _p(f"models dir:     {registry.models_dir()}")
    _p(f"repository:     {prefs.get('ai.repository')}, release for {prefs.get('ai.compat_version')}")
    _p(f"preferences:    {prefs.path()}")
    for task in prefs.TASKS:
        _p(f"task {task + ':':<12}{_slot_text(task)}")
    return 0


def _slot_text(task: str) -> str:
    from pixelpipe.ai import registry

    raw = prefs.get(f"ai.models.active.{task}")
    try:
        m = registry.active_model(task)
    except AIError as e:
        return f"{raw} (problem: {e})"
    if raw == "none":
        return "none (switched off)"
    if m is None:
        return "no model installed"
    return m.id


def _providers() -> int:
    from pixelpipe.ai import enable, runtime

    enable.require_enabled()
    rows = runtime.probe_all()
    _p(f"ONNX Runtime {enable.ort_version()}")
    _p(f"{'provider':<10} {'in build':<9} {'works':<6} detail")
    for name, in_build, ok, detail in rows:
        _p(f"{name:<10} {'yes' if in_build else 'no':<9} {'yes' if ok else 'no':<6} {detail}")
    pref = prefs.get("ai.provider")
    working = [n for n, _, ok, _ in rows if ok]
    if pref == "auto":
        chosen = next((p for p in runtime.auto_order() if p in working), "cpu")
    else:
        chosen = pref if pref in working else "cpu (fallback: " + pref + " does not work here)"
    _p(f"ai.provider = {pref}: sessions use {chosen}")
    return 0


def _models(args, sub: str) -> int:
    from pixelpipe.ai import catalogue, registry

    if sub == "list":
        return _list(args)
    if sub == "info":
        return _info(args.id)
    if sub == "install":
        from pathlib import Path

        from pixelpipe.ai import package

        m = package.install_package(Path(args.file))
        _p(f"installed {m.id} ({m.task}) in {m.path}")
        for w in m.warnings:
            _note(f"{m.id}: {w}")
        _after_install(m)
        return 0
    if sub in ("download", "download-defaults", "download-all"):
        from pixelpipe.ai import download

        if sub == "download":
            ids = list(dict.fromkeys(args.ids))
            for mid in ids:  # refuse unknown/local ids before any network access
                download._entry_for(mid)
        elif sub == "download-defaults":
            ids = download.default_ids()
        else:
            ids = download.downloadable_ids()
            for e in catalogue.entries():
                if not e.downloadable:
                    _p(f"{e.id}: skipped (not published; build it with: {e.build})")
        models = download.download_many(ids, force=args.force,
                                        report=lambda mid, what: _p(f"{mid}: {what}"))
        for m in models:
            _after_install(m, quiet=True)
        return 0
    if sub == "activate":
        m = registry.activate(args.id)
        _p(f"{m.task}: {m.id} is now active")
        return 0
    if sub == "deactivate":
        registry.deactivate(args.task)
        _p(f"{args.task}: switched off (activate a model to switch it on)")
        return 0
    if sub == "delete":
        was_active = {t: prefs.get(f"ai.models.active.{t}") for t in prefs.TASKS}
        m = registry.delete(args.id)
        _p(f"deleted {m.id}")
        if m.task in was_active and was_active[m.task] == m.id:
            _p(f"{m.task}: no active model now (the first installed default model will be used)")
        return 0
    if sub == "check":
        return _check(args.id)
    raise PixelpipeError(f"unknown models action {sub!r}")  # pragma: no cover


def _after_install(m, quiet: bool = False) -> None:
    from pixelpipe.ai import registry

    if m.task not in prefs.TASKS:
        _note(f"{m.id} is for task {m.task!r}, which pixelpipe does not use")
        return
    try:
        active = registry.active_model(m.task)
    except AIError:
        active = None
    if active is None or active.id != m.id:
        if not quiet:
            _p(f"activate it with: pixelpipe ai models activate {m.id}")


def _model_rows(task: str | None) -> list[dict]:
    from pixelpipe.ai import catalogue, registry

    installed = {m.id: m for m in registry.scan(include_broken=True)}
    rows = []
    seen = set()
    for e in catalogue.entries():
        m = installed.get(e.id)
        rows.append({"id": e.id, "task": e.task, "name": e.name, "default": e.default,
                     "installed": m is not None and m.ok, "broken": m is not None and not m.ok,
                     "downloadable": e.downloadable, "in_catalogue": True,
                     "path": str(m.path) if m else None})
        seen.add(e.id)
    for m in installed.values():
        if m.id in seen:
            continue
        rows.append({"id": m.id, "task": m.task, "name": m.name, "default": m.default,
                     "installed": m.ok, "broken": not m.ok, "downloadable": False,
                     "in_catalogue": False, "path": str(m.path)})
    return [r for r in rows if task is None or r["task"] == task]


def _list(args) -> int:
    from pixelpipe.ai import registry

    tasks = [args.task] if args.task else list(prefs.TASKS)
    slots: dict[str, dict] = {}
    for t in tasks:
        raw = prefs.get(f"ai.models.active.{t}")
        try:
            m = registry.active_model(t)
            slots[t] = {"active": m.id if m else None, "value": prefs.get(f"ai.models.active.{t}"),
                        "problem": None}
        except AIError as e:
            slots[t] = {"active": None, "value": raw, "problem": str(e)}
    rows = _model_rows(args.task)
    for r in rows:
        r["active"] = r["task"] in slots and slots[r["task"]]["active"] == r["id"]
    if args.json:
        _p(json.dumps({"models_dir": str(registry.models_dir()), "models": rows, "slots": slots},
                      indent=2))
        return 0
    w = max([len(r["id"]) for r in rows] + [2])
    _p(f"{'ID':<{w}}  {'TASK':<10}  {'STATUS':<13}  {'DEFAULT':<7}  NAME")
    for r in rows:
        if r["broken"]:
            status = "broken"
        elif r["active"]:
            status = "active"
        elif r["installed"]:
            status = "installed"
        elif r["downloadable"]:
            status = "available"
        else:
            status = "build locally"
        _p(f"{r['id']:<{w}}  {r['task']:<10}  {status:<13}  {'yes' if r['default'] else '':<7}  {r['name']}")
    _p("")
    _p(f"models dir: {registry.models_dir()}")
    for t, s in slots.items():
        if s["problem"]:
            text = f"{s['value']} (problem: {s['problem']})"
        elif s["value"] == "none":
            text = "none (switched off)"
        else:
            text = s["active"] or "no model installed"
        _p(f"active {t + ':':<12}{text}")
    return 0


def _info(model_id: str) -> int:
    from pixelpipe.ai import catalogue, onnxinfo, registry

    e = catalogue.get(model_id)
    m = registry.get_installed(model_id)
    if e is None and m is None:
        raise AIError(f"unknown model {model_id!r}; see 'pixelpipe ai models list'")
    name = m.name if m and m.ok else e.name
    task = m.task if m and m.ok else e.task
    _p(f"{'id:':<23}{model_id}")
    _p(f"{'name:':<23}{name}")
    _p(f"{'task:':<23}{task}")
    desc = (m.description if m and m.ok else "") or (e.description if e else "")
    if desc:
        _p(f"{'description:':<23}{desc}")
    if e is not None:
        _p(f"{'default:':<23}{'yes' if e.default else 'no'}")
        if e.downloadable:
            _p(f"{'package:':<23}{e.github_asset} from {prefs.get('ai.repository')} "
               f"(release for {prefs.get('ai.compat_version')})")
        else:
            _p(f"{'package:':<23}not published; build it with: {e.build}")
        _p(f"{'checksum:':<23}{e.checksum or 'not in the catalogue (the release digest is used)'}")
        for field, label in catalogue.CARD_FIELDS:
            if field in e.card:
                _p(f"{label + ':':<23}{e.card[field]}")
    else:
        _p(f"{'catalogue:':<23}not in the catalogue (installed from a file)")
    if m is None:
        _p(f"{'installed:':<23}no")
        return 0
    if not m.ok:
        _p(f"{'installed:':<23}broken: {m.error}")
        return 0
    try:
        active = registry.active_model(m.task) if m.task in prefs.TASKS else None
    except AIError:
        active = None
    _p(f"{'installed:':<23}{m.path}")
    _p(f"{'active:':<23}{'yes' if active is not None and active.id == m.id else 'no'}")
    c = m.config
    _p(f"{'config:':<23}arch={c.arch or 'generic'} backend={c.backend} version={c.version} "
       f"tiling={'true' if c.tiling else 'false'} num_inputs={c.num_inputs}")
    if c.attributes:
        _p(f"{'attributes:':<23}{json.dumps(c.attributes)}")
    for f in m.files():
        path = m.path / f.filename
        try:
            ins, outs = onnxinfo.read_io(path)
            io = f"{'; '.join(map(str, ins))} -> {'; '.join(map(str, outs))}"
        except AIError as err:
            io = f"unreadable: {err}"
        _p(f"{'file:':<23}{f.filename} [{f.label}] {io}")
    card = c.raw.get("model_card") or {}
    for k, v in card.items():
        _p(f"{'model card ' + k + ':':<23}{v}")
    for w in m.warnings:
        _p(f"{'warning:':<23}{w}")
    return 0


def _check(model_id: str) -> int:
    from pixelpipe.ai import enable, registry, runtime

    enable.require_enabled()
    m = registry.require_installed(model_id)
    for f in m.files():
        kw = {"scale": f.scale} if m.task == "upscale" else \
            {"variant": f.variant.kind} if f.variant is not None else \
            {"role": f.role} if m.task == "mask" else {}
        s = runtime.load_session(m, **kw)
        _p(f"{f.filename}: ok on {s.provider}: {'; '.join(map(str, s.inputs))} -> "
           f"{'; '.join(map(str, s.outputs))}")
        s.close()
    return 0


# --------------------------------------------------------------------------- the AI tasks

TASK_COMMANDS = ("denoise", "upscale", "rawdenoise", "mask")
TIFF_EXTS = (".tif", ".tiff")
PREVIEW_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _register_tasks(ai_sub) -> None:
    common_help = ("INPUT… [OUTPUT]: OUTPUT is a file name (one input), a folder, or absent "
                   "(each result is written beside its source)")
    p = _add(ai_sub, "denoise", help="denoise developed images with the active denoise model (writes TIFFs)",
             description="Render each INPUT through its edit (linear Rec.709), denoise it with the active "
                         "denoise model and write a 32-bit float TIFF (NAME_denoised.tif) with a sidecar "
                         "that groups it with its source. " + common_help)
    p.add_argument("paths", nargs="+", metavar="INPUT… [OUTPUT]")
    p.add_argument("--sigma", default="25", help="noise level 0..75 (0-255 units, sRGB-encoded) or 'auto' "
                                                 "(default 25, darktable's)")
    p.add_argument("--detail", type=float, default=0.0, help="detail recovery 0..1 (default 0)")
    p.add_argument("--strength", type=float, default=1.0, help="blend with the source 0..1 (default 1)")
    _task_common(p, tiff=True)
    p = _add(ai_sub, "upscale", help="2x/4x super-resolution with the active upscale model (writes TIFFs)",
             description="Render each INPUT through its edit, upscale it 2x or 4x with the active upscale "
                         "model and write a TIFF (NAME_x2.tif / NAME_x4.tif) with a group sidecar. " + common_help)
    p.add_argument("paths", nargs="+", metavar="INPUT… [OUTPUT]")
    p.add_argument("--scale", type=int, choices=(2, 4), default=2)
    _task_common(p, tiff=True)
    p = _add(ai_sub, "rawdenoise", help="denoise raw mosaics with the active rawdenoise model (writes DNGs)",
             description="Denoise each raw INPUT with the active rawdenoise model and write a DNG "
                         "(NAME_rawdenoised.dng): a CFA DNG for Bayer (and X-Trans with an xtrans variant), a "
                         "LinearRaw DNG through a linear variant (X-Trans without an xtrans variant, linear "
                         "raws). Its sidecar re-applies the source's edit with the classical denoisers off. "
                         + common_help)
    p.add_argument("paths", nargs="+", metavar="INPUT… [OUTPUT]")
    p.add_argument("--strength", type=float, default=1.0, help="blend with the source 0..1 (default 1)")
    p.add_argument("--no-level-correction", action="store_true",
                   help="leave out the local level correction (the model's output as it is)")
    _task_common(p, tiff=False)
    p = _add(ai_sub, "mask", help="object mask from clicks: into a module's drawn mask, or a PNG",
             description="Segment the object under the clicks (full-size output pixels, as the exported "
                         "image) with the active mask model, or the classical method (--classical, no AI "
                         "needed), and add it as Bezier paths to a module instance's drawn mask in the "
                         "image's sidecar (--module), or write it as a PNG (-o).")
    p.add_argument("image")
    p.add_argument("--point", action="append", default=[], metavar="X,Y[,bg]",
                   help="a click; ',bg' (or ',0') makes it a background click; repeatable")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", help="a box around the object (SAM models)")
    p.add_argument("--module", metavar="OP[#N]", help="module instance whose drawn mask gets the shapes")
    p.add_argument("-o", "--output", metavar="PNG", help="write the mask as a PNG instead")
    p.add_argument("--classical", action="store_true", help="the classical method (no model, no AI)")
    p.add_argument("--sidecar", help="edit to use and change (default: IMAGE.pixelpipe.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing PNG")


def _task_common(p, *, tiff: bool) -> None:
    if tiff:
        p.add_argument("--bpp", type=int, choices=(8, 16, 32), default=32,
                       help="TIFF sample depth: 32 = float linear Rec.709 (default), 8/16 = sRGB")
    p.add_argument("--sidecar", help="edit to apply (one input; default: INPUT.pixelpipe.json or defaults)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--preview", metavar="X,Y,W,H",
                   help="only a before/after preview of this region (full-size output pixels), "
                        "written to OUTPUT (PNG/JPEG/TIFF)")
    p.add_argument("-q", "--quiet", action="store_true")


def _run_task(args) -> int:
    try:
        if args.ai_command == "mask":
            return _task_mask(args)
        from pixelpipe.ai import enable

        enable.require_enabled()
        return _task_files(args)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print("pixelpipe: interrupted; no partial output was left", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _float_arg(value: float, name: str, lo: float, hi: float) -> float:
    if not lo <= value <= hi:
        raise AIError(f"--{name} {value:g} is outside {lo:g}..{hi:g}")
    return value


def _task_files(args) -> int:
    from pathlib import Path

    from pixelpipe.ai.tasks import common

    cmd = args.ai_command
    exts = TIFF_EXTS if cmd in ("denoise", "upscale") else (".dng",)
    if args.preview:
        if len(args.paths) != 2:
            raise AIError("--preview takes one INPUT and the OUTPUT image for the preview")
        return _task_preview(args, Path(args.paths[0]), Path(args.paths[1]))
    inputs, output = common.split_inputs_output(args.paths, exts)
    if args.sidecar and len(inputs) > 1:
        raise AIError("--sidecar applies to one input only")
    kw = {}
    if cmd == "denoise":
        sigma = args.sigma if args.sigma == "auto" else _sigma(args.sigma)
        kw = dict(sigma=sigma, detail=_float_arg(args.detail, "detail", 0, 1),
                  strength=_float_arg(args.strength, "strength", 0, 1), bpp=args.bpp)
    elif cmd == "upscale":
        kw = dict(bpp=args.bpp)
    else:
        kw = dict(strength=_float_arg(args.strength, "strength", 0, 1), keep_levels=not args.no_level_correction)
    fmt = {"scale": args.scale} if cmd == "upscale" else {}
    jobs = common.plan_outputs(inputs, output, cmd, ".dng" if cmd == "rawdenoise" else ".tif", exts, **fmt)
    for src, _ in jobs:
        common.check_input(src)
    failed = 0
    for src, dst in jobs:
        try:
            r = _task_one(cmd, src, dst, args, kw)
        except PixelpipeError as e:
            if len(jobs) == 1:
                raise
            failed += 1
            print(f"pixelpipe: error: {e}", file=sys.stderr, flush=True)
            continue
        for n in r.notices:
            _note(f"{src}: {n}")
        if not args.quiet:
            _p(f"{src} -> {r.output} ({r.seconds:.1f} s)")
    if len(jobs) > 1:
        _p(f"{len(jobs) - failed} written, {failed} failed")
    return 1 if failed else 0


def _sigma(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise AIError(f"--sigma must be a number 0..75 or 'auto', not {text!r}") from None
    return _float_arg(v, "sigma", 0, 75)


def _task_one(cmd, src, dst, args, kw):
    if cmd == "denoise":
        from pixelpipe.ai.tasks.denoise import denoise_file

        return denoise_file(src, dst, overwrite=args.overwrite, sidecar=args.sidecar, **kw)
    if cmd == "upscale":
        from pixelpipe.ai.tasks.upscale import upscale_file

        return upscale_file(src, dst, args.scale, overwrite=args.overwrite, sidecar=args.sidecar, **kw)
    from pixelpipe.ai.tasks.rawdenoise import rawdenoise_file

    return rawdenoise_file(src, dst, overwrite=args.overwrite, sidecar=args.sidecar, **kw)


def _task_preview(args, src, dst) -> int:
    from pixelpipe.ai.tasks import common

    if dst.suffix.lower() not in PREVIEW_EXTS:
        raise AIError("the preview is written as PNG, JPEG or TIFF", path=str(dst))
    from pixelpipe.io.atomic import check_destination

    check_destination(dst, overwrite=args.overwrite)
    common.check_input(src)
    roi = common.parse_roi(args.preview)
    cmd = args.ai_command
    if cmd == "denoise":
        from pixelpipe.ai.tasks.denoise import denoise_preview

        sigma = args.sigma if args.sigma == "auto" else _sigma(args.sigma)
        before, after = denoise_preview(src, roi, sigma=sigma, detail=_float_arg(args.detail, "detail", 0, 1),
                                        strength=_float_arg(args.strength, "strength", 0, 1), sidecar=args.sidecar)
    elif cmd == "upscale":
        from pixelpipe.ai.tasks.upscale import upscale_preview

        before, after = upscale_preview(src, roi, args.scale, sidecar=args.sidecar)
    else:
        from pixelpipe.ai.tasks.rawdenoise import rawdenoise_preview

        before, after = rawdenoise_preview(src, roi, strength=_float_arg(args.strength, "strength", 0, 1),
                                           sidecar=args.sidecar, keep_levels=not args.no_level_correction)
    common.write_preview(dst, common.side_by_side(before, after), overwrite=args.overwrite)
    if not args.quiet:
        _p(f"{src}: preview of {args.preview} (before | after) -> {dst}")
    return 0


def _parse_point(text: str) -> tuple[float, float, bool]:
    parts = [t.strip() for t in text.split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise AIError(f"bad --point {text!r}: expected X,Y or X,Y,bg") from None
    pos = True
    if len(parts) == 3:
        flag = parts[2].lower()
        if flag in ("bg", "0", "neg", "-", "background"):
            pos = False
        elif flag not in ("fg", "1", "pos", "+", "foreground"):
            raise AIError(f"bad --point {text!r}: the third part is 'bg' (background) or 'fg'")
    return x, y, pos


def _task_mask(args) -> int:
    from pixelpipe.ai.tasks.mask import object_mask

    if not args.classical:
        from pixelpipe.ai import enable

        line = enable.status_line()
        if line:
            raise AIError(f"{line}; or use the classical method: pixelpipe ai mask --classical …")
    clicks = [_parse_point(t) for t in args.point]
    box = None
    if args.box:
        try:
            box = tuple(float(v) for v in args.box.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise AIError(f"bad --box {args.box!r}: expected X0,Y0,X1,Y1 with X1 > X0, Y1 > Y0")
    if args.output is None and not args.module:
        raise AIError("say where the mask goes: --module OP[#N] (or write a PNG with -o FILE)")
    m, group, dest, notice = object_mask(args.image, clicks, box=box, module=args.module, png=args.output,
                                         sidecar=args.sidecar, classical=args.classical,
                                         overwrite=args.overwrite)
    if notice:
        _note(notice)
    if group is not None:
        _p(f"{args.image}: object mask ({len(group)} path(s), {100 * m.mean():.1f}% of the image) "
           f"added to {args.module} in {dest}")
    else:
        _p(f"{args.image}: object mask ({100 * m.mean():.1f}% of the image) -> {dest}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
