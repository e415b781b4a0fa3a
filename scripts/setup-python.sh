#!/usr/bin/env bash
# Creates the virtual environment of the Python interoperability tests (tests/python) and installs
# scripts/python-requirements.txt into it: transformers + optimum + GPTQModel (the GPTQ client,
# run on the CPU), torch and pytest, all pinned. Idempotent: when the environment already holds
# exactly these requirements (a stamp with their hash), it returns at once.
#
#   bash scripts/setup-python.sh                       # .venv-interop/ in the checkout's root
#   QSHARD_PYTHON_VENV=/path/to/venv bash scripts/setup-python.sh
#   QSHARD_PYTHON=python3.11 bash scripts/setup-python.sh   # the interpreter that makes the venv
#
# A cold install downloads ~3 GB (PyPI's torch is the CUDA build and needs the nvidia-* runtime
# wheels to import, even without a GPU): 205 s measured without a pip cache, 145 s with one; the
# venv takes ~6 GB of disk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

requirements=scripts/python-requirements.txt
venv=${QSHARD_PYTHON_VENV:-.venv-interop}
python=${QSHARD_PYTHON:-python3}
stamp="$venv/.qshard-requirements.sha256"

want=$({
  sha256sum "$requirements" | cut -d' ' -f1
  "$python" -c 'import sys; print(sys.version.split()[0])'
} | sha256sum | cut -d' ' -f1)

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "setup-python: $venv is up to date"
  exit 0
fi

start=$(date +%s)
if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup-python: creating $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi
rm -f "$stamp"
echo "setup-python: installing $requirements into $venv (3-4 minutes when new)"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
  --quiet -r "$requirements"
# Importing the client once proves the install (torch finds its runtime libraries) and compiles
# the bytecode outside the timed tests.
check='from importlib.metadata import version
import torch, transformers, optimum.gptq, gptqmodel, pytest
print("setup-python:", ", ".join(f"{p} {version(p)}" for p in
      ("torch", "transformers", "optimum", "gptqmodel", "pytest")))'
if ! out=$(GPTQMODEL_CPU_WORKERS=2 "$venv/bin/python" -c "$check" 2>&1); then
  echo "$out" >&2
  echo "setup-python: the installed client does not import" >&2
  exit 1
fi
grep '^setup-python:' <<<"$out"
echo "$want" >"$stamp"
echo "setup-python: done in $(($(date +%s) - start)) s"
