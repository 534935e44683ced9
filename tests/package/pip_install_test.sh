#!/usr/bin/env bash
# `pip install .` (pyproject.toml, setup.py) into a scratch virtual environment, offline and
# without build isolation (the build tools from the system), then the installed package, imported
# from outside the tree, quantizes exactly as the CMake build's module does.
#   pip_install_test.sh PYTHON SOURCE_DIR BUILD_PYTHON_DIR
set -euo pipefail
python=$1 source=$2 build_python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for m in venv pip setuptools wheel; do
  "$python" -c "import $m" 2>/dev/null ||
    { echo "SKIP: $python has no '$m' (Debian: python3-venv python3-pip python3-setuptools python3-wheel)"; exit 77; }
done

had_pip_build=no
[ -e "$source/build-pip" ] && had_pip_build=yes
"$python" -m venv --system-site-packages "$work/venv"
# CUDA kernels are left out to keep this quick; the CMake build compiles and tests them.
if ! MXKIT_BUILD_DIR="$work/build" CMAKE_ARGS="-DMX_CUDA=OFF" \
  "$work/venv/bin/pip" install --no-index --no-build-isolation --no-deps "$source" \
  >"$work/pip.log" 2>&1; then
  tail -30 "$work/pip.log"
  fail "pip install did not succeed"
fi
[ -d "$work/build/mxkit.egg-info" ] || fail "setup.py did not build in MXKIT_BUILD_DIR"
[ "$had_pip_build" = yes ] || [ ! -e "$source/build-pip" ] ||
  fail "pip wrote build-pip/ into the source tree despite MXKIT_BUILD_DIR"

cd "$work"
cat >codes.py <<'PY'
import sys
import numpy as np
import mxkit
x = np.random.default_rng(7).standard_normal((8, 96)).astype(np.float32)
for fmt in ("mxfp4_e2m1", "mxfp6_e3m2", "mxfp8_e4m3", "mxint8"):
    a = mxkit.quantize(x, fmt, axis=0, round="stochastic", seed=3)
    sys.stdout.write(f"{fmt} {a.packed.tobytes().hex()} {a.scales().tobytes().hex()}\n")
sys.stdout.write(mxkit.__file__ + "\n")
PY
installed=$("$work/venv/bin/python" codes.py)
# MX_PYTHON_PRELOAD: the sanitizers' runtimes, where the build tree's module carries them.
built=$(PYTHONPATH="$build_python" LD_PRELOAD="${MX_PYTHON_PRELOAD:-}" ASAN_OPTIONS=detect_leaks=0 \
  "$python" codes.py)
[[ "$(tail -1 <<<"$installed")" == "$work/venv/"* ]] || fail "imported $(tail -1 <<<"$installed"), not the installed package"
[ "$(head -n -1 <<<"$installed")" = "$(head -n -1 <<<"$built")" ] ||
  fail "the installed package's codes differ from the build tree's module"
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then
  "$work/venv/bin/python" -c "import mxkit.torch" || fail "mxkit.torch does not import"
fi
echo "pip install . gives a package that quantizes as the build tree's module does"
