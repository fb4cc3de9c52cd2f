"""The ``pixelpipe`` command, modelled on darktable-cli.

Every error the user can cause is one line on stderr naming the file and the
problem, with a non-zero exit; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .errors import OrderError, OutputError, PixelpipeError

WORKFLOWS = ["scene-referred", "scene-referred-sigmoid", "scene-referred-filmic", "scene-referred-agx",
             "display-referred", "none"]


def _notice(msg: str) -> None:
    print(f"pixelpipe: notice: {msg}", file=sys.stderr)


# ------------------------------------------------------------------ export
def _export_request(a) -> dict:
    """The export as plain data: what the local runner and the ``serve`` worker both take."""
    return {
        "inputs": list(a.inputs), "output": a.output, "cwd": os.getcwd(),
        "sidecar": a.sidecar, "workflow": a.workflow, "order": a.order, "style": a.style,
        "chromatic_adaptation": a.chromatic_adaptation,
        "device": a.device, "overwrite": a.overwrite,
        "width": a.width, "height": a.height, "hq": a.hq, "bpp": a.bpp, "quality": a.quality,
        "format": a.format, "presets": a.preset or [], "preset_files": a.presets or [],
        "include": a.include or [], "exclude": a.exclude or [], "recursive": not a.no_recursive,
        "jobs": a.jobs, "scheduler": a.scheduler, "debug": bool(getattr(a, "debug", False)),
    }


def _outputs(a) -> int:
    """Run the export request of ``a``: through a running ``pixelpipe serve`` worker when there
    is one (no start-up cost), else in this process (see pixelpipe.batch)."""
    from .batch.report import ConsoleReporter

    req = _export_request(a)
    progress = None if a.progress is None else a.progress
    rep = ConsoleReporter(quiet=a.quiet, progress=False if a.quiet else progress,
                          debug=bool(getattr(a, "debug", False)))
    if not a.no_server and not a.scheduler and not os.environ.get("PIXELPIPE_NO_SERVER"):
        from .batch.client import export_via_server

        code = export_via_server(req, rep)
        if code is not None:
            return code
    from .batch.runner import run_export

    return run_export(req, rep.handle)


def cmd_export(a) -> int:
    return _outputs(a)


def cmd_serve(a) -> int:
    from .batch import client

    if a.stop:
        stopped = client.stop_servers()
        print(f"stopped {stopped} pixelpipe worker{'s' if stopped != 1 else ''}" if stopped
              else "no pixelpipe worker was running")
        return 0
    if a.status:
        st = client.server_status()
        if st is None:
            print("no pixelpipe worker is running")
            return 1
        for k, v in st.items():
            print(f"{k}: {v}")
        return 0
    if a.foreground:
        from .batch.server import serve_forever

        return serve_forever(idle_timeout=a.idle_timeout, jobs=a.jobs, warm=not a.no_warm)
    info = client.start_server(idle_timeout=a.idle_timeout, jobs=a.jobs, warm=not a.no_warm)
    print(f"pixelpipe worker {'already ' if info.get('already') else ''}running: pid {info['pid']}, "
          f"socket {info['socket']}, stops after {a.idle_timeout:g} s idle (pixelpipe serve --stop)")
    return 0


# ------------------------------------------------------------------ order
def _photo_for_order(a):
    from .api import open as open_photo

    # a --sidecar that does not exist yet is where the changed edit will be written
    sidecar = a.sidecar if a.sidecar and Path(a.sidecar).exists() else None
    return open_photo(a.image, sidecar=sidecar, workflow=a.workflow)


def cmd_order(a) -> int:
    from .pipe.history import parse_label, sidecar_path
    from .pipe.order import list_order_presets, save_order_preset

    if a.order_cmd == "presets":
        from .pipe.order import ORDER_PRESETS

        for n in ORDER_PRESETS:
            print(n)
        for n in list_order_presets():
            print(f"{n} (user)")
        return 0
    photo = _photo_for_order(a)
    order = photo.edit.order
    if a.order_cmd == "show":
        enabled = {(i.op, i.instance) for i in photo.edit.instances if i.enabled}
        print(f"# order: {order.kind()}")
        for k, e in enumerate(order.entries()):
            label = e.op if e.instance == 0 else f"{e.op}#{e.instance}"
            if a.all or (e.op, e.instance) in enabled:
                mark = "*" if (e.op, e.instance) in enabled else " "
                print(f"{k:3d} {mark} {label}")
        return 0
    if a.order_cmd == "check":
        problems = order.problems()
        if problems:
            for p in problems:
                print(f"pixelpipe: error: {a.image}: {p}", file=sys.stderr)
            return 3
        print(f"{a.image}: order {order.kind()} is valid")
        return 0
    if a.order_cmd == "move":
        op, n = parse_label(a.module)
        anchor = a.before or a.after
        aop, an = parse_label(anchor)
        if a.before:
            order.move_before(op, n, aop, an)
        else:
            order.move_after(op, n, aop, an)
        dest = Path(a.sidecar) if a.sidecar else sidecar_path(a.image)
        photo.edit.save(dest)
        print(f"{a.module} moved {'before' if a.before else 'after'} {anchor}; order is now {order.kind()} ({dest})")
        return 0
    if a.order_cmd == "set":
        from .pipe.history import order_by_name

        photo.edit.order = order_by_name(a.preset)
        dest = Path(a.sidecar) if a.sidecar else sidecar_path(a.image)
        photo.edit.save(dest)
        print(f"order {a.preset} applied ({dest})")
        return 0
    if a.order_cmd == "save-preset":
        path = save_order_preset(a.name, order)
        print(f"saved order preset {a.name!r} ({path})")
        return 0
    if a.order_cmd == "write-xmp":
        from .io.xmp import write_xmp_order

        dest = Path(a.out) if a.out else Path(str(a.image) + ".xmp")
        notices = write_xmp_order(dest, order, overwrite=a.overwrite)
        for n in notices or []:
            _notice(n)
        print(f"wrote {dest}")
        return 0
    raise OrderError(f"unknown order command {a.order_cmd}")


# ------------------------------------------------------------------ misc
def cmd_modules(a) -> int:
    from .modules import registry
    from .modules.base import Flags

    for op, cls in sorted(registry().items()):
        flags = [f.name.lower() for f in Flags if f and f.name and cls.flags & f]
        print(f"{op:16s} {cls.summary}  [{', '.join(flags)}]")
    return 0


def cmd_info(a) -> int:
    from .io.decode import load

    img = load(a.image)
    print(f"file:        {img.path}")
    print(f"kind:        {img.kind}" + (f" ({img.cfa.kind} {img.cfa.colors})" if img.cfa else ""))
    print(f"size:        {img.width} x {img.height}")
    if img.is_raw:
        print(f"black/white: {list(img.black)} / {img.white}")
        print(f"as-shot WB:  {img.wb_as_shot}")
        print(f"matrix:      {img.xyz_to_cam_source or 'none'}")
    print(f"orientation: {img.orientation}")
    for k, v in sorted(img.exif.items()):
        print(f"exif.{k}: {v}")
    return 0


def cmd_sample(a) -> int:
    from .io.sample import make_sample_dng

    out = Path(a.output)
    if out.exists() and not a.overwrite:
        raise OutputError("exists (use --overwrite to replace it)", path=str(out))
    make_sample_dng(out, width=a.width, height=a.height, overwrite=a.overwrite)
    print(f"wrote {out}")
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pixelpipe", description="Raw-photo engine on darktable's processing model")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version="pixelpipe 0.1.0")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    from .batch.variables import help_text as _variables_help

    e = sub.add_parser(
        "export", help="process raws/images and write JPEG/PNG/TIFF (one file, or many in parallel)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="pixelpipe export IN OUT.jpg            one file\n"
                    "pixelpipe export IN... FOLDER|PATTERN   many files and folders (recursive)\n\n"
                    "PATTERN uses darktable's variables, e.g. 'out/$(EXIF.YEAR)/$(FILE.NAME)_$(SEQUENCE)';\n"
                    "the extension comes from the format. An output that is up to date (made from the\n"
                    "same input, sidecar and settings) is skipped; another existing file is left alone\n"
                    "unless --overwrite. Exit code 0: every output up to date; 1: some failed or stale;\n"
                    "130: interrupted (no partial files are left).",
        epilog="output presets (--preset NAME[:key=value,...], --presets FILE.toml with [preset.NAME] tables):\n"
               "  keys format=jpg|png|tif width height hq bpp quality pattern suffix;\n"
               "  built-in: full, web (2048 px, _web), thumb (512 px, _thumb), tiff16, png16\n\n"
               "variables:\n  " + _variables_help().replace("\n", "\n  "))
    common(e)
    e.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and folders")
    e.add_argument("output", metavar="OUTPUT", help="a file name (one input), a folder or a pattern")
    e.add_argument("--sidecar", help="edit to apply (default: INPUT.pixelpipe.json, else the workflow's defaults)")
    e.add_argument("--width", type=int, help="fit into this width (no upscaling)")
    e.add_argument("--height", type=int, help="fit into this height")
    e.add_argument("--hq", action="store_true", help="high quality: process at full size, downscale at the end")
    e.add_argument("--workflow", choices=WORKFLOWS, default=None)
    e.add_argument("--order", help="legacy|v30|v30_jpg|v50|v50_jpg or a saved order preset")
    e.add_argument("--chromatic-adaptation", choices=("modern", "legacy"), default=None,
                   help="new edits: modern (camera-reference white balance + color calibration) or legacy "
                        "(as-shot white balance, no color calibration); default: the workflow's")
    e.add_argument("--bpp", type=int, choices=(8, 16, 32), default=None, help="bits per sample (default 8)")
    e.add_argument("--quality", type=int, default=None, help="JPEG quality 1..100 (default 95)")
    e.add_argument("--format", choices=("jpg", "jpeg", "png", "tif", "tiff"), default=None,
                   help="output format for a folder or pattern (default jpg)")
    e.add_argument("--preset", action="append", metavar="NAME[:KEY=VALUE,...]",
                   help="an output preset; repeat for several outputs per input")
    e.add_argument("--presets", action="append", metavar="FILE.toml", help="output presets from a TOML file")
    e.add_argument("--include", action="append", metavar="GLOB", help="only files matching (name or path below the folder)")
    e.add_argument("--exclude", action="append", metavar="GLOB", help="leave out files matching")
    e.add_argument("--no-recursive", action="store_true", help="do not descend into subfolders")
    e.add_argument("--device", default=None,
                   help="cpu|cuda|auto (metal|vulkan|opencl experimental); default cpu, or $PIXELPIPE_DEVICE; "
                        "with --scheduler: auto (workers with a GPU use it)")
    e.add_argument("--style", help="apply a named style (several module presets)")
    e.add_argument("--overwrite", action="store_true", help="replace existing outputs that are not up to date")
    e.add_argument("-j", "--jobs", default=None, metavar="N|auto",
                   help="worker processes (an embedded Dask LocalCluster); default 1: this process")
    e.add_argument("--scheduler", metavar="tcp://HOST:8786", help="run on this Dask cluster")
    e.add_argument("--no-server", action="store_true", help="do not use a running `pixelpipe serve` worker")
    e.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show the progress bar even when stderr is not a terminal")
    e.add_argument("--no-progress", dest="progress", action="store_false")
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=cmd_export)

    sv = sub.add_parser("serve", help="a per-user background worker that later commands use (no start-up cost)")
    common(sv)
    g = sv.add_mutually_exclusive_group()
    g.add_argument("--stop", action="store_true", help="stop the running worker(s)")
    g.add_argument("--status", action="store_true", help="show the running worker")
    g.add_argument("--foreground", action="store_true", help="run in this process (logs to stderr)")
    sv.add_argument("--idle-timeout", type=float, default=900.0, metavar="SECONDS",
                    help="stop after this long without requests (default 900)")
    sv.add_argument("-j", "--jobs", default=None, metavar="N|auto",
                    help="default worker processes for batches sent to it (default: as each command asks)")
    sv.add_argument("--no-warm", action="store_true", help="do not preload kernels at start")
    sv.set_defaults(func=cmd_serve)

    o = sub.add_parser("order", help="show, check and change the module order of an image's edit")
    common(o)
    osub = o.add_subparsers(dest="order_cmd", required=True)
    for name, hlp in (("show", "list the order (* = enabled)"), ("check", "validate the order"),
                      ("move", "move a module before/after another (darktable's Ctrl+Shift drag)"),
                      ("set", "apply a built-in or saved order preset"),
                      ("save-preset", "save the image's order as a named preset"),
                      ("write-xmp", "write darktable's order fields to a NEW XMP file")):
        sp = osub.add_parser(name, help=hlp)
        common(sp)
        sp.add_argument("image")
        sp.add_argument("--sidecar")
        sp.add_argument("--workflow", choices=WORKFLOWS, default=None)
        if name == "show":
            sp.add_argument("--all", action="store_true", help="also modules that are not enabled")
        if name == "move":
            sp.add_argument("module", help="op or op#N")
            g = sp.add_mutually_exclusive_group(required=True)
            g.add_argument("--before", metavar="OP[#N]")
            g.add_argument("--after", metavar="OP[#N]")
        if name == "set":
            sp.add_argument("preset")
        if name == "save-preset":
            sp.add_argument("name")
        if name == "write-xmp":
            sp.add_argument("--out")
            sp.add_argument("--overwrite", action="store_true")
    pr = osub.add_parser("presets", help="list built-in and saved order presets")
    common(pr)
    o.set_defaults(func=cmd_order)

    m = sub.add_parser("modules", help="list the processing modules")
    common(m)
    m.set_defaults(func=cmd_modules)

    i = sub.add_parser("info", help="show what the decoder reads from a file")
    common(i)
    i.add_argument("image")
    i.set_defaults(func=cmd_info)

    s = sub.add_parser("sample", help="write the synthetic sample DNG (a chart through a real Bayer mosaic)")
    common(s)
    s.add_argument("output")
    s.add_argument("--width", type=int, default=1200)
    s.add_argument("--height", type=int, default=800)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_sample)

    from . import cli_ai

    cli_ai.register(sub)
    try:
        from . import cli_presets
    except ImportError:  # presets/styles arrive with the modules issue
        cli_presets = None
    if cli_presets is not None:
        cli_presets.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if os.environ.get("PIXELPIPE_KERNEL_STATS"):
        import atexit
        import json

        def _stats():
            from .engine.kernels import STATS

            print(f"pixelpipe: kernel stats {json.dumps(STATS)}", file=sys.stderr)

        atexit.register(_stats)
    try:
        return int(args.func(args) or 0)
    except PixelpipeError as e:
        print(f"pixelpipe: error: {e}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print("pixelpipe: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("pixelpipe: error: out of memory", file=sys.stderr)
        return 75
    except Exception as e:  # noqa: BLE001 - one line, not a traceback, unless --debug
        print(f"pixelpipe: internal error: {e.__class__.__name__}: {e} (run with --debug for details)",
              file=sys.stderr)
        if debug:
            traceback.print_exc()
        return 70


if __name__ == "__main__":
    sys.exit(main())
