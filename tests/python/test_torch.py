"""mxkit.torch: the casts of PyTorch tensors are mxkit's own bits, gradients pass straight
through them, and MXLinear's three products read their operands cast per recipe role. Skipped
with the reason where PyTorch cannot be imported (Debian: python3-torch)."""
import unittest

import numpy as np

import mxkit
from helpers import ROUNDINGS, bits, varied
from torch_helpers import mxt, requires_torch, torch


def cast(t, role, axis):
    """t (a float32 tensor) cast per a recipe role with the numpy module: the independent side."""
    if role is None:
        return t.numpy()
    return mxkit.fake_quantize(t.numpy(), axis=axis, **role)


@requires_torch
class TorchFakeQuantize(unittest.TestCase):
    def test_equals_the_numpy_module_bit_for_bit_in_every_format_and_dtype(self):
        x = torch.from_numpy(varied(seed=21))
        for f in mxkit.formats():
            for rnd in ROUNDINGS:
                for axis in (-1, 0):
                    want = mxkit.fake_quantize(x.numpy(), f, round=rnd, seed=3, axis=axis)
                    got = mxt.fake_quantize(x, f, round=rnd, seed=3, axis=axis)
                    self.assertEqual(got.dtype, torch.float32)
                    np.testing.assert_array_equal(bits(got.numpy()), bits(want), f"{f} {rnd}")
        xb = x.to(torch.bfloat16)
        want = mxkit.fake_quantize(xb.view(torch.int16).numpy().view(np.uint16), "mxfp6_e3m2",
                                   dtype="bfloat16")
        got = mxt.fake_quantize(xb, "mxfp6_e3m2")
        self.assertEqual(got.dtype, torch.bfloat16)
        np.testing.assert_array_equal(got.view(torch.int16).numpy().view(np.uint16), want)
        xh = x.to(torch.float16)
        np.testing.assert_array_equal(
            mxt.fake_quantize(xh, "mxfp4_e2m1").numpy(),
            mxkit.fake_quantize(xh.numpy(), "mxfp4_e2m1"))

    def test_passes_the_gradient_straight_through(self):
        x = torch.from_numpy(varied(seed=22)).requires_grad_()
        upstream = torch.from_numpy(varied(seed=23))
        mxt.fake_quantize(x, "mxfp4_e2m1").backward(upstream)
        np.testing.assert_array_equal(x.grad.numpy(), upstream.numpy())

    def test_is_an_operator_with_a_shape_only_meta_kernel(self):
        y = torch.ops.mxkit.fake_quantize(torch.empty(3, 64, device="meta"), '{"format": "mxint8"}')
        self.assertEqual((y.device.type, tuple(y.shape)), ("meta", (3, 64)))

    def test_bad_arguments_raise_the_modules_one_line_errors(self):
        x = torch.zeros(2, 32)
        with self.assertRaisesRegex(ValueError, "format"):
            mxt.fake_quantize(x, "mxfp5")
        with self.assertRaisesRegex(TypeError, "unknown spec keyword"):
            mxt.fake_quantize(x, "mxint8", blocks=32)
        with self.assertRaisesRegex(TypeError, "cannot be quantized"):
            mxt.fake_quantize(x.to(torch.float64), "mxint8")


