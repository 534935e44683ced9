#!/usr/bin/env python3
"""Causal attention speed of PyTorch's scaled_dot_product_attention (flash backend), the baseline
for bench/cuda/cuda_attention: the same shapes, bfloat16, the same FLOP count (causal half of
2 forward and 5 backward products), CUDA events, median of 20 repetitions. One JSON line each:

  python3 bench/torch/sdpa_speed.py --batch 8 --seq-len 1024
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from cuda_timing import median_ms


def run(name, b, t, nh, nkv, hs):
    gen = torch.Generator(device="cuda").manual_seed(0)

    def rand(heads):  # [B, heads, T, hs] as a transposed view of [B, T, heads, hs], as GPT-2 has it
        x = torch.rand(b, t, heads, hs, device="cuda", generator=gen) * 2 - 1
        return x.to(torch.bfloat16).transpose(1, 2).requires_grad_()

    q, k, v = rand(nh), rand(nkv), rand(nkv)
    dout = (torch.rand(b, nh, t, hs, device="cuda", generator=gen) * 2 - 1).to(torch.bfloat16)
    gqa = "native"

    def attend():
        if gqa == "native":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=nh != nkv)
        # Where the flash backend takes no grouped heads, a user repeats K and V per group.
        g = nh // nkv
        return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1),
                                              v.repeat_interleave(g, 1), is_causal=True)

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        try:
            out = attend()
        except RuntimeError:
            gqa = "repeated"
            out = attend()
        fwd = median_ms(attend)
        bwd = median_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
    product = 2.0 * t * t / 2 * hs * b * nh
    print(json.dumps({"shape": name, "recipe": "torch-sdpa-flash", "b": b, "t": t, "nh": nh,
                      "nkv": nkv, "hs": hs, "gqa": gqa, "forward_ms": round(fwd, 4),
                      "backward_ms": round(bwd, 4),
                      "forward_tflops": round(2 * product / fwd / 1e9, 1),
                      "backward_tflops": round(5 * product / bwd / 1e9, 1),
                      "torch": torch.__version__}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=1024)
    a = p.parse_args()
    run("gpt2", a.batch, a.seq_len, 12, 12, 64)
    run("llama-gqa", max(a.batch // 2, 1), a.seq_len, 32, 8, 128)


if __name__ == "__main__":
    main()
