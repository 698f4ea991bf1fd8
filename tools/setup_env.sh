#!/usr/bin/env bash
# Creates .venv with the pinned OpenMMLab 2.0 stack and mmslak (editable, PEP 660).
# Exact versions come from requirements/sandbox.txt (constraints of every pip call here); the ranges
# mmslak supports are in pyproject.toml. Idempotent: when the stamp matches this script and the
# packaging files, it only checks the imports and the pinned versions.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
PY=$VENV/bin/python
STAMP=$VENV/.mmslak-setup
CONSTRAINTS=$ROOT/requirements/sandbox.txt
# pip>=21.3 installs editables through PEP 660 (pyproject.toml), no `setup.py develop`.
PIP_TOOLS='pip==26.3 wheel==0.48.0'
# mmcv 2.1.0's setup.py needs pkg_resources as setuptools<70 ships it (as before, exact here).
BUILD_SETUPTOOLS='setuptools==69.5.1'
# Run time: torch 2.13 needs setuptools>=77.0.3, mmengine imports pkg_resources (removed in 81).
RUN_SETUPTOOLS='setuptools==80.10.2'
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { CURRENT_STEP=$1; echo "[setup] $1"; }
trap 'echo "[setup] FAILED at step: ${CURRENT_STEP:-start}" >&2' ERR

fingerprint() {
  cat "$0" "$ROOT/setup.cfg" "$ROOT/setup.py" "$ROOT/pyproject.toml" "$CONSTRAINTS" \
    | sha256sum | cut -d' ' -f1
}
pip_install() { "$PY" -m pip install -q -c "$CONSTRAINTS" "$@"; }

check_imports() {
  "$PY" - "$CONSTRAINTS" "$RUN_SETUPTOOLS" <<'PY'
import sys
from importlib.metadata import version
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, pkg_resources, torch, mmslak  # noqa
import onnx, onnxruntime  # noqa: the deploy extra (export tests)
pins = [line.split('#')[0].strip() for line in open(sys.argv[1])] + [sys.argv[2]]
wrong = []
for name, _, pinned in (pin.partition('==') for pin in pins if pin):
    installed = version(name).split('+')[0]  # torch's CPU wheel is 2.13.0+cpu
    if installed != pinned:
        wrong.append(f'{name} {installed} (pinned {pinned})')
assert not wrong, 'not the pinned versions: ' + ', '.join(wrong)
PY
}

if [[ -f $STAMP && $(cat "$STAMP") == $(fingerprint) ]]; then
  step "check the existing environment in $VENV"
  if check_imports; then
    echo "[setup] environment up to date"
    exit 0
  fi
  echo "[setup] environment broken, reinstalling"
elif [[ -x $PY ]] && check_imports 2>/dev/null; then
  # The packaging files changed but the stack is the pinned one: reinstalling mmslak is enough.
  step "reinstall mmslak (editable, PEP 660) into the pinned environment $VENV"
  pip_install --no-build-isolation --no-deps -e "$ROOT[tests,deploy]"
  check_imports
  fingerprint > "$STAMP"
  echo "[setup] done"
  exit 0
fi

step "create virtual environment $VENV with $PYTHON"
command -v "$PYTHON" >/dev/null || { echo "[setup] $PYTHON not found" >&2; exit 1; }
"$PYTHON" -m venv "$VENV"
pip_install --upgrade $PIP_TOOLS "$BUILD_SETUPTOOLS"

step "install torch==2.13.0 (CPU wheel)"
pip_install torch
"$PY" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'torch is a CUDA build')"

step "install build and runtime dependencies"
# numpy 1.x and opencv-python<4.11, as pinned in the constraints.
pip_install numpy opencv-python ninja mmengine

step "build mmcv==2.1.0 with its compiled ops (first time: several minutes)"
# Newer setuptools (pulled in by dependencies) drops pkg_resources, which mmcv's setup.py needs.
pip_install "$BUILD_SETUPTOOLS"
MMCV_WITH_OPS=1 "$PY" -m pip install -c "$CONSTRAINTS" --no-build-isolation mmcv
pip_install "$RUN_SETUPTOOLS"

step "install mmdet==3.3.0, mmsegmentation==1.2.2, pycocotools"
pip_install mmdet mmsegmentation pycocotools

step "install mmslak (editable, PEP 660) with the test and deploy extras"
# No build isolation: builds with the setuptools pinned above instead of fetching one.
pip_install --no-build-isolation -e "$ROOT[tests,deploy]"

step "check imports and pinned versions"
check_imports
fingerprint > "$STAMP"
echo "[setup] done"
