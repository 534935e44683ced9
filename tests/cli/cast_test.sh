#!/usr/bin/env bash
# `mx cast` on .npy files built here byte by byte, checked byte for byte (header included)
# against values worked out by hand from the MX definition (OCP MX v1.0 and docs/NUMERICS.md):
#   X = scale * element, scale = 2^(floor(log2 amax) - emax) under FLOOR;
#   MXINT8 elements are p/64 (emax 0), MXINT4 elements p/4, E2M1 elements 0,.5,1,1.5,2,3,4,6.
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

# The .npy header of the format description: magic, version 1.0, little-endian 2-byte length,
# the dict as Python writes it, spaces and a newline up to a multiple of 64 bytes.
npy_header() {  # descr, shape as a Python tuple
  local dict="{'descr': '$1', 'fortran_order': False, 'shape': $2, }"
  local len=$((${#dict} + 1))
  local hl=$(((10 + len + 63) / 64 * 64 - 10))
  printf '\x93NUMPY\x01\x00'
  printf "\\x$(printf %02x $((hl & 255)))\\x$(printf %02x $((hl >> 8)))"
  printf '%s%*s\n' "$dict" $((hl - len)) ''
}
hex_bytes() {  # a string of hex digit pairs -> those bytes
  local h=${1// /} i
  for ((i = 0; i < ${#h}; i += 2)); do printf "\\x${h:i:2}"; done
}
le32() {  # 32-bit words in hex -> little-endian bytes, as hex
  local w
  for w in "$@"; do printf '%s' "${w:6:2}${w:4:2}${w:2:2}${w:0:2}"; done
}
le16() {
  local w
  for w in "$@"; do printf '%s' "${w:2:2}${w:0:2}"; done
}
f32_int() {  # float32 bits of an integer
  local k=$1 s=0 e=0
  if ((k < 0)); then s=1; k=$((-k)); fi
  if ((k == 0)); then printf '%08x ' $((s << 31)); return; fi
  while (((k >> (e + 1)) > 0)); do e=$((e + 1)); done
  printf '%08x ' $(((s << 31) | ((127 + e) << 23) | ((k - (1 << e)) << (23 - e))))
}
repeat() {  # count, word
  local i
  for ((i = 0; i < $1; i++)); do printf '%s ' "$2"; done
}
make_npy() {  # file, descr, shape, hex data
  { npy_header "$2" "$3"; hex_bytes "$4"; } >"$1"
}
expect_npy() {  # file, descr, shape, hex data
  make_npy want.npy "$2" "$3" "$4"
  cmp -s want.npy "$1" || {
    echo "want:" >&2; od -An -tx1 -v want.npy >&2
    echo "got:" >&2; od -An -tx1 -v "$1" >&2
    fail "$1 is not $2 $3 with the expected bytes"
  }
}
cast() { "$mx" cast --quiet "$@"; }

# ---- A: float32 [2, 32]. Row 0 is 1..32; row 1 has ties for the element rounding. ----
row0=""
for v in $(seq 1 32); do row0+="$(f32_int "$v")"; done
#      1        -1       0.5      -0.5     2^-7     3*2^-7   5*2^-7   -3*2^-7
row1="3f800000 bf800000 3f000000 bf000000 3c000000 3cc00000 3d200000 bcc00000 $(repeat 24 00000000)"
make_npy a.npy '<f4' '(2, 32)' "$(le32 $row0 $row1)"

# MXINT8, FLOOR: row 0 amax 32 -> shared exponent 5 -> scale byte 127+5 = 132 (0x84), element
# p = v/32*64 = 2v; row 1 amax 1 -> exponent 0 -> 0x7f, p = v*64, ties 0.5, 1.5, 2.5 -> 0, 2, 2.
codes0=""
for v in $(seq 1 32); do codes0+=$(printf '%02x' $((2 * v))); done
codes1="40 c0 20 e0 00 02 02 fe $(repeat 24 00)"
cast a.npy -o s.npy --format mxint8 --emit scales
expect_npy s.npy '|u1' '(2, 1)' "84 7f"
cast a.npy -o c.npy --format mxint8 --emit codes
expect_npy c.npy '|u1' '(2, 32)' "$codes0 $codes1"
cast a.npy -o p.npy --format mxint8 --emit packed
expect_npy p.npy '|u1' '(64,)' "$codes0 $codes1"
# Decoded: row 0 exactly; row 1 1, -1, .5, -.5, 0, 1/32, 1/32, -1/32, 0...
cast a.npy -o d.npy --format mxint8
deq1="3f800000 bf800000 3f000000 bf000000 00000000 3d000000 3d000000 bd000000 $(repeat 24 00000000)"
expect_npy d.npy '<f4' '(2, 32)' "$(le32 $row0 $deq1)"
# Other roundings of the ties 0.5, 1.5, 2.5, -1.5; microxcaling's preset rounds away from zero,
# and an explicit --round overrides the preset.
cast a.npy -o c.npy --format mxint8 --emit codes --round toward-zero
expect_npy c.npy '|u1' '(2, 32)' "$codes0 40 c0 20 e0 00 01 02 ff $(repeat 24 00)"
cast a.npy -o c.npy --format mxint8 --emit codes --round nearest-away
expect_npy c.npy '|u1' '(2, 32)' "$codes0 40 c0 20 e0 01 02 03 fe $(repeat 24 00)"
cast a.npy -o c.npy --format mxint8 --emit codes --preset microxcaling
expect_npy c.npy '|u1' '(2, 32)' "$codes0 40 c0 20 e0 01 02 03 fe $(repeat 24 00)"
cast a.npy -o c.npy --format mxint8 --emit codes --preset microxcaling --round nearest-even
expect_npy c.npy '|u1' '(2, 32)' "$codes0 $codes1"
# Asymmetric: row 0's offset is 16.5 and v - 16.5 in steps of 1/8 is exact; row 1's offset is 0.
cast a.npy -o asym.npy --format mxint8 --asym
cmp -s asym.npy d.npy || fail "--asym should decode A as the symmetric cast does"

# An all-zero block gets scale byte 0, or 1 (2^-126) under microxcaling's MXINT8 preset.
make_npy z.npy '<f4' '(32,)' "$(repeat 32 00000000)"
cast z.npy -o s.npy --format mxint8 --emit scales
expect_npy s.npy '|u1' '(1,)' "00"
cast z.npy -o s.npy --format mxint8 --emit scales --preset microxcaling
expect_npy s.npy '|u1' '(1,)' "01"

# ---- Scale rules, MXFP8 E4M3 (emax 8, 3 mantissa bits), blocks of 2 ----
# [300, 1]: floor 8-8 -> 127; ceil 9-8 -> 128; even: 300 rounds to 288, floor -> 127;
#           rceil ceil(log2(300/448)) = 0 -> 127.
# [3.9375, -1]: floor 1-8 -> 120; ceil 2-8 -> 121; even: 3.9375 rounds to 4 -> 121; rceil
#           ceil(log2(3.9375/448)) = -6 -> 121.
make_npy r.npy '<f4' '(2, 2)' "$(le32 43960000 3f800000 407c0000 bf800000)"
for rule in "floor 7f 78" "ceil 80 79" "even 7f 79" "rceil 7f 79"; do
  set -- $rule
  cast r.npy -o s.npy --block 2 --emit scales --scale "$1"
  expect_npy s.npy '|u1' '(2, 1)' "$2 $3"
done
cast r.npy -o s.npy --block 2 --emit scales --preset torchao
expect_npy s.npy '|u1' '(2, 1)' "7f 79"
cast r.npy -o s.npy --block 2 --emit scales --preset te
expect_npy s.npy '|u1' '(2, 1)' "7f 79"
cast r.npy -o s.npy --block 2 --emit scales --preset torchao --scale floor
expect_npy s.npy '|u1' '(2, 1)' "7f 78"

# ---- MXINT4 (p/4), one block of 8: 1,2,3,4,-1,-2,-3,-4 -> exponent 2 (0x81), p = v ----
# Packed low nibble first: 0x21 0x43 0xef 0xcd.
ints="1 2 3 4 -1 -2 -3 -4"
f32s=""
for v in $ints; do f32s+="$(f32_int "$v")"; done
make_npy i.npy '<f4' '(1, 8)' "$(le32 $f32s)"
make_npy h.npy '<f2' '(1, 8)' "$(le16 3c00 4000 4200 4400 bc00 c000 c200 c400)"
make_npy b.npy '<V2' '(1, 8)' "$(le16 3f80 4000 4040 4080 bf80 c000 c040 c080)"
make_npy b2.npy 'bfloat16' '(1, 8)' "$(le16 3f80 4000 4040 4080 bf80 c000 c040 c080)"
for in in i.npy h.npy b.npy b2.npy; do
  cast "$in" -o s.npy --format mxint4 --block 8 --emit scales
  expect_npy s.npy '|u1' '(1, 1)' "81"
  cast "$in" -o c.npy --format mxint4 --block 8 --emit codes
  expect_npy c.npy '|u1' '(1, 8)' "01 02 03 04 0f 0e 0d 0c"
  cast "$in" -o p.npy --format mxint4 --block 8 --emit packed
  expect_npy p.npy '|u1' '(4,)' "21 43 ef cd"
  cast "$in" -o d.npy --format mxint4 --block 8
  expect_npy d.npy '<f4' '(1, 8)' "$(le32 $f32s)"
done

# ---- 2-D tiles: MXFP4 E2M1 (emax 2), 2x2 tiles over [2, 4] ----
# [[1, 2, .5, -.25], [3, 6, .75, .125]]: tile 0 {1,2,3,6} amax 6 -> exponent 0 (0x7f), codes
# 2,4,5,7; tile 1 {.5,-.25,.75,.125} amax .75 -> exponent -3 (0x7c), x8 = 4,-2,6,1 -> 6,c,7,2.
# Packed block after block, each tile row-major: 42 75 c6 27.
make_npy t.npy '<f4' '(2, 4)' "$(le32 3f800000 40000000 3f000000 be800000 40400000 40c00000 3f400000 3e000000)"
cast t.npy -o s.npy --format mxfp4_e2m1 --tile 2x2 --emit scales
expect_npy s.npy '|u1' '(1, 2)' "7f 7c"
cast t.npy -o c.npy --format mxfp4_e2m1 --tile 2x2 --emit codes
expect_npy c.npy '|u1' '(2, 4)' "02 04 06 0c 05 07 07 02"
cast t.npy -o p.npy --format mxfp4_e2m1 --tile 2x2 --emit packed
expect_npy p.npy '|u1' '(4,)' "42 75 c6 27"
cast t.npy -o d.npy --format mxfp4_e2m1 --tile 2x2
cmp -s <(tail -c 32 d.npy) <(tail -c 32 t.npy) || fail "E2M1 tiles should decode [2, 4] exactly"

# ---- Blocks down axis 0: MXINT8, blocks of 2 over the same [2, 4] ----
# Columns {1,3} {2,6} {.5,.75} {-.25,.125}: exponents 1, 2, -1, -2 -> 80 81 7e 7d. Codes sit at
# the elements' positions; packed bytes go block (column) after block.
cast t.npy -o s.npy --format mxint8 --block 2 --axis 0 --emit scales
expect_npy s.npy '|u1' '(1, 4)' "80 81 7e 7d"
cast t.npy -o c.npy --format mxint8 --block 2 --axis 0 --emit codes
expect_npy c.npy '|u1' '(2, 4)' "20 20 40 c0 60 60 60 20"
cast t.npy -o p.npy --format mxint8 --block 2 --axis 0 --emit packed
expect_npy p.npy '|u1' '(8,)' "20 60 20 60 40 60 c0 20"
cast t.npy -o p2.npy --format mxint8 --block 2 --axis -2 --emit packed
cmp -s p.npy p2.npy || fail "--axis -2 should mean axis 0 of a 2-D array"

# ---- 0-d and empty arrays ----
make_npy zero_d.npy '<f4' '()' "$(le32 40400000)"  # 3.0: exponent 1, p = 3/2*64 = 96
cast zero_d.npy -o d.npy --format mxint8
expect_npy d.npy '<f4' '()' "$(le32 40400000)"
cast zero_d.npy -o c.npy --format mxint8 --emit codes
expect_npy c.npy '|u1' '()' "60"
cast zero_d.npy -o s.npy --format mxint8 --emit scales
expect_npy s.npy '|u1' '(1,)' "80"
make_npy empty.npy '<f4' '(0, 32)' ""
cast empty.npy -o d.npy
expect_npy d.npy '<f4' '(0, 32)' ""
cast empty.npy -o s.npy --emit scales
expect_npy s.npy '|u1' '(0, 1)' ""
cast empty.npy -o p.npy --emit packed
expect_npy p.npy '|u1' '(0,)' ""

# ---- Reproducibility: stochastic rounding depends on the seed only, not on threads ----
cast a.npy -o sr1.npy --round stochastic --seed 7 --threads 1
cast a.npy -o sr2.npy --round stochastic --seed 7 --threads 2
cmp -s sr1.npy sr2.npy || fail "stochastic rounding with one seed should not depend on threads"

# ---- The summary line, --quiet, and replacing an existing output ----
out=$("$mx" cast a.npy -o d.npy --format mxint8 --flush-subnormals 2>err.txt)
[ ! -s err.txt ] || fail "a successful cast wrote to stderr: $(cat err.txt)"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "summary should be one line: $out"
for part in "mxint8 block=32 axis=-1 scale=floor round=nearest-even flush-subnormals" \
  "float32 [2, 32]" "2 blocks" "8.25 bits/element" "dequant float32 [2, 32]" "d.npy"; do
  [[ "$out" == *"$part"* ]] || fail "summary '$out' lacks '$part'"
done
printf 'old' >q.npy
out=$("$mx" cast a.npy -o q.npy --quiet 2>&1)
[ -z "$out" ] || fail "--quiet printed: $out"
[ "$(head -c 6 q.npy | tail -c 5)" = "NUMPY" ] || fail "an existing output should be replaced"
leftover=$(find . -name '.*.tmp.*')
[ -z "$leftover" ] || fail "temporary files left behind: $leftover"
echo "cast: ok"
