#!/usr/bin/env bash
# Flags that do not apply to the command as given, flags given twice, values out of range and
# unknown words, across the commands: exit status 2, one line on stderr naming the problem,
# nothing on stdout and no output written. Beside each rule, the use it still allows.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

for i in $(seq 1 300); do echo "a block of thirty-two narrow elements shares one scale, line $i."; done >corpus.txt
"$mx" train --model tiny --data corpus.txt --steps 2 --batch 2 --seq-len 16 --out run -q

# The MX flags of `mx export` choose the cast that --format asks for; alone they change nothing.
for flag in "--block abc" "--block 16" "--axis abc" "--tile abc" "--scale bogus" "--round bogus" \
  "--seed abc" "--preset bogus" "--asym" "--flush-subnormals" "--threads abc" "--threads 2"; do
  # shellcheck disable=SC2086  # each entry is a flag and its value
  refused o.safetensors "${flag%% *} applies with --format only" export run -o o.safetensors $flag
done
refused o.safetensors "bad --block 'abc'" export run -o o.safetensors --format mxfp8_e4m3 --block abc
"$mx" export run -o ok.safetensors --format mxfp8_e4m3 --block 16 --threads 2 | matches "as mxfp8" ||
  fail "export --format with --block"

# --dtype and --tokenizer choose what a llama.cpp model GGUF holds; --plain-gguf is a GGUF too.
src=run/model.safetensors
refused out.safetensors "--dtype and --tokenizer apply to a .gguf output only" \
  quantize "$src" -o out.safetensors --dtype f16
refused out.safetensors "--dtype and --tokenizer apply to a .gguf output only" \
  quantize "$src" -o out.safetensors --tokenizer gpt2
refused out.safetensors "--plain-gguf applies to a .gguf output only" \
  quantize "$src" -o out.safetensors --plain-gguf
refused out.gguf "excludes --dtype" quantize "$src" -o out.gguf --plain-gguf --dtype f16
refused out.gguf "excludes --tokenizer" quantize "$src" -o out.gguf --plain-gguf --tokenizer gpt2
refused out.safetensors "--dtype f8: expected f32, f16 or bf16" \
  quantize "$src" -o out.safetensors --dtype f8
"$mx" quantize "$src" -o out.safetensors -q && [ -s out.safetensors ] || fail "quantize to safetensors"

# `mx demo` is the training demo or, with --synthetic, the tour: each refuses the other's flags,
# and a missing corpus is refused before anything is printed.
refused - "--count requires --synthetic" demo --count 5
refused X "excludes --out" demo --synthetic -o X
for flag in "--data corpus.txt" "--steps 2" "--batch 2" "--json"; do
  # shellcheck disable=SC2086
  refused - "excludes ${flag%% *}" demo --synthetic $flag
done
refused dd "corpus 'nonexist' is neither a file" demo --data nonexist --steps 2 -o dd
"$mx" demo --synthetic --count 64 --seed 3 --threads 1 | matches "^gaussian " || fail "demo --synthetic"

# `mx bench generate`: a model file has its own shape; the counts are bounded so that their sum
# cannot overflow. The same bound holds for `mx bench train`'s counts.
refused - "--vocab applies to a preset, not to a model file" bench generate --model run --vocab 100
refused - "--arch applies to a preset, not to a model file" bench generate --model run --arch llama
big=9223372036854775807
refused - "--tokens: expected an integer from 2 to 1073741824, got '$big'" \
  bench generate --tokens $big --prompt-tokens 2
refused - "--prompt-tokens: expected an integer from 1 to 1073741824, got '$big'" \
  bench generate --prompt-tokens $big --tokens 2
for flag in --batch --micro-batch --seq-len --vocab --layers --dim --heads --steps --warmup; do
  refused - "$flag: expected an integer from " bench train "$flag" $big
done
refused - "dim 1073741824 exceeds the limit" bench train --dim 1073741824
"$mx" bench generate --model tiny --vocab 300 --prompt-tokens 4 --tokens 2 --json |
  matches '"tokens_per_s":' || fail "bench generate --vocab on a preset"

# An option given twice, on any command.
refused r "--steps given more than once" \
  train --model tiny --data corpus.txt --steps 2 --steps 5 --out r -q
refused o.safetensors "--format given more than once" \
  export run -o o.safetensors --format mxfp4_e2m1 --format=mxint8
refused - "--batch given more than once" study errors run --batch 2 --batch 3

# Numeric flags say what they expect, in one short line.
for v in 0 abc -1 1.5; do
  refused - "--batch: expected an integer of at least 1, got '$v'" study errors run --batch "$v"
  refused - "--seq-len: expected an integer of at least 1, got '$v'" study errors run --seq-len "$v"
  refused - "--batches: expected an integer of at least 1, got '$v'" study errors run --batches "$v"
done
refused - "--threads: expected an integer from 0 to 1024, got '2147483648'" \
  study errors run --threads 2147483648
refused p.safetensors "--fp32-targets: expected a finite number from 0 to 1, got 'abc'" \
  ptq run --calib corpus.txt -o p.safetensors --fp32-targets abc
refused - "ids: expected an integer from 0 to 4294967295, got '4294967296'" \
  tokenizer decode --tokenizer bytes 65 4294967296
refused - "ids: expected an integer from 0 to 4294967295, got 'abc'" \
  tokenizer decode --tokenizer bytes abc
[ "$("$mx" tokenizer decode --tokenizer bytes 104 105)" = hi ] || fail "tokenizer decode"

# Unknown words name themselves, however deep, and an unknown flag comes before a missing
# argument.
refused - "unknown command 'mx nosuch' (commands of mx: formats," nosuch
refused - "unknown command 'mx tokenizer nosuch' (commands of mx tokenizer: train, encode," \
  tokenizer nosuch
refused - "unknown command 'mx bench nosuch' (commands of mx bench: train, generate)" bench nosuch
refused - "not expected: --bogus-flag" sweep --bogus-flag
refused sweep_out "not expected: --bogus-flag" sweep run/model.safetensors --bogus-flag
refused r "not expected: --bogus" train --bogus -q
refused - "file is required" sweep
refused sweep_out "--skip 'layers\.0\.' matches no tensor name of run/model.safetensors" \
  sweep run/model.safetensors --skip 'layers\.0\.' -o sweep_out
echo "flag_errors: ok"
