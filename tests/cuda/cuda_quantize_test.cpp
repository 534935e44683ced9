// CUDA kernels against the CPU fast path, byte for byte.
#include "tests/cuda/cuda_quantize_checks.h"

namespace mx {
namespace {

TEST(CudaQuantize, EveryFormatRuleRounding) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {37, 100};
  for_every_dtype_format_rule_rounding(testing::stress_values(37 * 100, 11, true), 1234,
                                       [&](const auto& input, DType dtype, QuantSpec spec) {
                                         check_all(input, dtype, shape, spec);
                                       });
}

// Shapes whose rows hold whole blocks of 32 * G values take the 32-values-per-thread kernels
// (codes of 4, 6 and 8 bits): every format, rule and rounding, every input dtype, G = 1 .. 8,
// asymmetric and flush_subnormals.
TEST(CudaQuantize, WholeBlockRowsEveryFormatRuleRounding) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {24, 256};
  const auto values = testing::stress_values(24 * 256, 13, true);
  for_every_dtype_format_rule_rounding(values, 4321,
                                       [&](const auto& input, DType dtype, QuantSpec spec) {
                                         check_all(input, dtype, shape, spec);
                                         spec.asymmetric = true;
                                         check_all(input, dtype, shape, spec);
                                         spec.asymmetric = false;
                                         spec.flush_subnormals = true;
                                         spec.zero_block_scale = 2;
                                         check_all(input, dtype, shape, spec);
                                       });
  if (HasFatalFailure()) return;
  // Blocks of 64, 128 and 256 values: two, four and eight lanes per block.
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const auto input = to_dtype(values, dtype);
    for (const FormatTraits& f : all_formats()) {
      for (int block : {64, 128, 256}) {
        for (Rounding mode : kModes) {
          QuantSpec spec;
          spec.format = f.format;
          spec.block_size = block;
          spec.rounding = mode;
          spec.seed = 8;
          check_all(input, dtype, shape, spec);
          spec.asymmetric = true;
          check_all(input, dtype, shape, spec);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(CudaQuantize, OddShapesAndBlockSizes) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::vector<int64_t>> shapes = {{1, 1},   {1},    {37, 100}, {3, 5, 33},
                                                    {64, 96}, {7, 8}, {0, 5}};
  for (const auto& shape : shapes) {
    const auto values =
        testing::stress_values(size_t(std::max<int64_t>(1, element_count(shape))), 21, true);
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      const auto input = to_dtype(values, dtype);
      for (const FormatTraits& f : all_formats()) {
        for (int block : {32, 16, 64, 8, 4}) {
          if ((block * f.bits) % 8 != 0) continue;
          for (Rounding mode : {Rounding::kNearestEven, Rounding::kStochastic}) {
            QuantSpec spec;
            spec.format = f.format;
            spec.block_size = block;
            spec.rounding = mode;
            spec.seed = 99;
            check_all(input, dtype, shape, spec);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(CudaQuantize, ColumnBlocksAndTiles) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {2, 45, 70};
  const auto values = testing::stress_values(2 * 45 * 70, 31, true);
  const auto input = to_dtype(values, DType::kBF16);
  const auto input32 = to_dtype(values, DType::kF32);
  for (const FormatTraits& f : all_formats()) {
    for (Rounding mode : kModes) {
      QuantSpec spec;
      spec.format = f.format;
      spec.rounding = mode;
      spec.seed = 5;
      for (int axis : {0, 1, -2}) {
        spec.axis = axis;
        check_all(input, DType::kBF16, shape, spec);
        if (HasFatalFailure()) return;
      }
      spec.axis = -1;
      for (auto [r, c] : {std::pair{32, 32}, std::pair{16, 16}, std::pair{4, 8}, std::pair{1, 32},
                          std::pair{8, 1}}) {
        spec.tile_rows = r;
        spec.tile_cols = c;
        if ((r * c * f.bits) % 8 != 0) continue;
        check_all(input32, DType::kF32, shape, spec);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Float32 matrices of several shapes (rows short of a block, odd widths, one row) cast down their
// columns to bfloat16 in one launch: each equals its own fake_quantize_cuda cast bit for bit,
// under every format and deterministic rounding, asymmetric and with flushed subnormals, and no
// byte outside the matrices' casts is written.
TEST(CudaQuantize, ABatchOfColumnCastsEqualsEachMatrixCastAlone) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {64, 96}, {45, 70}, {1, 33}, {96, 8}, {33, 1}};
  int64_t values_count = 0;
  for (auto [r, c] : shapes) values_count += r * c + 5;  // a gap after each matrix
  const auto values = testing::stress_values(size_t(values_count), 17, true);
  DevBuf in(values.size() * 4), out(values.size() * 2), alone(values.size() * 2);
  ASSERT_NE(in.p, nullptr);
  CUDA_OK(cudaMemcpy(in.p, values.data(), values.size() * 4, cudaMemcpyHostToDevice));
  std::vector<cuda::ColumnCastMatrix> batch;
  int64_t offset = 0;
  for (auto [r, c] : shapes) {
    batch.push_back({in.as<float>() + offset, out.as<uint16_t>() + offset, r, c, 0});
    offset += r * c + 5;
  }
  const int64_t total = cuda::fill_first_blocks(batch);
  DevBuf table(batch.size() * sizeof(batch[0]));
  CUDA_OK(cudaMemcpy(table.p, batch.data(), table.n, cudaMemcpyHostToDevice));
  for (const FormatTraits& f : all_formats()) {
    for (Rounding mode : {Rounding::kNearestEven, Rounding::kNearestAway, Rounding::kTowardZero}) {
      for (int variant = 0; variant < 3; ++variant) {
        QuantSpec spec;
        spec.format = f.format;
        spec.rounding = mode;
        spec.asymmetric = variant == 1;
        spec.flush_subnormals = variant == 2;
        SCOPED_TRACE(describe(spec));
        CUDA_OK(cudaMemset(out.p, 0x5A, out.n));
        CUDA_OK(cudaMemset(alone.p, 0x5A, alone.n));
        ASSERT_EQ(cuda::fake_quantize_columns_batch_cuda(table.as<cuda::ColumnCastMatrix>(),
                                                         int(batch.size()), total, spec, nullptr),
                  "");
        QuantSpec column = spec;
        column.axis = 0;
        for (const cuda::ColumnCastMatrix& m : batch) {
          const std::vector<int64_t> shape = {m.rows, m.cols};
          uint16_t* dst = alone.as<uint16_t>() + (m.out - out.as<uint16_t>());
          ASSERT_EQ(cuda::fake_quantize_cuda(m.in, DType::kF32, shape, column, DType::kBF16, dst,
                                             nullptr),
                    "");
        }
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_EQ(first_diffs(download<uint16_t>(alone.p, values.size()),
                              download<uint16_t>(out.p, values.size())),
                  "");
        if (HasFailure()) return;
      }
    }
  }
  QuantSpec stochastic;
  stochastic.rounding = Rounding::kStochastic;
  EXPECT_EQ(cuda::fake_quantize_columns_batch_cuda(table.as<cuda::ColumnCastMatrix>(),
                                                   int(batch.size()), total, stochastic, nullptr),
            "a batch of column casts takes no stochastic rounding");
}

TEST(CudaQuantize, AsymmetricFlushZeroScale) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {33, 70};
  const auto values = testing::stress_values(33 * 70, 41, true);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const auto input = to_dtype(values, dtype);
    for (const FormatTraits& f : all_formats()) {
      for (Rounding mode : kModes) {
        for (ScaleRule rule : kRules) {
          QuantSpec spec;
          spec.format = f.format;
          spec.rounding = mode;
          spec.scale_rule = rule;
          spec.asymmetric = true;
          check_all(input, dtype, shape, spec);
          spec.asymmetric = (rule == ScaleRule::kCeil);
          spec.flush_subnormals = true;
          spec.zero_block_scale = 1;
          check_all(input, dtype, shape, spec);
          spec.axis = 0;
          spec.asymmetric = true;
          check_all(input, dtype, shape, spec);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Rows of 16-bit values that start off 16-byte boundaries take a kernel that stages spans of
// 256 blocks through shared memory: odd row lengths whose spans cross rows and thread blocks,
// every rounding, symmetric and asymmetric, whole and partial blocks.
TEST(CudaQuantize, AllZeroBlocks) {
  SKIP_WITHOUT_GPU();
  std::vector<float> values(64 * 40, 0.0f);
  for (size_t i = 0; i < values.size(); i += 7) values[i] = -0.0f;
  const auto input = to_dtype(values, DType::kF32);
  for (const FormatTraits& f : all_formats()) {
    QuantSpec spec;
    spec.format = f.format;
    spec.zero_block_scale = 3;
    check_all(input, DType::kF32, {64, 40}, spec);
  }
}

TEST(CudaQuantize, DualMatchesTwoQuantizations) {
  SKIP_WITHOUT_GPU();
  for (auto [m, k] :
       {std::pair<int64_t, int64_t>{37, 100}, {64, 64}, {1, 1}, {100, 33}, {256, 512}}) {
    const auto values = testing::stress_values(size_t(m * k), 51, true);
    for (DType dtype : {DType::kBF16, DType::kF32}) {
      const auto input = to_dtype(values, dtype);
      for (const FormatTraits& f : all_formats()) {
        for (Rounding mode : kModes) {
          for (bool asym : {false, true}) {
            QuantSpec spec;
            spec.format = f.format;
            spec.rounding = mode;
            spec.seed = 77;
            spec.asymmetric = asym;
            ASSERT_NO_FATAL_FAILURE(check_dual(input, dtype, {m, k}, spec));
          }
        }
      }
    }
  }
}

// bfloat16 -> MXFP4 nearest-even dual quantize runs on packed bfloat16 pairs when M % 32 == 0
// and K % 256 == 0. Each 32 x 32 tile here has its own magnitude, so both its row and column
// blocks get extreme scales too: bfloat16 subnormals, scale bytes 0-3 and 250+, ties of the
// E2M1 grid, zeros of both signs, and NaN / Inf next to finite columns.
TEST(CudaQuantize, PackedBf16Mxfp4DualMatchesTheCpuForEveryScaleRuleAndExtremeScales) {
  SKIP_WITHOUT_GPU();
  const int64_t m = 96, k = 768;
  const int exponents[] = {-140, -133, -130, -128, -127, -126, -125, -124, -122, -120, -60,
                           -3,   0,    2,    7,    40,   100,  120,  124,  125,  126,  127};
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::vector<float> values(size_t(m * k));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t tile = (r / 32) * (k / 32) + c / 32;
      const int e = exponents[tile % std::size(exponents)];
      float v = std::ldexp(unit(rng), e);
      if (tile % 5 == 1) {
        // The E2M1 grid's ties at scale 2^e: 0.25, 0.75, ..., 5 times 2^e, and its largest 6.
        const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f};
        v = std::ldexp(ties[(r + c) % 8] * ((r + c) % 3 ? 1.0f : -1.0f), std::min(e, 120));
      }
      if (tile % 7 == 3) v = (r + c) % 2 ? 0.0f : -0.0f;
      values[size_t(r * k + c)] = v;
    }
  }
  values[size_t(40 * k + 100)] = std::numeric_limits<float>::quiet_NaN();
  values[size_t(70 * k + 301)] = -std::numeric_limits<float>::infinity();
  values[size_t(5 * k + 600)] = std::numeric_limits<float>::infinity();
  const auto input = to_dtype(values, DType::kBF16);
  for (ScaleRule rule : kRules) {
    QuantSpec spec;
    spec.format = ElementFormat::kE2M1;
    spec.scale_rule = rule;
    ASSERT_NO_FATAL_FAILURE(check_dual(input, DType::kBF16, {m, k}, spec));
  }
}

// Small, for the sanitizers: one shape, through every kernel (dual included).
TEST(CudaQuantize, SanitizerSmoke) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {37, 100};
  const auto values = testing::stress_values(37 * 100, 61, true);
  const auto input = to_dtype(values, DType::kBF16);
  for (ElementFormat format : {ElementFormat::kE4M3, ElementFormat::kE2M1, ElementFormat::kE3M2}) {
    QuantSpec spec;
    spec.format = format;
    spec.rounding = Rounding::kStochastic;
    check_all(input, DType::kBF16, shape, spec);
    spec.axis = 0;
    check_all(input, DType::kBF16, shape, spec);
    spec.tile_rows = spec.tile_cols = 8;
    check_all(input, DType::kBF16, shape, spec);
    // Blocks of 3 (codes ending inside a byte for 4- and 6-bit formats).
    QuantSpec odd;
    odd.format = format;
    odd.block_size = 3;
    check_all(input, DType::kBF16, shape, odd);
    // Rows of whole blocks: the 32-values-per-thread kernels (one and two threads per block,
    // warp-wide staged stores), asymmetric too.
    QuantSpec dense;
    dense.format = format;
    dense.rounding = Rounding::kStochastic;
    const std::vector<int64_t> dense_shape = {8, 128};
    const std::vector<uint8_t> dense_input(input.begin(), input.begin() + 8 * 128 * 2);
    check_all(dense_input, DType::kBF16, dense_shape, dense);
    dense.block_size = 64;
    dense.asymmetric = true;
    check_all(dense_input, DType::kBF16, dense_shape, dense);
    // Dual: a ragged shape (edge tiles), 24 x 128 (whole warps: staged stores) and 32 x 256
    // (the packed bfloat16 MXFP4 kernel).
    const auto dual_input = to_dtype(testing::stress_values(32 * 256, 62, true), DType::kBF16);
    for (const auto& dual_shape :
         {shape, std::vector<int64_t>{24, 128}, std::vector<int64_t>{32, 256}}) {
      QuantSpec row_spec;
      row_spec.format = format;
      ASSERT_NO_FATAL_FAILURE(check_dual(dual_input, DType::kBF16, dual_shape, row_spec));
    }
  }
}

// Blocks whose codes end inside a byte (odd blocks of 4-bit codes, 6-bit codes in blocks of 1,
// 2, 3, 5, 2-bit codes in blocks not a multiple of 4): consecutive blocks share bytes, so each
// thread packs a group of blocks up to a byte boundary, and decoding starts mid-byte.
TEST(CudaQuantize, BlocksWhoseCodesEndInsideAByteMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {7, 13};
  const auto values = testing::stress_values(7 * 13, 71, true);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const auto input = to_dtype(values, dtype);
    for (ElementFormat format :
         {ElementFormat::kE2M1, ElementFormat::kE3M2, ElementFormat::kE2M3, ElementFormat::kInt2}) {
      for (int block : {1, 2, 3, 5, 7}) {
        if ((block * traits(format).bits) % 8 == 0) continue;
        for (Rounding mode : {Rounding::kNearestEven, Rounding::kStochastic}) {
          QuantSpec spec;
          spec.format = format;
          spec.rounding = mode;
          spec.seed = 5;
          spec.block_size = block;
          ASSERT_NO_FATAL_FAILURE(check_all(input, dtype, shape, spec));
          spec.axis = 0;
          ASSERT_NO_FATAL_FAILURE(check_all(input, dtype, shape, spec));
        }
      }
      QuantSpec tiled;
      tiled.format = format;
      tiled.tile_rows = 3;
      tiled.tile_cols = 3;
      ASSERT_NO_FATAL_FAILURE(check_all(input, dtype, shape, tiled));
    }
  }
}

TEST(CudaQuantize, RefusesUnsupported) {
  SKIP_WITHOUT_GPU();
  QuantSpec spec;
  spec.format = ElementFormat::kE2M1;
  const std::vector<int64_t> shape = {4, 6};
  DevBuf buf(1024);
  spec.asymmetric = true;  // without offsets buffers
  EXPECT_NE("", cuda::quantize_cuda(buf.p, DType::kF32, shape, spec, buf.as<uint8_t>(),
                                    buf.as<uint8_t>(), nullptr, nullptr));
  spec.asymmetric = false;
  EXPECT_NE("",
            cuda::fake_quantize_cuda(buf.p, DType::kF32, shape, spec, DType::kF16, buf.p, nullptr));
  const std::vector<int64_t> three = {2, 3, 4};
  EXPECT_NE("", cuda::quantize_dual_cuda(buf.p, DType::kF32, three, spec, {}, {}, nullptr));
}

// Which kernel family a call takes is decided on the host from the arguments alone; no device is
// needed to ask, and the pointers are never read.
TEST(CudaQuantizeKernelChoice, FollowsTheShapeTheSpecTheDtypesAndTheAlignment) {
  alignas(16) static uint8_t buffer[64];
  const void* aligned = buffer;
  const void* off = buffer + 2;
  auto kernel = [](const void* in, DType dtype, std::vector<int64_t> shape, const QuantSpec& spec,
                   const void* out, bool fake) {
    cuda::QuantizeKernel k{};
    const std::string e =
        cuda::quantize_kernel_for(in, dtype, shape, spec, out, DType::kBF16, fake, &k);
    return e.empty() ? std::string(cuda::quantize_kernel_name(k)) : "error: " + e;
  };
  QuantSpec spec;
  spec.format = ElementFormat::kE2M1;
  EXPECT_EQ(kernel(aligned, DType::kBF16, {64, 256}, spec, aligned, false), "vec");
  EXPECT_EQ(kernel(aligned, DType::kBF16, {64, 256}, spec, aligned, true), "vec");
  EXPECT_EQ(kernel(off, DType::kBF16, {64, 256}, spec, aligned, false), "lanes");
  EXPECT_EQ(kernel(off, DType::kBF16, {64, 256}, spec, off, true), "unaligned-rows");
  EXPECT_EQ(kernel(aligned, DType::kBF16, {4, 50257}, spec, aligned, true), "unaligned-rows");
  EXPECT_EQ(kernel(aligned, DType::kF32, {4, 50257}, spec, aligned, true), "lanes");
  spec.rounding = Rounding::kStochastic;
  EXPECT_EQ(kernel(aligned, DType::kBF16, {64, 256}, spec, aligned, false), "vec-bf16-stochastic");
  EXPECT_EQ(kernel(aligned, DType::kF16, {64, 256}, spec, aligned, false), "vec");
  spec.rounding = Rounding::kNearestEven;
  spec.axis = 0;
  EXPECT_EQ(kernel(aligned, DType::kBF16, {256, 768}, spec, aligned, true), "column-tiles");
  EXPECT_EQ(kernel(aligned, DType::kF32, {256, 768}, spec, aligned, true), "columns");
  EXPECT_EQ(kernel(aligned, DType::kBF16, {256, 768}, spec, aligned, false), "general");
  spec.axis = -1;
  spec.block_size = 16;
  EXPECT_EQ(kernel(aligned, DType::kBF16, {64, 256}, spec, aligned, false), "lanes");
  spec.block_size = 3;
  EXPECT_EQ(kernel(aligned, DType::kBF16, {64, 255}, spec, aligned, false), "general");
  spec.block_size = 0;
  EXPECT_EQ(kernel(aligned, DType::kBF16, {64, 256}, spec, aligned, false).rfind("error: ", 0), 0u);
  spec.block_size = 32;
  cuda::QuantizeKernel k{};
  EXPECT_NE(cuda::quantize_kernel_for(aligned, DType::kBF16, std::vector<int64_t>{64, 256}, spec,
                                      aligned, DType::kF16, true, &k),
            "");
}

// The dual fake-quantize reads its input once where one kernel can make both casts: bfloat16
// in, blocks of 32, one rounding and one element kind on both sides. Otherwise it makes the two
// single casts; a shape that is not a matrix is refused. Decided on the host; no device needed.
TEST(CudaQuantizeKernelChoice, DualFakeQuantizeReadsOnceWhereBothCastsShareRoundingAndKind) {
  auto once = [](DType dtype, std::vector<int64_t> shape, const QuantSpec& along,
                 const QuantSpec& down) {
    bool one = false;
    const std::string e = cuda::fake_quantize_dual_reads_once(dtype, shape, along, down, &one);
    return e.empty() ? (one ? "once" : "twice") : "error: " + e;
  };
  QuantSpec along;
  along.format = ElementFormat::kE3M2;
  QuantSpec down = along;
  down.format = ElementFormat::kE2M1;
  EXPECT_EQ(once(DType::kBF16, {16384, 768}, along, down), "once");
  EXPECT_EQ(once(DType::kBF16, {4096, 50257}, along, down), "once");
  EXPECT_EQ(once(DType::kBF16, {1, 5}, along, down), "once");
  EXPECT_EQ(once(DType::kF32, {16384, 768}, along, down), "twice");
  EXPECT_EQ(once(DType::kF16, {16384, 768}, along, down), "twice");
  down.rounding = Rounding::kStochastic;
  EXPECT_EQ(once(DType::kBF16, {16384, 768}, along, down), "twice");
  along.rounding = Rounding::kStochastic;
  EXPECT_EQ(once(DType::kBF16, {16384, 768}, along, down), "once");
  down.format = ElementFormat::kInt8;
  EXPECT_EQ(once(DType::kBF16, {16384, 768}, along, down), "twice");
  down.format = ElementFormat::kE2M1;
  down.block_size = 16;
  EXPECT_EQ(once(DType::kBF16, {16384, 768}, along, down), "twice");
  down.block_size = 32;
  down.tile_rows = 32;
  down.tile_cols = 32;
  EXPECT_EQ(once(DType::kBF16, {16384, 768}, along, down), "twice");
  EXPECT_EQ(once(DType::kBF16, {2, 3, 4}, along, along).rfind("error: ", 0), 0u);
  // Rows padded with zeros past the real columns: one read, or a refusal of the call.
  down.tile_rows = down.tile_cols = 0;
  auto padded = [](const QuantSpec& along, const QuantSpec& down, int64_t real) {
    bool one = false;
    const std::string e = cuda::fake_quantize_dual_reads_once(
        DType::kBF16, std::vector<int64_t>{64, 264}, along, down, &one, real);
    return e.empty() ? (one ? "once" : "twice") : "error: " + e;
  };
  EXPECT_EQ(padded(along, down, 261), "once");
  EXPECT_EQ(padded(along, down, 264), "once");
  EXPECT_EQ(padded(along, down, 265).rfind("error: ", 0), 0u);
  EXPECT_EQ(padded(along, down, 0).rfind("error: ", 0), 0u);
  QuantSpec asym = along;
  asym.asymmetric = true;
  EXPECT_EQ(padded(asym, down, 261), "twice");
  EXPECT_EQ(padded(asym, down, 264), "once");
}

// Several gigabytes: 2^33 + 2^20 bfloat16 values (16 GB) take element indices past 32 bits and
// the stochastic dither into its second window of 2^32 pairs. Needs about 26 GB of GPU memory
// and 48 GB of host memory; skipped with a message where either is short.
TEST(CudaQuantize, SixteenGigabyteTensorMatchesTheCpuPast32BitIndicesAndTheFirstDitherWindow) {
  SKIP_WITHOUT_GPU();
  const std::vector<int64_t> shape = {8193, int64_t{1} << 20};
  const int64_t n = element_count(shape);
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_OK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const double host_bytes = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  if (double(free_bytes) < 26e9 || host_bytes < 48e9) {
    GTEST_SKIP() << "needs 26 GB of free GPU memory and 48 GB of host memory (has "
                 << double(free_bytes) / 1e9 << " and " << host_bytes / 1e9 << ")";
  }
  std::vector<uint8_t> input(size_t(n) * 2);
  cpu::parallel_for(n, 1 << 20, 0, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      uint16_t bits = uint16_t(splitmix64_mix(uint64_t(i)) >> 48);
      if ((bits & 0x7F80u) == 0x7F80u) bits &= 0xBFFFu;  // finite
      std::memcpy(&input[size_t(i) * 2], &bits, 2);
    }
  });
  DevBuf d_in(input.size());
  ASSERT_NE(d_in.p, nullptr);
  CUDA_OK(cudaMemcpy(d_in.p, input.data(), input.size(), cudaMemcpyHostToDevice));
  for (ElementFormat format : {ElementFormat::kE2M1, ElementFormat::kE4M3}) {
    QuantSpec spec;
    spec.format = format;
    spec.rounding = Rounding::kStochastic;
    spec.seed = 9;
    SCOPED_TRACE(name_of(spec, DType::kBF16, shape));
    MxTensor ref;
    ASSERT_EQ("", cpu::quantize(input.data(), DType::kBF16, shape, spec, &ref));
    DevBuf d_el(ref.elements.size()), d_sc(ref.scales.size());
    ASSERT_NE(d_el.p, nullptr);
    ASSERT_EQ("", cuda::quantize_cuda(d_in.p, DType::kBF16, shape, spec, d_el.as<uint8_t>(),
                                      d_sc.as<uint8_t>(), nullptr, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_EQ("", first_diffs(ref.scales, download<uint8_t>(d_sc.p, ref.scales.size())));
    EXPECT_EQ("", first_diffs(ref.elements, download<uint8_t>(d_el.p, ref.elements.size())));
  }
}

TEST(CudaQuantize, LargeBf16Tensor) {
  SKIP_WITHOUT_GPU();
  const int64_t n = int64_t{1} << 28;
  const std::vector<int64_t> shape = {int64_t{1} << 14, int64_t{1} << 14};
  std::vector<uint16_t> input(static_cast<size_t>(n));
  uint64_t s = 0x1234567;
  for (auto& h : input) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    uint16_t bits = uint16_t(s >> 48);
    if ((bits & 0x7F80u) == 0x7F80u) bits &= 0xBFFFu;  // finite
    h = bits;
  }
  input[12345] = 0x7FC0;  // one NaN block
  std::vector<uint8_t> bytes(input.size() * 2);
  std::memcpy(bytes.data(), input.data(), bytes.size());
  for (ElementFormat format : {ElementFormat::kE4M3, ElementFormat::kE2M1}) {
    QuantSpec spec;
    spec.format = format;
    check_all(bytes, DType::kBF16, shape, spec, /*also_decode=*/format == ElementFormat::kE2M1);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace mx
