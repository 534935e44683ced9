#!/usr/bin/env python3
"""Speed of mxkit.torch.MXWeightOnlyLinear beside the bfloat16 nn.Linear it replaces, in the same
process, at the small batches of decoding: weight [N, K] (Llama-7B-sized by default) times x
[M, K] for M = 1 to 64. Two timings of each: CUDA events around 10 calls in a row from Python
(median of 15 samples after 3 warm-ups), and 10 calls replayed from a CUDA graph, which leaves
out Python's time per call. One JSON line per row:

  PYTHONPATH=build/python python3 bench/torch/weight_only_speed.py
"""
import argparse
import json

import torch

import cuda_timing
import mxkit.torch as mxt


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4096x4096,11008x4096,4096x11008",
                        help="N x K of the weights")
    parser.add_argument("--rows", default="1,4,16,64", help="M, the rows of x")
    parser.add_argument("--formats", default="mxfp4_e2m1,mxfp6_e3m2,mxfp8_e4m3")
    args = parser.parse_args()
    if not mxt.CUDA_KERNELS:
        raise SystemExit("weight_only_speed: error: the module was built without CUDA")
    torch.manual_seed(0)
    for shape in args.shapes.split(","):
        n, k = (int(d) for d in shape.split("x"))
        dense = torch.nn.Linear(k, n, bias=False, device="cuda", dtype=torch.bfloat16)
        layers = {f: mxt.MXWeightOnlyLinear.from_linear(dense, f) for f in args.formats.split(",")}
        for m in (int(r) for r in args.rows.split(",")):
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            with torch.no_grad():
                dense_ms = cuda_timing.median_ms(lambda: dense(x), reps=15, calls=10)
                dense_graph_ms = cuda_timing.graph_median_ms(lambda: dense(x), reps=15)
                for fmt, layer in layers.items():
                    ms = cuda_timing.median_ms(lambda: layer(x), reps=15, calls=10)
                    graph_ms = cuda_timing.graph_median_ms(lambda: layer(x), reps=15)
                    print(json.dumps({
                        "format": fmt, "n": n, "k": k, "m": m,
                        "graph_ms": round(graph_ms, 4), "bf16_graph_ms": round(dense_graph_ms, 4),
                        "graph_speedup_vs_bf16": round(dense_graph_ms / graph_ms, 3),
                        "eager_ms": round(ms, 4), "bf16_eager_ms": round(dense_ms, 4),
                        "eager_speedup_vs_bf16": round(dense_ms / ms, 3),
                        "device": torch.cuda.get_device_name(), "torch": torch.__version__}),
                        flush=True)


if __name__ == "__main__":
    main()
