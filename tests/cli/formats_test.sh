#!/usr/bin/env bash
# `mx formats` lists every element format with the OCP v1.0 maxima, and `mx info` names the CPU
# target in use.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
out=$("$mx" formats)
check() {  # format name, max normal as printed
  echo "$out" | grep -E "^$1 " | matches -w -- "$2" || { echo "FAIL: $1 should show max normal $2"; exit 1; }
}
check mxfp8_e4m3 448
check mxfp8_e5m2 57344
check mxfp6_e3m2 28
check mxfp6_e2m3 7.5
check mxfp4_e2m1 6
check mxint8 1.98438
[ "$(echo "$out" | grep -cE '^mx')" -eq 9 ] || { echo "FAIL: expected 9 formats"; exit 1; }
"$mx" info | matches -E "CPU target selected: +(scalar|avx2|avx512)" || { echo "FAIL: mx info"; exit 1; }
echo "formats: ok"
