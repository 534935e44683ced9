// The factor of the inverse Hessian that error diffusion walks (docs/NUMERICS.md §17): for a
// symmetric positive definite H [k, k], the upper triangular U with positive diagonal and
// U^T U = H^-1. Row i of U, divided by U[i][i], gives how the error of column i spreads over
// the columns after it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mx::ptq {

// Replaces the row-major k x k matrix *h (symmetric, positive definite) by U. It factors
// H = V V^T with V upper triangular (a Cholesky factorization run from the last index back),
// then inverts V: U = V^-1, since H^-1 = V^-T V^-1. Everything is in double. Each entry's sum is
// one chain of fused multiply-adds in a fixed order: V[i][j] = (H[i][j] - sum_{m>j} V[i][m]
// V[j][m]) / V[j][j] with m from k - 1 down, and U[i][j] = (delta_ij - sum_{i<m<=j} V[i][m]
// U[m][j]) / V[i][i] with m from j down. The work is blocked and threaded (mx/kernels/cpu/
// dgemm.h), which changes none of those chains, so the result does not depend on `threads`
// (0: all hardware threads) or the instruction set. Returns "" or the reason H is not positive
// definite (a pivot that is not positive).
std::string inverse_hessian_factor(std::vector<double>* h, int64_t k, int threads = 0);

}  // namespace mx::ptq
