"""fake_quantize is dequantize(quantize(x)) in x's own dtype, and the decoders' 16-bit outputs
are the float32 values rounded once, to nearest even."""
import unittest

import numpy as np

import mxkit
from helpers import ROUNDINGS, bits, half, varied


def round_to_bfloat16_bits(f32):
    """float32 -> bfloat16 bits, round to nearest even, NaN kept quiet: written from the format."""
    u = f32.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f32)
    rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


class FakeQuantize(unittest.TestCase):
    def test_equals_dequantize_of_quantize_in_every_format_and_dtype(self):
        x = varied(seed=11)
        inputs = {
            "float32": (x, None),
            "float16": (half(x), None),
            "bfloat16": (round_to_bfloat16_bits(x), "bfloat16"),
        }
        for f in mxkit.formats():
            for rnd in ROUNDINGS:
                for name, (v, dtype) in inputs.items():
                    fake = mxkit.fake_quantize(v, f, round=rnd, seed=5, dtype=dtype)
                    full = mxkit.quantize(v, f, round=rnd, seed=5, dtype=dtype).dequantize(name)
                    self.assertEqual(fake.dtype, v.dtype, f"{f} {name}")
                    self.assertEqual(fake.shape, v.shape)
                    np.testing.assert_array_equal(bits(fake), bits(full), f"{f} {rnd} {name}")

    def test_tiles_and_offsets_too(self):
        x = varied(rows=16, cols=48, seed=12)
        for kwargs in [dict(tile=(4, 4)), dict(asym=True), dict(block=8, axis=0, asym=True)]:
            fake = mxkit.fake_quantize(x, "mxint4", **kwargs)
            np.testing.assert_array_equal(
                bits(fake), bits(mxkit.quantize(x, "mxint4", **kwargs).dequantize()), kwargs)


class DecodedDtypes(unittest.TestCase):
    def test_bfloat16_output_is_float32_output_rounded_to_nearest_even(self):
        for f in ["mxfp8_e5m2", "mxint8", "mxfp6_e3m2"]:
            a = mxkit.quantize(varied(seed=13), f, asym=True)  # offsets make values off bf16
            got = a.dequantize("bfloat16")
            np.testing.assert_array_equal(got.view(np.uint16),
                                          round_to_bfloat16_bits(a.dequantize()), f)

    def test_float16_output_is_float32_output_rounded_by_numpy(self):
        a = mxkit.quantize(varied(seed=14), "mxint8", asym=True)
        with np.errstate(over="ignore"):
            want = a.dequantize().astype(np.float16)
        np.testing.assert_array_equal(bits(a.dequantize(np.float16)), bits(want))


if __name__ == "__main__":
    unittest.main()
