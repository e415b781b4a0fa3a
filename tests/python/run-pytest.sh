#!/usr/bin/env bash
# Runs pytest with the interop venv's Python for CTest (tests/python/CMakeLists.txt):
#   run-pytest.sh VENV_PYTHON PYTEST_ARGS...
# Exits 77 (CTest: Skipped) with the reason when the venv is missing; pytest itself exits 77 when
# every test skipped (conftest.py), e.g. without ../shared.
set -euo pipefail
python=$1
shift
if [[ ! -x "$python" ]]; then
  echo "SKIPPED: no Python interop venv ($python); create it with: bash scripts/setup-python.sh"
  exit 77
fi
exec "$python" -m pytest "$@"
