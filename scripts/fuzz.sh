#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, writes their seed corpora and runs each target
# for SECONDS_PER_TARGET seconds (default 60). Exits non-zero when any target finds a crash, a
# leak, a sanitizer report or a timeout, naming the saved reproducer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_TARGETS (default: all), FUZZ_JOBS
# (build parallelism, default nproc). The corpora grow in $FUZZ_BUILD_DIR/corpus/<target> and
# are kept between runs; reproducers go to $FUZZ_BUILD_DIR/crashes/. Replay one with
#   $FUZZ_BUILD_DIR/fuzz/fuzz_<target> <reproducer>
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
targets=${FUZZ_TARGETS:-safetensors gguf llama2c npy model_file model_gguf checkpoint recipe}
jobs=${FUZZ_JOBS:-$(nproc)}

if ! command -v clang++ >/dev/null; then
  echo "error: clang++ not found; run scripts/install-deps.sh" >&2
  exit 1
fi

# -O1 -g with asserts on: fast enough to fuzz, and stack traces that name lines.
if [ ! -f "$build/build.ninja" ]; then
  mkdir -p "$build"
  if ! CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DMX_FUZZ=ON \
    -DMX_CUDA=OFF -DMX_BUILD_TESTS=OFF -DMX_BUILD_BENCH=OFF >"$build/configure.log" 2>&1; then
    tail -20 "$build/configure.log" >&2
    rm -f "$build/build.ninja"
    exit 1
  fi
fi
build_targets=(fuzz_make_seeds)
for t in $targets; do build_targets+=("fuzz_$t"); done
cmake --build "$build" -j "$jobs" --target "${build_targets[@]}"

"$build/fuzz/fuzz_make_seeds" "$build/seeds"
mkdir -p "$build/crashes"

failed=()
for t in $targets; do
  corpus=$build/corpus/$t
  mkdir -p "$corpus"
  dict=()
  [ -f "$root/fuzz/$t.dict" ] && dict=("-dict=$root/fuzz/$t.dict")
  log=$build/fuzz_$t.log
  echo "fuzz_$t: ${seconds}s (log: $log)"
  # New inputs go to the first directory (kept); the seeds are read only.
  set +e
  "$build/fuzz/fuzz_$t" "$corpus" "$build/seeds/$t" "${dict[@]}" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" >"$log" 2>&1
  rc=$?
  set -e
  grep -a -E '^stat::number_of_executed_units|^Done ' "$log" | sed "s/^/  /" || true
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    echo "fuzz_$t FAILED (exit $rc):" >&2
    grep -a -E '^==[0-9]+==ERROR|runtime error|fuzz invariant|SUMMARY|^artifact_prefix|Test unit written' \
      "$log" | head -20 | sed "s/^/  /" >&2
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (reproducers in $build/crashes/)" >&2
  exit 1
fi
echo "fuzzing: no crashes in ${seconds}s per target ($targets)"