@requires_torch
class TorchMxLinear(unittest.TestCase):
    def test_products_read_each_operand_cast_per_its_recipe_role(self):
        torch.manual_seed(0)
        for name in ("mxfp6", "mxfp4", "mxfp4w-mxfp6a"):
            r = mxkit.recipe(name)
            layer = mxt.MXLinear(64, 96, recipe=name)
            x = torch.randn(2, 16, 64, requires_grad=True)
            dy = torch.randn(2, 16, 96)
            y = layer(x)
            y.backward(dy)
            x2, w, dy2 = x.detach().reshape(32, 64), layer.weight.detach(), dy.reshape(32, 96)
            want_y = cast(x2, r["act_fwd"], -1) @ cast(w, r["weight_fwd"], -1).T
            want_dx = cast(dy2, r["grad_out_dx"], -1) @ cast(w, r["weight_dx"], 0)
            want_dw = cast(dy2, r["grad_out_dw"], 0).T @ cast(x2, r["act_dw"], 0)
            tol = dict(rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(
                y.detach().reshape(32, 96).numpy() - layer.bias.detach().numpy(), want_y, **tol)
            np.testing.assert_allclose(x.grad.reshape(32, 64).numpy(), want_dx, **tol)
            np.testing.assert_allclose(layer.weight.grad.numpy(), want_dw, **tol)
            np.testing.assert_allclose(layer.bias.grad.numpy(), dy2.sum(0).numpy(), **tol)

    def test_under_fp32_it_is_nn_linear(self):
        torch.manual_seed(1)
        ref = torch.nn.Linear(32, 8)
        mx = mxt.MXLinear.from_linear(ref, "fp32")
        x = torch.randn(5, 32)
        np.testing.assert_array_equal(mx(x).detach().numpy(), ref(x).detach().numpy())
        xd = torch.randn(3, 32, dtype=torch.float64, requires_grad=True)
        lin = mxt.MXLinear(32, 4, recipe="fp32").double()
        self.assertTrue(torch.autograd.gradcheck(lin, (xd,)))

    def test_quantize_swaps_linear_layers_in_place_sharing_their_parameters(self):
        torch.manual_seed(2)
        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(),
                                    torch.nn.Sequential(torch.nn.Linear(64, 32)))
        weight = model[0].weight
        mxt.quantize_(model, "mxfp6", filter_fn=lambda m, name: name != "2.0")
        self.assertIsInstance(model[0], mxt.MXLinear)
        self.assertIs(model[0].weight, weight)
        self.assertIs(type(model[2][0]), torch.nn.Linear)

    def test_quantize_refuses_a_recipe_that_keeps_the_classifier_in_bfloat16(self):
        model = torch.nn.Sequential(torch.nn.Linear(32, 64))
        with self.assertRaises(ValueError) as e:
            mxt.quantize_(model, '{"default": "mxfp6_e3m2", "bf16_classifier": true}')
        self.assertIn("bf16_classifier", str(e.exception))
        self.assertNotIn("\n", str(e.exception))
        self.assertIs(type(model[0]), torch.nn.Linear)

    def test_a_small_model_trains_under_mxfp6(self):
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(),
                                    torch.nn.Linear(64, 4))
        mxt.quantize_(model, "mxfp6")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        x = torch.randn(64, 32)
        target = x[:, :4] * 2.0
        losses = []
        for _ in range(50):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.assertLess(losses[-1], 0.2 * losses[0])


@requires_torch
class TorchFromMicroxcaling(unittest.TestCase):
    def test_an_mxfp6_spec_maps_to_the_mxfp6_recipe_with_its_rounding(self):
        specs = {"w_elem_format": "fp6_e3m2", "a_elem_format": "fp6_e3m2", "block_size": 32,
                 "scale_bits": 8, "round": "even", "bfloat": 16, "custom_cuda": True,
                 "quantize_backprop": True}
        ours = mxt.from_microxcaling(specs)
        preset = mxkit.recipe("mxfp6")
        for role in ("weight_fwd", "act_fwd", "grad_out_dx", "weight_dx", "grad_out_dw",
                     "act_dw"):
            self.assertEqual(ours[role], preset[role], role)
        self.assertTrue(ours["bf16_vector_ops"])

    def test_backward_fields_and_refusals(self):
        specs = {"w_elem_format": "fp4_e2m1", "a_elem_format": "fp6_e3m2",
                 "a_elem_format_bp_ex": "fp4_e3m0", "block_size": 32, "round": "nearest"}
        ours = mxt.from_microxcaling(specs)
        self.assertEqual(ours["weight_fwd"]["format"], "mxfp4_e2m1")
        self.assertEqual(ours["weight_dx"]["format"], "mxfp4_e2m1")
        self.assertEqual(ours["grad_out_dw"]["format"], "mxfp4_e3m0")
        self.assertEqual(ours["act_dw"]["round"], "nearest-away")
        no_backprop = mxt.from_microxcaling({**specs, "quantize_backprop": False})
        self.assertIsNone(no_backprop["grad_out_dx"])
        for bad in ({"block_size": 0}, {"scale_bits": 5}, {"w_elem_format": "fp3"}):
            with self.assertRaises(ValueError):
                mxt.from_microxcaling({**specs, **bad})


if __name__ == "__main__":
    unittest.main()
