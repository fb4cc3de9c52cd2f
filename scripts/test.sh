#!/usr/bin/env bash
# The whole test suite: set up the local virtual environment (once), install pixelpipe
# with its AI and test extras, run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[ai,test]'
exec .venv/bin/python -m pytest -q "$@"
