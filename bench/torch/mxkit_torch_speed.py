#!/usr/bin/env python3
"""Speed of mxkit.torch's operators on a CUDA tensor, beside a PyTorch copy of the same bytes in
the same process: fake-quantize, quantize, dual quantize and dequantize of a bfloat16 matrix
(16384 x 16384 by default). CUDA events around 10 calls in a row, median of 15 such samples after 3 warm-ups;
bandwidth counts bytes read and written (1 GB = 10^9 bytes). One JSON line per row:

  PYTHONPATH=build/python python3 bench/torch/mxkit_torch_speed.py
"""
import argparse
import json

import torch

import cuda_timing
import mxkit
import mxkit.torch as mxt


def median_ms(fn):
    return cuda_timing.median_ms(fn, reps=15, calls=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--cols", type=int, default=16384)
    parser.add_argument("--formats", default="mxfp8_e4m3,mxfp6_e3m2,mxfp4_e2m1,mxint8")
    args = parser.parse_args()
    if not mxt.CUDA_KERNELS:
        raise SystemExit("mxkit_torch_speed: error: the module was built without CUDA")
    x = torch.randn(args.rows, args.cols, device="cuda").to(torch.bfloat16)
    y = torch.empty_like(x)
    n = x.numel()
    copy_ms = median_ms(lambda: y.copy_(x))
    copy_gbs = 2 * 2 * n / copy_ms / 1e6

    def row(op, fmt, rnd, ms, nbytes):
        gbs = nbytes / ms / 1e6
        print(json.dumps({"op": op, "format": fmt, "round": rnd, "shape": [args.rows, args.cols],
                          "ms": round(ms, 4), "GB/s": round(gbs, 1), "copy_GB/s": round(copy_gbs, 1),
                          "fraction_of_copy": round(gbs / copy_gbs, 4),
                          "device": torch.cuda.get_device_name(), "torch": torch.__version__}),
              flush=True)

    for fmt in args.formats.split(","):
        packed = n * mxkit.formats()[fmt]["bits"] / 8 + n / 32  # bytes of codes and scales
        for rnd in ("nearest-even", "stochastic"):
            spec = mxt.casts.spec_json({"format": fmt, "round": rnd})
            row("fake_quantize", fmt, rnd,
                median_ms(lambda: torch.ops.mxkit.fake_quantize(x, spec)), 4 * n)
            row("quantize", fmt, rnd, median_ms(lambda: torch.ops.mxkit.quantize(x, spec)),
                2 * n + packed)
        spec = mxt.casts.spec_json({"format": fmt})
        row("quantize_dual", fmt, "nearest-even",
            median_ms(lambda: torch.ops.mxkit.quantize_dual(x, spec)), 2 * n + 2 * packed)
        parts = torch.ops.mxkit.quantize(x, spec)
        shape = list(x.shape)
        row("dequantize", fmt, "-", median_ms(
            lambda: torch.ops.mxkit.dequantize(*parts, shape, spec, torch.bfloat16)),
            packed + 2 * n)


if __name__ == "__main__":
    main()
