#!/usr/bin/env bash
# README command 1, the main job: set up, generate the built-in motion dataset, sweep RubiksNet
# (RS-AQ) over shift budget B and model size plus a per-frame baseline on an embedded local Ray,
# track everything in a local SQLite MLflow store, print the Pareto table and how to browse it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
start=$(date +%s)
# (re)generate when missing or written by a version with other classes
if ! python -c 'from rubiks_service.data.synth import CLASSES; print("\n".join(CLASSES))' \
    | cmp -s - runs/motion-data/classes.txt || [ ! -f runs/motion-data/val.csv ]; then
  rm -rf runs/motion-data
  rubiks data synth runs/motion-data --train-per-class 120 --val-per-class 25
fi
rubiks sweep tune_spaces/motion-demo.yaml "$@"
echo
echo "main job finished in $(( $(date +%s) - start )) s"
echo "browse the runs and the Pareto plot:  .venv/bin/rubiks ui   (then open http://127.0.0.1:5000)"
echo "the frontier again, as a table:        .venv/bin/rubiks pareto --experiment motion-demo"
