#!/usr/bin/env bash
# Main job: set up a local virtual environment (once), install pixelpipe, write the
# synthetic sample DNG and export it to JPEG. Needs only python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
mkdir -p out
.venv/bin/pixelpipe sample out/sample.dng --overwrite
.venv/bin/pixelpipe export out/sample.dng out/sample.jpg --overwrite
echo "open out/sample.jpg"
