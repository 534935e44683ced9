#!/usr/bin/env bash
# llama.cpp itself runs the GGUF models mx writes, and continues a prompt greedily as
# `mx generate` does on the same file. llama.cpp comes prebuilt with the npm package
# node-llama-cpp (scripts/fetch-node-llama-cpp.sh installs it once into the mxkit cache).
#   - stories260K (Llama, SentencePiece tok512) in F32: the same tokens for at least 32 steps,
#     or, where they part earlier, at a step whose two largest mx logits lie within 1e-3;
#   - the same file in MXFP4: the same first 8 tokens (llama.cpp rounds activations to 8-bit
#     blocks before its MXFP4 products; mx multiplies them in float32); the rest is reported;
#   - a small GPT-2 trained here with the GPT-2 tokenizer, in F32 and MXFP4: as above.
# Skips (exit 77) without Node.js >= 20 and npm, or when the install fails (offline).
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
compare="$root/tests/llama_cpp/compare_greedy.mjs"

skip() { echo "SKIP: $*"; exit 77; }
[ -n "${MX_DATA_DIR:-}" ] && [ -e "$MX_DATA_DIR/stories260K/stories260K.bin" ] ||
  skip "MX_DATA_DIR/stories260K is absent"
command -v node >/dev/null || skip "Node.js is not installed (llama.cpp comes through npm)"
command -v npm >/dev/null || skip "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || skip "Node.js $(node --version) is older than the 20 node-llama-cpp needs"
package=$("$root/scripts/fetch-node-llama-cpp.sh" 2>install.txt) || skip "$(cat install.txt)"

prompt="Once upon a time"
# check MODEL.gguf REQUIRED [TIE]: mx's greedy continuation, then llama.cpp's beside it.
check() {
  local model="$1" required="$2" rc=0
  shift 2
  "$mx" generate "$model" --prompt "$prompt" --temperature 0 --tokens 48 --json >"$model.json" ||
    fail "mx generate $model"
  node "$compare" "$package" "$model" "$model.json" "$prompt" "$required" "$@" || rc=$?
  [ "$rc" -ne 77 ] || skip "llama.cpp does not start here"
  [ "$rc" -eq 0 ] || fail "llama.cpp and mx part on $model"
}

stories="$MX_DATA_DIR/stories260K/stories260K.bin"
"$mx" export "$stories" -o s260-f32.gguf >/dev/null
"$mx" quantize "$stories" -o s260-mxfp4.gguf -q
check s260-f32.gguf 32 1e-3
check s260-mxfp4.gguf 8

# GPT-2 with the GPT-2 tokenizer: a few steps on a small text (the vocabulary's 50257-row
# classifier makes each step slow), enough for llama.cpp to run it as mx does.
"$mx" train --model tiny --arch gpt2 --tokenizer gpt2 --steps 12 --batch 4 --seq-len 32 \
  --lr 1e-2 --warmup 2 --data "$MX_DATA_DIR/stories260K/tinystories_sample.txt" --out gpt2 -q
"$mx" export gpt2 -o gpt2-f32.gguf >/dev/null
"$mx" quantize gpt2 -o gpt2-mxfp4.gguf -q
check gpt2-f32.gguf 32 1e-3
check gpt2-mxfp4.gguf 8
echo "llama_cpp: ok"
