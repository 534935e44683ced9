// The casts that training applies to its bfloat16 operands, against the CPU: fake-quantize down
// columns and along rows at any offset, of rows zero-padded as the classifier's gradient is, and
// both casts of one matrix from one read (fake_quantize_dual_cuda).
#include "tests/cuda/cuda_quantize_checks.h"

namespace mx {
namespace {

// Blocks of 32 down an axis other than the last (the backward products' operand casts) take a
// kernel of their own for fake-quantize: every dtype, format, rule and rounding, asymmetric and
// flushed, with whole and partial blocks.
TEST(CudaQuantize, FakeQuantizedColumnBlocksMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::vector<int64_t>> shapes = {{64, 48}, {3, 70, 33}};
  for (const auto& shape : shapes) {
    const auto values = testing::stress_values(size_t(element_count(shape)), 41, true);
    for_every_dtype_format_rule_rounding(values, 77,
                                         [&](const auto& input, DType dtype, QuantSpec spec) {
                                           spec.axis = int(shape.size()) - 2;
                                           check_all(input, dtype, shape, spec);
                                           spec.asymmetric = true;
                                           check_all(input, dtype, shape, spec);
                                           spec.asymmetric = false;
                                           spec.flush_subnormals = true;
                                           check_all(input, dtype, shape, spec);
                                         });
    if (HasFatalFailure()) return;
  }
}

// Wide 16-bit tensors span several 256-column tiles of the shared-memory kernel: rows on 16-byte
// boundaries in whole tiles (2048 columns) and with a last tile of 8 columns and a last row tile
// of 6 rows, and rows off them (an odd width).
TEST(CudaQuantize, FakeQuantizedWideColumnBlocksMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{40, 2048}, std::vector<int64_t>{70, 264},
        std::vector<int64_t>{45, 1001}}) {
    const auto values = testing::stress_values(size_t(shape[0] * shape[1]), 43, true);
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      const auto input = to_dtype(values, dtype);
      for (ElementFormat format :
           {ElementFormat::kE3M2, ElementFormat::kE2M1, ElementFormat::kInt8}) {
        for (Rounding mode : kModes) {
          QuantSpec spec;
          spec.format = format;
          spec.rounding = mode;
          spec.seed = 17;
          spec.axis = 0;
          check_all(input, dtype, shape, spec);
          spec.asymmetric = true;
          check_all(input, dtype, shape, spec);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(CudaQuantize, FakeQuantizedUnalignedRowsAcrossThreadBlocksMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{5, 4133}, std::vector<int64_t>{2, 3, 1001}}) {
    const auto values = testing::stress_values(size_t(element_count(shape)), 47, true);
    for (DType dtype : {DType::kBF16, DType::kF16}) {
      const auto input = to_dtype(values, dtype);
      for (ElementFormat format : {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M1,
                                   ElementFormat::kInt8}) {
        for (Rounding mode : kModes) {
          QuantSpec spec;
          spec.format = format;
          spec.rounding = mode;
          spec.seed = 23;
          check_all(input, dtype, shape, spec);
          spec.asymmetric = true;
          check_all(input, dtype, shape, spec);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Rows of whole vectors whose tensor starts 2 bytes past a 16-byte boundary (a view into a
// larger buffer) are unaligned too; the values around the view stay untouched.
TEST(CudaQuantize, FakeQuantizedRowsOfAnOffsetViewMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {40, 256};
  const size_t n = 40 * 256;
  const auto input = to_dtype(testing::stress_values(n, 53, true), DType::kBF16);
  QuantSpec spec;
  spec.format = ElementFormat::kE3M2;
  spec.rounding = Rounding::kStochastic;
  spec.seed = 31;
  std::vector<uint8_t> want(2 * n);
  ASSERT_EQ("",
            cpu::fake_quantize(input.data(), DType::kBF16, shape, spec, DType::kBF16, want.data()));
  DevBuf d_in(2 * n + 4), d_out(2 * n + 4);
  CUDA_OK(cudaMemcpy(d_in.as<uint8_t>() + 2, input.data(), 2 * n, cudaMemcpyHostToDevice));
  ASSERT_EQ("", cuda::fake_quantize_cuda(d_in.as<uint8_t>() + 2, DType::kBF16, shape, spec,
                                         DType::kBF16, d_out.as<uint8_t>() + 2, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> got = download<uint8_t>(d_out.p, 2 * n + 4);
  EXPECT_EQ("", first_diffs(want, std::vector<uint8_t>(got.begin() + 2, got.end() - 2)));
  for (size_t i : {size_t{0}, size_t{1}, 2 * n + 2, 2 * n + 3}) EXPECT_EQ(got[i], 0xA5) << i;
}

// Finite rows padded with zero columns (the training backend keeps an odd-width classifier
// gradient so, for the products that read it) cast along either axis give the rows' own casts in
// their first columns and zeros in the padding, under every rounding but stochastic (whose draws
// follow each value's index): blocks start at column 0 and zeros change no block's scale.
TEST(CudaQuantize, ZeroPaddedRowsCastAsTheRowsThemselves) {
  SKIP_WITHOUT_GPU();
  for (const int64_t width : {int64_t{261}, int64_t{262}, int64_t{50257}}) {
    const int64_t rows = width > 1000 ? 3 : 70, padded = (width + 7) / 8 * 8;
    const std::vector<int64_t> dense_shape{rows, width}, padded_shape{rows, padded};
    const auto values = testing::stress_values(size_t(rows * width), 59);
    const auto input = to_dtype(zero_padded(values, rows, width, padded), DType::kBF16);
    const auto dense_input = to_dtype(values, DType::kBF16);
    DevBuf d_in(input.size()), d_out(input.size());
    CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size(), cudaMemcpyHostToDevice));
    for (ElementFormat format :
         {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M3, ElementFormat::kE2M1}) {
      for (Rounding mode : kModes) {
        if (mode == Rounding::kStochastic) continue;
        for (const int axis : {0, 1}) {
          QuantSpec spec;
          spec.format = format;
          spec.rounding = mode;
          spec.axis = axis;
          SCOPED_TRACE(name_of(spec, DType::kBF16, padded_shape));
          std::vector<uint16_t> want(size_t(rows * width));
          ASSERT_EQ("", cpu::fake_quantize(dense_input.data(), DType::kBF16, dense_shape, spec,
                                           DType::kBF16, want.data()));
          ASSERT_EQ("", cuda::fake_quantize_cuda(d_in.p, DType::kBF16, padded_shape, spec,
                                                 DType::kBF16, d_out.p, nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          const auto got = download<uint16_t>(d_out.p, size_t(rows * padded));
          std::vector<uint16_t> got_dense(size_t(rows * width));
          int64_t nonzero_padding = 0;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < padded; ++c) {
              const uint16_t v = got[size_t(r * padded + c)];
              if (c < width) {
                got_dense[size_t(r * width + c)] = v;
              } else {
                nonzero_padding += v != 0;
              }
            }
          }
          EXPECT_EQ("", first_diffs(want, got_dense));
          EXPECT_EQ(nonzero_padding, 0);
          if (HasFailure()) return;
        }
      }
    }
  }
}

// The two casts of an operand that feeds two products, from one read: each equals the CPU's
// fake-quantize along its axis, for every format, scale rule and rounding (stochastic keyed
// apart on the two sides, as training keys them), with and without offsets, the column side in
// a second format of the same kind. The shapes end row tiles and 256-column tiles short, with
// rows on and off 16-byte boundaries; the values hold NaN, Inf and subnormal blocks.
TEST(CudaQuantize, DualFakeQuantizeEqualsBothCastsOfTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::vector<int64_t>> shapes = {{64, 512}, {70, 300}, {33, 261}, {5, 2056}};
  for (const auto& shape : shapes) {
    const int64_t n = element_count(shape);
    const auto input = to_dtype(testing::stress_values(size_t(n), 61, true), DType::kBF16);
    DevBuf d_in(input.size()), d_rows(input.size()), d_cols(input.size());
    CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size(), cudaMemcpyHostToDevice));
    for (const FormatTraits& f : all_formats()) {
      for (ScaleRule rule : kRules) {
        for (Rounding mode : kModes) {
          for (const bool asym : {false, true}) {
            QuantSpec along;
            along.format = f.format;
            along.scale_rule = rule;
            along.rounding = mode;
            along.asymmetric = asym;
            along.seed = 5;
            QuantSpec down = along;
            down.axis = 0;
            down.seed = 9;
            down.format = f.is_integer ? ElementFormat::kInt8 : ElementFormat::kE2M1;
            SCOPED_TRACE(name_of(along, DType::kBF16, shape) + " / " + describe(down));
            bool once = false;
            ASSERT_EQ("",
                      cuda::fake_quantize_dual_reads_once(DType::kBF16, shape, along, down, &once));
            EXPECT_TRUE(once);
            std::vector<uint16_t> want_rows(static_cast<size_t>(n)), want_cols(want_rows);
            ASSERT_EQ("", cpu::fake_quantize(input.data(), DType::kBF16, shape, along, DType::kBF16,
                                             want_rows.data()));
            ASSERT_EQ("", cpu::fake_quantize(input.data(), DType::kBF16, shape, down, DType::kBF16,
                                             want_cols.data()));
            CUDA_OK(cudaMemset(d_rows.p, 0x5A, input.size()));
            CUDA_OK(cudaMemset(d_cols.p, 0x5A, input.size()));
            ASSERT_EQ("", cuda::fake_quantize_dual_cuda(d_in.p, DType::kBF16, shape, along, down,
                                                        d_rows.p, d_cols.p, nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            EXPECT_EQ("", first_diffs(want_rows, download<uint16_t>(d_rows.p, size_t(n))))
                << "along the rows";
            EXPECT_EQ("", first_diffs(want_cols, download<uint16_t>(d_cols.p, size_t(n))))
                << "down the columns";
            if (HasFailure()) return;
          }
        }
      }
    }
  }
}

// Rows padded with zeros to a multiple of 8 columns (the classifier's gradient) are cast in one
// read as the unpadded matrix would be, stochastic rounding included (its draws follow the
// unpadded indices): the first `width` columns of both outputs equal the CPU's casts of the
// unpadded rows, and the padding stays zero.
TEST(CudaQuantize, DualFakeQuantizeOfZeroPaddedRowsCastsTheUnpaddedRows) {
  SKIP_WITHOUT_GPU();
  for (const int64_t width : {int64_t{261}, int64_t{50257}}) {
    const int64_t rows = width > 1000 ? 35 : 70, padded = (width + 7) / 8 * 8;
    const std::vector<int64_t> dense_shape{rows, width}, padded_shape{rows, padded};
    const auto values = testing::stress_values(size_t(rows * width), 63);
    const auto input = to_dtype(zero_padded(values, rows, width, padded), DType::kBF16);
    const auto dense_input = to_dtype(values, DType::kBF16);
    DevBuf d_in(input.size()), d_rows(input.size()), d_cols(input.size());
    CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size(), cudaMemcpyHostToDevice));
    for (ElementFormat format :
         {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M1, ElementFormat::kInt8}) {
      for (Rounding mode : kModes) {
        QuantSpec along;
        along.format = format;
        along.rounding = mode;
        along.seed = 11;
        QuantSpec down = along;
        down.axis = 0;
        down.seed = 12;
        SCOPED_TRACE(name_of(along, DType::kBF16, padded_shape));
        std::vector<uint16_t> want_rows(static_cast<size_t>(rows * width)), want_cols(want_rows);
        ASSERT_EQ("", cpu::fake_quantize(dense_input.data(), DType::kBF16, dense_shape, along,
                                         DType::kBF16, want_rows.data()));
        ASSERT_EQ("", cpu::fake_quantize(dense_input.data(), DType::kBF16, dense_shape, down,
                                         DType::kBF16, want_cols.data()));
        CUDA_OK(cudaMemset(d_rows.p, 0x5A, input.size()));
        CUDA_OK(cudaMemset(d_cols.p, 0x5A, input.size()));
        ASSERT_EQ("", cuda::fake_quantize_dual_cuda(d_in.p, DType::kBF16, padded_shape, along, down,
                                                    d_rows.p, d_cols.p, nullptr, width));
        CUDA_OK(cudaDeviceSynchronize());
        for (auto [got_p, want, side] : {std::tuple{d_rows.p, &want_rows, "along the rows"},
                                         std::tuple{d_cols.p, &want_cols, "down the columns"}}) {
          const auto got = download<uint16_t>(got_p, size_t(rows * padded));
          std::vector<uint16_t> got_dense(size_t(rows * width));
          int64_t nonzero_padding = 0;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < padded; ++c) {
              const uint16_t v = got[size_t(r * padded + c)];
              if (c < width) {
                got_dense[size_t(r * width + c)] = v;
              } else {
                nonzero_padding += v != 0;
              }
            }
          }
          EXPECT_EQ("", first_diffs(*want, got_dense)) << side;
          EXPECT_EQ(nonzero_padding, 0) << side;
        }
        if (HasFailure()) return;
      }
    }
  }
}

// The one-read dual cast also sums each 32-row tile's columns (the bias gradient's partials):
// eight runs of four rows, each summed from zero in float32, added in order from zero, rows past
// the matrix counting zero. The same additions on the host give the same bits.
TEST(CudaQuantize, DualFakeQuantizeSumsEachTilesColumnsInOneOrder) {
  SKIP_WITHOUT_GPU();
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{70, 300}, {64, 512}, {5, 2056}}) {
    const int64_t rows = shape[0], cols = shape[1], tiles = (rows + 31) / 32;
    std::vector<uint16_t> input(size_t(rows * cols));
    std::mt19937 rng(uint32_t(rows * cols));
    std::normal_distribution<float> normal(0.0f, 4.0f);
    for (uint16_t& x : input) x = float_to_bf16(normal(rng));
    DevBuf d_in(input.size() * 2), d_rows(input.size() * 2), d_cols(input.size() * 2);
    DevBuf d_sums(size_t(tiles * cols) * sizeof(float));
    CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size() * 2, cudaMemcpyHostToDevice));
    QuantSpec along;
    along.format = ElementFormat::kE3M2;
    QuantSpec down = along;
    down.axis = 0;
    ASSERT_EQ("", cuda::fake_quantize_dual_cuda(d_in.p, DType::kBF16, shape, along, down, d_rows.p,
                                                d_cols.p, nullptr, -1, d_sums.as<float>()));
    CUDA_OK(cudaDeviceSynchronize());
    const std::vector<float> got = download<float>(d_sums.p, size_t(tiles * cols));
    for (int64_t tile = 0; tile < tiles; ++tile) {
      for (int64_t c = 0; c < cols; ++c) {
        float total = 0.0f;
        for (int64_t g = 0; g < 8; ++g) {
          float run = 0.0f;
          for (int64_t r = 0; r < 4; ++r) {
            const int64_t row = 32 * tile + 4 * g + r;
            run += row < rows ? bf16_to_float(input[size_t(row * cols + c)]) : 0.0f;
          }
          total += run;
        }
        ASSERT_EQ(std::bit_cast<uint32_t>(got[size_t(tile * cols + c)]),
                  std::bit_cast<uint32_t>(total))
            << "tile " << tile << ", column " << c << " of " << rows << " x " << cols;
      }
    }
  }
  // Padded rows hold no bias: their sums are refused.
  DevBuf d_in(64 * 264 * 2), d_rows(64 * 264 * 2), d_cols(64 * 264 * 2), d_sums(2 * 264 * 4);
  QuantSpec along;
  QuantSpec down = along;
  down.axis = 0;
  EXPECT_NE("", cuda::fake_quantize_dual_cuda(d_in.p, DType::kBF16, std::vector<int64_t>{64, 264},
                                              along, down, d_rows.p, d_cols.p, nullptr, 261,
                                              d_sums.as<float>()));
}

}  // namespace
}  // namespace mx
