"""mxkit.torch under torch.compile: the operators trace without graph breaks, and compiled
models give eager mode's results. On a CUDA device when there is one (and the module has the
CUDA kernels), else on the CPU. Skipped with the reason where PyTorch has no torch.compile
(Debian's 1.13)."""
import os
import sys
import unittest

from torch_helpers import WHY, mxt, torch

if WHY is None and not hasattr(torch, "compile"):
    WHY = f"PyTorch {torch.__version__} has no torch.compile (2.0 and later)"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python",
                                "examples"))


def device():
    return "cuda" if torch.cuda.is_available() and mxt.CUDA_KERNELS else "cpu"


def requires_compile(cls):
    return unittest.skipIf(WHY is not None, WHY or "")(cls)


@requires_compile
class TorchCompile(unittest.TestCase):
    def setUp(self):
        torch._dynamo.reset()

    def test_the_operators_compile_into_one_graph_with_eager_results(self):
        def casts(x):
            q = mxt.quantize(x * 2, "mxfp4_e2m1", round="stochastic", seed=3)
            rows, cols = mxt.quantize_dual(x, "mxfp6_e3m2")
            return (mxt.fake_quantize(x, "mxint8", axis=0) + q.dequantize(torch.bfloat16),
                    rows.dequantize() - cols.dequantize())

        x = torch.randn(128, 96, device=device(), dtype=torch.bfloat16)
        compiled = torch.compile(casts, fullgraph=True)
        for got, want in zip(compiled(x), casts(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)

    def test_a_compiled_mlp_of_mx_linears_matches_eager_with_its_gradients(self):
        torch.manual_seed(5)
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(),
                                    torch.nn.Linear(256, 64)).to(device())
        mxt.quantize_(model, "mxfp6")
        compiled = torch.compile(model, fullgraph=True)
        x = torch.randn(32, 64, device=device())
        y_eager = model(x)
        y_eager.square().mean().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        y = compiled(x)
        y.square().mean().backward()
        # The casts see equal inputs up to the GELU, which inductor may round differently by an
        # ulp; a changed cast moves one product term by one step of the element grid.
        torch.testing.assert_close(y, y_eager, rtol=2e-2, atol=2e-3)
        for p, g in zip(model.parameters(), grads):
            torch.testing.assert_close(p.grad, g, rtol=5e-2, atol=1e-3)

    def test_mx_attention_and_mx_matmul_compile_into_one_graph(self):
        torch.manual_seed(6)
        q, k, v = (torch.randn(2, 4, 64, 32, device=device(), requires_grad=True)
                   for _ in range(3))

        specs = mxt.attention_specs("mxfp6")  # the recipe read outside the traced code

        def attend(q, k, v):
            return mxt.scaled_dot_product_attention(q, k, v, specs, is_causal=True)

        def product(a, b):
            return mxt.mx_matmul(mxt.quantize(a, "mxfp8_e4m3"), mxt.quantize(b, "mxfp4_e2m1"))

        out = torch.compile(attend, backend="aot_eager", fullgraph=True)(q, k, v)
        grads = torch.autograd.grad(out.square().sum(), (q, k, v))
        want = attend(q, k, v)
        want_grads = torch.autograd.grad(want.square().sum(), (q, k, v))
        for got, expected in zip((out, *grads), (want, *want_grads)):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
        a, b = torch.randn(64, 96, device=device()), torch.randn(32, 96, device=device())
        torch.testing.assert_close(torch.compile(product, fullgraph=True)(a, b), product(a, b),
                                   rtol=0, atol=0)

    def test_nanogpt_trains_50_steps_compiled_with_the_eager_losses(self):
        from nanogpt import Gpt, train

        text = open(__file__, "rb").read() * 4
        data = torch.frombuffer(bytearray(text), dtype=torch.uint8)
        losses = {}
        for backend in (None, "aot_eager", "inductor"):
            torch._dynamo.reset()
            torch.manual_seed(0)
            model = Gpt(2, 64, 4, 256, 64).to(device())
            mxt.quantize_(model, "mxfp6")
            losses[backend] = train(model, data, 50, batch=8, seq_len=64, device=device(),
                                    backend=backend)
        eager = losses[None]
        # Traced but run by the same kernels: the same losses, bit for bit.
        self.assertEqual(losses["aot_eager"], eager)
        # Inductor's own kernels round some float32 sums differently; under MX casts an input
        # that moves across a rounding boundary moves its code by one step, and the runs drift.
        diffs = [abs(a - b) for a, b in zip(eager, losses["inductor"])]
        print(f"\n  nanoGPT under mxfp6 on {device()}: eager {eager[0]:.4f} -> {eager[-1]:.4f}, "
              f"inductor -> {losses['inductor'][-1]:.4f}; |difference| at steps 0, 1, 5, 10, "
              f"25, 49: {', '.join(f'{diffs[i]:.1e}' for i in (0, 1, 5, 10, 25, 49))}; largest "
              f"{max(diffs):.2e}", file=sys.stderr)
        self.assertLess(eager[-1], eager[0] - 1.0)
        self.assertLess(diffs[0], 1e-3)
        self.assertLess(max(diffs), 0.1)


if __name__ == "__main__":
    unittest.main()
