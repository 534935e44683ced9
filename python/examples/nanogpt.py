#!/usr/bin/env python3
"""A nanoGPT-style language model trained under an MX recipe with mxkit.torch.quantize_.

Every nn.Linear becomes an MXLinear, whose three products read their operands cast per the
recipe (`mx train`'s presets, JSON text or a file); with --mx-attention attention's products
are cast too (mxkit.torch.scaled_dot_product_attention). Bytes of a text file are the tokens.

  python3 python/examples/nanogpt.py --text input.txt --recipe mxfp6 --steps 200
  python3 python/examples/nanogpt.py --text input.txt --recipe mxfp6 --device cuda --compile
  python3 python/examples/nanogpt.py --text input.txt --recipe mxfp4 --mx-attention

The model (pre-norm blocks, learned positions, tanh GELU, biases, tied embeddings) is the one
`mx train` trains; bench/torch/gpt2_train_speed.py times it at GPT-2 sizes.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def causal_attention(q, k, v):
    """softmax(q kᵀ / √d, causal) v: PyTorch's fused kernel where it has one (2.0 and later)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, dim, heads, attend=causal_attention):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fc, self.fc_out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (y.view(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))
        y = self.attend(q, k, v)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    """`attend(q, k, v)` is causal attention over [batch, heads, T, head size]."""

    def __init__(self, layers, dim, heads, vocab, seq_len, attend=causal_attention):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, attend) for _ in range(layers))
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


def batches(data, batch, seq_len, seed, device):
    """Endless (tokens, targets) batches of random windows of `data`, in a seeded order."""
    g = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=g)
        window = torch.stack([data[s:s + seq_len + 1] for s in starts.tolist()]).long()
        yield window[:, :-1].to(device), window[:, 1:].to(device)


def train(model, data, steps, batch=16, seq_len=64, lr=3e-3, seed=0, device="cpu",
          backend=None):
    """Trains `model` for `steps` AdamW steps, eagerly or through torch.compile with `backend`
    (one graph: a graph break is an error); returns the loss of each step."""
    forward = model if backend is None else torch.compile(model, backend=backend, fullgraph=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _, (tokens, targets) in zip(range(steps), batches(data, batch, seq_len, seed, device)):
        loss = forward(tokens, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def main():
    import mxkit.torch as mxt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", required=True, help="a text file; its bytes are the tokens")
    parser.add_argument("--recipe", default="mxfp6", help="mx train's --recipe (fp32: no casts)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="train through torch.compile")
    parser.add_argument("--mx-attention", action="store_true",
                        help="cast attention's products per the recipe too")
    args = parser.parse_args()
    try:
        with open(args.text, "rb") as f:
            data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    except OSError as e:
        sys.exit(f"nanogpt: error: cannot read --text {args.text}: {e.strerror}")
    if len(data) <= args.seq_len + 1:
        sys.exit(f"nanogpt: error: --text {args.text} is shorter than --seq-len + 2 bytes")
    torch.manual_seed(args.seed)
    try:
        attend = causal_attention
        if args.mx_attention:
            specs = mxt.attention_specs(args.recipe)

            def attend(q, k, v):
                return mxt.scaled_dot_product_attention(q, k, v, specs, is_causal=True)

        model = Gpt(args.layers, args.dim, args.heads, 256, args.seq_len, attend)
        mxt.quantize_(model.to(args.device), args.recipe)
    except ValueError as e:
        sys.exit(f"nanogpt: error: {e}")
    losses = train(model, data, args.steps, args.batch, args.seq_len, args.lr, args.seed,
                   args.device, "inductor" if args.compile else None)
    for step in range(0, args.steps, max(1, args.steps // 10)):
        print(f"step {step:5d}  loss {losses[step]:.4f}")
    print(f"{os.path.basename(args.text)}: {args.recipe}, {args.steps} steps, "
          f"final loss {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
