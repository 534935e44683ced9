#include "mx/kernels/cuda/gemm_cublaslt_mx_plan.h"

#include "mx/core/layout_swizzle.h"

namespace mx::cuda {

namespace {

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

std::string format_name(ElementFormat f) {
  return std::string(traits(f).name);
}

// The pairs of the cuBLAS documentation's block-scaled tables with VEC32_UE8M0 scales: MXFP8
// with either FP8 format on each side except E5M2 x E5M2, and MXFP4 x MXFP4.
bool lt_mx_pair(ElementFormat a, ElementFormat b) {
  auto fp8 = [](ElementFormat f) { return f == ElementFormat::kE4M3 || f == ElementFormat::kE5M2; };
  if (fp8(a) && fp8(b)) return !(a == ElementFormat::kE5M2 && b == ElementFormat::kE5M2);
  return a == ElementFormat::kE2M1 && b == ElementFormat::kE2M1;
}

// Our operand `x` (rows x K row-major) as a K x rows column-major matrix with leading dimension
// K, used through `op`: its codes (block-scaled) or its bfloat16 copy (dequantized) are rows of K
// values either way.
LtMxOperand lt_operand(const MxMatrix& x, int64_t rows, int64_t k, cublasOperation_t op) {
  LtMxOperand o;
  o.source = x;
  o.op = op;
  o.rows = uint64_t(k);
  o.cols = uint64_t(rows);
  o.ld = k;  // block-scaled: K % 32 == 0, so a row of codes holds exactly K slots
  o.scale_rows = rows;
  return o;
}

// The operand with its codes and VEC32_UE8M0 scales, as the block-scaled product reads it.
LtMxOperand block_scaled_operand(const MxMatrix& x, int64_t rows, int64_t k, cublasOperation_t op) {
  LtMxOperand o = lt_operand(x, rows, k, op);
  o.data = x.elements;
  lt_mx_element_type(x.format, &o.type);
  o.scales = x.scales;
  o.scale_cols = k / 32;
  o.scale_padded_rows = round_up(rows, 128);
  o.scale_padded_cols = round_up(o.scale_cols, 4);
  o.scale_bytes = swizzled_scale_bytes(o.scale_rows, o.scale_cols);
  return o;
}

// The operand's dense bfloat16 copy, as the dequantized route's product reads it.
LtMxOperand dequantized_operand(const MxMatrix& x, int64_t rows, int64_t k, cublasOperation_t op) {
  LtMxOperand o = lt_operand(x, rows, k, op);
  o.type = CUDA_R_16BF;
  o.copy_bytes = rows * k * 2;
  return o;
}

// What both routes need of the sizes, the output and the pointers.
std::string check_common(const MxGemmArgs& g) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0) {
    return "cuBLASLt MX product needs positive M, N, K, got " + std::to_string(g.m) + " x " +
           std::to_string(g.n) + " x " + std::to_string(g.k);
  }
  if (g.out_dtype != DType::kF32 && g.out_dtype != DType::kBF16) {
    return "MX product output is float32 or bfloat16, not " + std::string(dtype_name(g.out_dtype));
  }
  if (g.a.elements == nullptr || g.a.scales == nullptr) return "null pointer in A";
  if (g.b.elements == nullptr || g.b.scales == nullptr) return "null pointer in B";
  if (g.d == nullptr) return "null output pointer";
  // With a bias and a bfloat16 D, cuBLASLt writes float32 scratch of ours, not D.
  const bool writes_d = g.bias == nullptr || g.out_dtype == DType::kF32;
  if (writes_d && !aligned16(g.d)) return "cuBLASLt MX product needs a 16-byte aligned output";
  const DType written = g.bias != nullptr ? DType::kF32 : g.out_dtype;
  if (g.n * dtype_size(written) % 16 != 0) {
    return "cuBLASLt MX product needs rows of D of a multiple of 16 bytes: N = " +
           std::to_string(g.n) + " " + std::string(dtype_name(written)) + " values";
  }
  return "";
}

