#!/usr/bin/env python3
"""Speed of mxkit.torch.mx_matmul on a GPU beside PyTorch's bfloat16 matmul of the same shape in
the same process: D [M, N] = A [M, K] · B [N, K]ᵀ from two MxTensors (bfloat16 out), against
a_bf16 @ b_bf16.T. CUDA events around 50 calls in a row (enough that the GPU's queue stays full
and Python's time per call hides behind the GPU's), median of 15 samples after 3 warm-ups;
TFLOP/s counts 2·M·N·K. Also the CPU's time per call ("host_us"): where it exceeds the GPU's,
a loop of these calls runs at the CPU's pace. One JSON line per shape and pair of formats, with
the route taken:

  PYTHONPATH=build/python python3 bench/torch/mx_matmul_speed.py
"""
import argparse
import json

import torch

import cuda_timing
import mxkit.torch as mxt

# The square shape and GPT-2 124M's and a Llama's training shapes (tokens x out x in).
SHAPES = "8192,8192,8192;16384,2304,768;16384,3072,768;16384,768,3072;8192,11008,4096"
PAIRS = "mxfp8_e4m3:mxfp8_e4m3,mxfp6_e3m2:mxfp6_e3m2,mxfp4_e2m1:mxfp4_e2m1,mxfp8_e4m3:mxfp4_e2m1"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=SHAPES, help="M,N,K;M,N,K;...")
    parser.add_argument("--pairs", default=PAIRS, help="A format:B format,...")
    parser.add_argument("--calls", type=int, default=50, help="calls timed in a row per sample")
    args = parser.parse_args()
    if args.calls < 1:
        raise SystemExit("mx_matmul_speed: error: --calls must be at least 1")

    def median_ms(fn):
        return cuda_timing.median_ms(fn, reps=15, calls=args.calls)

    if not torch.cuda.is_available():
        raise SystemExit("mx_matmul_speed: error: no CUDA device")
    for shape in args.shapes.split(";"):
        m, n, k = (int(v) for v in shape.split(","))
        a = torch.randn(m, k, device="cuda")
        b = torch.randn(n, k, device="cuda")
        a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
        flops = 2.0 * m * n * k
        bf16_ms = median_ms(lambda: a16 @ b16.t())
        for pair in args.pairs.split(","):
            fa, fb = pair.split(":")
            qa, qb = mxt.quantize(a, fa), mxt.quantize(b, fb)

            def product():
                return mxt.mx_matmul(qa, qb, out_dtype=torch.bfloat16)

            mx_ms = median_ms(product)
            print(json.dumps({
                "shape": [m, n, k], "a": fa, "b": fb,
                "route": mxt.mx_matmul_route(qa, qb, out_dtype=torch.bfloat16),
                "mx_ms": round(mx_ms, 4), "mx_tflops": round(flops / mx_ms / 1e9, 1),
                "mx_host_us": round(cuda_timing.host_us_per_call(product), 1),
                "bf16_ms": round(bf16_ms, 4), "bf16_tflops": round(flops / bf16_ms / 1e9, 1),
                "bf16_host_us": round(cuda_timing.host_us_per_call(lambda: a16 @ b16.t()), 1),
                "ratio_to_bf16": round(bf16_ms / mx_ms, 3), "calls": args.calls,
                "device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
