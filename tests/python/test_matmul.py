"""MxArray.matmul: x @ W.T from W's packed blocks equals the float32 product of x and the
dequantized W (exactly where every partial sum is exact), in every element format; fast mode
stays within a small relative error; bad arguments are one-line errors."""
import unittest

import numpy as np

import mxkit


class MxArrayMatmul(unittest.TestCase):
    def test_exact_mode_is_the_float32_product_with_the_dequantized_weights(self):
        rng = np.random.default_rng(51)
        x = rng.standard_normal((3, 5, 96)).astype(np.float32)
        for f in mxkit.formats():
            w = mxkit.quantize(rng.standard_normal((40, 96)).astype(np.float32), f)
            want = x.astype(np.float64) @ w.dequantize().astype(np.float64).T
            got = w.matmul(x)
            self.assertEqual((got.dtype, got.shape), (np.float32, (3, 5, 40)))
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f)

    def test_exact_mode_is_exact_where_every_partial_sum_is(self):
        rng = np.random.default_rng(52)
        x = (rng.integers(-4, 5, (7, 64)) / 2.0).astype(np.float32)
        w = mxkit.quantize((rng.integers(-3, 4, (16, 64)) * 4.0).astype(np.float32), "mxint8")
        np.testing.assert_array_equal(w.matmul(x), x @ w.dequantize().T)
        one = w.matmul(x[0])
        self.assertEqual(one.shape, (16,))
        np.testing.assert_array_equal(one, w.matmul(x)[0])

    def test_fast_mode_stays_close(self):
        rng = np.random.default_rng(53)
        x = rng.standard_normal((4, 256)).astype(np.float32)
        w = mxkit.quantize(rng.standard_normal((64, 256)).astype(np.float32), "mxfp4_e2m1")
        want = x.astype(np.float64) @ w.dequantize().astype(np.float64).T
        got = w.matmul(x, mode="fast")
        self.assertLess(np.abs(got - want).max() / np.abs(want).max(), 0.02)

    def test_bad_arguments_are_one_line_errors(self):
        w = mxkit.quantize(np.ones((8, 64), np.float32), "mxint8")
        with self.assertRaisesRegex(ValueError, "K = 64"):
            w.matmul(np.ones((2, 32), np.float32))
        with self.assertRaisesRegex(ValueError, "mode"):
            w.matmul(np.ones(64, np.float32), mode="quick")
        with self.assertRaisesRegex(TypeError, "float16"):
            w.matmul(np.ones(64, np.float16))
        with self.assertRaises(ValueError):  # blocks down the columns: the library refuses
            mxkit.quantize(np.ones((8, 64), np.float32), "mxint8", axis=0).matmul(
                np.ones(64, np.float32))


if __name__ == "__main__":
    unittest.main()
