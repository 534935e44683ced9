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
[ "$(head -c 8 "$work/out/train.bin")" = "MXTOKENS" ] || fail "bad shard magic"

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
