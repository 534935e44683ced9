#!/usr/bin/env python3
"""Training speed of a plain PyTorch GPT-2, the baseline for `mx train --device cuda`.

The model is the one mx trains (pre-norm blocks, learned positions, tanh GELU, biases, tied
embeddings; python/examples/nanogpt.py), written the way a PyTorch user would: nn.Linear, fused
scaled-dot-product attention, torch.optim.AdamW (fused), bfloat16 autocast or float32, and
torch.compile unless --eager. Tokens are random: only the speed is measured. Prints one JSON line
per precision:

  python3 bench/torch/gpt2_train_speed.py --model small --batch 16 --seq-len 128
  python3 bench/torch/gpt2_train_speed.py --model gpt2-124m --batch 8 --seq-len 1024
  python3 bench/torch/gpt2_train_speed.py --model gpt2-124m --batch 16 --seq-len 1024 \
      --precision bf16 --attention flash

With MX casts of the linear layers' operands, from mxkit or from the MX paper's library:

  PYTHONPATH=build/python python3 bench/torch/gpt2_train_speed.py --model gpt2-124m \
      --precision bf16 --mxkit mxfp6
  python3 bench/torch/gpt2_train_speed.py --model gpt2-124m --precision bf16 --eager \
      --microxcaling ~/src/microxcaling
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python",
                                "examples"))
from nanogpt import Gpt  # noqa: E402

PRESETS = {  # layers, width, heads, vocab: the same presets as `mx train --model`
    "tiny": (2, 64, 4, 256),
    "small": (4, 128, 4, 256),
    "gpt2-124m": (12, 768, 12, 50257),
}


# The MX paper library's MXFP6 training spec, as its examples/run_mxfp6.sh gives it (the backward
# pass quantized too, its default).
MICROXCALING_MXFP6 = {"w_elem_format": "fp6_e3m2", "a_elem_format": "fp6_e3m2", "scale_bits": 8,
                      "block_size": 32, "bfloat": 16, "custom_cuda": True}


def inject_microxcaling(checkout):
    """microxcaling's inject_pyt_ops: torch.nn's layers and functions replaced by its own, so
    that a model built afterwards runs under the MXFP6 spec."""
    sys.path.insert(0, os.path.abspath(checkout))
    from mx import finalize_mx_specs, mx_mapping

    mx_mapping.inject_pyt_ops(finalize_mx_specs(dict(MICROXCALING_MXFP6)))


# --attention: the one kernel family of scaled_dot_product_attention left enabled (the
# torch.backends.cuda.enable_*_sdp switches), or None for PyTorch's own choice.
ATTENTION_BACKENDS = {"auto": None, "flash": "flash", "cudnn": "cudnn",
                      "efficient": "mem_efficient"}


def measure(args, precision):
    layers, dim, heads, vocab = PRESETS[args.model]
    torch.manual_seed(0)
    model = Gpt(layers, dim, heads, vocab, args.seq_len).cuda()
    if args.mxkit:
        import mxkit.torch

        mxkit.torch.quantize_(model, args.mxkit)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    forward = model if args.eager else torch.compile(model)
    shape = (args.batch, args.seq_len)
    tokens = torch.randint(0, vocab, shape, device="cuda")
    targets = torch.randint(0, vocab, shape, device="cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            loss = forward(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if args.profile:
        print_kernel_times(step, args.profile)
    return {
        "baseline": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "model": args.model,
        "precision": precision,
        "compiled": not args.eager,
        "tf32": args.tf32,
        "attention": args.attention,
        "mx": f"mxkit {args.mxkit}" if args.mxkit else
              f"microxcaling {MICROXCALING_MXFP6}" if args.microxcaling else None,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "tokens_per_s": args.steps * args.batch * args.seq_len / seconds,
        "loss": loss.item(),
        "loss_at_init": math.log(vocab),
    }


def print_kernel_times(step, rows):
    """GPU time per kernel over one step (torch.profiler), the largest first, to stderr: the
    kernel-by-kernel comparison with `ncu --metrics gpu__time_duration.sum` on `mx bench train`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    totals = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            calls, us = totals.get(event.name, (0, 0.0))
            totals[event.name] = (calls + 1, us + event.device_time)
    all_us = sum(us for _, us in totals.values())
    print(f"one step: {all_us / 1000:.2f} ms of GPU time in {len(totals)} kernels",
          file=sys.stderr)
    for name, (calls, us) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:rows]:
        print(f"{us / 1000:8.3f} ms {calls:5d} x  {name[:110]}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eager", action="store_true", help="without torch.compile")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--mxkit", metavar="RECIPE",
                        help="cast the linear layers with mxkit.torch.quantize_(model, RECIPE)")
    parser.add_argument("--microxcaling", metavar="DIR",
                        help="a checkout of microxcaling: its inject_pyt_ops under its MXFP6 spec")
    parser.add_argument("--tf32", action="store_true",
                        help="float32 products on TF32 tensor cores (as `mx train --recipe tf32`)")
    parser.add_argument("--attention", choices=sorted(ATTENTION_BACKENDS), default="auto",
                        help="which of scaled_dot_product_attention's kernels may run: PyTorch's "
                             "own choice (auto: cuDNN's on Hopper), or only flash, cuDNN or "
                             "memory-efficient")
    parser.add_argument("--profile", type=int, metavar="ROWS", default=0,
                        help="also print the GPU time of the ROWS costliest kernels of one step")
    args = parser.parse_args()
    if args.microxcaling:
        inject_microxcaling(args.microxcaling)
    # float32 means float32: no TF32 tensor cores, as in `mx train --recipe fp32`, unless --tf32.
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    only = ATTENTION_BACKENDS[args.attention]
    if only:
        for name in ["flash", "cudnn", "mem_efficient", "math"]:
            getattr(torch.backends.cuda, f"enable_{name}_sdp")(name == only)
    for precision in ["fp32", "bf16"] if args.precision == "both" else [args.precision]:
        print(json.dumps(measure(args, precision)), flush=True)


if __name__ == "__main__":
    main()
