#!/usr/bin/env bash
# `mx generate` as a user runs it on the CPU: an MX model file runs from its packed blocks and
# says the same greedy text as with the FP32 weights cast at every pass (the two differ only in
# the order of float32 sums), and bad input is one line and exit status 2.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

expect_one_line_error "--temperature" generate model.safetensors --temperature nan
expect_one_line_error "--tokens" generate model.safetensors --tokens -1
expect_one_line_error "model.safetensors" generate model.safetensors --prompt hi
expect_one_line_error "--fast-products" generate model.safetensors --fast-products --unpacked

if [ -z "${MX_DATA_DIR:-}" ] || [ ! -e "$MX_DATA_DIR/stories260K/stories260K.bin" ]; then
  echo "generate: MX_DATA_DIR/stories260K is absent; only the error cases ran"
  exit 0
fi
stories="$MX_DATA_DIR/stories260K"
"$mx" quantize "$stories/stories260K.bin" -o s4.safetensors --format mxfp4_e2m1 > /dev/null
for model in "$stories/stories260K.bin" s4.safetensors; do
  args=(generate "$model" --tokenizer "$stories/tok512.bin" --prompt "Once upon a time"
        --tokens 60 --temperature 0)
  packed=$("$mx" "${args[@]}")
  unpacked=$("$mx" "${args[@]}" --unpacked)
  [ "$packed" = "$unpacked" ] || fail "$model: packed and unpacked texts differ: $packed | $unpacked"
  [ "$(echo "$packed" | wc -w)" -ge 20 ] || fail "$model: too little text: $packed"
done
# With a recipe that casts the weights, generation packs that cast of the values the file
# decodes to instead of the file's own blocks.
"$mx" generate s4.safetensors --tokenizer "$stories/tok512.bin" --prompt "Once" --tokens 5 \
  --recipe mxfp8 > /dev/null || fail "generate --recipe mxfp8 on an MX file failed"
# Fast products quantize each product's input to MXINT8: still a story, from the same blocks.
fast=$("$mx" generate s4.safetensors --tokenizer "$stories/tok512.bin" --prompt "Once upon a time" \
       --tokens 60 --temperature 0 --fast-products)
[ "$(echo "$fast" | wc -w)" -ge 20 ] || fail "--fast-products: too little text: $fast"
# mx eval runs an MX file's own blocks too, and --fast-products there moves the loss a little.
loss() {
  "$mx" eval s4.safetensors --tokenizer "$stories/tok512.bin" --recipe fp32 --split all \
    --data "$stories/tinystories_sample.txt" --json "$@" | sed 's/.*"loss":\([0-9.e-]*\).*/\1/'
}
exact_loss=$(loss) fast_loss=$(loss --fast-products)
awk -v a="$exact_loss" -v b="$fast_loss" 'BEGIN { d = a - b; exit !(d != 0 && d * d < 1e-4) }' ||
  fail "eval --fast-products: loss $fast_loss against exact $exact_loss"
echo "generate: ok"
