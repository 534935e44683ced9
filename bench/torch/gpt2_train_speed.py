#!/usr/bin/env python3
"""Training speed of a plain PyTorch GPT-2, the baseline for `mx train --device cuda`.

The model is the one mx trains (pre-norm blocks, learned positions, tanh GELU, biases, tied
embeddings), written the way a PyTorch user would: nn.Linear, fused scaled-dot-product
attention, torch.optim.AdamW (fused), bfloat16 autocast or float32, and torch.compile unless
--eager. Tokens are random: only the speed is measured. Prints one JSON line per precision:

  python3 bench/torch/gpt2_train_speed.py --model small --batch 16 --seq-len 128
  python3 bench/torch/gpt2_train_speed.py --model gpt2-124m --batch 8 --seq-len 1024
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # layers, width, heads, vocab: the same presets as `mx train --model`
    "tiny": (2, 64, 4, 256),
    "small": (4, 128, 4, 256),
    "gpt2-124m": (12, 768, 12, 50257),
}


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fc, self.fc_out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (y.view(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, layers, dim, heads, vocab, seq_len):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        for m in self.modules():  # GPT-2's initialisation: N(0, 0.02) weights, zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, tokens, targets):
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def measure(args, precision):
    layers, dim, heads, vocab = PRESETS[args.model]
    torch.manual_seed(0)
    model = Gpt2(layers, dim, heads, vocab, args.seq_len).cuda()
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
    return {
        "baseline": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "model": args.model,
        "precision": precision,
        "compiled": not args.eager,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "tokens_per_s": args.steps * args.batch * args.seq_len / seconds,
        "loss": loss.item(),
        "loss_at_init": math.log(vocab),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eager", action="store_true", help="without torch.compile")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    args = parser.parse_args()
    # float32 means float32: no TF32 tensor cores, as in `mx train --recipe fp32`.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for precision in ["fp32", "bf16"] if args.precision == "both" else [args.precision]:
        print(json.dumps(measure(args, precision)), flush=True)


if __name__ == "__main__":
    main()
