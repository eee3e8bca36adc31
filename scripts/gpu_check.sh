#!/usr/bin/env bash
# One-call check of the CUDA kernels on a machine with one NVIDIA GPU and only torch, nvcc, ninja
# and pytest (no ray, no mlflow): build the extension for this GPU's architecture, run
# `pytest tests/ops tests/models` with every CUDA case required to run, then the shift and model
# benchmarks on the GPU. Each step has its own time limit and a failing step does not stop the
# next; summary.json records each step's status. Sized to finish in about 8 minutes on an H100.
#
#   scripts/gpu_check.sh [OUT_DIR]       # OUT_DIR: default $OUT, else ./gpu-check-out
#   GPU_CHECK_DRY_RUN=1 scripts/gpu_check.sh /tmp/x   # CPU only: the plumbing, no build, no GPU
#
# Writes (at most 8 files, as a device call brings back): summary.json, gpu_check.log,
# pytest-cuda.xml, pytest-rest.xml, shift-gpu.json, models-gpu.json.
# Environment: PYTHON (default .venv/bin/python if present, else python3), GPU_CHECK_ARCH
# (override the detected arch list, e.g. 9.0), GPU_CHECK_BLOCK (packages made unimportable),
# GPU_CHECK_PYTEST_ARGS (extra pytest arguments), GPU_CHECK_TIMEOUT_<STEP> (seconds per step),
# GPU_CHECK_BUDGET_S (the whole run, default 480: later steps keep their share of it).
set -uo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  -*) echo "gpu_check: unknown option $1 (usage: scripts/gpu_check.sh [OUT_DIR])" >&2; exit 2 ;;
esac
if [ $# -gt 1 ]; then
  echo "gpu_check: one argument at most, the output folder (got $#)" >&2; exit 2
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${1:-${OUT:-$REPO/gpu-check-out}}
if ! mkdir -p "$OUT_DIR" 2>/dev/null || [ ! -w "$OUT_DIR" ]; then
  echo "gpu_check: cannot write to the output folder $OUT_DIR" >&2; exit 2
fi
OUT_DIR=$(cd "$OUT_DIR" && pwd)
DRY=${GPU_CHECK_DRY_RUN:-0}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python
else PY=python3; fi
if ! command -v "$PY" >/dev/null; then
  echo "gpu_check: no Python at $PY (set PYTHON)" >&2; exit 2
fi

cd "$REPO"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG=$OUT_DIR/gpu_check.log
STEPS=$WORK/steps.tsv
: >"$LOG"
rm -f "$OUT_DIR"/{summary.json,pytest-cuda.xml,pytest-rest.xml,shift-gpu.json,models-gpu.json}

# Every Python below sees the packages a bare GPU machine lacks as missing (the project's
# dependencies that the device image does not hold), here as there: ops and models must not need them.
export GPU_CHECK_BLOCK=${GPU_CHECK_BLOCK-ray mlflow pydantic decord av sqlalchemy alembic psycopg playwright}
export PYTHONPATH="$REPO/scripts/gpu_check_guard:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
CORES=$(nproc)

say() { echo "[gpu_check] $*" | tee -a "$LOG"; }

# step NAME LIMIT_S CMD...: run CMD under a time limit, output to the log, status to steps.tsv.
# The limit is also cut so that RESERVE seconds (what the later steps need) stay in the whole
# run's budget GPU_CHECK_BUDGET_S; a step with under 5 s left is not started.
BUDGET=${GPU_CHECK_BUDGET_S:-480}
# the dry run's limits are for a shared, loaded CPU machine, not the GPU one
[ "$DRY" = 1 ] && BUDGET=${GPU_CHECK_BUDGET_S:-1800}
step() {
  local name=$1 limit=$2; shift 2
  [ "$DRY" = 1 ] && limit=$((limit * 4))
  local var="GPU_CHECK_TIMEOUT_${name^^}"; var=${var//-/_}
  limit=${!var:-$limit}
  local left=$((BUDGET - SECONDS - ${RESERVE:-0}))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "no-time" "-1" "0.0" "not started: the budget of ${BUDGET}s is spent" >>"$STEPS"
    say "step $name: not started, the budget of ${BUDGET}s is spent"
    return 0
  fi
  local out=$WORK/$name.out start end rc status
  say "step $name (limit ${limit}s): $*"
  start=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" >"$out" 2>&1
  rc=$?
  end=$(date +%s.%N)
  cat "$out" >>"$LOG"
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  [ "$DRY" = 1 ] && [ "$status" = ok ] && [ "${DRY_STEP:-0}" = 1 ] && status=dry-run
  local secs; secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "${STEP_DETAIL:-}" >>"$STEPS"
  say "step $name: $status (rc $rc, $secs s)"
  if [ "$status" != ok ] && [ "$status" != dry-run ]; then tail -n 25 "$out" | sed 's/^/    /'; fi
  return 0
}

say "repo $REPO, output $OUT_DIR, python $PY, dry run $DRY, blocked: $GPU_CHECK_BLOCK"

# 1. what the machine has (GPU, compute capability, nvcc, ninja, the test modules)
REQUIRE=(); [ "$DRY" = 1 ] || REQUIRE=(--require-gpu)
RESERVE=400 STEP_DETAIL="GPU, arch list, tools, test modules" step preflight 60 \
  "$PY" scripts/gpu_check_lib.py preflight --out "$WORK/preflight.json" "${REQUIRE[@]}"
ARCH=${GPU_CHECK_ARCH:-}
if [ -z "$ARCH" ] && [ -s "$WORK/preflight.json" ]; then
  ARCH=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("arch_list") or "")' "$WORK/preflight.json")
fi
if [ -z "$ARCH" ] && [ "$DRY" = 1 ]; then ARCH=9.0; fi  # the dry run has no GPU: an H100's, for the plumbing
if [ -z "${CUDA_HOME:-}" ] && [ -s "$WORK/preflight.json" ]; then
  CUDA_HOME=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("cuda_home") or "")' "$WORK/preflight.json")
  [ -n "$CUDA_HOME" ] && export CUDA_HOME
