#!/usr/bin/env bash
# Adversarial use of `mx`: the fuzz seeds with config fields pushed to extremes
# (make_hostile_files.cpp), flags at their bounds and beyond, paths with newlines, and outputs
# that are devices or in use. Every refused case must exit with status 2, print one line on
# stderr, leave no output and no temporary behind, and not die of a signal, under a time limit
# and an address-space limit (ulimit -v).
#
#   hostile_test.sh MX FUZZ_SEEDS HOSTILE_FILES
set -euo pipefail
export LC_ALL=C
mx=$(realpath "$1")
seeds_tool=$(realpath "$2")
hostile_tool=$(realpath "$3")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Sanitizer builds reserve terabytes of address space for their shadow memory: no ulimit -v.
memory_kb=${MX_HOSTILE_MEMORY_KB:-1500000}
seconds=30
cases=0

fail() { echo "FAIL: $*" >&2; exit 1; }

# run ARGS...: runs mx in a subshell under the limits; sets rc and err (stderr).
run() {
  set +e
  err=$(
    if [ "$memory_kb" != 0 ]; then ulimit -v "$memory_kb"; fi
    timeout -s KILL "$seconds" "$mx" "$@" 2>&1 >/dev/null
  )
  rc=$?
  set -e
  cases=$((cases + 1))
  if [ "$rc" -eq 137 ]; then fail "mx $* ran past ${seconds}s or was killed"; fi
  if [ "$rc" -gt 128 ]; then fail "mx $* died of signal $((rc - 128)): $err"; fi
}

one_line() {  # the error of the last run is exactly one line, from mx
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [ "${err:0:2}" = "mx" ] ||
    fail "mx $* printed more than one line or no error: $err"
}

# refused [-o OUTPUT] ARGS...: must exit 2 with one line, leaving OUTPUT absent.
refused() {
  local output=""
  if [ "$1" = "-o" ]; then output=$2; shift 2; fi
  run "$@"
  [ "$rc" -eq 2 ] || fail "mx $* exited $rc, not 2: $err"
  one_line "$@"
  if [ -n "$output" ] && [ -e "$output" ]; then fail "mx $* left its output $output"; fi
  if ls -A . | grep -q '\.tmp\.'; then fail "mx $* left a temporary: $(ls -A .)"; fi
}

# safe ARGS...: may succeed (0) or refuse (2, one line), but nothing else.
safe() {
  run "$@"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || fail "mx $* exited $rc: $err"
  if [ "$rc" -eq 2 ]; then one_line "$@"; fi
}

# ---- A small real run to point the flags at ----
for i in $(seq 1 300); do echo "a block of thirty-two narrow elements shares one scale, line $i."; done >corpus.txt
"$mx" train --model tiny --data corpus.txt --steps 2 --batch 2 --seq-len 16 --out run -q
printf '{"act_fwd": {"format": "mxfp8_e4m3", "block": 8192}}' >huge_block.json
printf '{"act_fwd": {"format": "mxfp8_e4m3", "block": 4294967328}}' >wrapped_block.json
printf '{"act_fwd": {"format": "mxfp5"}}' >bad_format.json

# ---- Files: the fuzz seeds, pushed to extremes ----
"$seeds_tool" seeds >/dev/null
"$hostile_tool" seeds hostile
for f in hostile/models/*.safetensors hostile/llama2c/*.bin hostile/cuts/*; do
  refused eval "$f" --data corpus.txt --tokenizer bytes
  refused generate "$f" --prompt a --tokens 2 --tokenizer bytes
  refused -o out.safetensors export "$f" -o out.safetensors
  safe inspect "$f"
done
for f in hostile/llama2c/*.bin hostile/cuts/*; do
  refused -o q.safetensors quantize "$f" -o q.safetensors
done
for f in hostile/models/*.safetensors hostile/llama2c/*.bin hostile/cuts/*; do
  refused -o p.safetensors ptq "$f" --calib corpus.txt --samples 2 --seq-len 8 --tokenizer bytes \
    -o p.safetensors -q
done
for d in hostile/runs/*/; do
  before=$(ls -A "$d")
  refused train --out "$d" --resume -q
  # Refused before anything was written: no log, no data, no new checkpoint.
  [ "$(ls -A "$d" | grep -v '^\.lock$')" = "$(echo "$before" | grep -v '^\.lock$')" ] ||
    fail "a refused resume of $d changed the folder: $(ls -A "$d")"
done
refused inspect hostile/files/nul_header.safetensors
refused -o q.safetensors quantize hostile/files/nul_header.safetensors -o q.safetensors
# 64 MB of one array: it once took 40 bytes an element, 2.5 GB, and the limit would refuse it.
run inspect hostile/files/big_array.gguf --metadata
[ "$rc" -eq 0 ] || fail "inspect of a GGUF holding a 64 MB array: exit $rc, $err"
refused eval hostile/files/big_array.gguf --data corpus.txt

# ---- Flags at their bounds and beyond ----
t=(train --model tiny --data corpus.txt --steps 2 --batch 2 --seq-len 16 -q)
for flag in --steps --batch --seq-len --eval-every --eval-batches --checkpoint-every --stop-at; do
  for v in 0 -1 1.5 nan x 9223372036854775808 ""; do refused "${t[@]}" --out r "$flag" "$v"; done
done
for flag in --lr --min-lr --weight-decay --grad-clip; do
  for v in -1 nan inf -inf 1e999 x ""; do refused "${t[@]}" --out r "$flag" "$v"; done
