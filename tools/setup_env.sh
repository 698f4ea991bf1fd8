#!/usr/bin/env bash
# Creates the virtual environment of one supported stack and installs mmslak into it (editable,
# PEP 660) with its test and deploy extras, and the triton one where the stack's torch allows it.
# Usage: tools/setup_env.sh [lock|legacy|forks].
#
#   lock    Python 3.11, torch 2.13.0 (CPU wheel), upstream mmengine/mmcv/mmdet/mmsegmentation
#   legacy  Python 3.10, torch 2.1.2, the same upstream OpenMMLab releases, numpy 1.26
#   forks   Python 3.12, torch 2.14.1, the OneDL forks (onedl-mmengine, onedl-mmcv, ...), numpy 2,
#           the newest setuptools (no pkg_resources)
#
# Exact versions come from requirements/<stack>.txt (constraints of every pip call here); the
# ranges mmslak supports are in pyproject.toml. mmcv has no wheels on PyPI for these torch
# releases, so it is built from source against the stack's torch (the first time: 10-30 minutes
# on 2 cores); pip caches the wheel per Python version, so later set-ups take minutes.
# Idempotent: when the stamp matches this script, the packaging files and the lock file, it only
# checks the imports and the pinned versions.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${1:-${MMSLAK_STACK:-lock}}
# pip>=21.3 installs editables through PEP 660 (pyproject.toml), no `setup.py develop`.
PIP_TOOLS='pip==26.3 wheel==0.48.0'
case $STACK in
  lock)
    PYTHON_VERSION=3.11
    DEFAULT_VENV=.venv
    MM_PACKAGES='mmengine mmcv mmdet mmsegmentation'
    EXTRAS=tests,deploy,triton,docs
    # mmcv 2.1.0's setup.py needs pkg_resources as setuptools<70 ships it. The run time's
    # setuptools is the lock file's: >=77.0.3 for mmslak's build, <82 for mmengine's pkg_resources.
    BUILD_SETUPTOOLS='setuptools==69.5.1' ;;
  legacy)
    PYTHON_VERSION=3.10
    DEFAULT_VENV=.venv-legacy
    MM_PACKAGES='mmengine mmcv mmdet mmsegmentation'
    # torch 2.1.2 pins triton 2.1.0, older than the triton backend's 3.4
    EXTRAS=tests,deploy
    BUILD_SETUPTOOLS='setuptools==69.5.1' ;;
  forks)
    PYTHON_VERSION=3.12
    DEFAULT_VENV=.venv-forks
    MM_PACKAGES='onedl-mmengine onedl-mmcv onedl-mmdetection onedl-mmsegmentation'
    EXTRAS=tests,deploy,triton
    # onedl-mmengine and onedl-mmcv need no pkg_resources: the lock file's (newest) setuptools.
    BUILD_SETUPTOOLS=''
    # torch 2.14's headers need C++20; onedl-mmcv 2.3.6's setup.py asks the compiler for C++17.
    CXX_STANDARD=c++20 ;;
  *)
    echo "[setup] unknown stack '$STACK': choose lock, legacy or forks" >&2
    exit 2 ;;
esac
# Each stack has a folder of its own (the Makefile's VENV_<stack>); MMSLAK_VENV overrides it.
VENV=$(realpath -m "${MMSLAK_VENV:-$ROOT/$DEFAULT_VENV}")
PY=$VENV/bin/python
STAMP=$VENV/.mmslak-setup
CONSTRAINTS=$ROOT/requirements/$STACK.txt
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export PIP_DISABLE_PIP_VERSION_CHECK=1
read -r -a MM <<<"$MM_PACKAGES"  # engine, cv, detection, segmentation

step() { CURRENT_STEP=$1; echo "[setup:$STACK] $1"; }
trap 'echo "[setup:$STACK] FAILED at step: ${CURRENT_STEP:-start}" >&2' ERR

find_python() {
  # pyenv keeps each minor version under its root; a python3.X on PATH also does.
  local found
  found=$(command -v "python$PYTHON_VERSION" 2>/dev/null || true)
  if [[ -n $found ]] && "$found" -c 'import sys' 2>/dev/null; then echo "$found"; return; fi
  for found in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$PYTHON_VERSION".*/bin/python"$PYTHON_VERSION"; do
    [[ -x $found ]] && { echo "$found"; return; }
  done
  echo "[setup:$STACK] python$PYTHON_VERSION not found: install it (e.g. pyenv install" \
    "$PYTHON_VERSION) or put it on PATH" >&2
  return 1
}

