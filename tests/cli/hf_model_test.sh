#!/usr/bin/env bash
# `mx export --hf` writes the folder transformers' from_pretrained reads (model.safetensors with
# the "format" metadata transformers requires, config.json), and `mx` reads it back as the model
# it came from: the same greedy text and the same evaluation, for a Llama (stories260K) and a
# GPT-2 trained here; under --format the weights are their MX blocks' decoded values, evaluating
# as the MX export does. A folder without config.json is one line and exit 2.
# (tests/python/test_torch_engine.py loads such folders in transformers itself.)
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

if [ -z "${MX_DATA_DIR:-}" ] || [ ! -e "$MX_DATA_DIR/stories260K/stories260K.bin" ]; then
  echo "hf_model: MX_DATA_DIR/stories260K is absent; skipped"
  exit 0
fi
stories="$MX_DATA_DIR/stories260K"
tok=(--tokenizer "$stories/tok512.bin")
"$mx" export "$stories/stories260K.bin" --hf -o llama | matches "for transformers" ||
  fail "export --hf"
[ -f llama/model.safetensors ] && [ -f llama/config.json ] || fail "the folder's files"
"$mx" inspect llama/model.safetensors | matches "model.layers.0.self_attn.q_proj.weight" ||
  fail "Hugging Face names"
matches '"model_type": "llama"' llama/config.json || fail "config: $(cat llama/config.json)"
matches '"format"' <(head -c 4096 llama/model.safetensors) || fail "no format metadata"

greedy() { "$mx" generate "$@" --prompt "Once upon a time" --tokens 30 --temperature 0; }
[ "$(greedy llama/model.safetensors "${tok[@]}")" = "$(greedy "$stories/stories260K.bin")" ] ||
  fail "the Hugging Face folder says other words"
evaluate() { "$mx" eval "$1" "${tok[@]}" --data "$stories/tinystories_sample.txt" --split all \
  --batches 0 --json | grep -o '"loss":[0-9.]*'; }
[ "$(evaluate llama/model.safetensors)" = "$(evaluate "$stories/stories260K.bin")" ] ||
  fail "evaluation differs"

"$mx" export "$stories/stories260K.bin" --format mxfp4_e2m1 -o mx4.safetensors >/dev/null
"$mx" export "$stories/stories260K.bin" --format mxfp4_e2m1 --hf -o llama4 >/dev/null
[ "$(evaluate llama4/model.safetensors)" = "$(evaluate mx4.safetensors)" ] ||
  fail "decoded MXFP4 weights evaluate otherwise: $(evaluate llama4/model.safetensors)"

"$mx" train --model tiny --data "$stories/tinystories_sample.txt" --steps 2 --batch 2 \
  --seq-len 32 --eval-every 100 --checkpoint-every 100 --out run -q
"$mx" export run --hf -o gpt2 >/dev/null
matches '"model_type": "gpt2"' gpt2/config.json || fail "config: $(cat gpt2/config.json)"
"$mx" inspect gpt2/model.safetensors | matches "transformer.h.0.attn.c_attn.weight" ||
  fail "GPT-2's fused c_attn"
[ "$("$mx" generate gpt2/model.safetensors --tokenizer bytes --prompt ab --tokens 20 \
  --temperature 0 --json)" = "$("$mx" generate run --prompt ab --tokens 20 --temperature 0 \
  --json)" ] || fail "the GPT-2 folder generates otherwise"

rm llama/config.json
expect_one_line_error "needs the config.json beside it" eval llama/model.safetensors "${tok[@]}" \
  --data "$stories/tinystories_sample.txt"
