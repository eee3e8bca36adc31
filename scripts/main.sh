#!/usr/bin/env bash
# README command 1: set up, then run the main job. Until the training service
# lands (issue 6) the main job is the operator benchmark on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python bench/bench_shift_cpu.py "$@"
