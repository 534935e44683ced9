#!/usr/bin/env bash
# `mx corpus`: split a small dictd dictionary into documents, build a corpus folder from two
# sources, read it back as `--data study`, and fail with one line and status 2 on bad input
# without leaving anything behind. Usage: corpus_test.sh MX
source "$(dirname "$0")/common.bash"

# A dictionary of three definitions plus the database's own entry; offsets in base 64.
printf 'INFO\napple\n fruit\nbee\n insect\ncat\n pet\n' >words.dict
printf '00-database-info\tA\tF\napple\tF\tN\nbee\tS\tM\ncat\te\tJ\n' >words.index
"$mx" corpus dictd words.index words.dict -o src/words --min-bytes 20 >/dev/null
[ "$(ls src/words)" = "$(printf '00000.txt\n00001.txt')" ] || fail "dictd documents: $(ls src/words)"
[ "$(cat src/words/00001.txt)" = "$(printf 'cat\n pet')" ] || fail "dictd text"

mkdir -p src/books
printf 'Call me Ishmael.\r\n\r\n\r\n' >src/books/moby.txt
printf 'apple\n fruit\n\nbee\n insect\n' >src/books/copy.txt  # a copy of words/00000
printf '\n\n' >src/books/blank.txt
out="$("$mx" corpus build src/words src/books -o cache/study --validation-per-mille 0)"
grep -q '^total  *5  *1  *1  *3 ' <<< "$out" || fail "summary: $out"
[ "$(cat cache/study/train/books.moby.txt)" = "Call me Ishmael." ] || fail "cleaned text"
[ ! -e cache/study/train/books.copy.txt ] || fail "duplicate kept"
grep -q "^duplicate	books.copy.txt	.*	words.00000.txt$" cache/study/documents.tsv ||
  fail "documents.tsv: $(cat cache/study/documents.tsv)"

# A corpus with documents on both sides is what --data study reads.
"$mx" corpus build src/words src/books -o both --validation-per-mille 500 >/dev/null
[ -n "$(ls both/validation)" ] && [ -n "$(ls both/train)" ] || fail "per mille 500 split"
# The built folder itself is a corpus of those two splits.
"$mx" tokenizer shards --tokenizer bytes --data both -o both_shards >both_shards.log
grep -q "the corpus's validation files" both_shards.log ||
  fail "a built folder's shards: $(cat both_shards.log)"
rm -rf cache/study
mv both cache/study
MX_CACHE_DIR="$PWD/cache" "$mx" tokenizer shards --tokenizer bytes --data study -o shards \
  >shards.log
grep -q "the corpus's validation files" shards.log || fail "study shards: $(cat shards.log)"

expect_error() {  # expect_error MESSAGE ARGS...: one line on stderr, status 2, no output folder
  local message="$1" status=0 err
  shift
  err="$("$mx" corpus "$@" 2>&1 >/dev/null)" || status=$?
  [ $status -eq 2 ] || fail "mx corpus $* exited $status"
  [ "$err" = "mx corpus $1: error: $message" ] || fail "mx corpus $*: $err"
}
expect_error "cache/study already exists" build src/words -o cache/study
expect_error "source nope is not a folder" build nope -o new
mkdir -p "src/bad name"
touch "src/bad name/x.txt"
expect_error "source folder name 'bad name' must be letters, digits, '_' and '-' (it prefixes the document names)" \
  build "src/bad name" -o new
printf 'x\tA\n' >bad.index
expect_error "dictd index line 1: expected a headword, an offset and a length separated by tabs" \
  dictd bad.index words.dict -o new
expect_error "cannot read missing.index" dictd missing.index words.dict -o new
[ ! -e new ] && [ ! -e .new.partial ] || fail "a failed command left output behind"
echo "corpus CLI: ok"
