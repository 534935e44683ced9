"""MXWeightOnlyLinear and torch.ops.mxkit.weight_only_matmul: a weight stored in MX weight tiles
multiplies x rounded to bfloat16, as the float32 product with the dequantized weight would; on a
Hopper GPU through mxkit's weight-only kernel, which sums in another order."""
import copy
import unittest

from torch_helpers import WHY, mxt, requires_torch, torch

FORMATS = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8"]


def linear(n=40, k=200, seed=0, bias=True):
    torch.manual_seed(seed)
    return torch.nn.Linear(k, n, bias=bias)


def reference(layer, x, fmt):
    """x rounded to bfloat16 times the fake-quantized weight, plus the bias, in float32."""
    w = mxt.fake_quantize(layer.weight.detach().float(), fmt)
    y = x.to(torch.bfloat16).float() @ w.t()
    return y + layer.bias.float() if layer.bias is not None else y


@requires_torch
class WeightOnlyOnTheCpu(unittest.TestCase):
    def test_layer_equals_bfloat16_input_times_the_fake_quantized_weight(self):
        for fmt in FORMATS:
            layer = linear(seed=1)
            q = mxt.MXWeightOnlyLinear.from_linear(layer, fmt)
            x = torch.randn(3, 5, 200)
            with torch.no_grad():
                got = q(x)
            self.assertEqual(got.shape, (3, 5, 40))
            self.assertTrue(torch.equal(got, reference(layer, x, fmt)), fmt)

    def test_stored_weight_is_the_quantized_weight(self):
        layer = linear(n=33, k=70, seed=2)
        q = mxt.MXWeightOnlyLinear.from_linear(layer, "mxfp6_e2m3", round="stochastic", seed=9)
        want = mxt.fake_quantize(layer.weight.detach(), "mxfp6_e2m3", round="stochastic", seed=9)
        self.assertTrue(torch.equal(q.dequantized_weight(), want))
        code_bytes, scale_bytes = q.codes.numel(), q.scales.numel()
        self.assertEqual((code_bytes, scale_bytes), (48 * 256 * 6 // 8, 48 * 8))

    def test_output_keeps_the_input_dtype(self):
        layer = linear(seed=3, bias=False)
        q = mxt.MXWeightOnlyLinear.from_linear(layer, "mxfp4_e2m1")
        x = torch.randn(4, 200)
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            with torch.no_grad():
                got = q(x.to(dtype))
            self.assertEqual(got.dtype, dtype)
            self.assertTrue(torch.equal(got, reference(layer, x.to(dtype), "mxfp4_e2m1")
                                        .to(dtype)), dtype)

    def test_gradients_reach_the_input_and_the_bias(self):
        layer = linear(seed=4)
        q = mxt.MXWeightOnlyLinear.from_linear(layer, "mxfp8_e4m3")
        x = torch.randn(6, 200, requires_grad=True)
        dy = torch.randn(6, 40)
        q(x).backward(dy)
        w = q.dequantized_weight()
        self.assertTrue(torch.allclose(x.grad, dy @ w, rtol=1e-6, atol=1e-6))
        self.assertTrue(torch.allclose(layer.bias.grad, dy.sum(0), rtol=1e-6, atol=1e-6))

    def test_quantize_weights_swaps_only_the_chosen_linears(self):
        model = torch.nn.Sequential(linear(n=64, k=32), torch.nn.ReLU(), linear(n=16, k=64))
        mxt.quantize_weights_(model, "mxint8", filter_fn=lambda m, name: name == "2")
        self.assertIs(type(model[0]), torch.nn.Linear)
        self.assertIsInstance(model[2], mxt.MXWeightOnlyLinear)
        self.assertEqual(model[2].format, "mxint8")

    def test_bad_operands_are_refused_with_their_names(self):
        q = mxt.MXWeightOnlyLinear.from_linear(linear(seed=5), "mxfp4_e2m1")
        with self.assertRaisesRegex(ValueError, r"does not end in the weight's 200 input features"):
            q(torch.randn(2, 199))
        with self.assertRaisesRegex(ValueError, "codes must be .* uint8 bytes"):
            torch.ops.mxkit.weight_only_matmul(torch.randn(2, 200), q.codes[1:], q.scales,
                                               [40, 200], "mxfp4_e2m1", None)
        with self.assertRaisesRegex(ValueError, "bias must be 40 values"):
            torch.ops.mxkit.weight_only_matmul(torch.randn(2, 200), q.codes, q.scales,
                                               [40, 200], "mxfp4_e2m1", torch.zeros(39))
        with self.assertRaisesRegex(TypeError, "cannot be quantized"):
            q(torch.randn(2, 200, dtype=torch.float64))
        with self.assertRaisesRegex(TypeError, "asym"):
            mxt.MXWeightOnlyLinear.from_linear(linear(seed=6), "mxfp4_e2m1", asym=True)


CUDA_WHY = WHY or (None if torch.cuda.is_available() else "no CUDA device")


@unittest.skipIf(CUDA_WHY is not None, CUDA_WHY or "")
class WeightOnlyOnTheGpu(unittest.TestCase):
    def test_gpu_product_matches_the_cpus_up_to_the_order_of_sums(self):
        for fmt in FORMATS:
            layer = linear(n=300, k=520, seed=7)
            cpu = mxt.MXWeightOnlyLinear.from_linear(layer, fmt)
            gpu = mxt.MXWeightOnlyLinear.from_linear(copy.deepcopy(layer).cuda(), fmt)
            self.assertTrue(torch.equal(gpu.codes.cpu(), cpu.codes), fmt)
            for rows in (1, 7, 64, 150):
                for dtype in (torch.float32, torch.bfloat16):
                    x = torch.randn(rows, 520).to(dtype)
                    with torch.no_grad():
                        want, got = cpu(x), gpu(x.cuda())
                    where = f"{fmt} rows {rows} {dtype}"
                    self.assertEqual((got.dtype, got.device.type), (dtype, "cuda"), where)
                    tol = 1e-2 if dtype == torch.bfloat16 else 1e-4
                    torch.testing.assert_close(got.cpu(), want, rtol=tol, atol=tol, msg=where)

    def test_layer_replays_from_a_cuda_graph(self):
        layer = mxt.MXWeightOnlyLinear.from_linear(linear(n=96, k=256, seed=9).cuda(), "mxfp6_e3m2")
        x = torch.randn(4, 256, device="cuda")
        with torch.no_grad():
            eager = layer(x)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = layer(x)
            x.copy_(torch.randn(4, 256))
            graph.replay()
            self.assertTrue(torch.equal(out, layer(x)))
            self.assertFalse(torch.equal(out, eager))

    def test_compiled_layer_matches_eager(self):
        if not hasattr(torch, "compile"):
            self.skipTest(f"torch {torch.__version__} has no torch.compile")
        model = torch.nn.Sequential(linear(n=256, k=512), torch.nn.GELU(),
                                    linear(n=128, k=256, seed=8)).cuda().bfloat16()
        mxt.quantize_weights_(model, "mxfp4_e2m1")
        x = torch.randn(16, 512, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            eager = model(x)
            compiled = torch.compile(model, fullgraph=True)(x)
        self.assertTrue(torch.equal(compiled, eager))


if __name__ == "__main__":
    unittest.main()
