"""The layout converters against the layouts written out here in numpy from their definitions
(mx/core/layout_*.h): ggml's block_mxfp4, gpt-oss's blocks/scales and the 128x4 swizzle."""
import unittest

import numpy as np

import mxkit
from helpers import varied


def mxfp4(rows=6, cols=128, seed=31):
    return mxkit.quantize(varied(rows=rows, cols=cols, seed=seed), "mxfp4_e2m1")


class Ggml(unittest.TestCase):
    def test_block_is_scale_then_element_j_low_and_j_plus_16_high(self):
        a = mxfp4()
        codes = a.codes().reshape(6, 4, 32)
        want = np.concatenate(
            [a.scales()[..., None], codes[..., :16] | (codes[..., 16:] << 4)], axis=-1)
        got = mxkit.to_ggml_mxfp4(a)
        self.assertEqual(got.shape, (6, 4, 17))
        np.testing.assert_array_equal(got, want.astype(np.uint8))

    def test_from_ggml_gives_back_the_array(self):
        a = mxfp4(seed=32)
        b = mxkit.from_ggml_mxfp4(mxkit.to_ggml_mxfp4(a).ravel(), a.shape)
        self.assertEqual(b.packed.tobytes(), a.packed.tobytes())
        self.assertEqual(b.scales().tobytes(), a.scales().tobytes())

    def test_refuses_what_ggml_cannot_hold(self):
        with self.assertRaisesRegex(ValueError, "MXFP4 layout needs E2M1 elements, got e4m3"):
            mxkit.to_ggml_mxfp4(mxkit.quantize(np.ones((1, 32), np.float32), "mxfp8_e4m3"))
        with self.assertRaisesRegex(ValueError, "17 bytes per block"):
            mxkit.from_ggml_mxfp4(np.zeros(16, np.uint8), (1, 32))


class GptOss(unittest.TestCase):
    def test_blocks_hold_element_2i_in_the_low_nibble_of_byte_i(self):
        a = mxfp4(seed=33)
        codes = a.codes().reshape(6, 4, 32)
        blocks, scales = mxkit.to_gpt_oss(a)
        self.assertEqual(blocks.shape, (6, 4, 16))
        np.testing.assert_array_equal(blocks, codes[..., 0::2] | (codes[..., 1::2] << 4))
        np.testing.assert_array_equal(scales, a.scales())
        b = mxkit.from_gpt_oss(blocks, scales)
        self.assertEqual(b.packed.tobytes(), a.packed.tobytes())
        self.assertEqual(b.shape, a.shape)

    def test_mismatched_pair_is_refused(self):
        blocks, scales = mxkit.to_gpt_oss(mxfp4(seed=34))
        with self.assertRaises(ValueError):
            mxkit.from_gpt_oss(blocks, scales[:3])
        with self.assertRaisesRegex(TypeError, "uint8"):
            mxkit.from_gpt_oss(blocks.astype(np.int16), scales)


def swizzled(scales):
    """The 128x4 layout from its definition: pad to 128-row, 4-column multiples; tiles in
    row-major order; scale (r, c) of a tile at byte (r % 32) * 16 + (r // 32) * 4 + c."""
    rows, cols = scales.shape
    pr, pc = -(-rows // 128) * 128, -(-cols // 4) * 4
    padded = np.zeros((pr, pc), np.uint8)
    padded[:rows, :cols] = scales
    # r = 128 i + 32 a + b, c = 4 j + d  ->  order (i, j, b, a, d)
    return padded.reshape(pr // 128, 4, 32, pc // 4, 4).transpose(0, 3, 2, 1, 4).ravel()


class Swizzle(unittest.TestCase):
    def test_matrices_of_several_sizes(self):
        rng = np.random.default_rng(35)
        for rows, cols in [(1, 1), (128, 4), (130, 7), (300, 12), (5, 33)]:
            s = rng.integers(0, 256, size=(rows, cols), dtype=np.uint8)
            got = mxkit.swizzle_scales(s)
            np.testing.assert_array_equal(got, swizzled(s), f"{rows}x{cols}")
            np.testing.assert_array_equal(mxkit.unswizzle_scales(got, rows, cols), s)

    def test_an_mx_array_flattens_leading_axes_into_rows(self):
        a = mxkit.quantize(varied(rows=10, cols=160, seed=36).reshape(2, 5, 160), "mxfp8_e4m3")
        np.testing.assert_array_equal(mxkit.swizzle_scales(a), swizzled(a.scales().reshape(10, 5)))

    def test_wrong_sizes(self):
        with self.assertRaisesRegex(ValueError, "2-D"):
            mxkit.swizzle_scales(np.zeros(4, np.uint8))
        with self.assertRaises(ValueError):
            mxkit.unswizzle_scales(np.zeros(100, np.uint8), 1, 1)


if __name__ == "__main__":
    unittest.main()
