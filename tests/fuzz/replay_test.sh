#!/usr/bin/env bash
# The fuzz targets replayed in the ordinary build (fuzz/replay_main.cpp): the seeds written by the
# fuzzers' own seed program, then MX_FUZZ_MUTATIONS deterministic mutations of each seed, at most
# MX_FUZZ_SECONDS per target, under an address-space limit of MX_FUZZ_MEMORY_KB (0: none, for the
# sanitizers' shadow memory) and a wall-clock limit. Fails naming the target, the seed and the
# mutation of any crash, abort, sanitizer report, hang or non-zero exit.
# Usage: replay_test.sh SEEDS_PROGRAM REPLAY_PROGRAM...  (each named mx_fuzz_replay_<target>)
set -uo pipefail
seeds_program=$1
shift
mutations=${MX_FUZZ_MUTATIONS:-40000}
seconds=${MX_FUZZ_SECONDS:-12}
memory_kb=${MX_FUZZ_MEMORY_KB:-4194304}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$seeds_program" "$work/seeds" || { echo "FAIL: the seed program failed" >&2; exit 1; }

failed=()
for program in "$@"; do
  target=${program##*/mx_fuzz_replay_}
  # The cap stops new mutations; the limit below only catches a run that hangs past it.
  (
    if [ "$memory_kb" != 0 ]; then ulimit -v "$memory_kb"; fi
    timeout -k 10 $((seconds * 4 + 60)) "$program" "$work/seeds/$target" \
      --mutations "$mutations" --seconds "$seconds"
  ) >"$work/$target.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    tail -1 "$work/$target.log"
  else
    failed+=("$target")
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "fuzz replay FAILED: $target stopped after $((seconds * 4 + 60)) s" >&2
    echo "fuzz replay of $target failed (exit $rc):" >&2
    tail -30 "$work/$target.log" | sed 's/^/  /' >&2
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  trap - EXIT  # the seeds stay for the commands above
  echo "FAIL: fuzz replay found problems in: ${failed[*]} (seeds kept in $work/seeds)" >&2
  exit 1
fi
