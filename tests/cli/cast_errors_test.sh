#!/usr/bin/env bash
# `mx cast` on bad input: exit status 2, exactly one line on stderr that names the problem,
# nothing on stdout, no output file (nor a temporary one), and an existing output untouched.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

npy_header() {  # descr, shape as a Python tuple; the header the format description gives
  local dict="{'descr': '$1', 'fortran_order': False, 'shape': $2, }"
  npy_raw_header "$dict"
}
npy_raw_header() {  # the dict text, padded to a multiple of 64 bytes
  local len=$((${#1} + 1))
  local hl=$(((10 + len + 63) / 64 * 64 - 10))
  printf '\x93NUMPY\x01\x00'
  printf "\\x$(printf %02x $((hl & 255)))\\x$(printf %02x $((hl >> 8)))"
  printf '%s%*s\n' "$1" $((hl - len)) ''
}
zeros() { head -c "$1" /dev/zero; }

# A good float32 [2, 32] input, and bad ones.
{ npy_header '<f4' '(2, 32)'; zeros 256; } >good.npy
{ npy_header '<f4' '(64,)'; zeros 256; } >flat.npy
printf 'hello, world\n' >text.npy
: >empty.npy
{ npy_header '<f8' '(2, 32)'; zeros 512; } >f8.npy
{ npy_header '>f4' '(2, 32)'; zeros 256; } >big_endian.npy
{ npy_header '|O' '(1,)'; zeros 8; } >object.npy
{ npy_header '|u1' '(2, 32)'; zeros 64; } >u8.npy
{ npy_raw_header "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 32), }"; zeros 256; } >fortran.npy
{ npy_header '<f4' '(2, 32)'; zeros 100; } >short_data.npy
{ npy_header '<f4' '(2, 32)'; zeros 257; } >long_data.npy
npy_header '<f4' '(2, 32)' | head -c 40 >short_header.npy
{ npy_raw_header "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 32), "; zeros 256; } >no_brace.npy
{ npy_raw_header "{'descr': '<f4', 'shape': (2, 32), }"; zeros 256; } >no_order.npy
{ npy_header '<f4' '(-2, 32)'; } >negative.npy
{ npy_header '<f4' '(99999999999999999999,)'; } >huge_dim.npy
{ npy_header '<f4' '(4294967296, 4294967296)'; } >overflow.npy
mkdir a_directory.npy

# args..., then the expected part of the message: exit 2, one stderr line containing it, no
# stdout, and out.npy neither created nor changed.
expect_error() {
  local want="${*: -1}"
  local args=("${@:1:$#-1}")
  rm -f out.npy
  printf 'previous contents' >kept.npy
  refused out.npy "$want" cast "${args[@]}" -o out.npy
  # The same failure must leave an existing output as it was.
  "$mx" cast "${args[@]}" -o kept.npy >/dev/null 2>&1 && fail "mx cast ${args[*]}: succeeded"
  [ "$(cat kept.npy)" = "previous contents" ] || fail "mx cast ${args[*]}: changed an existing output"
  return 0
}

# Input files.
expect_error missing.npy "mx cast: error: cannot open missing.npy: No such file or directory"
expect_error a_directory.npy "mx cast: error: cannot read a_directory.npy"
expect_error text.npy "mx cast: error: text.npy: not a .npy file (bad magic)"
expect_error empty.npy "not a .npy file (bad magic)"
expect_error f8.npy "f8.npy: unsupported dtype '<f8'"
expect_error big_endian.npy "unsupported dtype '>f4' (big-endian)"
expect_error object.npy "unsupported dtype '|O'"
expect_error u8.npy "u8.npy: dtype uint8 cannot be quantized (expected float32, float16 or bfloat16)"
expect_error fortran.npy "unsupported fortran_order True"
expect_error short_data.npy "short_data.npy: truncated data: expected 256 bytes, found 100"
expect_error long_data.npy "unexpected trailing bytes: expected 256 bytes of data, found 257"
expect_error short_header.npy "short_header.npy: truncated header: expected 118 header bytes, found 30"
expect_error no_brace.npy "malformed header dict: unexpected end"
expect_error no_order.npy "malformed header dict: missing key 'fortran_order'"
expect_error negative.npy "negative dimension -2 in shape"
expect_error huge_dim.npy "shape dimension 99999999999999999999 is too large"
expect_error overflow.npy "shape (4294967296, 4294967296) is too large"

# Flags.
expect_error good.npy --format mxfp9 "unknown --format 'mxfp9' (known: mxfp8_e4m3,"
expect_error good.npy --scale round "unknown --scale 'round'"
expect_error good.npy --round up "unknown --round 'up'"
expect_error good.npy --preset numpy "unknown --preset 'numpy'"
expect_error good.npy --emit everything "unknown --emit 'everything'"
expect_error good.npy --block 0 "bad --block '0' (expected a positive integer)"
expect_error good.npy --block -8 "bad --block '-8'"
expect_error good.npy --block 32x "bad --block '32x'"
expect_error good.npy --block 2000000 "block size too large"
expect_error good.npy --axis one "bad --axis 'one'"
expect_error good.npy --axis 2 "good.npy: axis 2 out of range for an array of 2 dimensions"
expect_error good.npy --axis -3 "axis -3 out of range for an array of 2 dimensions"
expect_error good.npy --seed -1 "bad --seed '-1'"
expect_error good.npy --threads -1 "bad --threads '-1'"
expect_error good.npy --threads 100000 "bad --threads '100000' (expected 0 for all, or 1 to 1024)"
for tile in 4 4x 4by4 0x4 4x-1 x4 4x4x4; do
  expect_error good.npy --tile "$tile" "bad --tile '$tile' (expected RxC"
done
expect_error good.npy --tile 4x4 "good.npy: tile 4x4 does not fit the last two dimensions 2x32"
expect_error flat.npy --tile 2x2 "flat.npy: a 2x2 tile needs an array of at least 2 dimensions"
expect_error good.npy --tile 2x2 --block 4 "--tile cannot be combined with --block or --axis"
expect_error good.npy --tile 2x2 --axis 0 "--tile cannot be combined with --block or --axis"

# Command-line syntax errors come from the parser, also with status 2 and one line.
expect_error good.npy --no-such-flag "mx: error:"
rc=0
"$mx" cast good.npy 2>stderr.txt || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <stderr.txt)" -eq 1 ] && grep -q -- "--output is required" stderr.txt ||
  fail "a missing -o should fail with status 2 and one line: $(cat stderr.txt)"

# An output that cannot be written: status 2, one line, nothing left behind.
rc=0
"$mx" cast good.npy -o no_such_dir/out.npy 2>stderr.txt || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <stderr.txt)" -eq 1 ] &&
  grep -q "mx cast: error: cannot write no_such_dir/out.npy: folder no_such_dir does not exist" stderr.txt ||
  fail "an unwritable output should fail with status 2 and one line: $(cat stderr.txt)"
leftover=$(find . -name '.*.tmp.*')
[ -z "$leftover" ] || fail "temporary files left behind: $leftover"

# The good input itself casts, so the failures above are the bad parts' doing.
"$mx" cast --quiet good.npy -o out.npy || fail "the good input should cast"
echo "cast errors: ok"
