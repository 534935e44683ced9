#!/usr/bin/env bash
# The installed package: `cmake --install` of the build into a scratch prefix, then the program
# in tests/package built against it twice, with find_package(mxkit) and with pkg-config, and run.
# Neither link line may name the command line's libraries (CLI11, fmt, SentencePiece). Where the
# Python module was built, it imports from the installed tree.
# Usage: package_test.sh BUILD_DIR SOURCE_DIR LIBDIR [PYTHON PYTHON_DIR], the last three as
# configured (CMAKE_INSTALL_LIBDIR, MX_PYTHON_INSTALL_DIR: relative to the prefix).
set -euo pipefail
build_dir=$1 source_dir=$2 libdir=$3 python=${4:-} python_dir=${5:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
no_cli_libraries() {  # what, text
  if grep -Eiq 'cli11|fmt|sentencepiece' <<<"$2"; then fail "$1 names a command-line library: $2"; fi
}

# The README shows this package's CMakeLists.txt, comments aside.
readme_cmake=$(awk '/^```cmake$/ {on = 1; next} /^```$/ {on = 0} on' "$source_dir/README.md")
[ "$readme_cmake" = "$(grep -v '^#' "$source_dir/tests/package/CMakeLists.txt")" ] ||
  fail "README's find_package example differs from tests/package/CMakeLists.txt"

prefix=$work/prefix
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
[ -x "$prefix/bin/mx" ] || fail "mx not installed"
[ -f "$prefix/include/mx/kernels/cpu/quantize.h" ] || fail "headers not installed"
no_cli_libraries "the exported targets" "$(cat "$prefix/$libdir"/cmake/mxkit/mxkitTargets*.cmake)"
# Built with CUDA, every installed CUDA header has its library: the quantizers and the products.
if grep -q 'mxkit::cuda' "$prefix/$libdir"/cmake/mxkit/mxkitTargets.cmake; then
  for t in gemm_cuda gemm_cublaslt cublaslt; do
    grep -q "mxkit::$t" "$prefix/$libdir"/cmake/mxkit/mxkitTargets.cmake || fail "mxkit::$t not exported"
    [ -f "$prefix/$libdir/libmxkit_$t.a" ] || fail "libmxkit_$t.a not installed"
  done
  [ -f "$prefix/include/mx/kernels/cuda/mx_gemm.h" ] || fail "mx_gemm.h not installed"
fi

# MX_PACKAGE_FLAGS: compile and link flags for the programs built here (the sanitizers' flags,
# where the installed libraries carry them).
extra=${MX_PACKAGE_FLAGS:-}
cmake -S "$source_dir/tests/package" -B "$work/cmake-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" \
  >/dev/null
build_log=$(cmake --build "$work/cmake-build" --verbose 2>&1) ||
  fail "the find_package build failed: $(tail -n 5 <<<"$build_log")"
link=$(grep -- '-o mxkit_user ' <<<"$build_log") || fail "no link line in the build of tests/package"
no_cli_libraries "the find_package link line" "$link"
grep -q 'libmxkit_core.a' <<<"$link" || fail "link line without libmxkit_core.a: $link"
"$work/cmake-build/mxkit_user"

flags=$(PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" pkg-config --cflags --libs mxkit)
no_cli_libraries "pkg-config mxkit" "$flags"
# shellcheck disable=SC2086  # the flags are words
c++ "$source_dir/tests/package/mxkit_user.cpp" $flags $extra -o "$work/pkg-config-user"
"$work/pkg-config-user"

if [ -n "$python" ]; then
  # MX_PYTHON_PRELOAD: what an uninstrumented Python must load first (the sanitizers' runtime;
  # the interpreter keeps memory allocated at exit, so leak checks are off for it).
  LD_PRELOAD=${MX_PYTHON_PRELOAD:-} ASAN_OPTIONS=${MX_PYTHON_PRELOAD:+detect_leaks=0} PREFIX=$prefix PYTHONPATH="$prefix/$python_dir" "$python" -c '
import mxkit, os
assert os.path.dirname(mxkit.__file__).startswith(os.environ["PREFIX"]), mxkit.__file__
print("installed mxkit", mxkit.__version__, "imports from", os.path.dirname(mxkit.__file__))
' || fail "the installed Python module does not import"
fi
