#!/usr/bin/env bash
# `mx demo --synthetic` runs the tour: every format under the four scale rules for three distributions,
# and bad flags fail with status 2 and one line.
set -euo pipefail
mx="$1"
out=$("$mx" demo --synthetic --count 4096)
for d in gaussian heavy-tailed+outliers uniform; do
  grep -q "^$d " <<< "$out" || { echo "FAIL: no table for $d"; exit 1; }
done
[ "$(echo "$out" | grep -cE '^  mx')" -eq 27 ] || { echo "FAIL: expected 27 format rows"; exit 1; }
set +e
err=$("$mx" demo --synthetic --count 0 2>&1 >/dev/null); rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "FAIL: bad --count exited $rc"; exit 1; }
[ "$(echo "$err" | wc -l)" -eq 1 ] || { echo "FAIL: error was not one line: $err"; exit 1; }
echo "demo: ok"
