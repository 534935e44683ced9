#!/usr/bin/env bash
# The library-only configuration (-DMX_LIBRARY_ONLY=ON, what a GPU host with PyTorch builds the
# Python module with) generates: every library the module links is declared there too.
#   library_only_test.sh CMAKE SOURCE_DIR
set -euo pipefail
cmake=$1 source=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if ! "$cmake" -S "$source" -B "$dir/build" -DMX_LIBRARY_ONLY=ON >"$dir/log" 2>&1; then
  cat "$dir/log"
  echo "FAIL: the library-only configuration does not generate" >&2
  exit 1
fi
grep -q "mxkit: Python 3 headers or pybind11 not found" "$dir/log" &&
  { echo "SKIP: no Python module to configure"; exit 77; }
echo "the library-only configuration generates"
