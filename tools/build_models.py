"""Build model packages by id (the command named in pixelpipe's model catalogue).

    python tools/build_models.py ID [ID ...] [--out build/models]

A thin front end of ``tools/convert_all.py``: converts each id into
``<out>/<id>.dtmodel`` (default ``build/models``), which then installs with
``pixelpipe ai models install build/models/<id>.dtmodel``.  Needs PyTorch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import convert_all  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ids", nargs="*", metavar="ID", help=f"model ids (default all): "
                    f"{', '.join(convert_all.MODEL_IDS)}")
    ap.add_argument("--out", default="build/models")
    ap.add_argument("--models", default=None, help="shared weights folder")
    a = ap.parse_args(argv)
    ids = a.ids or list(convert_all.MODEL_IDS)
    bad = [i for i in ids if i not in convert_all.MODEL_IDS]
    if bad:
        ap.error(f"unknown model id(s): {', '.join(bad)}")
    rc = 0
    for i in ids:
        extra = ["--models", a.models] if a.models else []
        rc |= convert_all.main(["--out", a.out, "--only", i] + extra)
    for i in ids:
        print(f"install with: pixelpipe ai models install {Path(a.out) / (i + '.dtmodel')}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
