"""mxkit.torch.scaled_dot_product_attention: each of attention's six products reads its
operands cast per recipe role along its own reduction axis (the table of docs/NUMERICS.md),
and without casts it is softmax attention with its exact gradient. Skipped with the reason
where PyTorch cannot be imported (Debian: python3-torch)."""
import copy
import unittest

import numpy as np

import mxkit
from torch_helpers import mxt, requires_torch, torch


def cast(a, role, axis):
    """a (float32 numpy) cast per a recipe role by the numpy module, blocks along `axis`."""
    if role is None:
        return a
    return mxkit.fake_quantize(np.ascontiguousarray(a), axis=axis, **role)


def reference(q, k, v, dout, recipe, causal):
    """Attention and its gradients head by head in float64 numpy, from operands cast as
    docs/NUMERICS.md's table says (q, dout [B, H, T, D]; k, v [B, Hkv, T, D])."""
    r = mxkit.recipe(recipe)
    fwd, dw, gx, gw = r["act_fwd"], r["act_dw"], r["grad_out_dx"], r["grad_out_dw"]
    b, h, t, d = q.shape
    g = h // k.shape[1]
    scale = 1.0 / np.sqrt(d)
    q_f, k_f, v_f = cast(q, fwd, -1), cast(k, fwd, -1), cast(v, fwd, -2)
    do_x, v_dw, do_w = cast(dout, gx, -1), cast(v, dw, -1), cast(dout, gw, -2)
    k_dw, q_dw = cast(k, dw, -2), cast(q, dw, -2)
    s = np.einsum("bhid,bhjd->bhij", q_f.astype(np.float64),
                  np.repeat(k_f, g, axis=1).astype(np.float64)) * scale
    if causal:
        s = np.where(np.triu(np.ones((t, t), bool), 1), -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    out = np.einsum("bhij,bhjd->bhid", cast(p, fwd, -1), np.repeat(v_f, g, axis=1))
    dp = np.einsum("bhid,bhjd->bhij", do_x, np.repeat(v_dw, g, axis=1))
    dv = np.einsum("bhij,bhid->bhjd", cast(p, dw, -2), do_w)
    ds = (p * (dp - (p * dp).sum(-1, keepdims=True)) * scale).astype(np.float32)
    dq = np.einsum("bhij,bhjd->bhid", cast(ds, gx, -1), np.repeat(k_dw, g, axis=1))
    dk = np.einsum("bhij,bhid->bhjd", cast(ds, gw, -2), q_dw)
    fold = lambda a: a.reshape(b, h // g, g, t, d).sum(2)  # noqa: E731
    return out, dq, fold(dk), fold(dv)


@requires_torch
class TorchAttention(unittest.TestCase):
    def run_both(self, recipe, heads, kv_heads, causal, seed):
        rng = np.random.default_rng(seed)
        shape = (2, heads, 64, 32)
        q = rng.standard_normal(shape).astype(np.float32)
        k = rng.standard_normal((2, kv_heads, 64, 32)).astype(np.float32)
        v = rng.standard_normal((2, kv_heads, 64, 32)).astype(np.float32)
        dout = rng.standard_normal(shape).astype(np.float32)
        qt, kt, vt = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        out = mxt.scaled_dot_product_attention(qt, kt, vt, recipe, is_causal=causal)
        out.backward(torch.from_numpy(dout))
        got = (out.detach(), qt.grad, kt.grad, vt.grad)
        return got, reference(q, k, v, dout, recipe, causal)

    def test_every_product_reads_its_operands_cast_per_role_and_axis(self):
        for recipe, heads, kv_heads, causal in (("mxfp6", 4, 4, True), ("mxfp4", 4, 2, True),
                                                ("mxfp4w-mxfp6a", 2, 1, False),
                                                ("mxint8", 2, 2, True)):
            got, want = self.run_both(recipe, heads, kv_heads, causal, seed=heads + kv_heads)
            for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
                np.testing.assert_allclose(g.numpy(), w, rtol=2e-4, atol=2e-5,
                                           err_msg=f"{recipe} {name}")

    def test_the_casts_change_the_result(self):
        got_fp32, _ = self.run_both("fp32", 2, 2, True, seed=9)
        got_mx, _ = self.run_both("mxfp4", 2, 2, True, seed=9)
        for a, b in zip(got_fp32, got_mx):
            self.assertGreater(float((a - b).abs().max()), 1e-3)

    def test_a_recipe_that_leaves_attention_in_bfloat16_rounds_instead_of_casting(self):
        rng = np.random.default_rng(5)
        q, k, v, dout = (torch.from_numpy(rng.standard_normal((2, 2, 64, 32)).astype(np.float32))
                         for _ in range(4))

        def attention(recipe):
            qt, kt, vt = (a.clone().requires_grad_() for a in (q, k, v))
            out = mxt.scaled_dot_product_attention(qt, kt, vt, recipe, is_causal=True)
            out.backward(dout)
            return out.detach(), qt.grad, kt.grad, vt.grad

        got = attention('{"default": "mxfp4_e2m1", "bf16_attention": true}')
        rounded = attention("bf16")
        cast = attention('{"default": "mxfp4_e2m1"}')
        for name, a, b, c in zip(("out", "dq", "dk", "dv"), got, rounded, cast):
            self.assertTrue(torch.equal(a, b), name)
            self.assertGreater(float((a - c).abs().max()), 1e-3, name)

    def test_without_casts_it_is_softmax_attention_with_its_exact_gradient(self):
        torch.manual_seed(0)
        q, k, v = (torch.randn(1, 2, 8, 4, dtype=torch.float64, requires_grad=True)
                   for _ in range(3))
        fn = lambda q, k, v: mxt.scaled_dot_product_attention(q, k, v, "fp32",  # noqa: E731
                                                              is_causal=True)
        scores = (q @ k.transpose(-2, -1)) / 2.0
        future = torch.ones(8, 8, dtype=torch.bool).triu(1)
        want = scores.masked_fill(future, float("-inf")).softmax(-1) @ v
        torch.testing.assert_close(fn(q, k, v), want)
        self.assertTrue(torch.autograd.gradcheck(fn, (q, k, v)))

    def test_masks_mean_what_they_mean_to_pytorch(self):
        torch.manual_seed(1)
        q, k, v = (torch.randn(1, 2, 8, 4, dtype=torch.float64) for _ in range(3))
        keep = torch.rand(8, 8) > 0.3
        keep[:, 0] = True  # every query keeps a key
        bias = torch.randn(8, 8, dtype=torch.float64)
        scores = (q @ k.transpose(-2, -1)) / 2.0
        for mask, masked in ((keep, scores.masked_fill(~keep, float("-inf"))),
                             (bias, scores + bias)):
            got = mxt.scaled_dot_product_attention(q, k, v, "fp32", attn_mask=mask)
            torch.testing.assert_close(got, masked.softmax(-1) @ v)

    def test_quantize_casts_the_models_attention_calls_only_when_asked(self):
        sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
        model = torch.nn.Sequential(torch.nn.Linear(32, 32))
        if sdpa is None:
            with self.assertRaisesRegex(ValueError, "no scaled_dot_product_attention"):
                mxt.quantize_(model, "mxfp6", attention=True)
            return

        class Attend(torch.nn.Module):
            def forward(self, q, k, v):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

        torch.manual_seed(2)
        q, k, v = (torch.randn(2, 4, 64, 32) for _ in range(3))
        want = mxt.scaled_dot_product_attention(q, k, v, "mxfp4", is_causal=True)
        plain = Attend()
        self.assertFalse(torch.equal(plain(q, k, v), want))
        cast = mxt.quantize_(Attend(), "mxfp4", attention=True)
        self.assertTrue(torch.equal(cast(q, k, v), want))
        self.assertTrue(torch.equal(mxt.quantize_(cast, "mxfp4", attention=True)(q, k, v),
                                    want))
        self.assertTrue(torch.equal(copy.deepcopy(cast)(q, k, v), want))
        mxt.cast_attention_calls(cast, "mxfp6")  # replaces the recipe
        self.assertTrue(torch.equal(
            cast(q, k, v), mxt.scaled_dot_product_attention(q, k, v, "mxfp6", is_causal=True)))
        dropout = lambda q, k, v: sdpa(q, k, v, dropout_p=0.1)  # noqa: E731
        with self.assertRaisesRegex(ValueError, "dropout"):
            with mxt.attention._AttentionCasts(mxt.attention_specs("mxfp4")):
                dropout(q, k, v)

    def test_bad_shapes_are_one_line_errors(self):
        x = torch.zeros(1, 4, 8, 32)
        with self.assertRaisesRegex(ValueError, "groups"):
            mxt.scaled_dot_product_attention(x, torch.zeros(1, 3, 8, 32),
                                             torch.zeros(1, 3, 8, 32))
        with self.assertRaisesRegex(ValueError, r"\[batch, heads, T, head size\]"):
            mxt.scaled_dot_product_attention(x[0], x[0], x[0])


if __name__ == "__main__":
    unittest.main()
