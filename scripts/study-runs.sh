#!/usr/bin/env bash
# The training-from-scratch study of docs/RESULTS.md: one model trained under several recipes with
# the same settings, seed and data order, then the training table (mx study table), the FP32
# run's direct casts and, for the weight formats, direct cast (mx quantize) against PTQ (mx ptq).
#   scripts/study-runs.sh MODEL STEPS BATCH LR OUT_DIR [RECIPE...]
# RECIPE is a preset or a JSON recipe file; the first must be fp32 (the baseline and the model
# the casts start from). The corpus is --data study (docs/CORPUS.md); set MX_DEVICE=cpu to train
# on the CPU, MX_EVAL_SEQ_LEN for evaluation windows other than 1024 tokens, MX_STUDY_CASTS=0 to
# train and tabulate only (an ablation set, e.g. fp32 and the files of recipes/). Only the first
# run tokenizes the corpus: its shards are copied to the others.
set -euo pipefail
MX=${MX:-build/tools/mx/mx}
DEVICE=${MX_DEVICE:-cuda}
model=$1 steps=$2 batch=$3 lr=$4 out=$5
shift 5
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(fp32 bf16 mxfp8 mxfp6 mxfp4w-mxfp6a mxfp4)
[ "${recipes[0]}" = fp32 ] || { echo "study-runs.sh: the first recipe must be fp32" >&2; exit 2; }
mkdir -p "$out/runs"
runs=()
for r in "${recipes[@]}"; do
  name=$(basename "$r" .json)
  dir=$out/runs/$name
  if [ "$name" != fp32 ] && [ ! -e "$dir" ]; then
    mkdir -p "$dir" && cp -r "$out/runs/fp32/data" "$dir/"
  fi
  "$MX" train --model "$model" --data study --steps "$steps" --batch "$batch" --lr "$lr" \
    --eval-every $((steps / 4)) --eval-batches 8 --checkpoint-every "$steps" \
    --device "$DEVICE" --recipe "$r" --out "$dir" -q
  echo "$name: $(tail -1 "$dir/log.csv")"
  runs+=("$dir")
done
plot=()
command -v gnuplot >/dev/null || plot=(--no-plot)
"$MX" study table "${runs[@]}" -o "$out/table" "${plot[@]}"
(cd "$out" && tar czf logs.tgz runs/*/log.csv runs/*/run.json)
if [ "${MX_STUDY_CASTS:-1}" = 0 ]; then
  (cd "$out" && tar czf results.tgz table)
  echo "study-runs.sh: $out/results.tgz and $out/logs.tgz"
  exit 0
fi

# Direct casts of the FP32 run: weights and activations (the paper's direct cast), on the
# held-out documents.
ev=(--device "$DEVICE" --batch 4 --seq-len "${MX_EVAL_SEQ_LEN:-1024}" --batches 8 --json)
"$MX" eval "$out/runs/fp32" --recipe mxint8,mxfp8,mxfp6,mxfp4 "${ev[@]}" >"$out/direct_cast.json"

# Weights only: direct cast against PTQ (transformer blocks' linear weights; embeddings and the
# tied classifier stay FP32 in both), each against the FP32 model.
base=$out/runs/fp32/model.safetensors
for f in mxfp8_e4m3 mxfp6_e2m3 mxfp4_e2m1 mxint4; do
  "$MX" quantize "$base" --format "$f" -q -o "$out/$f.cast.safetensors"
  "$MX" eval "$out/$f.cast.safetensors" --reference "$base" --recipe fp32 --data study "${ev[@]}" \
    >"$out/$f.cast.json"
  "$MX" ptq "$base" --format "$f" --calib study --samples 64 --seq-len "${MX_EVAL_SEQ_LEN:-1024}" \
    --device "$DEVICE" -q \
    -o "$out/$f.ptq.safetensors"
  "$MX" eval "$out/$f.ptq.safetensors" --reference "$base" --recipe fp32 --data study "${ev[@]}" \
    >"$out/$f.ptq.json"
done
(cd "$out" && tar czf results.tgz table direct_cast.json ./*.cast.json ./*.ptq.json)
echo "study-runs.sh: $out/results.tgz and $out/logs.tgz"
