#!/usr/bin/env bash
# Creates .venv with the pinned OpenMMLab 2.0 stack and mmslak (editable).
# Idempotent: when the stamp matches this script and setup.cfg, it only checks the imports.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
PY=$VENV/bin/python
STAMP=$VENV/.mmslak-setup
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { CURRENT_STEP=$1; echo "[setup] $1"; }
trap 'echo "[setup] FAILED at step: ${CURRENT_STEP:-start}" >&2' ERR

fingerprint() { cat "$0" "$ROOT/setup.cfg" | sha256sum | cut -d' ' -f1; }

check_imports() {
  "$PY" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, pkg_resources, torch, mmslak
assert mmcv.__version__ == '2.1.0', mmcv.__version__
assert torch.__version__.startswith('2.13.0'), torch.__version__
PY
}

if [[ -f $STAMP && $(cat "$STAMP") == $(fingerprint) ]]; then
  step "check the existing environment in $VENV"
  if check_imports; then
    echo "[setup] environment up to date"
    exit 0
  fi
  echo "[setup] environment broken, reinstalling"
fi

step "create virtual environment $VENV with $PYTHON"
command -v "$PYTHON" >/dev/null || { echo "[setup] $PYTHON not found" >&2; exit 1; }
"$PYTHON" -m venv "$VENV"
"$PY" -m pip install -q --upgrade 'pip<25' 'setuptools<70' wheel

step "install torch==2.13.0 (CPU wheel)"
"$PY" -m pip install -q 'torch==2.13.0'
"$PY" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'torch is a CUDA build')"

step "install build and runtime dependencies"
"$PY" -m pip install -q 'numpy<2' 'opencv-python<4.11' ninja 'mmengine==0.10.7'

step "build mmcv==2.1.0 with its compiled ops (first time: several minutes)"
# Newer setuptools (pulled in by dependencies) drops pkg_resources, which mmcv's setup.py needs.
"$PY" -m pip install -q 'setuptools<70'
MMCV_WITH_OPS=1 "$PY" -m pip install --no-build-isolation 'mmcv==2.1.0'
# At run time torch 2.13 needs setuptools>=77.0.3 and mmengine still imports pkg_resources (<81).
"$PY" -m pip install -q 'setuptools>=77.0.3,<81'

step "install mmdet==3.3.0, mmsegmentation==1.2.2, pycocotools"
"$PY" -m pip install -q 'mmdet==3.3.0' 'mmsegmentation==1.2.2' pycocotools

step "install mmslak (editable) with test extras"
"$PY" -m pip install -q --no-build-isolation -e "$ROOT[tests]"

step "check imports"
check_imports
fingerprint > "$STAMP"
echo "[setup] done"
