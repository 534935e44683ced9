#!/usr/bin/env bash
# `mx quantize`, `mx dequantize` and `mx inspect` on a safetensors checkpoint built here byte by
# byte. The weight row is chosen so that MXFP4 (E2M1 elements 0,.5,1,1.5,2,3,4,6; scale
# 2^(floor(log2 amax) - 2) = 1 for amax 6) keeps every value but 5, a tie between 4 and 6 that
# rounds to the even 4. Round trips through MX safetensors and GGUF must give exactly that, and
# bad input must give one line on stderr, exit status 2 and no output.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

hex_bytes() {  # a string of hex digit pairs -> those bytes
  local h=${1// /} i
  for ((i = 0; i < ${#h}; i += 2)); do printf "\\x${h:i:2}"; done
}
le32() {  # 32-bit words in hex -> little-endian bytes, as hex
  local w
  for w in "$@"; do printf '%s' "${w:6:2}${w:4:2}${w:2:2}${w:0:2}"; done
}
repeat() {  # count, word
  local i
  for ((i = 0; i < $1; i++)); do printf '%s ' "$2"; done
}
# A safetensors file: the JSON header padded with spaces to a multiple of 8, its length as a
# little-endian u64, then the data as hex.
make_safetensors() {  # file, header JSON, hex data
  local json="$2"
  while ((${#json} % 8 != 0)); do json+=' '; done
  local n=${#json} i
  { for ((i = 0; i < 8; i++)); do printf "\\x$(printf %02x $(((n >> (8 * i)) & 255)))"; done
    printf '%s' "$json"
    hex_bytes "$3"; } >"$1"
}
# The bytes of tensor NAME in a safetensors file, as hex (the writer's header is compact JSON).
tensor_hex() {  # file, name
  local n header entry begin end
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  header=$(head -c $((8 + n)) "$1" | tail -c "$n")
  entry=$(grep -o "\"$2\":{[^}]*}" <<<"$header") || fail "$1 has no tensor $2"
  begin=$(sed 's/.*"data_offsets":\[\([0-9]*\),.*/\1/' <<<"$entry")
  end=$(sed 's/.*"data_offsets":\[[0-9]*,\([0-9]*\)\].*/\1/' <<<"$entry")
  tail -c +$((9 + n + begin)) "$1" | head -c $((end - begin)) | od -An -tx1 -v | tr -d ' \n'
}
tensor_dtype() {  # file, name
  local n
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  head -c $((8 + n)) "$1" | tail -c "$n" | grep -o "\"$2\":{\"dtype\":\"[A-Z0-9_]*\"" |
    sed 's/.*"dtype":"\([A-Z0-9_]*\)"/\1/'
}

# float32 words: 6, 5, 1, 0.5, 4, then zeros; and the MXFP4 result (5 -> 4).
row="40c00000 40a00000 3f800000 3f000000 40800000 $(repeat 27 00000000)"
want_row="40c00000 40800000 3f800000 3f000000 40800000 $(repeat 27 00000000)"
norm="$(repeat 32 3f800000)"
header='{"__metadata__":{"format":"pt"},'
header+='"model.embed_tokens.weight":{"dtype":"F32","shape":[1,32],"data_offsets":[0,128]},'
header+='"model.layers.0.mlp.up_proj.weight":{"dtype":"F32","shape":[2,32],"data_offsets":[128,384]},'
header+='"model.norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[384,512]},'
header+='"model.position_ids":{"dtype":"I32","shape":[2],"data_offsets":[512,520]}}'
make_safetensors model.safetensors "$header" \
  "$(le32 $row) $(le32 $row $row) $(le32 $norm) $(le32 00000007 00000009)"

# The round trip through MX safetensors, and through a plain GGUF container (the file holds no
# model config, so a llama.cpp model GGUF is refused: see gguf_model_test.sh).
for mid in mid.safetensors mid.gguf; do
  plain=()
  [ "$mid" = mid.gguf ] && plain=(--plain-gguf)
  "$mx" quantize model.safetensors -o "$mid" "${plain[@]}" --format mxfp4_e2m1 >summary.txt 2>progress.txt ||
    fail "mx quantize -o $mid: $(cat progress.txt)"
  grep -q "quantized 1 of 4 tensors to mxfp4_e2m1" summary.txt || fail "summary: $(cat summary.txt)"
  grep -q "kept as they are: 1 embedding, 1 norm" summary.txt || fail "summary: $(cat summary.txt)"
  grep -q "4/4 tensors" progress.txt || fail "no progress bar: $(cat progress.txt)"
  "$mx" dequantize "$mid" -o out.safetensors -q || fail "mx dequantize $mid"
  [ "$(tensor_hex out.safetensors model.layers.0.mlp.up_proj.weight)" = \
    "$(le32 $want_row $want_row)" ] || fail "$mid: the weight is not the MXFP4 values"
  [ "$(tensor_dtype out.safetensors model.layers.0.mlp.up_proj.weight)" = F32 ] ||
    fail "$mid: the weight is not F32"
  for name in model.embed_tokens.weight model.norm.weight model.position_ids; do
    [ "$(tensor_hex out.safetensors $name)" = "$(tensor_hex model.safetensors $name)" ] ||
      fail "$mid: $name changed"
  done
  [ "$(tensor_dtype out.safetensors model.position_ids)" = I32 ] || fail "$mid: ids not I32"
done

# MX safetensors hold the blocks and scales: one E8M0 scale of 127 (2^0) per row.
[ "$(tensor_hex mid.safetensors model.layers.0.mlp.up_proj.weight.scales)" = 7f7f ] ||
  fail "scales are not 2^0"
[ "$(tensor_dtype mid.safetensors model.layers.0.mlp.up_proj.weight.blocks)" = U8 ] ||
  fail "blocks are not U8"

# bfloat16 output: 6 -> 40c0, 4 -> 4080, 1 -> 3f80, .5 -> 3f00.
"$mx" dequantize mid.safetensors -o bf16.safetensors --dtype bf16 -q
[ "$(tensor_hex bf16.safetensors model.layers.0.mlp.up_proj.weight | head -c 20)" = \
  "c0408040803f003f8040" ] || fail "bf16 output"

# Selection: --only overrides the defaults, --skip wins over --only.
"$mx" quantize model.safetensors -o only.safetensors --only 'embed|norm' -q
"$mx" inspect only.safetensors >only.txt
grep -q "^model.embed_tokens.weight  *mxfp4_e2m1" only.txt || fail "--only embed: $(cat only.txt)"
grep -q "^model.norm.weight  *mxfp4_e2m1" only.txt || fail "--only norm: $(cat only.txt)"
grep -q "^model.layers.0.mlp.up_proj.weight  *F32" only.txt || fail "--only: $(cat only.txt)"
"$mx" quantize model.safetensors -o skip.safetensors --include-embeddings --skip up_proj -q
"$mx" inspect skip.safetensors | matches "^model.embed_tokens.weight  *mxfp4_e2m1" ||
  fail "--include-embeddings"
"$mx" inspect skip.safetensors | matches "^model.layers.0.mlp.up_proj.weight  *F32" ||
  fail "--skip"

# inspect: the MX weight is one logical tensor of 2 rows x (16 + 1) bytes = 34; in BF16 it would
# take 128 bytes, so 3.76x.
"$mx" inspect mid.safetensors >inspect.txt
grep -q "4 tensors (1 MX)" inspect.txt || fail "inspect: $(cat inspect.txt)"
line=$(grep "^model.layers.0.mlp.up_proj.weight " inspect.txt) || fail "no MX tensor line"
[[ "$line" == *"mxfp4_e2m1  "*"[2, 32]"*" 34 "*"3.76x"*"mxfp4_e2m1 block=32"* ]] ||
  fail "inspect line: $line"
grep -q "\.blocks\|\.scales" inspect.txt && fail "inspect lists the MX parts: $(cat inspect.txt)"
grep -q "^total " inspect.txt || fail "inspect has no total"
"$mx" inspect mid.gguf | matches "^model.layers.0.mlp.up_proj.weight  *MXFP4 .* 34 .*3.76x" ||
  fail "inspect gguf: $("$mx" inspect mid.gguf)"
"$mx" inspect --json mid.safetensors >inspect.json
if command -v python3 >/dev/null; then
  python3 - inspect.json <<'EOF' || fail "inspect --json: $(cat inspect.json)"
import json, sys
j = json.load(open(sys.argv[1]))
t = {x["name"]: x for x in j["tensors"]}
w = t["model.layers.0.mlp.up_proj.weight"]
assert w["dtype"] == "mxfp4_e2m1" and w["shape"] == [2, 32] and w["bytes"] == 34, w
assert w["spec"]["format"] == "mxfp4_e2m1" and w["spec"]["block"] == 32, w
assert t["model.position_ids"]["ratio"] is None
assert j["total"]["mx_tensors"] == 1 and j["total"]["tensors"] == 4, j["total"]
assert j["total"]["bytes"] == 128 + 34 + 128 + 8, j["total"]
EOF
else
  grep -q '"mx_tensors": 1' inspect.json || fail "inspect --json: $(cat inspect.json)"
fi

# A llama2.c checkpoint (dim 32, hidden 32, 1 layer, 2 heads, 2 kv heads, vocab 4, seq 2; all
# zeros) is read under the Llama names.
{ hex_bytes "$(le32 00000020 00000020 00000001 00000002 00000002 00000004 00000002)"
  head -c $((7424 * 4)) /dev/zero; } >tiny.bin
"$mx" inspect tiny.bin | matches "^tiny.bin: llama2c, 13 tensors (0 MX), 7424 parameters" ||
  fail "inspect tiny.bin: $("$mx" inspect tiny.bin)"
"$mx" quantize tiny.bin -o tiny.gguf --plain-gguf -q
"$mx" inspect tiny.gguf | matches "^model.layers.0.mlp.gate_proj.weight  *MXFP4  *\[32, 32\]" ||
  fail "quantize tiny.bin: $("$mx" inspect tiny.gguf)"

# Bad input: exit 2, one stderr line containing the message, no stdout, and OUT neither created
# nor changed.
printf 'hello, world\n' >text.safetensors
make_safetensors short.safetensors \
  '{"w":{"dtype":"F32","shape":[1,32],"data_offsets":[0,128]}}' "$(le32 3f800000)"
make_safetensors bad_mx.safetensors \
  '{"__metadata__":{"mx.w":"{\"shape\":[32]}"},"w.blocks":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' "00"
expect_error() {  # output extension, command, args..., expected part of the message
  local ext="$1"
  shift
  local want="${*: -1}"
  local args=("${@:1:$#-1}")
  rm -f out.* kept.*
  printf 'previous contents' >"kept.$ext"
  refused "out.$ext" "$want" "${args[@]}" -o "out.$ext"
  "$mx" "${args[@]}" -o "kept.$ext" >/dev/null 2>&1 && fail "mx ${args[*]}: succeeded"
  [ "$(cat "kept.$ext")" = "previous contents" ] || fail "mx ${args[*]}: changed an existing output"
  local stray
  stray=$(ls -A | grep -v -e '\.safetensors$' -e '\.gguf$' -e '\.txt$' -e '\.json$' -e '\.bin$' ||
    true)
  [ -z "$stray" ] || fail "mx ${args[*]}: left files behind: $stray"
  return 0
}
st=safetensors
expect_error $st quantize missing.safetensors "mx quantize: error: cannot open missing.safetensors"
expect_error $st quantize text.safetensors "mx quantize: error: text.safetensors: "
expect_error $st quantize short.safetensors "mx quantize: error: short.safetensors: "
expect_error $st quantize mid.gguf \
  "mx quantize: error: mid.gguf: a GGUF file (mx quantize reads safetensors or llama2.c"
expect_error $st quantize model.safetensors --format mxfp9 "mx quantize: error: "
expect_error $st quantize model.safetensors --only '(' \
  "mx quantize: error: bad --only regular expression '('"
# A pattern that matches no tensor is a mistake (another model's naming), not a request.
expect_error $st quantize model.safetensors --skip 'layers\.9\.' \
  "mx quantize: error: --skip 'layers\.9\.' matches no tensor name of model.safetensors"
expect_error $st quantize model.safetensors --only 'transformer\.h' \
  "mx quantize: error: --only 'transformer\.h' matches no tensor name of model.safetensors"
expect_error $st quantize model.safetensors --axis 3 \
  "mx quantize: error: model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight' [2, 32]: "
expect_error gguf quantize model.safetensors --format mxfp8_e4m3 --plain-gguf \
  "mx quantize: error: GGUF holds MX tensors only as MXFP4"
expect_error gguf quantize model.safetensors \
  "mx quantize: error: model.safetensors: no model config (metadata \"mxkit.model\" or \"llama2c.*\") (--plain-gguf writes"
expect_error gguf quantize tiny.bin "mx quantize: error: tiny.bin names no tokenizer, which llama.cpp needs"
expect_error $st dequantize missing.safetensors "mx dequantize: error: cannot open missing.safetensors"
expect_error $st dequantize text.safetensors "mx dequantize: error: text.safetensors: "
expect_error $st dequantize bad_mx.safetensors \
  "mx dequantize: error: bad_mx.safetensors: metadata 'mx.w': MX spec lacks 'format'"
expect_error $st dequantize mid.safetensors --dtype f8 "mx dequantize: error: unknown --dtype 'f8'"
# A broken MX entry is refused by every reader, whether or not it reads MX tensors.
expect_error $st quantize bad_mx.safetensors \
  "mx quantize: error: bad_mx.safetensors: metadata 'mx.w': MX spec lacks 'format'"
rc=0
"$mx" sweep bad_mx.safetensors -o bad_sweep >/dev/null 2>stderr.txt || rc=$?
[ "$rc" -eq 2 ] && [ ! -e bad_sweep ] &&
  grep -q "bad_mx.safetensors: metadata 'mx.w': MX spec lacks 'format'" stderr.txt ||
  fail "sweep of a broken MX entry: exit $rc, $(cat stderr.txt)"
expect_error $st dequantize mid.safetensors --threads x "mx dequantize: error: bad --threads 'x'"

# A missing output directory fails before any work (no progress lines).
for cmd in quantize dequantize; do
  rc=0
  "$mx" $cmd mid.safetensors -o no_dir/out.safetensors >stdout.txt 2>stderr.txt || rc=$?
  [ "$rc" -eq 2 ] || fail "mx $cmd -o no_dir/...: exit $rc"
  [ "$(cat stderr.txt)" = "mx $cmd: error: cannot write no_dir/out.safetensors: folder no_dir does not exist" ] ||
    fail "mx $cmd -o no_dir/...: $(cat stderr.txt)"
done

# inspect has no output file: just the message and the status.
for bad in missing.safetensors text.safetensors bad_mx.safetensors; do
  rc=0
  "$mx" inspect "$bad" >stdout.txt 2>stderr.txt || rc=$?
  [ "$rc" -eq 2 ] || fail "mx inspect $bad: exit $rc"
  [ "$(wc -l <stderr.txt)" -eq 1 ] || fail "mx inspect $bad: $(cat stderr.txt)"
  grep -q "^mx inspect: error: .*$bad" stderr.txt || fail "mx inspect $bad: $(cat stderr.txt)"
  [ ! -s stdout.txt ] || fail "mx inspect $bad: printed on stdout"
done
echo "quantize_test: all passed"
