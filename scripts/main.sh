#!/usr/bin/env bash
# README command 1, the main job: set up, generate the built-in motion dataset (the harder set:
# distractors, pixel noise, short motions), sweep RubiksNet (RS-AQ, two tiers and budgets) against
# TSM at matching MACs plus per-frame baselines on an embedded local Ray, track everything in a
# local SQLite MLflow store, print the comparison table, the Pareto frontiers and where the plot is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the venv's commands by their full path, not through PATH: the next steps the sweep prints then name the
# executable that works from the user's own shell
rubiks="$PWD/.venv/bin/rubiks"
start=$(date +%s)
# (re)generate when missing or written with other settings (classes, knobs, sizes)
if ! .venv/bin/python -c '
import dataclasses, json, sys
from rubiks_service.data.synth import CLASSES, SynthConfig
want = dataclasses.asdict(SynthConfig(train_per_class=100, val_per_class=25))
try:
    same = (json.load(open("runs/motion-data/synth.json")) == want
            and open("runs/motion-data/classes.txt").read().split() == list(CLASSES)
            and open("runs/motion-data/val.csv").readline().startswith("path"))
except (OSError, ValueError):
    same = False
sys.exit(0 if same else 1)'; then
  rm -rf runs/motion-data
  "$rubiks" data synth runs/motion-data --train-per-class 100 --val-per-class 25
fi
# the videos decoded once into frame shards at the sweep's crop size: no trial decodes a video
for split in train val; do
  if [ ! -f runs/motion-data/frames/$split/frames.json ]; then
    rm -rf runs/motion-data/frames/$split
    mkdir -p runs/logs
    echo "decoding the $split videos once into frame shards (log: runs/logs/prepare-frames-$split.log)"
    "$rubiks" data prepare-frames runs/motion-data/$split.csv runs/motion-data/frames/$split --crop-size 48 \
      >runs/logs/prepare-frames-$split.log 2>&1 || { tail -n 5 runs/logs/prepare-frames-$split.log; exit 1; }
  fi
done
"$rubiks" sweep tune_spaces/motion-demo.yaml "$@"
echo
echo "main job finished in $(( $(date +%s) - start )) s"
