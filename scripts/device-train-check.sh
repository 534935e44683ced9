#!/usr/bin/env bash
# The model's CUDA backend on a GPU host: its tests against the CPU backend, compute-sanitizer on
# their smoke test, the quantizer tests (their codec is shared with the backend), and short
# `mx train --device cuda` runs. The GPU host needs the CUDA driver, libcublasLt and
# compute-sanitizer, not a compiler. Build here first:
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build-cuda -j2
#   mkdir -p .device/lib .device/data
#   cp build-cuda/tools/mx/mx build-cuda/tests/cuda/mx_cuda_tests \
#      build-cuda/tests/cuda/mx_nn_cuda_tests .device/
#   cp -L $(ldd build-cuda/tools/mx/mx | grep -oE '/\S*lib(fmt|sentencepiece)\S*') .device/lib/
#   cp -r "$MX_DATA_DIR/tinyshakespeare" "$MX_DATA_DIR/gpt2" .device/data/
# then, from the repository root on the GPU host (logs go to $OUT, default /tmp/device-train):
#   bash scripts/device-train-check.sh
set -o pipefail
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp/device-train}
mkdir -p "$OUT"
# cuBLASLt from the CUDA toolkit, else from PyTorch's wheel.
torch_lib=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null)
export LD_LIBRARY_PATH=$PWD/.device/lib:/usr/local/cuda/lib64:${torch_lib}:${LD_LIBRARY_PATH:-}
export MX_DATA_DIR=$PWD/.device/data
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"

section() { echo "== $*"; }
section "backend tests"
.device/mx_nn_cuda_tests 2>&1 | tee "$OUT/nn_tests.log" |
  grep -E "^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|Expected|Which is|error|  " | tail -40
section "memcheck / racecheck"
compute-sanitizer --tool memcheck .device/mx_nn_cuda_tests --gtest_filter='CudaBackend.SanitizerSmoke' \
  2>&1 | tee "$OUT/memcheck.log" | tail -3
compute-sanitizer --tool racecheck .device/mx_nn_cuda_tests --gtest_filter='CudaBackend.SanitizerSmoke' \
  2>&1 | tee "$OUT/racecheck.log" | tail -3
# The NCCL tests at one rank. ncclCommInitRank asks cudaFuncGetAttributes about kernels built
# for other GPUs and gets "no kernel image" errors, which memcheck reports as API errors of the
# program; memory errors are still reported.
compute-sanitizer --tool memcheck --report-api-errors no .device/mx_nn_cuda_tests \
  --gtest_filter='NcclCommunicator.*:ShardedAdamWCuda.*:DataParallelTrainingCuda.*' \
  2>&1 | tee "$OUT/memcheck_nccl.log" | tail -3
section "quantizer tests"
.device/mx_cuda_tests --gtest_filter='-*SixteenGigabyte*' 2>&1 | tee "$OUT/quant_tests.log" |
  grep -E "^\[ +(FAILED|PASSED) +\]|Failure" | tail -10
section "mx train --device cuda"
run=$OUT/runs
rm -rf "$run"
for recipe in fp32 bf16 mxfp6; do
  .device/mx train --device cuda --model small --recipe "$recipe" --data tinyshakespeare \
    --steps 200 --batch 16 --seq-len 128 --eval-every 100 --out "$run/$recipe" --json -q 2>&1 |
    tee "$OUT/train_$recipe.json"
done
section "stop and resume on the GPU: the same losses and weights, bit for bit"
for recipe in bf16 mxfp4; do
  common=(--device cuda --model small --recipe "$recipe" --data tinyshakespeare --steps 30
          --batch 8 --seq-len 128 --eval-every 10 --checkpoint-every 7 -q)
  .device/mx train "${common[@]}" --out "$run/straight_$recipe"
  .device/mx train "${common[@]}" --out "$run/resumed_$recipe" --stop-at 12
  .device/mx train --device cuda --out "$run/resumed_$recipe" --resume -q
  if diff <(cut -d, -f1-5 "$run/straight_$recipe/log.csv") \
       <(cut -d, -f1-5 "$run/resumed_$recipe/log.csv") >/dev/null &&
     cmp -s "$run/straight_$recipe/model.safetensors" "$run/resumed_$recipe/model.safetensors"; then
    echo "$recipe: resumed run identical"
  else
    echo "$recipe: RESUMED RUN DIFFERS"
  fi
done
.device/mx generate "$run/bf16" --device cuda --prompt "ROMEO:" --tokens 60 2>&1 | tee "$OUT/generate.txt"
section "PyTorch baseline, the same shapes"
bench=${BENCH:-bench/torch/gpt2_train_speed.py}
python3 "$bench" --model small --batch 16 --seq-len 128 2>&1 | tee "$OUT/torch_small.json"
python3 "$bench" --model gpt2-124m --batch 16 --seq-len 1024 --precision bf16 2>&1 |
  tee "$OUT/torch_gpt2.json"
if [ -x .device/cuda_attention ]; then
  section "attention beside PyTorch's flash SDPA (build-cuda/bench/cuda/cuda_attention)"
  .device/cuda_attention --batch 16 2>&1 | tee "$OUT/attention.jsonl"
  python3 bench/torch/sdpa_speed.py --batch 16 2>&1 | tee -a "$OUT/attention.jsonl"
fi
section "GPT-2 124M, T=1024, batch 16: mx bench train"
for recipe in bf16 mxfp6 mxfp4w-mxfp6a mxfp4; do
  timeout 300 .device/mx bench train --device cuda --model gpt2-124m --recipe "$recipe" \
    --batch 16 --steps 10 --warmup 3 --json 2>&1 | tee "$OUT/bench_gpt2_$recipe.json"
done
section "GPT-2 124M: cuBLASLt's algorithms tuned once (--tune-products), then a run given the file"
for recipe in bf16 mxfp6; do
  algorithms=$OUT/product_algorithms_$recipe.txt
  timeout 300 .device/mx bench train --device cuda --model gpt2-124m --recipe "$recipe" \
    --batch 16 --steps 10 --warmup 3 --tune-products "$algorithms" --json 2>&1 |
    tee "$OUT/bench_gpt2_${recipe}_tuning.json"
  timeout 300 .device/mx bench train --device cuda --model gpt2-124m --recipe "$recipe" \
    --batch 16 --steps 10 --warmup 3 --product-algorithms "$algorithms" --json 2>&1 |
    tee "$OUT/bench_gpt2_${recipe}_tuned.json"
done
