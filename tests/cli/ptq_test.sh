#!/usr/bin/env bash
# `mx ptq` as a user runs it: bad input is one line, exit status 2 and no output; on
# stories260K the PTQ file is read by mx inspect, mx dequantize and mx eval, and measured
# against the FP32 model it beats the direct cast of mx quantize (MXFP4 weights, KL); written as
# GGUF it evaluates the same.
# `mx export --format` writes MX weights that mx eval reads.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

expect_one_line_error "--damp" ptq model.bin --calib x.txt --damp nan -o out.safetensors
expect_one_line_error "--samples" ptq model.bin --calib x.txt --samples 0 -o out.safetensors
expect_one_line_error "--order" ptq model.bin --calib x.txt --order sideways -o out.safetensors
expect_one_line_error "--fp32-targets" ptq model.bin --calib x.txt --fp32-targets 2 -o out.safetensors
expect_one_line_error "--refine" ptq model.bin --calib x.txt --refine -1 -o out.safetensors
expect_one_line_error "nearest" ptq model.bin --calib x.txt --refine 2 --round stochastic \
  -o out.safetensors
expect_one_line_error "model.bin" ptq model.bin --calib x.txt -o out.safetensors
[ ! -e out.safetensors ] || fail "a failed ptq wrote its output"
expect_one_line_error "MXFP4" ptq model.bin --calib x.txt --format mxfp8_e4m3 -o out.gguf
[ ! -e out.gguf ] || fail "a failed ptq wrote its output"

if [ -z "${MX_DATA_DIR:-}" ] || [ ! -e "$MX_DATA_DIR/stories260K/stories260K.bin" ]; then
  echo "ptq: MX_DATA_DIR/stories260K is absent; only the error cases ran"
  exit 0
fi
s="$MX_DATA_DIR/stories260K"
sample="$s/tinystories_sample.txt"
expect_one_line_error "fewer than" ptq "$s/stories260K.bin" --calib "$sample" --samples 100 \
  --seq-len 256 -o out.safetensors
expect_one_line_error "axis" ptq "$s/stories260K.bin" --calib "$sample" --samples 2 \
  --seq-len 64 --axis 3 -o out.safetensors
[ ! -e out.safetensors ] || fail "a failed ptq wrote its output"

"$mx" ptq "$s/stories260K.bin" --format mxfp4_e2m1 --calib "$sample" --samples 4 --seq-len 256 \
  -q -o ptq.safetensors
"$mx" quantize "$s/stories260K.bin" --format mxfp4_e2m1 -q -o cast.safetensors
listing=$("$mx" inspect ptq.safetensors)
grep -q "35 MX" <<<"$listing" || fail "mx inspect does not list 35 MX tensors"
"$mx" dequantize ptq.safetensors -q -o back.safetensors
kl() {
  "$mx" eval "$@" --tokenizer "$s/tok512.bin" --reference "$s/stories260K.bin" --recipe fp32 \
    --data "$sample" --split all --batches 0 --json | sed 's/.*"kl":\([0-9.e-]*\).*/\1/'
}
ptq_kl=$(kl ptq.safetensors)
cast_kl=$(kl cast.safetensors)
awk -v p="$ptq_kl" -v c="$cast_kl" 'BEGIN { exit !(p < 0.9 * c) }' ||
  fail "PTQ's KL $ptq_kl is not below 0.9 x direct cast's $cast_kl"
# Fitted to the FP32 model's outputs, and refused under a recipe that casts activations.
"$mx" ptq "$s/stories260K.bin" --format mxfp4_e2m1 --calib "$sample" --samples 4 --seq-len 256 \
  --fp32-targets 0.5 -q -o fp32_targets.safetensors
targets_kl=$(kl fp32_targets.safetensors)
[ -n "$targets_kl" ] && [ "$targets_kl" != "$ptq_kl" ] ||
  fail "ptq --fp32-targets gave no model that evaluates, or plain PTQ's ($targets_kl)"
# Refined by coordinate descent after GPTQ: other codes, in a file that evaluates.
"$mx" ptq "$s/stories260K.bin" --format mxfp4_e2m1 --calib "$sample" --samples 4 --seq-len 256 \
  --refine 2 -q -o refined.safetensors
refined_kl=$(kl refined.safetensors)
[ -n "$refined_kl" ] && [ "$refined_kl" != "$ptq_kl" ] ||
  fail "ptq --refine gave no model that evaluates, or plain PTQ's ($refined_kl)"
expect_one_line_error "FP32 targets" ptq "$s/stories260K.bin" --calib "$sample" --samples 2 \
  --seq-len 64 --fp32-targets 1 --recipe mxfp4 -o refused.safetensors
[ ! -e refused.safetensors ] || fail "a refused ptq wrote its output"

# The same PTQ written as a model GGUF runs the same values (its MXFP4 matrices are the PTQ
# blocks; the 172-wide ffn_down, which ggml cannot block, holds their decoded values).
"$mx" ptq "$s/stories260K.bin" --format mxfp4_e2m1 --calib "$sample" --samples 4 --seq-len 256 \
  -q -o ptq.gguf
listing=$("$mx" inspect ptq.gguf)
grep -q "30 MX" <<<"$listing" || fail "the PTQ GGUF does not hold 30 MXFP4 matrices"
# Through FP32 products of the decoded values (--unpacked): packed products would sum the
# GGUF's F32 ffn_down in another order than the safetensors' MX one.
unpacked_kl=$(kl ptq.safetensors --unpacked)
[ "$(kl ptq.gguf --unpacked)" = "$unpacked_kl" ] ||
  fail "the PTQ GGUF's KL differs from the PTQ safetensors' $unpacked_kl"

"$mx" export "$s/stories260K.bin" --format mxfp4_e2m1 -o export.safetensors > /dev/null
[ "$(kl export.safetensors)" = "$cast_kl" ] || fail "mx export --format differs from mx quantize"
echo "ptq: PTQ KL $ptq_kl, direct cast KL $cast_kl"