fi
say "TORCH_CUDA_ARCH_LIST=${ARCH:-<none: no GPU seen>} MAX_JOBS=$CORES CUDA_HOME=${CUDA_HOME:-<not found>}"

# 2. the extension, CUDA kernels for this GPU's architecture only, built in place (rubiks_service/_C*.so)
BUILD=(env TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$CORES" RUBIKS_WITH_CUDA=1 "$PY" setup.py -q build_ext --inplace)
if [ "$DRY" = 1 ]; then
  # the build's inputs only: setup.py's extension with the CUDA sources forced in, ninja
  DRY_STEP=1 STEP_DETAIL="would run: ${BUILD[*]}" step build 60 \
    env RUBIKS_WITH_CUDA=1 "$PY" scripts/gpu_check_lib.py build-plan
elif [ -z "$ARCH" ]; then
  STEP_DETAIL="no GPU seen: no architecture to build for" step build 10 false
else
  RESERVE=280 STEP_DETAIL="TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=$CORES" step build 240 "${BUILD[@]}"
fi

# 3. ops and models import without the blocked packages, and the extension has its CUDA kernels
REQUIRE=(); [ "$DRY" = 1 ] || REQUIRE=(--require-cuda)
RESERVE=270 STEP_DETAIL="ops and models import, no blocked package loaded" step imports 45 \
  "$PY" scripts/gpu_check_lib.py imports "${REQUIRE[@]}"

# 4. the op and model tests in two runs: the CUDA cases first (-k cuda: the `cuda` device
# parameter, tests/ops/test_cuda*.py; none may skip), the CPU cases last, in the time left
PYTEST=("$PY" -m pytest tests/ops tests/models -p no:cacheprovider -q -rs --durations=10)
if "$PY" -c 'import xdist' 2>/dev/null && [ "$CORES" -ge 8 ]; then
  # workers share the GPU; loadfile keeps each file's compile-heavy cases on one worker
  PYTEST+=(-n 6 --dist loadfile)
fi
"$PY" -c 'import pytest_timeout' 2>/dev/null && PYTEST+=(--timeout 200)
# shellcheck disable=SC2206
PYTEST+=(${GPU_CHECK_PYTEST_ARGS:-})
CUDA_RUN=("${PYTEST[@]}" -k cuda --junitxml="$OUT_DIR/pytest-cuda.xml")
REST_RUN=("${PYTEST[@]}" -k "not cuda" --junitxml="$OUT_DIR/pytest-rest.xml")
if [ "$DRY" = 1 ]; then
  DRY_STEP=1 STEP_DETAIL="collected only; would run: ${CUDA_RUN[*]}, then ${REST_RUN[*]}" \
    step pytest 120 "${PYTEST[@]}" --collect-only
else
  export OMP_NUM_THREADS=$(( CORES >= 12 ? CORES / 6 : 1 ))
  RESERVE=170 STEP_DETAIL="${CUDA_RUN[*]:1}" step pytest-cuda 200 "${CUDA_RUN[@]}"
  RESERVE=150 STEP_DETAIL="every CUDA case ran: none skipped" step cuda-cases 20 \
    "$PY" scripts/gpu_check_lib.py cuda-cases "$OUT_DIR/pytest-cuda.xml" --out "$WORK/cuda-cases.json"
  unset OMP_NUM_THREADS
fi

# 5. the shift op against a device copy, grid_sample and the Table A2 blocks
SHIFT=("$PY" bench/bench_shift_gpu.py --shapes 8,8,72,56,56 32,8,144,56,56 --min-run-time 0.3
       --out "$OUT_DIR/shift-gpu.json")
if [ "$DRY" = 1 ]; then
  DRY_STEP=1 STEP_DETAIL="--help only; would run: ${SHIFT[*]}" step bench-shift 60 "$PY" bench/bench_shift_gpu.py --help
else
  RESERVE=120 STEP_DETAIL="(8,8,72,56,56) and (32,8,144,56,56), fp32 and bf16" step bench-shift 100 "${SHIFT[@]}"
fi

# 6. whole models at batch 32, bf16 autocast: inference and a training step
MODELS=("$PY" bench/bench_models_gpu.py --batch 32 --warmup 2 --rounds 5 --out "$OUT_DIR/models-gpu.json")
if [ "$DRY" = 1 ]; then
  # a real run of the same code on the CPU, tiny models and clips, to the same output path
  DRY_STEP=1 STEP_DETAIL="tiny CPU run; would run: ${MODELS[*]}" step bench-models 90 "$PY" bench/bench_models_gpu.py \
    --device cpu --dtype float32 --batch 2 --frames 4 --size 32 --models rubiksnet-nano tsm-nano \
    --warmup 0 --rounds 1 --out "$OUT_DIR/models-gpu.json"
else
  RESERVE=30 STEP_DETAIL="rubiksnet-tiny/large vs tsm-r18/r50, batch 32, bf16 autocast" \
    step bench-models 150 "${MODELS[@]}"
fi

# 7. the CPU cases of the same tests, in what is left of the budget
if [ "$DRY" != 1 ]; then
  export OMP_NUM_THREADS=$(( CORES >= 12 ? CORES / 6 : 1 ))
  STEP_DETAIL="${REST_RUN[*]:1}" step pytest-rest 300 "${REST_RUN[@]}"
  unset OMP_NUM_THREADS
fi

# the headline figures beside the steps' statuses
EXTRA=()
[ -s "$WORK/preflight.json" ] && EXTRA+=(--extra "machine=$WORK/preflight.json")
[ -s "$WORK/cuda-cases.json" ] && EXTRA+=(--extra "tests_cuda=$WORK/cuda-cases.json")
if [ -s "$OUT_DIR/pytest-rest.xml" ]; then
  "$PY" scripts/gpu_check_lib.py cuda-cases "$OUT_DIR/pytest-rest.xml" --out "$WORK/rest.json" >/dev/null
  EXTRA+=(--extra "tests_cpu=$WORK/rest.json@all")
fi
[ -s "$OUT_DIR/shift-gpu.json" ] && EXTRA+=(--extra "shift_goals=$OUT_DIR/shift-gpu.json@goals")
if [ -s "$OUT_DIR/models-gpu.json" ]; then
  EXTRA+=(--extra "models_inference_ratios=$OUT_DIR/models-gpu.json@inference.ratios"
          --extra "models_train_ratios=$OUT_DIR/models-gpu.json@train.ratios")
fi
"$PY" scripts/gpu_check_lib.py summary "$STEPS" "$OUT_DIR/summary.json" "${EXTRA[@]}" | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