fingerprint() {
  cat "$0" "$ROOT/setup.cfg" "$ROOT/setup.py" "$ROOT/pyproject.toml" "$CONSTRAINTS" \
    | sha256sum | cut -d' ' -f1
}
pip_install() { "$PY" -m pip install -q -c "$CONSTRAINTS" "$@"; }

check_imports() {
  MMSLAK_STACK=$STACK "$PY" - "$CONSTRAINTS" <<'PY'
import sys
from importlib.metadata import version
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, torch, mmslak  # noqa
import onnx, onnxruntime  # noqa: the deploy extra (export tests)
pins = [line.split('#')[0].strip() for line in open(sys.argv[1])]
wrong = []
for name, _, pinned in (pin.partition('==') for pin in pins if pin):
    installed = version(name).split('+')[0]  # torch's CPU wheel is 2.13.0+cpu
    if installed != pinned:
        wrong.append(f'{name} {installed} (pinned {pinned})')
assert not wrong, 'not the pinned versions: ' + ', '.join(wrong)
PY
}

[[ -f $CONSTRAINTS ]] || { echo "[setup:$STACK] lock file $CONSTRAINTS is missing" >&2; exit 1; }
if [[ -f $STAMP && $(cat "$STAMP") == $(fingerprint) ]]; then
  step "check the existing environment in $VENV"
  if check_imports; then
    echo "[setup:$STACK] environment up to date"
    exit 0
  fi
  echo "[setup:$STACK] environment broken, reinstalling"
elif [[ -x $PY ]] && check_imports 2>/dev/null; then
  # The packaging files changed but the stack is the pinned one: reinstalling mmslak is enough.
  step "reinstall mmslak (editable, PEP 660) into the pinned environment $VENV"
  pip_install --no-build-isolation --no-deps -e "$ROOT[$EXTRAS]"
  check_imports
  fingerprint > "$STAMP"
  echo "[setup:$STACK] done"
  exit 0
fi

step "create virtual environment $VENV with Python $PYTHON_VERSION"
PYTHON=$(find_python)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip_install --upgrade $PIP_TOOLS setuptools

step "install torch (the version of $CONSTRAINTS)"
pip_install torch
if [[ $STACK == lock ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'torch is a CUDA build')"
fi

step "install build and runtime dependencies"
pip_install numpy opencv-python ninja "${MM[0]}"

step "build ${MM[1]} with its compiled ops against this torch (first time: 10-30 minutes)"
# mmcv 2.1's setup.py needs an older setuptools than the run time (not a pin of the lock file,
# which holds the run time's). No build isolation: the ops are compiled against this torch.
[[ -z $BUILD_SETUPTOOLS ]] || "$PY" -m pip install -q "$BUILD_SETUPTOOLS"
if [[ -n ${CXX_STANDARD:-} ]]; then
  # A g++ that takes the C++ standard torch needs instead of the one mmcv's setup.py names.
  mkdir -p "$VENV/mmcv-build"
  printf '#!/usr/bin/env bash\nexec %s "${@/#-std=c++1[147]/-std=%s}"\n' \
    "$(command -v "${CXX:-g++}")" "$CXX_STANDARD" > "$VENV/mmcv-build/g++"
  chmod +x "$VENV/mmcv-build/g++"
  export CXX=$VENV/mmcv-build/g++
fi
MMCV_WITH_OPS=1 "$PY" -m pip install -c "$CONSTRAINTS" --no-build-isolation "${MM[1]}"
pip_install setuptools

step "install ${MM[2]}, ${MM[3]}, pycocotools"
pip_install "${MM[2]}" "${MM[3]}" pycocotools

step "install mmslak (editable, PEP 660) with the extras $EXTRAS"
# No build isolation: builds with the setuptools installed above instead of fetching one.
pip_install --no-build-isolation -e "$ROOT[$EXTRAS]"

step "check imports and pinned versions"
check_imports
fingerprint > "$STAMP"
echo "[setup:$STACK] done"
