#!/usr/bin/env bash
# `mx bench train` as a user runs it on the CPU: the figures it prints (text and JSON), and bad
# input: exit status 2 with one line on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

text=$("$mx" bench train --model tiny --recipe mxfp6 --steps 2 --warmup 1 --batch 2)
for line in "tokens/s" "step" "model FLOPs" "MFU" "peak memory"; do
  echo "$text" | grep -q "^  $line " || fail "bench train printed no '$line' line: $text"
done
json=$("$mx" bench train --model tiny --steps 1 --warmup 0 --batch 2 --micro-batch 1 --json \
       --peak-tflops 1)
for key in tokens_per_s step_ms flops_per_token mfu peak_memory_bytes; do
  echo "$json" | grep -q "\"$key\":[0-9]" || fail "bench train --json lacks $key: $json"
done

expect_one_line_error "micro-batch must divide" bench train --model tiny --batch 4 --micro-batch 3
expect_one_line_error "context" bench train --model tiny --seq-len 999
expect_one_line_error "unknown --model" bench train --model huge
expect_one_line_error "unknown recipe" bench train --recipe mxfp5
expect_one_line_error "subcommand" bench
if [ ! -e /dev/nvidia0 ]; then
  expect_one_line_error "--device cuda: " bench train --device cuda
fi
echo "bench: ok"
