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
