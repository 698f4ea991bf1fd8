#!/usr/bin/env bash
# Runs here, with network: fills tools/gpu_check/wheels/ (git-ignored) with the pure-Python
# wheels that run.sh installs on the GPU machine, which has Python 3.12, PyTorch, numpy, OpenCV,
# PyYAML, rich and Pillow but no OpenMMLab package and no network (see README.md beside it).
# Then prints the size of what a `run` call carries, which must stay under 64 MiB.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WHEELS=$HERE/wheels
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
LIMIT_MIB=64
export PIP_DISABLE_PIP_VERSION_CHECK=1
# mmcv-lite is mmcv 2.1.0 without its compiled ops (the MMCV_WITH_OPS=0 build, same Python
# files, package mmcv); then the pure dependencies the machine lacks, setuptools with the
# pkg_resources mmengine 0.10.7 imports (the lock's: the machine's may be >= 82, without it), and
# pytest with its own.
PURE=(mmcv-lite==2.1.0 mmengine==0.10.7 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9
      termcolor==3.3.0 setuptools==80.10.2 pytest==9.2.0 iniconfig==2.3.1 pluggy==1.7.0
      packaging==26.4 pygments==2.21.0)

step() { echo "[prepare] $*"; }
if [[ ! -x $PYTHON ]]; then
  echo "[prepare] $PYTHON not found: run 'make setup' or set PYTHON" >&2
  exit 1
fi

rm -rf "$WHEELS"
mkdir -p "$WHEELS"
step "download for CPython 3.12: ${PURE[*]}"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux2014_x86_64 -d "$WHEELS" "${PURE[@]}"

for wheel in "$WHEELS"/*.whl; do
  [[ $wheel == *-none-any.whl ]] || { echo "[prepare] not a pure wheel: $wheel" >&2; exit 1; }
done
ls -l "$WHEELS"

# what travels: tracked and untracked-not-ignored files, plus the carried wheels
cd "$ROOT"
tree_bytes=$("$PYTHON" - <<'PY'
import os, subprocess
names = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                       capture_output=True, check=True).stdout.split(b'\0')
print(sum(os.path.getsize(name) for name in names if name and os.path.isfile(name)))
PY
)
wheel_bytes=$(du -sb "$WHEELS" | cut -f1)
total=$((tree_bytes + wheel_bytes))
step "$(awk -v w="$wheel_bytes" -v t="$tree_bytes" -v s="$total" 'BEGIN {
  printf "wheels %.1f MiB + working tree %.1f MiB = %.1f MiB carried", w/2^20, t/2^20, s/2^20}')"
if (( total >= LIMIT_MIB * 1024 * 1024 )); then
  echo "[prepare] over the ${LIMIT_MIB} MiB a run call carries: remove large untracked files" >&2
  exit 1
fi
