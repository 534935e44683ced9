"""scaled_dot_product_attention with the operands of its products cast per recipe role.

The two forward products and four backward products cast their operands as `mx train` does
(mx/nn/cpu/attention.cpp; docs/NUMERICS.md), each along its own reduction axis. On tensors of
[batch, heads, T, head size]:

    product              reduces over  operand  role          blocks along
    S  = Q Kᵀ · scale    head dim      Q, K     act_fwd       head dim
    O  = P V             keys          P        act_fwd       keys
                                       V        act_fwd       T
    dP = dO Vᵀ           head dim      dO       grad_out_dx   head dim
                                       V        act_dw        head dim
    dV = Pᵀ dO           queries       P        act_dw        queries
                                       dO       grad_out_dw   T
    dQ = dS K · scale    keys          dS       grad_out_dx   keys
                                       K        act_dw        T
    dK = dSᵀ Q · scale   queries       dS       grad_out_dw   queries
                                       Q        act_dw        T

The softmax and its gradient use P before its casts. K and V may have fewer heads than Q
(grouped-query attention): they are cast with their own heads, and their gradients summed over
each group. The T x T matrices are formed in full: this emulates the numerics, it is not a fused
kernel.
"""

import functools
import math

import torch

from mxkit.torch.roles import as_recipe, cast, role_spec

# Role and block axis of each cast, in the order _AttentionFunction takes them.
_CASTS = (("act_fwd", -1),      # Q and K for S
          ("act_fwd", -1),      # P for O
          ("act_fwd", -2),      # V for O
          ("grad_out_dx", -1),  # dO for dP
          ("act_dw", -1),       # V for dP
          ("act_dw", -2),       # P for dV
          ("grad_out_dw", -2),  # dO for dV
          ("grad_out_dx", -1),  # dS for dQ
          ("act_dw", -2),       # K for dQ, Q for dK
          ("grad_out_dw", -2))  # dS for dK


def _expand(t, group):
    return t if group == 1 else t.repeat_interleave(group, dim=1)


def _fold(t, group):
    """The sum over each group of query heads: [B, H, T, D] -> [B, H / group, T, D]."""
    if group == 1:
        return t
    b, h, n, d = t.shape
    return t.view(b, h // group, group, n, d).sum(2)


class _AttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, attn_mask, is_causal, scale, specs):
        group = q.shape[1] // k.shape[1]
        s = cast(q, specs[0]) @ _expand(cast(k, specs[0]), group).transpose(-2, -1) * scale
        if attn_mask is not None:
            # PyTorch's meaning: a boolean mask says which keys take part, a float one is added.
            if attn_mask.dtype == torch.bool:
                s = s.masked_fill(~attn_mask, float("-inf"))
            else:
                s = s + attn_mask
        if is_causal:
            t, tk = s.shape[-2], s.shape[-1]
            future = torch.ones(t, tk, dtype=torch.bool, device=s.device).triu(1)
            s = s.masked_fill(future, float("-inf"))
        # The softmax in at least float32, as PyTorch's own attention takes it.
        p = torch.softmax(s, dim=-1, dtype=torch.promote_types(s.dtype, torch.float32))
        p = p.to(q.dtype)
        out = cast(p, specs[1]) @ _expand(cast(v, specs[2]), group)
        ctx.save_for_backward(q, k, v, p)
        ctx.scale, ctx.specs, ctx.group = scale, specs, group
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, p = ctx.saved_tensors
        specs, scale, group = ctx.specs, ctx.scale, ctx.group
        dout = dout.to(q.dtype)
        dp = cast(dout, specs[3]) @ _expand(cast(v, specs[4]), group).transpose(-2, -1)
        dv = _fold(cast(p, specs[5]).transpose(-2, -1) @ cast(dout, specs[6]), group)
        ds = p * (dp - (p * dp).sum(-1, keepdim=True)) * scale
        dq = cast(ds, specs[7]) @ _expand(cast(k, specs[8]), group)
        dk = _fold(cast(ds, specs[9]).transpose(-2, -1) @ cast(q, specs[8]), group)
        return dq, dk, dv, None, None, None, None


def attention_specs(recipe):
    """The cast specs scaled_dot_product_attention takes for a recipe (a preset name, JSON text
    or file, or mxkit.recipe's dict). Compute them once, outside code that torch.compile
    traces: reading a recipe is a call into the C++ module, which it cannot trace."""
    r = as_recipe(recipe)
    # A recipe with bf16_attention leaves attention in bfloat16: its MX casts become roundings
    # to bfloat16 there, as in mx's engine (mx/nn/recipe.h, attention_recipe).
    def role(name):
        c = r[name]
        return "bf16" if r.get("bf16_attention") and isinstance(c, dict) else c

    return tuple(role_spec(role(name), axis) for name, axis in _CASTS)


def scaled_dot_product_attention(q, k, v, recipe="mxfp6", attn_mask=None, is_causal=False,
                                 scale=None):
    """softmax(Q Kᵀ · scale + mask) V for q [B, H, T, D] and k, v [B, H / g, Tk, D], each
    product's operands cast per `recipe` (a recipe, or attention_specs(recipe)); scale defaults
    to 1 / sqrt(D). attn_mask and the causal mask mean what they mean to PyTorch's
    scaled_dot_product_attention: a boolean mask keeps the keys where it is True, a float mask
    is added to the scores, and under is_causal query i sees keys 0 to i."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k and v must be [batch, heads, T, head size]")
    if k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} do not fit q "
                         f"{tuple(q.shape)}")
    if q.shape[1] % k.shape[1] != 0:
        raise ValueError(f"{q.shape[1]} query heads are not groups of {k.shape[1]} key heads")
    specs = recipe if isinstance(recipe, tuple) else attention_specs(recipe)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return _AttentionFunction.apply(q, k, v, attn_mask, bool(is_causal), scale, specs)


# PyTorch's own, which cast_attention_calls replaces (2.0 and later).
_TORCH_SDPA = getattr(torch.nn.functional, "scaled_dot_product_attention", None)


class _AttentionCasts(torch.overrides.TorchFunctionMode):
    """While active, calls of torch.nn.functional.scaled_dot_product_attention run the MX one."""

    def __init__(self, specs):
        super().__init__()
        self.specs = specs

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not _TORCH_SDPA:
            return func(*args, **kwargs)
        return _from_torch_call(self.specs, *args, **kwargs)


def _from_torch_call(specs, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                     scale=None, enable_gqa=False):
    if dropout_p:
        raise ValueError("attention dropout is not cast by mxkit: use dropout_p=0 "
                         "(or the model's eval mode) under MX attention casts")
    return scaled_dot_product_attention(query, key, value, specs, attn_mask, is_causal, scale)


def cast_attention_calls(model, recipe):
    """Makes model.forward run every torch.nn.functional.scaled_dot_product_attention call it
    makes as scaled_dot_product_attention under `recipe` (the model's modules are left as they
    are). Calling it again replaces the recipe."""
    if _TORCH_SDPA is None:
        raise ValueError(f"PyTorch {torch.__version__} has no scaled_dot_product_attention "
                         "whose calls could be cast (2.0 and later)")
    already = getattr(model, "_mx_attention_specs", None) is not None
    model._mx_attention_specs = attention_specs(recipe)
    if not already:
        # A partial over the model, not a closure: a deep copy of the model then calls itself.
        model.forward = functools.partial(_forward_with_attention_casts, model)
    return model


def _forward_with_attention_casts(model, *args, **kwargs):
    with _AttentionCasts(model._mx_attention_specs):
        return type(model).forward(model, *args, **kwargs)
