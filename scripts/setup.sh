#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: a virtualenv in .venv, torch 2.13.0 (the
# local CPU wheel on these machines; an unpinned torch would pull CUDA packages),
# the project's pinned dependencies, and the compiled extension (built against
# the installed torch, hence --no-build-isolation).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
LOG=.venv/setup.log
# pip's and the build's output go to the log (the last lines are shown if a step fails)
logged() {
  "$@" >>"$LOG" 2>&1 || { echo "[setup] failed: $*" >&2; tail -n 30 "$LOG" >&2; echo "[setup] full log: $PWD/$LOG" >&2; exit 1; }
}

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  echo "[setup] installing build tools and torch==2.13.0"
  logged "${PIP[@]}" install --upgrade pip setuptools wheel
  logged "${PIP[@]}" install torch==2.13.0
fi
# rebuild only when the sources of the build changed (the editable install covers the Python code)
stamp=$(cat setup.py pyproject.toml ext/*.* ext/*/* 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat .venv/.rubiks-build 2>/dev/null)" != "$stamp" ] || ! .venv/bin/python -c 'import torch, rubiks_service._C' 2>/dev/null; then
  logged "${PIP[@]}" install "pybind11>=2.12" ninja
  echo "[setup] installing rubiks-service and building the extension (ext/; log: $LOG)"
  logged "${PIP[@]}" install --no-build-isolation -e '.[test]'
  echo "$stamp" > .venv/.rubiks-build
fi
.venv/bin/python -c 'import torch; from rubiks_service.ops import has_kernel; \
assert has_kernel(torch.device("cpu")), "the compiled extension did not build"; print("[setup] extension ok")'
