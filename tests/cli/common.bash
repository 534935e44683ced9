# Sourced by the command-line tests (tests/cli/*_test.sh) with the path of `mx` as $1: strict
# mode, the C locale, `mx` as an absolute path, and a scratch folder that is the working
# directory and is removed on exit.
set -euo pipefail
export LC_ALL=C
mx="$1"
[[ "$mx" != */* ]] || mx=$(realpath "$mx")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

# `... | matches PATTERN` succeeds when a line of the input matches (grep's options allowed). It
# reads all of its input: `grep -q` stops at the first match, and under pipefail the writer's
# SIGPIPE would then fail the pipeline at random.
matches() { grep "$@" > /dev/null; }

# expect_one_line_error TEXT ARGS...: `mx ARGS` exits with status 2 and prints one line on
# stderr that contains TEXT.
expect_one_line_error() {
  local want="$1" err rc
  shift
  set +e
  err=$("$mx" "$@" 2>&1 >/dev/null)
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "'$*' exited $rc"
  [ "$(echo "$err" | wc -l)" -eq 1 ] || fail "'$*' printed more than one line: $err"
  grep -q -- "$want" <<< "$err" || fail "'$*' said '$err', expected '$want'"
}
