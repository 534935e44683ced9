#!/usr/bin/env bash
# The finetunes of docs/RESULTS.md (tables 6 and 7) from a study run's FP32 model: the FP32
# control (no casts), the `mxfp4` recipe's forward casts with and without --distill, and each
# weights-only recipe w-F ({"name": "w-F", "weight_fwd": "F"}), each evaluated against the FP32
# model under the recipe it was finetuned with; and the FP32 model's direct casts under the same
# recipes. One JSON line per evaluation in OUT_DIR/evals.jsonl, the finetunes in OUT_DIR/runs.
#   scripts/study-finetunes.sh FP32_RUN STEPS OUT_DIR
# STEPS is the finetune's length at batch 32 x 1024: 5% of the run's training tokens is 32 steps
# for the 124M run (640 steps), 40 for the 20M one (800 steps). Set MX_DEVICE=cpu for the CPU,
# MX_BATCH and MX_SEQ_LEN for other batches and windows (training and evaluation), MX_LR for
# another peak learning rate (the final one is a tenth of it).
set -euo pipefail
MX=${MX:-build/tools/mx/mx}
DEVICE=${MX_DEVICE:-cuda}
BATCH=${MX_BATCH:-32}
SEQ_LEN=${MX_SEQ_LEN:-1024}
LR=${MX_LR:-2e-4}
MIN_LR=$(awk -v lr="$LR" 'BEGIN { printf "%g", lr / 10 }')
base=$1 steps=$2 out=$3
model=$base/model.safetensors
[ -f "$model" ] || { echo "study-finetunes.sh: no $model" >&2; exit 2; }
mkdir -p "$out/runs" "$out/recipes"
: >"$out/evals.jsonl"
formats=(mxfp8_e4m3 mxfp6_e2m3 mxfp4_e2m1 mxint4)
for f in "${formats[@]}"; do
  echo "{\"name\": \"w-$f\", \"weight_fwd\": \"$f\"}" >"$out/recipes/w-$f.json"
done
ev=(--reference "$model" --data study --device "$DEVICE" --batch 4 --seq-len "$SEQ_LEN" --batches 8
  --json)
evaluate() {  # evaluate NAME MODEL RECIPE
  local j
  j=$("$MX" eval "$2" --recipe "$3" "${ev[@]}")
  echo "{\"model\": \"$1\", \"recipe_file\": \"$3\", \"eval\": $j}" >>"$out/evals.jsonl"
  echo "$1 under $(basename "$3" .json): $j"
}
finetune() {  # finetune NAME RECIPE [FLAGS...]
  local name=$1 recipe=$2
  shift 2
  local dir=$out/runs/$name
  if [ ! -e "$dir" ] && [ -d "$base/data" ]; then mkdir -p "$dir" && cp -r "$base/data" "$dir/"; fi
  "$MX" train --init "$base" --data study --recipe "$recipe" --forward-casts-only \
    --steps "$steps" --batch "$BATCH" --seq-len "$SEQ_LEN" --lr "$LR" --min-lr "$MIN_LR" --warmup 4 \
    --weight-decay 0 --eval-every "$steps" --eval-batches 8 --checkpoint-every "$steps" \
    --device "$DEVICE" --out "$dir" -q "$@"
  evaluate "$name" "$dir/model.safetensors" "$recipe"
}
evaluate direct-cast "$model" mxfp4
for f in "${formats[@]}"; do evaluate direct-cast "$model" "$out/recipes/w-$f.json"; done
finetune control fp32
evaluate control "$out/runs/control/model.safetensors" mxfp4
finetune mxfp4 mxfp4
finetune mxfp4-distill mxfp4 --distill
for f in "${formats[@]}"; do finetune "w-$f" "$out/recipes/w-$f.json"; done
echo "study-finetunes.sh: $out/evals.jsonl"
