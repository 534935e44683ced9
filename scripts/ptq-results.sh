#!/usr/bin/env bash
# The PTQ tables of docs/RESULTS.md: for each weight format, direct cast (mx quantize) against
# error-diffusion PTQ (mx ptq) in natural order, by whole blocks (--act-order) and by columns,
# each with the scale rule and with --scale-search, each measured by mx eval against the FP32
# model it came from.
#   scripts/ptq-results.sh MODEL TOKENIZER EVAL_DATA CALIB_DATA SAMPLES SEQ_LEN [OUT_DIR]
set -euo pipefail
MX=${MX:-build/tools/mx/mx}
model=$1 tok=$2 data=$3 calib=$4 samples=$5 seq=$6 out=${7:-ptq_results}
mkdir -p "$out"
eval_row() {  # label file
  local j
  j=$("$MX" eval "$2" --tokenizer "$tok" --reference "$model" --recipe fp32 --data "$data" \
      --split all --batches 0 --json)
  python3 -c 'import json,sys; j=json.loads(sys.argv[2]); print("| %s | %.4f | %.3f | %.4f | %.1f%% | %.4f |" % (sys.argv[1], j["loss"], j["ppl"], j["kl"], 100*j["top1"], j["loss"]-j["fp32_loss"]))' "$1" "$j"
}
echo "| weights | loss | ppl | KL | top-1 | loss gap |"
echo "|---|---|---|---|---|---|"
for f in mxfp8_e4m3 mxfp6_e2m3 mxfp4_e2m1 mxint4; do
  "$MX" quantize "$model" --format "$f" -q -o "$out/$f.cast.safetensors"
  eval_row "$f direct cast" "$out/$f.cast.safetensors"
  for order in natural act-blocks act-columns; do
    "$MX" ptq "$model" --format "$f" --calib "$calib" --samples "$samples" --seq-len "$seq" \
      --tokenizer "$tok" --order "$order" -q -o "$out/$f.$order.safetensors"
    eval_row "$f PTQ $order" "$out/$f.$order.safetensors"
    "$MX" ptq "$model" --format "$f" --calib "$calib" --samples "$samples" --seq-len "$seq" \
      --tokenizer "$tok" --order "$order" --scale-search -q -o "$out/$f.$order.search.safetensors"
    eval_row "$f PTQ $order, scale search" "$out/$f.$order.search.safetensors"
  done
done
