#!/usr/bin/env bash
# `mx bench train` and `mx bench generate` as a user runs them on the CPU: the figures they
# print (text and JSON), and bad input: exit status 2 with one line on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

text=$("$mx" bench train --model tiny --recipe mxfp6 --steps 2 --warmup 1 --batch 2)
for line in "tokens/s" "step" "model FLOPs" "MFU" "peak memory"; do
  grep -q "^  $line " <<< "$text" || fail "bench train printed no '$line' line: $text"
done
json=$("$mx" bench train --model tiny --steps 1 --warmup 0 --batch 2 --micro-batch 1 --json \
       --peak-tflops 1)
for key in tokens_per_s step_ms flops_per_token mfu peak_memory_bytes; do
  grep -q "\"$key\":[0-9]" <<< "$json" || fail "bench train --json lacks $key: $json"
done

expect_one_line_error "micro-batch must divide" bench train --model tiny --batch 4 --micro-batch 3
# A --seq-len past the preset's context (64) lengthens the benchmark model's context.
json=$("$mx" bench train --model tiny --arch llama --seq-len 96 --steps 1 --warmup 0 --batch 1 \
       --json)
grep -q '"seq_len":96' <<< "$json" || fail "bench train --seq-len 96 on tiny: $json"
expect_one_line_error "seq_len 2000000 exceeds the limit" bench train --model tiny --seq-len 2000000
expect_one_line_error "unknown --model" bench train --model huge
expect_one_line_error "unknown recipe" bench train --recipe mxfp5
expect_one_line_error "subcommand" bench
expect_one_line_error "--packed-products is for --device cuda" bench train --packed-products
printf 'mxkit product algorithms 1\ndevice X\ncublaslt 1\ncandidates 16\n' > "$work/algos.txt"
expect_one_line_error "--product-algorithms is for --device cuda" \
  bench train --product-algorithms "$work/algos.txt"
expect_one_line_error "--tune-products is for --device cuda" \
  bench train --tune-products "$work/tuned.txt"
expect_one_line_error "--warmup 1 or more" bench train --tune-products "$work/tuned.txt" --warmup 0
expect_one_line_error "--product-algorithms excludes --tune-products" \
  bench train --tune-products "$work/tuned.txt" --product-algorithms "$work/algos.txt"
expect_one_line_error "--product-algorithms: File does not exist" \
  bench train --product-algorithms "$work/none.txt"
[ ! -e "$work/tuned.txt" ] || fail "a refused --tune-products wrote its file"
if [ ! -e /dev/nvidia0 ]; then
  expect_one_line_error "--device cuda: " bench train --device cuda
  expect_one_line_error "--device cuda: " bench train --device cuda --packed-products
fi
echo '{"name": "w4", "weight_fwd": "mxfp4_e2m1"}' > "$work/w4.json"
text=$("$mx" bench generate --model tiny --arch llama --prompt-tokens 8 --tokens 4 \
       --recipe "$work/w4.json")
for line in "first token" "tokens/s" "weights" "peak memory"; do
  grep -q "^  $line " <<< "$text" || fail "bench generate printed no '$line' line: $text"
done
grep -q "key/value cache, packed MX weights" <<< "$text" ||
  fail "bench generate did not use the cache and packed weights: $text"
json=$("$mx" bench generate --model tiny --prompt-tokens 8 --tokens 3 --no-cache --unpacked --json)
for key in first_token_ms tokens_per_s peak_memory_bytes; do
  grep -q "\"$key\":[0-9]" <<< "$json" || fail "bench generate --json lacks $key: $json"
done
grep -q '"cache":false' <<< "$json" || fail "--no-cache used the cache: $json"
grep -q '"packed_weights":false' <<< "$json" || fail "--unpacked packed: $json"
text=$("$mx" bench generate --model tiny --prompt-tokens 8 --tokens 3 --recipe "$work/w4.json" \
       --fast-products)
grep -q "packed MX weights, fast products" <<< "$text" ||
  fail "bench generate --fast-products did not say so: $text"

expect_one_line_error "context of 64" bench generate --model tiny --prompt-tokens 60 --tokens 5
expect_one_line_error "neither a preset" bench generate --model no-such-model
expect_one_line_error "--tokens" bench generate --model tiny --tokens 1
echo "bench: ok"
