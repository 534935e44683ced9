// Dequantizing whole blocks that are contiguous runs of the output and hold a multiple of 32
// codes (blocks along the last axis, the usual case), thirty-two codes at a time: unpack the
// packed bytes, decode them in registers (element_decoders.h), multiply by the scale and store.
// Computes exactly decode_block in block_codec_impl.h: the float32 product element * X (plus
// the offset for asymmetric blocks), rounded to bfloat16 once for a bfloat16 output.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "mx/core/e8m0.h"
#include "mx/core/half.h"
#include "mx/kernels/cpu/block_codec.h"
#include "mx/kernels/cpu/element_decoders.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

// Output tensors of more bytes than this are streamed (StreamingStores, lanes_*.h): far more
// than a core's L2 cache holds, so little of the output could still be cached for its reader.
constexpr int64_t kStreamingFromBytes = int64_t{16} << 20;

struct Float32Out {
  float* p;
  template <class Stores>
  void put(Stores& stores, int64_t i, const Pairs& v, uint8_t) const {
    stores.put(p + i, f32_first_half(v.even, v.odd));
    stores.put(p + i + 16, f32_second_half(v.even, v.odd));
  }
  template <class Stores>
  void put_nan(Stores& stores, int64_t i, int k) const {
    const Pairs nan{splat(NAN), splat(NAN)};
    for (int g = 0; g < k; g += 32) put(stores, i + g, nan, kE8m0Nan);
  }
};

// Every element value is an integer of at most 8 significant bits times 2^q (q: the format's
// smallest quantum), so under a scale 2^e with q + e >= -133 (bfloat16's smallest subnormal) the
// exact float32 product is already a bfloat16 value, and rounding it is taking its top half;
// overflow is Inf either way. Offsets (asymmetric blocks) add a rounding, so never there.
struct Bfloat16Out {
  uint16_t* p;
  int truncation_exact_from;  // scale bytes from here up (a byte above 255: none)
  Bfloat16Out(uint16_t* out, const FormatTraits& f, bool asymmetric) : p(out) {
    const int q = f.is_integer ? f.emin : f.emin - f.man_bits;
    truncation_exact_from = asymmetric ? 256 : std::max(0, kE8m0Bias - 133 - q);
  }
  template <class Stores>
  void put(Stores& stores, int64_t i, const Pairs& v, uint8_t scale) const {
    stores.put(p + i, scale >= truncation_exact_from ? bf16_pairs_truncated(v.even, v.odd)
                                                     : bf16_pairs(v.even, v.odd));
  }
  template <class Stores>
  void put_nan(Stores& stores, int64_t i, int k) const {
    const Pairs nan{splat(NAN), splat(NAN)};  // rounds to float_to_bf16(NAN)
    for (int g = 0; g < k; g += 32) put(stores, i + g, nan, 0);
  }
};

// One block of k codes (k a multiple of 32) to out[first, first + k).
template <int kBits, class Decoder, class Out, class Stores>
inline void dequantize_whole_block(const Decoder& decoder, const uint8_t* packed, int k,
                                   uint8_t scale, const uint16_t* offset, const Out& out,
                                   Stores& stores, int64_t first) {
  if (scale == kE8m0Nan) {
    out.put_nan(stores, first, k);
    return;
  }
  // Decoders that hold bfloat16 element values can scale them without float32 (AVX-512 FP6/FP8).
  if constexpr (std::is_same_v<Out, Bfloat16Out> &&
                requires(Bytes64 b) { decoder.template scaled_bf16<kBits>(packed, 0, &b); }) {
    Bytes64 words;
    const int e = e8m0_exponent(scale);
    if (!offset && decoder.template scaled_bf16<kBits>(packed, e, &words)) {
      stores.put(out.p + first, words);
      for (int g = 32; g < k; g += 32) {
        decoder.template scaled_bf16<kBits>(packed + g * kBits / 8, e, &words);
        stores.put(out.p + first + g, words);
      }
      return;
    }
  }
  const F32x16 x = splat(e8m0_to_float(scale));
  const F32x16 m = splat(offset ? bf16_to_float(*offset) : 0.0f);
  for (int g = 0; g < k; g += 32) {
    Pairs v = decoder.template decode<kBits>(packed + g * kBits / 8, x);
    if (offset) {
      v.even = v.even + m;
      v.odd = v.odd + m;
    }
    out.put(stores, first + g, v, scale);
  }
}

// Where blocks lie in the output: block b is number b % blocks_per_run of run
// b / blocks_per_run, and runs are run_len apart.
struct RunLayout {
  int k;
  int64_t run_len, blocks_per_run;
};

// Everything the loop reads is passed by value: the stores go through vector types that may
// alias anything, and a value reached through a reference would be reloaded after every store.
template <int kBits, class Stores, class Decoder, class Out, class PartialBlock>
void dequantize_blocks_of_runs(const Decoder decoder, const RunLayout layout,
                               const uint8_t* elements, const uint8_t* scales,
                               const uint16_t* offsets, int64_t first_block, int64_t end_block,
                               const Out out, PartialBlock& partial_block) {
  Stores stores;
  const int k = layout.k;
  int64_t first = (first_block / layout.blocks_per_run) * layout.run_len;
  int64_t j = first_block % layout.blocks_per_run;
  first += j * k;
  for (int64_t b = first_block; b < end_block; ++b) {
    if ((j + 1) * k <= layout.run_len) {
      dequantize_whole_block<kBits>(decoder, elements + b * k * kBits / 8, k, scales[b],
                                    offsets ? offsets + b : nullptr, out, stores, first);
    } else {
      partial_block(b);
    }
    first += k;
    if (++j == layout.blocks_per_run) {
      j = 0;
      first += layout.run_len - layout.blocks_per_run * k;  // the next run's first slot
    }
  }
}

// Blocks [first_block, end_block) of a grid whose blocks are contiguous runs and hold a multiple
// of 32 codes. A block cut short by the end of its row is left to `partial_block(b)`. False when
// the format has no vector decoder.
template <class PartialBlock>
bool dequantize_runs_fast(const DequantizeJob& job, int64_t first_block, int64_t end_block,
                          PartialBlock&& partial_block) {
  const BlockGrid& g = job.grid;
  const bool row_tiles = g.tile_rows == 1;
  const RunLayout layout{g.block_elems(), row_tiles ? g.cols : g.rows,
                         row_tiles ? g.tiles_across : g.tiles_down};
  const uint16_t* offsets = job.spec.asymmetric ? job.offsets : nullptr;
  const int64_t output_bytes = g.outer * g.rows * g.cols * dtype_size(job.out_dtype);
  const bool streaming = output_bytes > kStreamingFromBytes;
  return with_decoder(traits(job.spec.format), [&](auto bits, const auto& decoder) {
    constexpr int kBits = decltype(bits)::value;
    auto run = [&]<class Stores>(const auto& out) {
      dequantize_blocks_of_runs<kBits, Stores>(decoder, layout, job.elements, job.scales, offsets,
                                               first_block, end_block, out, partial_block);
    };
    auto run_with_stores = [&](const auto& out) {
      if (streaming) {
        run.template operator()<StreamingStores>(out);
      } else {
        run.template operator()<PlainStores>(out);
      }
    };
    if (job.out_dtype == DType::kF32) {
      run_with_stores(Float32Out{static_cast<float*>(job.out)});
    } else {
      run_with_stores(Bfloat16Out(static_cast<uint16_t*>(job.out), traits(job.spec.format),
                                  job.spec.asymmetric));
    }
  });
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
