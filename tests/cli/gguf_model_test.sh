#!/usr/bin/env bash
# Model GGUF files from `mx quantize` and `mx export` read back in `mx eval` and `mx generate`
# with the tokenizer they carry: the F32 file says the same greedy text as the llama2.c
# checkpoint it came from. A GGUF that is not a model, and bad flags, are one line and exit 2.
# (llama_cpp_test.sh runs the same files in llama.cpp.)
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

if [ -z "${MX_DATA_DIR:-}" ] || [ ! -e "$MX_DATA_DIR/stories260K/stories260K.bin" ]; then
  echo "gguf_model: MX_DATA_DIR/stories260K is absent; skipped"
  exit 0
fi
stories="$MX_DATA_DIR/stories260K"
"$mx" export "$stories/stories260K.bin" -o s-f32.gguf | matches "a llama.cpp model" ||
  fail "export to GGUF"
"$mx" export "$stories/stories260K.bin" -o s-bf16.gguf --dtype bf16 >/dev/null
"$mx" quantize "$stories/stories260K.bin" -o s-mxfp4.gguf >summary.txt
grep -q "quantized 30 of 47 tensors to mxfp4_e2m1" summary.txt || fail "summary: $(cat summary.txt)"
grep -q "5 last dimension not a multiple of 32" summary.txt || fail "summary: $(cat summary.txt)"
"$mx" inspect s-bf16.gguf | matches "^token_embd.weight  *BF16" || fail "--dtype bf16"
"$mx" inspect s-bf16.gguf | matches "^output_norm.weight  *F32" || fail "norms stay F32"

greedy() { "$mx" generate "$1" --prompt "Once upon a time" --tokens 40 --temperature 0; }
want=$(greedy "$stories/stories260K.bin")
[ "$(greedy s-f32.gguf)" = "$want" ] || fail "the F32 GGUF says: $(greedy s-f32.gguf) | $want"
for model in s-bf16.gguf s-mxfp4.gguf; do
  [ "$(greedy $model | wc -w)" -ge 20 ] || fail "$model: too little text: $(greedy $model)"
done
"$mx" eval s-mxfp4.gguf --data "$stories/tinystories_sample.txt" --split all --json >eval.json ||
  fail "mx eval of a GGUF model"
grep -q '"loss"' eval.json || fail "eval: $(cat eval.json)"

"$mx" quantize "$stories/stories260K.bin" -o plain.gguf --plain-gguf -q
expect_one_line_error "plain.gguf: a GGUF tensor container, not a model: general.architecture is missing" \
  eval plain.gguf --data "$stories/tinystories_sample.txt"
expect_one_line_error "general.architecture is missing" generate plain.gguf --prompt hi
expect_one_line_error "--dtype f8: expected f32, f16 or bf16" export "$stories/stories260K.bin" \
  -o x.gguf --dtype f8
expect_one_line_error "--dtype and --tokenizer apply to a .gguf output only" \
  export "$stories/stories260K.bin" -o x.safetensors --dtype bf16
expect_one_line_error "--skip 'transformer' matches no tensor name of" \
  quantize "$stories/stories260K.bin" -o x.gguf --skip transformer
[ ! -e x.gguf ] && [ ! -e x.safetensors ] || fail "a refused export wrote a file"
echo "gguf_model: ok"
