#!/usr/bin/env bash
# bench/cuda/kernel_gaps.py on a trace written by hand: a step runs from the end of one gradient
# norm to the end of the next; a record that overlaps a running one leaves no gap; the idle time
# splits into short (< 5 us), middle and long (>= 50 us) gaps. Bad input: status 2, one line.
script="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bench/cuda/kernel_gaps.py"
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

cat > trace.txt <<'TRACE'
0 1000000 sum_squares_kernel
1002000 3000000 gemm
2500000 2800000 overlapping
3010000 4000000 layernorm
4200000 5000000 memcpy
5001000 6000000 sum_squares_kernel
TRACE
out=$(python3 "$script" trace.txt)
# span 6.0 - 1.0 ms; gaps of 2, 10, 200 and 1 us.
echo "$out" | matches -E '^ +1 +5\.000 +0\.213 +4 +0\.003 +0\.010 +0\.200 +200\.0$' ||
  fail "kernel_gaps.py gave: $out"

for bad in "1 2" "a 2 name"; do
  echo "$bad" > bad.txt
  set +e
  err=$(python3 "$script" bad.txt 2>&1 >/dev/null)
  rc=$?
  set -e
  [ "$rc" -eq 2 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] || fail "'$bad': status $rc, '$err'"
  echo "$err" | matches "expected 'start end name'" || fail "'$bad': $err"
done
head -2 trace.txt > one_step_end.txt
set +e
err=$(python3 "$script" one_step_end.txt 2>&1 >/dev/null)
rc=$?
set -e
[ "$rc" -eq 2 ] && echo "$err" | matches "fewer than two step ends" || fail "one end: $rc '$err'"
