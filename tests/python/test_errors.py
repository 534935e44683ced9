"""Bad arguments raise ValueError with the message `mx cast` prints for the same mistake, or
TypeError for a value of the wrong type."""
import unittest

import numpy as np

import mxkit
from helpers import Scratch, mx_error


class SameMessageAsMxCast(unittest.TestCase):
    def test_bad_values(self):
        scratch = Scratch(self)
        x = np.ones((4, 64), np.float32)
        src = scratch.path("x.npy")
        np.save(src, x)
        cases = [
            (dict(format="mxfp9"), ["--format", "mxfp9"]),
            (dict(block=0), ["--block", "0"]),
            (dict(block=2**40), ["--block", str(2**40)]),
            (dict(block=2**21), ["--block", str(2**21)]),
            (dict(tile=(4, 0)), ["--tile", "4x0"]),
            (dict(tile="4by4"), ["--tile", "4by4"]),
            (dict(tile=""), ["--tile", ""]),
            (dict(tile=(2, 2), block=16), ["--tile", "2x2", "--block", "16"]),
            (dict(tile=(2, 2), axis=0), ["--tile", "2x2", "--axis", "0"]),
            (dict(scale="round"), ["--scale", "round"]),
            (dict(round="up"), ["--round", "up"]),
            (dict(seed=-1), ["--seed", "-1"]),
            (dict(seed=2**64), ["--seed", str(2**64)]),
            (dict(preset="cublas"), ["--preset", "cublas"]),
        ]
        for kwargs, flags in cases:
            with self.subTest(kwargs=kwargs):
                want = mx_error("cast", src, "-o", scratch.path("y.npy"), *flags)
                with self.assertRaises(ValueError) as e:
                    mxkit.quantize(x, **kwargs)
                self.assertEqual(str(e.exception), want)
                with self.assertRaises(ValueError) as e:
                    mxkit.fake_quantize(x, **kwargs)
                self.assertEqual(str(e.exception), want)

    def test_array_that_does_not_fit_the_spec(self):
        scratch = Scratch(self)
        x = np.ones((4, 6), np.float32)
        src = scratch.path("x.npy")
        np.save(src, x)
        for kwargs, flags in [(dict(axis=2), ["--axis", "2"]), (dict(axis=-3), ["--axis", "-3"]),
                              (dict(tile=(8, 2)), ["--tile", "8x2"])]:
            want = mx_error("cast", src, "-o", scratch.path("y.npy"), *flags)
            with self.assertRaises(ValueError) as e:
                mxkit.quantize(x, **kwargs)
            self.assertEqual(src + ": " + str(e.exception), want)  # mx names its input file


class WrongTypes(unittest.TestCase):
    def test_values_of_the_wrong_type(self):
        x = np.ones(32, np.float32)
        for kwargs, message in [
            (dict(block="32"), "block must be an int, not str"),
            (dict(block=True), "block must be an int, not bool"),
            (dict(axis=1.0), "axis must be an int, not float"),
            (dict(format=4), "format must be a str, not int"),
            (dict(tile=[1, 2, 3]), "tile must be (rows, cols) or 'RxC', not list"),
            (dict(dtype="int8"), "dtype 'int8' is not float32, float16 or bfloat16"),
        ]:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(TypeError) as e:
                    mxkit.quantize(x, **kwargs)
                self.assertEqual(str(e.exception), message)

    def test_arrays_that_cannot_be_quantized(self):
        for x, message in [
            ([1.0, 2.0], "x must be a numpy array, not list"),
            (np.ones(4),
             "dtype float64 cannot be quantized (expected float32, float16 or bfloat16)"),
            (np.ones(4, np.uint16), "dtype uint16 cannot be quantized (expected float32, float16 "
                                    "or bfloat16; for bfloat16 bits held as uint16 pass "
                                    "dtype='bfloat16')"),
            (np.ones(4, ">f4"), "x is big-endian (expected native little-endian values)"),
        ]:
            with self.subTest(x=x):
                with self.assertRaises(TypeError) as e:
                    mxkit.quantize(x)
                self.assertEqual(str(e.exception), message)
        with self.assertRaisesRegex(TypeError, "does not describe an array of float32"):
            mxkit.quantize(np.ones(4, np.float32), dtype="bfloat16")

    def test_dequantize_dtype(self):
        a = mxkit.quantize(np.ones(32, np.float32))
        with self.assertRaisesRegex(TypeError, "'int32' is not float32, float16 or bfloat16"):
            a.dequantize(np.int32)


if __name__ == "__main__":
    unittest.main()
