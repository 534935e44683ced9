#!/usr/bin/env bash
# Runs the CUDA tests, the sanitizers and the bandwidth benchmark on a GPU host that has the
# CUDA runtime and compute-sanitizer but need not have a compiler. Build the binaries first:
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-cuda --target mx_cuda_tests cuda_quant -j2
#   mkdir -p .device && cp build-cuda/tests/cuda/mx_cuda_tests build-cuda/bench/cuda/cuda_quant .device/
# and, for the model's CUDA backend and the MX matrix products (each run when present):
#   cmake --build build-cuda --target mx_nn_cuda_tests -j2 && cp build-cuda/tests/cuda/mx_nn_cuda_tests .device/
#   cmake --build build-cuda --target mx_gemm_cuda_tests mx_gemm_cublaslt_gpu_tests cuda_gemm -j2
#   cp build-cuda/tests/cuda/mx_gemm_cuda_tests build-cuda/tests/cuda/mx_gemm_cublaslt_gpu_tests \
#      build-cuda/bench/cuda/cuda_gemm .device/
# then, from the repository root on the GPU host (with .device/ copied there):
#   bash scripts/device-check.sh        (logs go to $OUT, default /tmp/device-check)
set -o pipefail
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
.device/mx_cuda_tests 2>&1 | tee "$OUT/tests.log" | grep -E "^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|Expected|Which is|trace|^  " | tail -40
SMOKE='CudaQuantize.SanitizerSmoke:CudaQuantize.AllZeroBlocks:CudaQuantize.RefusesUnsupported'
compute-sanitizer --tool memcheck .device/mx_cuda_tests --gtest_filter="$SMOKE" 2>&1 | tee "$OUT/memcheck.log" | tail -5
compute-sanitizer --tool racecheck .device/mx_cuda_tests --gtest_filter="$SMOKE" 2>&1 | tee "$OUT/racecheck.log" | tail -5
.device/cuda_quant 2>&1 | tee "$OUT/bench.log"
# Optional: an older build's benchmark in the same run (same card, same copy baseline).
if [ -x .device/base/cuda_quant ]; then .device/base/cuda_quant 2>&1 | tee "$OUT/bench_base.log"; fi
# The model's CUDA backend: parity with the CPU, determinism, resume; memcheck and racecheck on
# its smoke test and the odd-vocabulary path.
if [ -x .device/mx_nn_cuda_tests ]; then
  .device/mx_nn_cuda_tests 2>&1 | tee "$OUT/nn_tests.log" | grep -E "^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure" | tail -40
  NN_SMOKE='CudaBackend.SanitizerSmoke:CudaBackend.OddVocabulariesMatchTheCpu'
  compute-sanitizer --tool memcheck .device/mx_nn_cuda_tests --gtest_filter="$NN_SMOKE" 2>&1 | tee "$OUT/nn_memcheck.log" | tail -3
  compute-sanitizer --tool racecheck .device/mx_nn_cuda_tests --gtest_filter='CudaBackend.SanitizerSmoke' 2>&1 | tee "$OUT/nn_racecheck.log" | tail -3
fi
# The MX matrix products: tests, both sanitizers on a quick subset, the benchmark.
if [ -x .device/mx_gemm_cuda_tests ]; then
  .device/mx_gemm_cuda_tests 2>&1 | tee "$OUT/gemm_tests.log" | grep -E "^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|want" | tail -30
  GEMM_SMOKE='MxWeightOnly.*:*Identity*:*StageCount*:*NanAnd*:*EmptyK*'
  compute-sanitizer --tool memcheck .device/mx_gemm_cuda_tests --gtest_filter="$GEMM_SMOKE" 2>&1 | tee "$OUT/gemm_memcheck.log" | tail -3
  compute-sanitizer --tool racecheck .device/mx_gemm_cuda_tests --gtest_filter='*StageCount*:MxWeightOnly.Nan*' 2>&1 | tee "$OUT/gemm_racecheck.log" | tail -3
fi
# The cuBLASLt routes (the two-pass product on any GPU, the block-scaled one on Blackwell).
if [ -x .device/mx_gemm_cublaslt_gpu_tests ]; then
  .device/mx_gemm_cublaslt_gpu_tests 2>&1 | tee "$OUT/cublaslt_tests.log" | grep -E "^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|want" | tail -20
  compute-sanitizer --tool memcheck .device/mx_gemm_cublaslt_gpu_tests --gtest_filter='MxGemmDequantized.*' 2>&1 | tee "$OUT/cublaslt_memcheck.log" | tail -3
fi
if [ -x .device/cuda_gemm ]; then .device/cuda_gemm 2>&1 | tee "$OUT/gemm_bench.log"; fi
