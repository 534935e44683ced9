"""Hugging Face's Conv1D (GPT-2's linear layers: y = x W + b with W stored [in, out]) is a linear
layer to quantize_, quantize_weights_ and gptq_: each treats it exactly as the nn.Linear whose
weight is its transpose. The stand-in below behaves as transformers' class; the last test uses
transformers' own GPT-2 where transformers can be imported."""
import unittest

from torch_helpers import WHY, mxt, requires_torch, torch

try:
    import transformers
except ImportError:
    transformers = None


if torch is not None:
    class Conv1D(torch.nn.Module):
        """y = x W + b, W [nx, nf]: transformers' Conv1D as GPT-2 uses it."""

        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = torch.nn.Parameter(torch.randn(nx, nf) * 0.5)
            self.bias = torch.nn.Parameter(torch.randn(nf) * 0.1)

        def forward(self, x):
            out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
            return out.reshape(*x.shape[:-1], self.nf)


def twins(sizes, seed):
    """Two models of the same function: Conv1D layers, and nn.Linear layers holding their
    transposed weights, with ReLUs between."""
    torch.manual_seed(seed)
    convs, linears = [], []
    for nx, nf in zip(sizes, sizes[1:]):
        conv = Conv1D(nf, nx)
        linear = torch.nn.Linear(nx, nf)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.t())
            linear.bias.copy_(conv.bias)
        convs += [conv, torch.nn.ReLU()]
        linears += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*convs[:-1]), torch.nn.Sequential(*linears[:-1])


def assert_same(test, got, want, what):
    test.assertTrue(torch.equal(got, want), f"{what}: {(got - want).abs().max().item()}")


@requires_torch
class Conv1DTest(unittest.TestCase):
    def test_quantize_casts_a_conv1d_as_the_linear_of_its_transpose_forward_and_backward(self):
        conv_model, linear_model = twins([64, 96, 48], seed=1)
        mxt.quantize_(conv_model, "mxfp6")
        mxt.quantize_(linear_model, "mxfp6")
        self.assertIsInstance(conv_model[0], mxt.MXConv1D)
        x = torch.randn(3, 5, 64)
        xc, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
        yc, yl = conv_model(xc), linear_model(xl)
        assert_same(self, yc, yl, "forward")
        dy = torch.randn_like(yc)
        yc.backward(dy)
        yl.backward(dy)
        assert_same(self, xc.grad, xl.grad, "dx")
        for c, lin in ((conv_model[0], linear_model[0]), (conv_model[2], linear_model[2])):
            assert_same(self, c.weight.grad, lin.weight.grad.t(), "dW")
            assert_same(self, c.bias.grad, lin.bias.grad, "db")

    def test_quantize_keeps_the_parameters_and_the_state_dict(self):
        conv_model, _ = twins([64, 32], seed=2)
        weight, bias = conv_model[0].weight, conv_model[0].bias
        before = {k: tuple(v.shape) for k, v in conv_model.state_dict().items()}
        mxt.quantize_(conv_model, "mxfp8")
        self.assertIs(conv_model[0].weight, weight)
        self.assertIs(conv_model[0].bias, bias)
        self.assertEqual({k: tuple(v.shape) for k, v in conv_model.state_dict().items()}, before)

    def test_quantize_weights_stores_a_conv1d_as_the_linear_of_its_transpose(self):
        conv_model, linear_model = twins([64, 96], seed=3)
        mxt.quantize_weights_(conv_model, "mxfp4_e2m1")
        mxt.quantize_weights_(linear_model, "mxfp4_e2m1")
        self.assertIsInstance(conv_model[0], mxt.MXWeightOnlyLinear)
        assert_same(self, conv_model[0].dequantized_weight(),
                    linear_model[0].dequantized_weight(), "stored weight")
        x = torch.randn(4, 64)
        assert_same(self, conv_model(x), linear_model(x), "output")

    def test_gptq_quantizes_a_conv1d_as_the_linear_of_its_transpose(self):
        conv_model, linear_model = twins([64, 96, 32], seed=4)
        batches = [torch.randn(16, 64) for _ in range(3)]
        from_conv = mxt.gptq_(conv_model, batches, "mxfp4_e2m1")
        from_linear = mxt.gptq_(linear_model, batches, "mxfp4_e2m1")
        self.assertEqual(list(from_conv), ["0", "2"])
        for name in from_conv:
            self.assertEqual(bytes(from_conv[name].packed), bytes(from_linear[name].packed), name)
            self.assertEqual(bytes(from_conv[name].scales()), bytes(from_linear[name].scales()),
                             name)
        for i in (0, 2):
            assert_same(self, conv_model[i].weight, linear_model[i].weight.t(), f"layer {i}")

    def test_other_modules_named_conv1d_are_left_alone(self):
        look_alike = type("Conv1D", (torch.nn.Module,), {})()  # no nf, no weight
        model = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3), look_alike)
        mxt.quantize_(model, "mxfp6")
        mxt.quantize_weights_(model, "mxfp4_e2m1")
        self.assertIs(type(model[0]), torch.nn.Conv1d)
        self.assertIs(model[1], look_alike)

    @unittest.skipIf(transformers is None, "transformers cannot be imported")
    def test_hugging_face_gpt2_has_every_linear_layer_quantized(self):
        config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=32,
                                         vocab_size=100)
        model = transformers.GPT2LMHeadModel(config).eval()
        keys = list(model.state_dict())
        tokens = torch.randint(0, 100, (2, 16))
        with torch.no_grad():
            before = model(tokens).logits
        layers = [type(m).__name__ for m in model.modules()
                  if type(m).__name__ == "Conv1D" or type(m) is torch.nn.Linear]
        self.assertGreaterEqual(len(layers), 9)  # 4 per block and the classifier
        mxt.quantize_(model, "mxfp4")
        kinds = [type(m).__name__ for m in model.modules()]
        self.assertEqual(kinds.count("MXConv1D"), layers.count("Conv1D"))
        self.assertEqual(kinds.count("MXLinear"), layers.count("Linear"))
        self.assertNotIn("Conv1D", kinds)
        self.assertEqual(list(model.state_dict()), keys)
        with torch.no_grad():
            after = model(tokens).logits
        self.assertTrue(torch.isfinite(after).all())
        self.assertFalse(torch.equal(after, before))


if __name__ == "__main__":
    unittest.main()
