// Block loops for the CPU fast path, written once and compiled per instruction set: the
// including file defines MX_CPU_ISA (a namespace name) and MX_CPU_KERNELS_FN. The inner loops
// are branch-free integer code over the lanes of a block, which the compiler vectorises for
// the target's registers. Every function here computes exactly what mx/core/quantize_ref.h
// defines; the tests compare bytes.
//
// How the element encoder differs from the reference: the reference divides by the scale
// exactly on integers. Here y = v * 2^-e is one float32 multiply, which is exact unless y
// lands below 2^-126; every such y is far under half the smallest element (2^-17 at most), so
// it rounds to a signed zero in every mode, exactly as the reference does, and the lane code
// treats a zero exponent field that way. Stochastic rounding sees a fraction under 2^-16 there
// and never rounds up, in both.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "mx/core/bitpack.h"
#include "mx/core/e8m0.h"
#include "mx/core/format.h"
#include "mx/core/half.h"
#include "mx/core/lane_constants.h"
#include "mx/core/rounding.h"
#include "mx/core/scale_bits.h"
#include "mx/kernels/cpu/block_codec.h"
#include "mx/kernels/cpu/dequantize_fast.h"

namespace mx::cpu::detail {
namespace MX_CPU_ISA {
namespace {

// Format constants the lane code reads, precomputed once per call.
struct LaneFormat {
  int bits;
  int man_bits;
  int emin;
  int emax;
  uint32_t max_code;  // largest magnitude code
  // RCEIL: max_normal = max_sig24 * 2^(max_floor_log2 - 23)
  uint32_t max_sig24;
  int max_floor_log2;
  float decode[256];  // value of each code (NaN/Inf codes included)
};

LaneFormat make_lane_format(const FormatTraits& f) {
  LaneFormat p{};
  fill_lane_constants(f, p);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Element encoder: one lane. `y` is the float32 v * 2^-e.
template <Rounding kMode, bool kInteger>
inline uint8_t encode_lane(const LaneFormat& p, uint32_t y, uint32_t dither) {
  const uint32_t sign = y >> 31;
  const int32_t field = int32_t((y >> 23) & 0xFFu);
  const uint32_t sig = (y & 0x7FFFFFu) | 0x800000u;
  const int32_t ey = field - 127;
  // Right shift that leaves whole quanta: the quantum is 2^emin for integers, and
  // 2^(max(ey, emin) - man_bits) for floats.
  int32_t shift = kInteger ? 23 + p.emin - ey : 23 - p.man_bits + std::max(0, p.emin - ey);
  const bool huge = shift < 1;
  shift = std::clamp(shift, 1, 63);
  const int32_t s31 = std::min(shift, 31);
  const uint32_t kept = sig >> s31;
  const uint32_t rest = sig & ((1u << s31) - 1u);
  uint32_t up = 0;
  if constexpr (kMode == Rounding::kNearestEven) {
    const uint32_t half = 1u << std::min(shift - 1, 30);
    up = (rest > half || (rest == half && (kept & 1u))) ? 1u : 0u;
  } else if constexpr (kMode == Rounding::kNearestAway) {
    const uint32_t half = 1u << std::min(shift - 1, 30);
    up = rest >= half ? 1u : 0u;
  } else if constexpr (kMode == Rounding::kStochastic) {
    // floor(rest / 2^shift * 2^16); rest < 2^24 and sig < 2^24, so both shifts stay < 32.
    const uint32_t low = rest << std::max(16 - shift, 0);
    const uint32_t high = sig >> std::clamp(shift - 16, 0, 31);
    const uint32_t fraction16 = shift <= 16 ? low : (shift <= 31 ? rest >> (shift - 16) : high);
    up = stochastic_rounds_up(fraction16, dither) ? 1u : 0u;
  }
  const uint32_t n = kept + up;
  uint32_t magnitude = 0;
  if constexpr (kInteger) {
    magnitude = std::min(n, p.max_code);
  } else {
    magnitude = (uint32_t(std::max(ey - p.emin, 0)) << p.man_bits) + n;
    magnitude = std::min(magnitude, p.max_code);
  }
  magnitude = huge ? p.max_code : magnitude;
  magnitude = field == 0 ? 0u : magnitude;
  if constexpr (kInteger) {
    const uint32_t mask = (1u << p.bits) - 1u;
    return static_cast<uint8_t>((sign ? 0u - magnitude : magnitude) & mask);
  } else {
    return static_cast<uint8_t>(magnitude | (sign << (p.bits - 1)));
  }
}

template <Rounding kMode, bool kInteger>
void encode_block(const LaneFormat& p, const float* __restrict x, int k, int scale_exp,
                  uint64_t key, const int64_t* indices, int64_t base_index,
                  uint8_t* __restrict codes) {
  const float inv_scale = e8m0_to_float(e8m0_from_exponent(-scale_exp));
  if constexpr (kMode == Rounding::kStochastic) {
    uint32_t dither[256];
    StochasticDithers draw(key);
    for (int i0 = 0; i0 < k; i0 += 256) {
      const int n = std::min(256, k - i0);
      for (int i = 0; i < n; ++i) {
        const int64_t idx = indices ? indices[i0 + i] : base_index + i0 + i;
        dither[i] = draw(uint64_t(idx));
      }
      for (int i = 0; i < n; ++i) {
        const uint32_t y = std::bit_cast<uint32_t>(x[i0 + i] * inv_scale);
        codes[i0 + i] = encode_lane<kMode, kInteger>(p, y, dither[i]);
      }
    }
  } else {
    for (int i = 0; i < k; ++i) {
      const uint32_t y = std::bit_cast<uint32_t>(x[i] * inv_scale);
      codes[i] = encode_lane<kMode, kInteger>(p, y, 0);
    }
  }
}

using EncodeFn = void (*)(const LaneFormat&, const float*, int, int, uint64_t, const int64_t*,
                          int64_t, uint8_t*);

template <bool kInteger>
EncodeFn pick_encoder_for(Rounding mode) {
  switch (mode) {
    case Rounding::kNearestEven:
      return &encode_block<Rounding::kNearestEven, kInteger>;
    case Rounding::kNearestAway:
      return &encode_block<Rounding::kNearestAway, kInteger>;
    case Rounding::kTowardZero:
      return &encode_block<Rounding::kTowardZero, kInteger>;
    case Rounding::kStochastic:
      return &encode_block<Rounding::kStochastic, kInteger>;
  }
  return nullptr;
}

EncodeFn pick_encoder(const FormatTraits& f, Rounding mode) {
  return f.is_integer ? pick_encoder_for<true>(mode) : pick_encoder_for<false>(mode);
}

// ---------------------------------------------------------------------------------------------
// Packing whole blocks whose bit length is a multiple of 8 (the usual case); others go through
// the generic bit packer.
void pack_block(const uint8_t* __restrict codes, int k, int bits, int64_t block,
                uint8_t* __restrict out) {
  const int64_t bit0 = block * int64_t{k} * bits;
  if ((int64_t{k} * bits) % 8 != 0) {
    pack_codes(std::span(codes, k), bits, block * k,
               std::span(out, size_t(packed_bytes((block + 1) * int64_t{k}, bits))));
    return;
  }
  uint8_t* dst = out + bit0 / 8;
  switch (bits) {
    case 8:
      std::memcpy(dst, codes, k);
      return;
    case 4:
      for (int j = 0; j < k / 2; ++j) dst[j] = uint8_t(codes[2 * j] | (codes[2 * j + 1] << 4));
      return;
    case 6:
      for (int j = 0; j < k / 4; ++j) {
        const uint32_t w = uint32_t(codes[4 * j]) | (uint32_t(codes[4 * j + 1]) << 6) |
                           (uint32_t(codes[4 * j + 2]) << 12) | (uint32_t(codes[4 * j + 3]) << 18);
        dst[3 * j] = uint8_t(w);
        dst[3 * j + 1] = uint8_t(w >> 8);
        dst[3 * j + 2] = uint8_t(w >> 16);
      }
      return;
    default:
      pack_codes(std::span(codes, k), bits, 0, std::span(dst, size_t(k * bits / 8)));
  }
}

void unpack_block(const uint8_t* __restrict packed, int k, int bits, int64_t block,
                  uint8_t* __restrict codes) {
  const int64_t bit0 = block * int64_t{k} * bits;
  const uint8_t* src = packed + bit0 / 8;
  if ((int64_t{k} * bits) % 8 != 0) {
    unpack_codes(std::span(packed, size_t(packed_bytes((block + 1) * int64_t{k}, bits))), bits,
                 block * k, std::span(codes, k));
    return;
  }
  switch (bits) {
    case 8:
      std::memcpy(codes, src, k);
      return;
    case 4:
      for (int j = 0; j < k / 2; ++j) {
        codes[2 * j] = src[j] & 0xF;
        codes[2 * j + 1] = src[j] >> 4;
      }
      return;
    case 6:
      for (int j = 0; j < k / 4; ++j) {
        const uint32_t w = uint32_t(src[3 * j]) | (uint32_t(src[3 * j + 1]) << 8) |
                           (uint32_t(src[3 * j + 2]) << 16);
        codes[4 * j] = w & 63;
        codes[4 * j + 1] = (w >> 6) & 63;
        codes[4 * j + 2] = (w >> 12) & 63;
        codes[4 * j + 3] = (w >> 18) & 63;
      }
      return;
    default:
      unpack_codes(std::span(src, size_t(k * bits / 8)), bits, 0, std::span(codes, k));
  }
}

// ---------------------------------------------------------------------------------------------
// Loading a block's values as float32.

inline float fp16_bits_to_float(uint16_t h) {
  // Exponent rebias by a multiply: exact, and it normalises binary16 subnormals.
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t em = uint32_t(h & 0x7FFFu) << 13;
  const float scaled = std::bit_cast<float>(em) * 0x1p112f;
  const uint32_t special = 0x7F800000u | em;  // Inf/NaN: all-ones exponent, payload kept
  const uint32_t mag = (h & 0x7C00u) == 0x7C00u ? special : std::bit_cast<uint32_t>(scaled);
  return std::bit_cast<float>(sign | mag);
}

void load_run(const void* input, DType dtype, int64_t first, int n, float* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, static_cast<const float*>(input) + first, n * 4);
      return;
    case DType::kBF16: {
      const uint16_t* src = static_cast<const uint16_t*>(input) + first;
      for (int i = 0; i < n; ++i) out[i] = std::bit_cast<float>(uint32_t(src[i]) << 16);
      return;
    }
    case DType::kF16: {
      const uint16_t* src = static_cast<const uint16_t*>(input) + first;
      for (int i = 0; i < n; ++i) out[i] = fp16_bits_to_float(src[i]);
      return;
    }
  }
}

float load_one(const void* input, DType dtype, int64_t i) {
  float v;
  load_run(input, dtype, i, 1, &v);
  return v;
}

// Writes n decoded values at flat positions [first, first + n) or at `indices`.
void store_value(void* out, DType dtype, int64_t i, float v) {
  if (dtype == DType::kF32) {
    static_cast<float*>(out)[i] = v;
  } else {
    static_cast<uint16_t*>(out)[i] = float_to_bf16(v);
  }
}

// ---------------------------------------------------------------------------------------------

struct BlockScratch {
  std::vector<float> values;
  std::vector<int64_t> indices;
  std::vector<uint8_t> real;
  std::vector<uint8_t> codes;
  explicit BlockScratch(int k) : values(k), indices(k), real(k), codes(k) {}
};

// Where the blocks of a grid whose blocks are contiguous runs of the input lie: block b is
// number b % blocks_per_run of run b / blocks_per_run, and runs are run_len apart.
struct RunCursor {
  int64_t run_len, blocks_per_run, run, j;
  RunCursor(const BlockGrid& g, int64_t block) {
    const bool row_tiles = g.tile_rows == 1;
    run_len = row_tiles ? g.cols : g.rows;
    blocks_per_run = row_tiles ? g.tiles_across : g.tiles_down;
    run = block / blocks_per_run;
    j = block % blocks_per_run;
  }
  int64_t first(int k) const { return run * run_len + j * k; }
  int real_slots(int k) const { return int(std::min<int64_t>(k, run_len - j * k)); }
  void next() {
    if (++j == blocks_per_run) {
      j = 0;
      ++run;
    }
  }
};

// Largest |v| as float32 bits over n values: the integer order of |v|'s bits is the float
// order, and anything >= 0x7F800000 is Inf or NaN.
uint32_t amax_bits_of(const float* __restrict v, int n) {
  uint32_t amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::bit_cast<uint32_t>(v[i]) & 0x7FFFFFFFu);
  return amax;
}

void flush_subnormals_in_place(float* __restrict v, int n) {
  for (int i = 0; i < n; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(v[i]);
    v[i] = (bits & 0x7FFFFFFFu) < 0x800000u ? std::bit_cast<float>(bits & 0x80000000u) : v[i];
  }
}

// The per-block steps after the values are in hand (and padding is zero): offset, scale,
// codes. `real` is null when the real slots are the prefix [0, n_real).
struct BlockCodes {
  uint8_t scale;
  uint16_t offset;
};

BlockCodes quantize_values(const QuantizeJob& job, const LaneFormat& p, EncodeFn encode,
                           uint64_t key, float* v, int k, int n_real, const uint8_t* real,
                           const int64_t* indices, int64_t base, uint8_t* codes) {
  auto is_real = [&](int i) { return real ? real[i] != 0 : i < n_real; };
  uint32_t amax_bits = amax_bits_of(v, k);
  bool nan_block = amax_bits >= 0x7F800000u;
  uint16_t offset = 0;
  if (job.spec.asymmetric) {
    if (nan_block) {
      offset = float_to_bf16(NAN);
    } else {
      float lo = INFINITY, hi = -INFINITY;
      for (int i = 0; i < k; ++i) {
        if (!is_real(i)) continue;
        lo = std::min(lo, v[i]);
        hi = std::max(hi, v[i]);
      }
      if (lo > hi) lo = hi = 0;
      offset = float_to_bf16(hi * 0.5f + lo * 0.5f);
      const float m = bf16_to_float(offset);
      for (int i = 0; i < k; ++i) v[i] = is_real(i) ? v[i] - m : v[i];
      amax_bits = amax_bits_of(v, k);
    }
  }
  uint8_t scale = kE8m0Nan;
  if (!nan_block) {
    if (amax_bits == 0) {
      scale = job.spec.zero_block_scale;
    } else {
      const int e = shared_exponent_from_bits(p, amax_bits, job.spec.scale_rule);
      nan_block = e > kMaxScaleExponent;
      scale = nan_block ? kE8m0Nan : e8m0_from_exponent(std::max(e, kMinScaleExponent));
    }
  }
  if (nan_block) {
    std::fill(codes, codes + k, uint8_t{0});
    return {kE8m0Nan, offset};
  }
  encode(p, v, k, e8m0_exponent(scale), key, indices, base, codes);
  if (real) {
    for (int i = 0; i < k; ++i) codes[i] = real[i] ? codes[i] : 0;
  }
  return {scale, offset};
}

// The value each code of one block decodes to: what fake-quantize writes.
struct BlockDecoder {
  float x, m;
  bool nan_block, asymmetric;
  BlockDecoder(const QuantizeJob& job, BlockCodes r)
      : x(e8m0_to_float(r.scale)),
        m(bf16_to_float(r.offset)),
        nan_block(r.scale == kE8m0Nan),
        asymmetric(job.spec.asymmetric) {}
  float operator()(const LaneFormat& p, uint8_t code) const {
    const float d = nan_block ? NAN : p.decode[code] * x;
    return asymmetric ? d + m : d;
  }
};

// Stores a quantized block: its scale, offset and packed codes.
void store_block(const QuantizeJob& job, const LaneFormat& p, int64_t b, int k, BlockCodes r,
                 const uint8_t* codes) {
  job.scales[b] = r.scale;
  if (job.spec.asymmetric) job.offsets[b] = r.offset;
  pack_block(codes, k, p.bits, b, job.elements);
}

void emit_block(const QuantizeJob& job, const LaneFormat& p, int64_t b, int k, BlockCodes r,
                const uint8_t* codes, const uint8_t* real, int n_real, const int64_t* indices,
                int64_t base) {
  if (job.fake_out == nullptr) return store_block(job, p, b, k, r, codes);
  const BlockDecoder decode(job, r);
  for (int i = 0; i < k; ++i) {
    if (real ? !real[i] : i >= n_real) continue;
    store_value(job.fake_out, job.fake_dtype, real ? indices[i] : base + i, decode(p, codes[i]));
  }
}

// Blocks that are contiguous runs of the input (blocks along the last axis, 1xC tiles).
void quantize_contiguous(const QuantizeJob& job, const LaneFormat& p, EncodeFn encode, uint64_t key,
                         int64_t first_block, int64_t end_block) {
  const int k = job.grid.block_elems();
  BlockScratch s(k);
  RunCursor cursor(job.grid, first_block);
  // float32 input is read in place when nothing needs to change it.
  const bool in_place =
      job.dtype == DType::kF32 && !job.spec.flush_subnormals && !job.spec.asymmetric;
  for (int64_t b = first_block; b < end_block; ++b, cursor.next()) {
    const int64_t first = cursor.first(k);
    const int n = cursor.real_slots(k);
    float* v = s.values.data();
    if (in_place && n == k) {
      v = const_cast<float*>(static_cast<const float*>(job.input) + first);
    } else {
      load_run(job.input, job.dtype, first, n, v);
      std::fill(v + n, v + k, 0.0f);
      if (job.spec.flush_subnormals) flush_subnormals_in_place(v, k);
    }
    // In place, quantize_values only reads v: it writes v only for asymmetric specs.
    const BlockCodes r =
        quantize_values(job, p, encode, key, v, k, n, nullptr, nullptr, first, s.codes.data());
    emit_block(job, p, b, k, r, s.codes.data(), nullptr, n, nullptr, first);
  }
}

// Any other organisation: gather the block's slots through the grid's index map.
void quantize_gathered(const QuantizeJob& job, const LaneFormat& p, EncodeFn encode, uint64_t key,
                       int64_t first_block, int64_t end_block) {
  const BlockGrid& g = job.grid;
  const int k = g.block_elems();
  BlockScratch s(k);
  const float* f32 = job.dtype == DType::kF32 ? static_cast<const float*>(job.input) : nullptr;
  for (int64_t b = first_block; b < end_block; ++b) {
    g.block_indices(b, s.indices.data());
    for (int slot = 0; slot < k; ++slot) {
      const int64_t idx = s.indices[slot];
      s.real[slot] = idx >= 0;
      s.indices[slot] = idx < 0 ? 0 : idx;
      s.values[slot] = idx < 0 ? 0.0f : f32 ? f32[idx] : load_one(job.input, job.dtype, idx);
    }
    if (job.spec.flush_subnormals) flush_subnormals_in_place(s.values.data(), k);
    const BlockCodes r = quantize_values(job, p, encode, key, s.values.data(), k, 0, s.real.data(),
                                         s.indices.data(), 0, s.codes.data());
    emit_block(job, p, b, k, r, s.codes.data(), s.real.data(), 0, s.indices.data(), 0);
  }
}

// 1-D blocks along an axis other than the last: block (o, t, c) holds column c of rows
// [t k, t k + k) of the view [outer, rows, cols]. Up to kColumnChunk neighbouring blocks are read
// row by row (contiguous loads of a strip of k rows) into one contiguous run each, encoded as
// quantize_contiguous encodes a run, and fake-quantized values go back row by row. A block's
// padding (rows past the end) is the end of its run, as in a row's last block. Same blocks,
// slots and flat indices as quantize_gathered, without an index per slot.
constexpr int kColumnChunk = 16;

void quantize_columns(const QuantizeJob& job, const LaneFormat& p, EncodeFn encode, uint64_t key,
                      int64_t first_block, int64_t end_block) {
  const BlockGrid& g = job.grid;
  const int k = g.tile_rows;
  const int64_t per_outer = g.tiles_down * g.cols;
  std::vector<float> runs(size_t(k) * kColumnChunk);  // block w of a chunk: runs[w k, w k + k)
  std::vector<int64_t> indices(k);
  std::vector<uint8_t> codes(size_t(k) * kColumnChunk);
  float row[kColumnChunk];
  const bool stochastic = job.spec.rounding == Rounding::kStochastic;  // the only use of indices
  float* const fake_f32 =
      job.fake_dtype == DType::kF32 ? static_cast<float*>(job.fake_out) : nullptr;
  for (int64_t b = first_block; b < end_block;) {
    const int64_t o = b / per_outer, t = b % per_outer / g.cols, c = b % g.cols;
    const int width = int(std::min<int64_t>({kColumnChunk, g.cols - c, end_block - b}));
    const int n_real = int(std::min<int64_t>(k, g.rows - t * k));
    const int64_t first = (o * g.rows + t * k) * g.cols + c;  // slot 0 of block b
    std::fill(runs.begin(), runs.end(), 0.0f);
    for (int r = 0; r < n_real; ++r) {
      load_run(job.input, job.dtype, first + r * g.cols, width, row);
      for (int w = 0; w < width; ++w) runs[size_t(w) * k + r] = row[w];
    }
    if (job.spec.flush_subnormals) flush_subnormals_in_place(runs.data(), width * k);
    BlockCodes chunk[kColumnChunk];
    for (int w = 0; w < width; ++w) {
      if (stochastic) {
        for (int r = 0; r < n_real; ++r) indices[r] = first + w + r * g.cols;
      }
      uint8_t* block_codes = codes.data() + size_t(w) * k;
      chunk[w] = quantize_values(job, p, encode, key, runs.data() + size_t(w) * k, k, n_real,
                                 nullptr, indices.data(), 0, block_codes);
      if (job.fake_out == nullptr) store_block(job, p, b + w, k, chunk[w], block_codes);
    }
    if (job.fake_out != nullptr) {
      for (int w = 0; w < width; ++w) {
        const BlockDecoder decode(job, chunk[w]);
        for (int r = 0; r < n_real; ++r) {
          runs[size_t(w) * k + r] = decode(p, codes[size_t(w) * k + r]);
        }
      }
      for (int r = 0; r < n_real; ++r) {
        const int64_t at = first + r * g.cols;
        for (int w = 0; w < width; ++w) {
          if (fake_f32 != nullptr) {
            fake_f32[at + w] = runs[size_t(w) * k + r];
          } else {
            store_value(job.fake_out, job.fake_dtype, at + w, runs[size_t(w) * k + r]);
          }
        }
      }
    }
    b += width;
  }
}

void quantize_blocks(const QuantizeJob& job, int64_t first_block, int64_t end_block) {
  const FormatTraits& f = traits(job.spec.format);
  const LaneFormat p = make_lane_format(f);
  const EncodeFn encode = pick_encoder(f, job.spec.rounding);
  const uint64_t key = stochastic_stream_key(job.spec.seed);
  if (job.grid.blocks_are_contiguous_runs()) {
    quantize_contiguous(job, p, encode, key, first_block, end_block);
  } else if (job.grid.tile_cols == 1) {
    quantize_columns(job, p, encode, key, first_block, end_block);
  } else {
    quantize_gathered(job, p, encode, key, first_block, end_block);
  }
}

void decode_block(const LaneFormat& p, const uint8_t* __restrict codes, int k, uint8_t scale,
                  bool asymmetric, uint16_t offset, float* __restrict values) {
  const float x = e8m0_to_float(scale);
  if (scale == kE8m0Nan) {
    std::fill(values, values + k, NAN);
  } else if (asymmetric) {
    const float m = bf16_to_float(offset);
    for (int i = 0; i < k; ++i) values[i] = p.decode[codes[i]] * x + m;
  } else {
    for (int i = 0; i < k; ++i) values[i] = p.decode[codes[i]] * x;
  }
}

void dequantize_blocks(const DequantizeJob& job, int64_t first_block, int64_t end_block) {
  const FormatTraits& f = traits(job.spec.format);
  const LaneFormat p = make_lane_format(f);
  const BlockGrid& g = job.grid;
  const int k = g.block_elems();
  const bool asym = job.spec.asymmetric;
  std::vector<uint8_t> codes(k);
  std::vector<float> values(k);
  if (g.blocks_are_contiguous_runs()) {
    // Block b covers out[first, first + n), n < k when the row ends inside it.
    auto one_block = [&](int64_t b, int64_t first, int n) {
      unpack_block(job.elements, k, p.bits, b, codes.data());
      if (job.out_dtype == DType::kF32 && n == k) {
        decode_block(p, codes.data(), k, job.scales[b], asym, asym ? job.offsets[b] : 0,
                     static_cast<float*>(job.out) + first);
        return;
      }
      decode_block(p, codes.data(), k, job.scales[b], asym, asym ? job.offsets[b] : 0,
                   values.data());
      if (job.out_dtype == DType::kF32) {
        std::memcpy(static_cast<float*>(job.out) + first, values.data(), size_t(n) * 4);
      } else {
        uint16_t* __restrict dst = static_cast<uint16_t*>(job.out) + first;
        for (int i = 0; i < n; ++i) dst[i] = float_to_bf16(values[i]);
      }
    };
    auto cut_block = [&](int64_t b) {
      const RunCursor cursor(g, b);
      one_block(b, cursor.first(k), cursor.real_slots(k));
    };
    if (k % 32 == 0 && dequantize_runs_fast(job, first_block, end_block, cut_block)) return;
    RunCursor cursor(g, first_block);
    for (int64_t b = first_block; b < end_block; ++b, cursor.next()) {
      one_block(b, cursor.first(k), cursor.real_slots(k));
    }
    return;
  }
  for (int64_t b = first_block; b < end_block; ++b) {
    unpack_block(job.elements, k, p.bits, b, codes.data());
    decode_block(p, codes.data(), k, job.scales[b], asym, asym ? job.offsets[b] : 0, values.data());
    for (int slot = 0; slot < k; ++slot) {
      const int64_t idx = g.flat_index(b, slot);
      if (idx >= 0) store_value(job.out, job.out_dtype, idx, values[slot]);
    }
  }
}

}  // namespace
}  // namespace MX_CPU_ISA

BlockKernels MX_CPU_KERNELS_FN() {
  return {&MX_CPU_ISA::quantize_blocks, &MX_CPU_ISA::dequantize_blocks};
}

}  // namespace mx::cpu::detail
