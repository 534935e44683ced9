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

# refused OUTPUT TEXT ARGS...: `mx ARGS` exits 2, prints one line on stderr containing TEXT and
# nothing on stdout, and leaves OUTPUT absent (- when the command writes nothing).
refused() {
  local output="$1" want="$2" rc=0
  shift 2
  "$mx" "$@" >stdout.txt 2>stderr.txt || rc=$?
  local err
  err=$(cat stderr.txt)
  [ "$rc" -eq 2 ] || fail "mx $*: exit $rc, want 2 (stderr: $err)"
  [ "$(wc -l <stderr.txt)" -eq 1 ] || fail "mx $*: stderr is not one line: $err"
  [[ "$err" == *"$want"* ]] || fail "mx $*: '$err' does not say '$want'"
  [ ! -s stdout.txt ] || fail "mx $*: printed on stdout: $(cat stdout.txt)"
  [ "$output" = - ] || [ ! -e "$output" ] || fail "mx $*: wrote $output"
}
