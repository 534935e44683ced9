"""mxkit.gptq and mxkit.hessian: one linear weight quantized by error diffusion against the
Hessian of its inputs, as `mx ptq` quantizes each layer, for weights and inputs the caller
holds."""
import os
import tempfile
import unittest

import numpy as np

import mxkit


def layer(seed=0, tokens=256, k=64, n=16):
    """Correlated inputs of unequal energy and a small Gaussian weight."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((k // 2, k)).astype(np.float32)
    x = rng.standard_normal((tokens, k // 2)).astype(np.float32) @ mix
    x *= (1 + np.arange(k) % 7).astype(np.float32)
    w = (0.05 * rng.standard_normal((n, k))).astype(np.float32)
    return x, w


def output_error(x, w, q):
    return float(np.linalg.norm(x.astype(np.float64) @ (w.astype(np.float64) - q).T))


class Gptq(unittest.TestCase):
    def test_hessian_is_x_transposed_times_x(self):
        x, _ = layer()
        h = mxkit.hessian(x)
        want = x.astype(np.float64).T @ x.astype(np.float64)
        self.assertEqual(h.dtype, np.float32)
        self.assertEqual(h.shape, (64, 64))
        np.testing.assert_allclose(h, want, rtol=1e-4, atol=1e-2 * np.abs(want).max() * 1e-4)
        np.testing.assert_array_equal(h, h.T)

    def test_with_the_identity_hessian_it_is_quantize_bit_for_bit(self):
        _, w = layer(1)
        eye = np.eye(w.shape[1], dtype=np.float32)
        for spec in ({"format": "mxfp4_e2m1"}, {"format": "mxint4", "block": 16, "asym": True},
                     {"format": "mxfp6_e2m3", "scale": "even"}, {"format": "mxfp8_e4m3"}):
            direct = mxkit.quantize(w, **spec)
            for order in ("natural", "act-blocks", "act-columns"):
                q = mxkit.gptq(w, eye, order=order, refine=2, **spec)
                np.testing.assert_array_equal(q.packed, direct.packed, err_msg=str(spec))
                np.testing.assert_array_equal(q.scales(), direct.scales(), err_msg=str(spec))

    def test_lowers_the_output_error_below_direct_cast_and_refinement_lowers_it_again(self):
        x, w = layer(2)
        h = mxkit.hessian(x)
        for fmt in ("mxfp4_e2m1", "mxint4", "mxfp6_e2m3", "mxfp8_e4m3"):
            direct = output_error(x, w, mxkit.quantize(w, fmt).dequantize())
            diffused = output_error(x, w, mxkit.gptq(w, h, fmt).dequantize())
            self.assertLess(diffused, 0.8 * direct, fmt)
        plain = output_error(x, w, mxkit.gptq(w, h).dequantize())
        refined = output_error(x, w, mxkit.gptq(w, h, refine=3).dequantize())
        self.assertLess(refined, 0.99 * plain)

    def test_the_result_is_an_mx_array_that_saves_and_loads(self):
        x, w = layer(3)
        q = mxkit.gptq(w, mxkit.hessian(x), "mxfp4_e2m1", order="act-columns",
                       scale_choice="search")
        self.assertEqual(q.shape, w.shape)
        self.assertEqual(q.spec["format"], "mxfp4_e2m1")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "w.safetensors")
            mxkit.save(path, {"w": q})
            back = mxkit.load(path)["w"]
        np.testing.assert_array_equal(back.packed, q.packed)
        np.testing.assert_array_equal(back.scales(), q.scales())
        np.testing.assert_array_equal(back.dequantize(), q.dequantize())

    def test_bad_arguments_are_one_line_errors(self):
        x, w = layer(4)
        h = mxkit.hessian(x)
        cases = [
            (ValueError, lambda: mxkit.gptq(w, h[:3]), "64 x 64"),
            (ValueError, lambda: mxkit.gptq(w[0], h), "2-D"),
            (ValueError, lambda: mxkit.gptq(w, h, order="sideways"), "order"),
            (ValueError, lambda: mxkit.gptq(w, h, scale_choice="best"), "scale_choice"),
            (ValueError, lambda: mxkit.gptq(w, h, damp=-1), "dampening"),
            (ValueError, lambda: mxkit.gptq(w, h, round="stochastic", refine=1), "nearest"),
            (ValueError, lambda: mxkit.gptq(w, h, "mxfp5"), "mxfp5"),
            (TypeError, lambda: mxkit.gptq(w, h, bogus=1), "bogus"),
        ]
        for error, call, words in cases:
            with self.assertRaises(error) as e:
                call()
            self.assertIn(words, str(e.exception))
            self.assertNotIn("\n", str(e.exception))


if __name__ == "__main__":
    unittest.main()
