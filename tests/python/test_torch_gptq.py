"""mxkit.torch.gptq_: a PyTorch model's linear weights quantized by error diffusion, layer after
layer on the inputs the already-quantized layers before produce. Skipped with the reason where
PyTorch cannot be imported (Debian: python3-torch)."""
import unittest

import numpy as np

import mxkit
from torch_helpers import mxt, requires_torch, torch


def model_and_batches(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.GELU(),
                                torch.nn.Linear(96, 32)).eval()
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((16, 64)).astype(np.float32)
    batches = [torch.from_numpy(rng.standard_normal((32, 16)).astype(np.float32) @ mix)
               for _ in range(6)]
    return model, batches


def output_error(model, reference, batches):
    with torch.no_grad():
        return sum(float(((model(b) - reference(b)) ** 2).sum()) for b in batches)


def copy_of(model):
    clone, _ = model_and_batches()
    clone.load_state_dict(model.state_dict())
    return clone


@requires_torch
class TorchGptq(unittest.TestCase):
    def test_the_model_is_closer_to_its_original_than_after_a_direct_cast(self):
        original, batches = model_and_batches()
        direct, diffused = copy_of(original), copy_of(original)
        with torch.no_grad():
            for m in direct.modules():
                if isinstance(m, torch.nn.Linear):
                    q = mxkit.quantize(m.weight.numpy(), "mxfp4_e2m1")
                    m.weight.copy_(torch.from_numpy(q.dequantize()))
        mxt.gptq_(diffused, batches, "mxfp4_e2m1")
        self.assertLess(output_error(diffused, original, batches),
                        0.8 * output_error(direct, original, batches))

    def test_it_returns_the_blocks_the_layers_now_hold_in_forward_order(self):
        model, batches = model_and_batches(1)
        q = mxt.gptq_(model, batches, "mxint4", order="act-columns", refine=1)
        self.assertEqual(list(q), ["0", "2"])
        for name, a in q.items():
            self.assertEqual(a.spec["format"], "mxint4")
            np.testing.assert_array_equal(a.dequantize(), dict(model.named_modules())[name]
                                          .weight.detach().numpy())

    def test_the_first_layer_is_gptq_of_the_calibration_inputs(self):
        model, batches = model_and_batches(2)
        w = model[0].weight.detach().numpy().copy()
        h = sum(mxkit.hessian(b.numpy()).astype(np.float64) for b in batches)
        want = mxkit.gptq(w, h.astype(np.float32), "mxfp4_e2m1")
        got = mxt.gptq_(model, batches, "mxfp4_e2m1")["0"]
        np.testing.assert_array_equal(got.packed, want.packed)
        np.testing.assert_array_equal(got.scales(), want.scales())

    def test_layers_that_read_one_tensor_share_one_pass_and_one_hessian(self):
        torch.manual_seed(4)

        class TwoHeads(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q, self.k = torch.nn.Linear(64, 32), torch.nn.Linear(64, 32)
                self.out = torch.nn.Linear(32, 8)

            def forward(self, x):
                return self.out(torch.relu(self.q(x)) * self.k(x))

        model = TwoHeads().eval()
        _, batches = model_and_batches(4)
        calls = []

        def forward(m, b):
            calls.append(1)
            return m(b)

        w_k = model.k.weight.detach().numpy().copy()
        q = mxt.gptq_(model, batches, forward=forward)
        self.assertEqual(list(q), ["q", "k", "out"])
        # One pass to find the order, one for {q, k}, one for out.
        self.assertEqual(len(calls), 3 * len(batches))
        h = sum(mxkit.hessian(b.numpy()).astype(np.float64) for b in batches)
        np.testing.assert_array_equal(q["k"].packed, mxkit.gptq(w_k, h.astype(np.float32)).packed)

    def test_filter_fn_leaves_layers_alone_and_bad_calibration_is_refused(self):
        model, batches = model_and_batches(3)
        before = model[2].weight.detach().clone()
        q = mxt.gptq_(model, batches, filter_fn=lambda m, name: name == "0")
        self.assertEqual(list(q), ["0"])
        self.assertTrue(torch.equal(model[2].weight, before))
        with self.assertRaises(TypeError):
            mxt.gptq_(model, iter(batches))
        unused = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Linear(8, 8))
        with self.assertRaises(ValueError) as e:
            mxt.gptq_(unused, batches, forward=lambda m, b: m[0](b))
        self.assertIn("never reach 1", str(e.exception))


if __name__ == "__main__":
    unittest.main()