std::string check_block_scaled(const MxGemmArgs& g) {
  if (std::string why = check_common(g); !why.empty()) return why;
  if (!lt_mx_pair(g.a.format, g.b.format)) {
    return "cuBLASLt multiplies MX pairs e4m3/e5m2 (not e5m2 x e5m2) and e2m1 x e2m1, not " +
           format_name(g.a.format) + " x " + format_name(g.b.format);
  }
  // A partial last block would need k = K with rows of ceil(K / 32) * 32 slots; cuBLASLt's
  // VEC32 scales describe whole blocks, and our padding slots may hold any code (NaN too).
  if (g.k % 32 != 0) {
    return "cuBLASLt MX product needs K a multiple of 32, got " + std::to_string(g.k);
  }
  // cuBLASLt's FP8/FP4 kernels want 16-byte aligned matrices and leading dimensions of a
  // multiple of 16 bytes. Rows of K codes are K or K / 2 bytes, so K % 32 == 0 covers A and B.
  if (!aligned16(g.a.elements) || !aligned16(g.b.elements)) {
    return "cuBLASLt MX product needs 16-byte aligned A and B codes";
  }
  return "";
}

// What both routes share: cuBLASLt's problem (its m, n, k are our N, M, K; its A is our B,
// transposed, and its B our A), D's type and the bias's place.
LtMxPlan plan_problem(const MxGemmArgs& args, LtMxOperand (*operand)(const MxMatrix&, int64_t,
                                                                     int64_t, cublasOperation_t)) {
  LtMxPlan p;
  p.m = uint64_t(args.n);
  p.n = uint64_t(args.m);
  p.k = uint64_t(args.k);
  p.a = operand(args.b, args.n, args.k, CUBLAS_OP_T);
  p.b = operand(args.a, args.m, args.k, CUBLAS_OP_N);
  p.ldd = args.n;
  if (args.bias == nullptr) {
    p.d_type = args.out_dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
  } else {
    p.d_type = CUDA_R_32F;
    p.bias = args.out_dtype == DType::kF32 ? LtMxBias::kAddInPlace : LtMxBias::kAddFromFloatScratch;
    p.d_in_scratch = p.bias == LtMxBias::kAddFromFloatScratch;
  }
  return p;
}

// Consecutive workspace regions, each on a kLtMxWorkspaceAlign boundary.
struct Regions {
  int64_t at = 0;
  int64_t take(int64_t bytes) {
    const int64_t offset = at;
    at = round_up(at + bytes, kLtMxWorkspaceAlign);
    return offset;
  }
};

// The float32 scratch (if any) and cuBLASLt's own workspace, after the route's regions.
void plan_tail(const MxGemmArgs& args, Regions& r, LtMxPlan* p) {
  if (p->d_in_scratch) {
    p->scratch_bytes = args.m * args.n * 4;
    p->scratch_offset = r.take(p->scratch_bytes);
  }
  p->lt_workspace_bytes = kLtMxWorkspaceBytes;
  p->lt_workspace_offset = r.take(p->lt_workspace_bytes);
  p->workspace_bytes = r.at;
}

}  // namespace

bool lt_mx_element_type(ElementFormat format, cudaDataType_t* type) {
  switch (format) {
    case ElementFormat::kE4M3:
      *type = CUDA_R_8F_E4M3;
      return true;
    case ElementFormat::kE5M2:
      *type = CUDA_R_8F_E5M2;
      return true;
    case ElementFormat::kE2M1:
      *type = CUDA_R_4F_E2M1;
      return true;
    default:
      return false;
  }
}

LtMxPlan plan_blackwell_mx_gemm(const MxGemmArgs& args, std::string* why) {
  *why = check_block_scaled(args);
  if (!why->empty()) return {};
  LtMxPlan p = plan_problem(args, block_scaled_operand);
  // Workspace: cuBLASLt's A scales, its B scales, float32 scratch D (if any), cuBLASLt's own.
  Regions r;
  p.a.scale_offset = r.take(p.a.scale_bytes);
  p.b.scale_offset = r.take(p.b.scale_bytes);
  plan_tail(args, r, &p);
  return p;
}

LtMxPlan plan_dequantized_mx_gemm(const MxGemmArgs& args, std::string* why) {
  *why = check_common(args);
  if (!why->empty()) return {};
  LtMxPlan p = plan_problem(args, dequantized_operand);
  p.block_scaled = false;
  // Workspace: our B's copy (cuBLASLt's A), our A's copy, float32 scratch D, cuBLASLt's own.
  Regions r;
  p.a.copy_offset = r.take(p.a.copy_bytes);
  p.b.copy_offset = r.take(p.b.copy_bytes);
  plan_tail(args, r, &p);
  return p;
}

}  // namespace mx::cuda
