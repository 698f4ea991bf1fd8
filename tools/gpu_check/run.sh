#!/usr/bin/env bash
# Runs on the GPU machine (see README.md beside it): installs the carried wheels, runs the CUDA
# tests and the SLaK-T benchmark rows, and writes gpu_check.json, gpu_check.md and run.log.
#
# Usage: bash tools/gpu_check/run.sh OUT_DIR        (OUT_DIR defaults to $OUT)
# GPU_CHECK_DEVICE=cpu runs the same flow on a machine without CUDA, on small inputs, to check
# this script; by default it stops at once where PyTorch sees no CUDA device.
# GPU_CHECK_BATCHES="1" (or "" for none) narrows the benchmarks, e.g. for a shorter rerun.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT_DIR=${1:-${OUT:-}}
PYTHON=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
BUDGET_S=${GPU_CHECK_BUDGET_S:-540}  # the whole run; the rest of the 10-minute call is slack
WHEELS=$ROOT/tools/gpu_check/wheels
WORK=${GPU_CHECK_WORK:-/tmp/mmslak_gpu_check}
SITE=$WORK/site

die() { echo "[gpu_check] ERROR: $*" >&2; exit 2; }

[[ -n $OUT_DIR ]] || die "no output folder: pass one (run.sh DIR) or set OUT"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
exec > >(tee "$OUT_DIR/run.log") 2>&1
cd "$ROOT"
echo "[gpu_check] $(date -u +%FT%TZ) in $ROOT, device $DEVICE, output $OUT_DIR"

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; set PYTHON to the interpreter with torch"
"$PYTHON" - "$DEVICE" <<'PY' || exit 2  # it printed why
import sys
import torch
print(f'[gpu_check] {sys.executable} {sys.version.split()[0]}, torch {torch.__version__}, '
      f'CUDA build {torch.version.cuda}')
if sys.argv[1] == 'cuda' and not torch.cuda.is_available():
    sys.exit('[gpu_check] no CUDA device: torch.cuda.is_available() is False. This check needs a '
             'GPU; GPU_CHECK_DEVICE=cpu runs its flow on the CPU instead.')
if torch.cuda.is_available():
    print(f'[gpu_check] {torch.cuda.get_device_name()}')
for name in ('numpy', 'cv2'):  # taken from the machine: too large to carry (see README.md)
    try:
        print(f'[gpu_check] {name} {__import__(name).__version__} (from the machine)')
    except ImportError as error:
        sys.exit(f'[gpu_check] {name} is not importable ({error}); mmcv needs numpy and '
                 'OpenCV: install them there, or carry their wheels (README.md)')
PY

ls "$WHEELS"/*.whl >/dev/null 2>&1 ||
  die "no wheels in $WHEELS: run tools/gpu_check/prepare.sh first and carry tools/gpu_check/wheels"
rm -rf "$WORK"
mkdir -p "$WORK"
: >"$WORK/steps.tsv"
FAILED=0

# step NAME TIMEOUT_S CMD...: print the command, run it under a timeout, record its exit code
# (-1: skipped, no time left)
step() {
  local name=$1 limit=$2 start=$SECONDS code=0
  shift 2
  if (( limit == 0 )); then
    echo "[gpu_check] skip step $name: the ${BUDGET_S}s budget is spent"
    printf '%s\t-1\t0\t%s\n' "$name" "$*" >>"$WORK/steps.tsv"
    return 0
  fi
  echo "[gpu_check] step $name (at most ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" || code=$?
  (( code == 0 )) || { FAILED=1; echo "[gpu_check] step $name failed with exit code $code"; }
  printf '%s\t%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - start))" "$*" >>"$WORK/steps.tsv"
  return 0
}

# budget STEP_S: the seconds left for a step of at most STEP_S, or 0 where too few remain
budget() {
  local left=$((BUDGET_S - SECONDS))
  (( left >= 30 )) || { echo 0; return; }
  echo $((left < $1 ? left : $1))
}

step install 120 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
  --disable-pip-version-check --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH=$SITE:$ROOT PYTHONUNBUFFERED=1
# the machine's pytest plugins would load into the carried pytest; they are not needed
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
step import 60 "$PYTHON" -c 'import mmcv, mmslak; print(mmslak.__file__, "mmcv", mmcv.__version__)'

step tests "$(budget 200)" "$PYTHON" -m pytest tests/test_cuda tests/test_ops/test_triton.py -v \
  -rs -p no:cacheprovider --junitxml="$WORK/pytest.xml"

if [[ $DEVICE == cuda ]]; then
  SHAPE=(512 512)
  BATCHES=${GPU_CHECK_BATCHES-16 2}  # batch 2 last: the first dropped if time runs short
  PEAK=(--peak-tflops "${GPU_CHECK_PEAK_TFLOPS:-67}")  # H200: fp32 FMA on CUDA cores
else
  SHAPE=(64 64)
  BATCHES=${GPU_CHECK_BATCHES-2}
  PEAK=()
fi
for batch in $BATCHES; do
  if [[ $DEVICE == cpu ]]; then
    runs=(--runs 1 --warmup 0 --matmul-size 256)
  elif (( batch >= 16 )); then
    runs=(--runs 3 --warmup 2)
  else
    runs=(--runs 5 --warmup 2)
  fi
  # the large-kernel op alone, per stage and backend (the triton kernels against PyTorch)
  step "op_b${batch}" "$(budget 120)" "$PYTHON" tools/analysis_tools/benchmark.py --op \
    --arch tiny --device "$DEVICE" --shape "${SHAPE[@]}" --batch "$batch" --dtype bf16 fp16 fp32 \
    "${runs[@]}" "${PEAK[@]}" --json "$WORK/op_b${batch}.json"
  common=(tools/analysis_tools/benchmark.py --arch tiny --device "$DEVICE" --shape "${SHAPE[@]}"
          --batch "$batch" "${runs[@]}")
  step "bench_b${batch}_infer" "$(budget 90)" "$PYTHON" "${common[@]}" \
    --memory-format nchw channels_last --dtype fp32 bf16 amp-bf16 \
    --json "$WORK/bench_b${batch}_infer.json"
  # the training step on the measured choice (auto) and on the triton kernels forced (on CUDA)
  for ops in auto $([[ $DEVICE == cuda ]] && echo triton); do
    step "bench_b${batch}_train_$ops" "$(budget 90)" env MMSLAK_OPS=$ops "$PYTHON" \
      "${common[@]}" --train-step --dtype amp-bf16 fp32 --json "$WORK/bench_b${batch}_train_$ops.json"
  done
done

"$PYTHON" tools/gpu_check/report.py "$WORK" "$OUT_DIR"
echo "[gpu_check] done in ${SECONDS}s; failed steps: $FAILED"
exit "$FAILED"