done
for v in -5 nan 1e3; do refused "${t[@]}" --out r --warmup "$v"; done
for v in -1 18446744073709551616 1.5 0x10; do refused "${t[@]}" --out r --seed "$v"; done
for v in -1 1025 99999999999; do refused "${t[@]}" --out r --threads "$v"; done
for v in 1000000 1000000000 9223372036854775807; do refused "${t[@]}" --out r --batch "$v"; done
refused "${t[@]}" --out r --seq-len 100000
refused "${t[@]}" --out r --model huge
refused "${t[@]}" --out r --arch gpt3
refused "${t[@]}" --out r --recipe bad_format.json
refused "${t[@]}" --out r --recipe wrapped_block.json
refused "${t[@]}" --out r --recipe /dev/zero
refused "${t[@]}" --out r --tokenizer /dev/zero
refused "${t[@]}" --out r --data /dev/zero
[ ! -e r ] || fail "refused runs left the folder r"

p=(ptq run --calib corpus.txt --samples 2 --seq-len 8 -q)
for v in 0 -1 1.5 x 9223372036854775808 ""; do
  refused -o p.safetensors "${p[@]}" -o p.safetensors --samples "$v"
  refused -o p.safetensors "${p[@]}" -o p.safetensors --seq-len "$v"
  refused -o p.safetensors "${p[@]}" -o p.safetensors --batch "$v"
done
for v in -1 nan inf 1e999 x ""; do refused -o p.safetensors "${p[@]}" -o p.safetensors --damp "$v"; done
refused -o p.safetensors "${p[@]}" -o p.safetensors --format mxfp5
refused -o p.safetensors "${p[@]}" -o p.safetensors --order sideways
refused -o p.safetensors "${p[@]}" -o p.safetensors --recipe bad_format.json
refused -o p.safetensors ptq run --calib /dev/zero --samples 2 -o p.safetensors -q
refused -o p.safetensors ptq run --calib corpus.txt --samples 100000000 --seq-len 16 \
  -o p.safetensors -q
refused -o p.safetensors ptq run --calib corpus.txt --samples 2 --seq-len 100000 -o p.safetensors -q

for v in 0 -1 x; do refused eval run --batch "$v"; done
for v in 0 -1; do refused eval run --seq-len "$v"; done
refused eval run --seq-len 100000
refused eval run --batches -1
# A batch beyond the split is one batch of every window (its count once overflowed to zero).
"$mx" eval run --batch 9223372036854775807 --json | grep -q '"loss":[0-9]' ||
  fail "eval --batch 2^63-1 gave no loss"
refused eval run --recipe huge_block.json
refused eval run --recipe wrapped_block.json
refused eval run --split neither
for v in -1 nan inf; do refused generate run --temperature "$v"; done
for v in -3 2147483648; do refused generate run --top-k "$v"; done
for v in -1 18446744073709551616; do refused generate run --seed "$v"; done
refused generate run --tokens -1
refused generate run --recipe huge_block.json --prompt a --tokens 3
refused sweep run/model.safetensors --sample -1
echo "not a folder" >taken
refused sweep run/model.safetensors -o taken
for v in 0 -1 4294967328 x; do refused -o c.npy cast in.npy -o c.npy --block "$v"; done
refused tokenizer train corpus.txt --vocab 259 -o t.model
refused -o t.model tokenizer train corpus.txt --vocab 2000000 -o t.model
refused evall run
refused train
refused plot run -o nowhere/loss.png
refused demo -o taken/inside
# More distinct characters than 300 pieces hold: said plainly, without SentencePiece's advice.
for c in $(seq 256 700); do  # two-byte UTF-8 characters, U+0100 to U+02BC
  printf "\\x$(printf %x $((0xC0 | (c >> 6))))\\x$(printf %x $((0x80 | (c & 63)))) "
done >wide.txt
refused -o t.model tokenizer train wide.txt --vocab 300 -o t.model
echo "$err" | grep -q "too small for this corpus" || fail "tokenizer vocab message: $err"
# A llama2.c error names its file once.
refused eval hostile/cuts/cut_header.bin --data corpus.txt
[ "$(echo "$err" | grep -o 'cut_header.bin' | wc -l)" -eq 1 ] || fail "path named twice: $err"

# ---- Paths and names with newlines: every message stays one line ----
nl=$'a\nb'
refused cast "$nl.npy" -o c.npy
refused eval "$nl"
refused eval run --recipe "$nl"
refused eval run --data "$nl"
refused eval run --tokenizer "$nl"
safe export run -o "$nl.safetensors"  # a legal file name: written, and said on one line
rm -f "$nl.safetensors"
refused -o "$nl/x.safetensors" export run -o "$nl/x.safetensors"
refused "${t[@]}" --out r --recipe "$nl"
safe "${t[@]}" --out "$nl/r"  # a legal folder name, made with its parent
rm -rf "$nl"
refused "${t[@]}" --out "taken/$nl"

# ---- Outputs that are devices, or folders in use ----
refused export run -o /dev/full
if [ "$(id -u)" -eq 0 ]; then
  # As root, a rename over /dev/null would replace the device with a regular file.
  run export run -o /dev/null
  [ "$rc" -eq 0 ] && [ -c /dev/null ] || fail "export -o /dev/null: exit $rc, $(ls -l /dev/null)"
fi
mkdir folder
refused export run -o folder
"$mx" train --model tiny --data corpus.txt --steps 400 --batch 2 --seq-len 16 -q --out busy &
trainer=$!
for _ in $(seq 1 50); do [ -f busy/.lock ] && [ -s busy/.lock ] && break; sleep 0.1; done
refused "${t[@]}" --out busy
kill "$trainer"
wait "$trainer" 2>/dev/null || true

echo "hostile: ok ($cases cases)"
