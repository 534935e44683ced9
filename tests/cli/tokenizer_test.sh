#!/usr/bin/env bash
# `mx tokenizer`: train on a small generated corpus, round-trip text, write shards, and fail
# with one line and status 2 when a corpus or tokenizer is missing. Usage: tokenizer.sh MX
set -euo pipefail
mx="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir "$work/corpus"
for i in $(seq 1 300); do
  echo "the king shall speak of war and peace, line $i; my lord, good night."
done >"$work/corpus/a.txt"
echo "sweet prince, to be or not to be." >"$work/corpus/b.txt"

"$mx" tokenizer train "$work/corpus" --vocab 300 -o "$work/tok.model" >/dev/null
text="The king, 2 lords & a prince."
ids="$("$mx" tokenizer encode --tokenizer "$work/tok.model" "$text")"
# shellcheck disable=SC2086 # the ids are separate arguments
back="$("$mx" tokenizer decode --tokenizer "$work/tok.model" $ids)"
[ "$back" = "$text" ] || fail "round trip gave '$back'"

"$mx" tokenizer shards --tokenizer "$work/tok.model" --data "$work/corpus" -o "$work/out" >/dev/null
[ -s "$work/out/train.bin" ] && [ -s "$work/out/val.bin" ] || fail "shards missing"
# -q: the same files, nothing printed.
[ -z "$("$mx" tokenizer shards -q --tokenizer "$work/tok.model" --data "$work/corpus" -o "$work/quiet")" ] &&
  cmp "$work/out/train.bin" "$work/quiet/train.bin" || fail "tokenizer shards -q"
[ -z "$("$mx" tokenizer train -q "$work/corpus" --vocab 300 -o "$work/quiet.model")" ] &&
  [ -s "$work/quiet.model" ] || fail "tokenizer train -q"
[ "$(head -c 8 "$work/out/train.bin")" = "MXTOKENS" ] || fail "bad shard magic"

# The shards are a corpus for training and evaluation: the run trains on their tokens (the same
# losses as tokenizing the text itself) and mx eval reads their validation split; a tokenizer
# smaller than their vocabulary is refused before any folder is made.
args=(--model tiny --tokenizer "$work/tok.model" --steps 4 --batch 2 --seq-len 16 -q)
"$mx" train "${args[@]}" --data "$work/out" --out "$work/from_shards"
"$mx" train "${args[@]}" --data "$work/corpus" --out "$work/from_text"
cmp <(cut -d, -f1-5 "$work/from_shards/log.csv") <(cut -d, -f1-5 "$work/from_text/log.csv") ||
  fail "training on the shards differs from training on their text"
"$mx" eval "$work/from_shards" --data "$work/out" --recipe mxfp6 --batches 1 --seq-len 16 --batch 2 \
  --json | grep -q '"recipe":"mxfp6"' || fail "mx eval --data on the shards"
set +e
err="$("$mx" train --model tiny --data "$work/out" --steps 2 --out "$work/bytes" 2>&1)"
status=$?
set -e
[ $status -eq 2 ] && [ ! -e "$work/bytes" ] || fail "a tokenizer too small: exit $status, folder left"
[ "$err" = "mx train: error: $work/out/train.bin: its tokens are of a vocabulary of 300, larger than the tokenizer's 256 (--tokenizer: the one the shards were made with)" ] ||
  fail "unexpected error: $err"

set +e
err="$(MX_CACHE_DIR="$work/cache" "$mx" tokenizer train sotu --vocab 300 -o "$work/x.model" 2>&1)"
status=$?
set -e
[ $status -eq 2 ] || fail "missing corpus exited $status"
[ "$err" = "mx tokenizer train: error: corpus 'sotu' not found in $work/cache/sotu; run scripts/fetch-corpora.sh" ] ||
  fail "unexpected error: $err"
if "$mx" tokenizer decode --tokenizer "$work/tok.model" 99999 2>/dev/null; then
  fail "an id beyond the vocabulary was accepted"
fi

if [ -n "${MX_DATA_DIR:-}" ]; then
  [ "$("$mx" tokenizer encode --tokenizer gpt2 "Hello world")" = "15496 995" ] || fail "gpt2"
fi
echo "tokenizer CLI: ok"
