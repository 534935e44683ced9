"""The layout converters against the layouts written out here in numpy from their definitions
(mx/core/layout_*.h): ggml's block_mxfp4, gpt-oss's blocks/scales, the 128x4 swizzle and the
GPU's weight tiles."""
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


def weight_tile_positions(n, k):
    """Where each code (row, col) and each scale (row, block) of an [n, k] matrix lies in the
    weight tiles, from mx/core/layout_weight_tiles.h: tiles of 16 rows x 64 columns, each held
    lane after lane, lane l = 4r + q holding the pairs p = 8b + 4s + 2i + h; scales in groups of
    four tiles along K, byte 16r + 4u + 2b + h."""
    tile_cols = -(-k // 256) * 4
    rows, cols = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    rr, cc = rows % 16, cols % 64
    h, r = rr // 8, rr % 8
    b, s, i, q, e = cc // 32, cc % 32 // 16, cc % 16 // 8, cc % 8 // 2, cc % 2
    tile = (rows // 16) * tile_cols + cols // 64
    code_at = tile * 1024 + (4 * r + q) * 32 + 2 * (8 * b + 4 * s + 2 * i + h) + e
    blocks = -(-k // 32)
    rows, block = np.meshgrid(np.arange(n), np.arange(blocks), indexing="ij")
    h, r, tk = rows % 16 // 8, rows % 8, block // 2
    group = (rows // 16) * (tile_cols // 4) + tk // 4
    scale_at = group * 128 + 16 * r + 4 * (tk % 4) + 2 * (block % 2) + h
    return code_at, scale_at


class WeightTiles(unittest.TestCase):
    def test_eight_bit_codes_and_scales_lie_where_the_layout_puts_them(self):
        n, k = 37, 300  # padded to 48 rows and 512 columns
        a = mxkit.quantize(varied(rows=n, cols=k, seed=33), "mxfp8_e4m3")
        codes, scales = mxkit.to_weight_tiles(a)
        self.assertEqual((codes.size, scales.size), (48 * 512, 48 * 16))
        code_at, scale_at = weight_tile_positions(n, k)
        np.testing.assert_array_equal(codes[code_at], a.codes())
        np.testing.assert_array_equal(scales[scale_at], a.scales())
        placed = np.zeros(codes.size, bool)
        placed[code_at] = True
        self.assertFalse(codes[~placed].any(), "padding codes are zero")

    def test_every_format_comes_back_from_the_tiles(self):
        x = varied(rows=21, cols=200, seed=34)
        for f in mxkit.formats():
            a = mxkit.quantize(x, f)
            b = mxkit.from_weight_tiles(*mxkit.to_weight_tiles(a), f, 21, 200)
            np.testing.assert_array_equal(b.codes(), a.codes(), f)
            np.testing.assert_array_equal(b.scales(), a.scales(), f)
            self.assertEqual(b.dequantize().tobytes(), a.dequantize().tobytes(), f)

    def test_refuses_arrays_and_bytes_it_cannot_tile(self):
        x = varied(rows=16, cols=64, seed=35)
        for spec in ({"axis": 0}, {"tile": (4, 8)}, {"asym": True}, {"block": 16}):
            with self.assertRaisesRegex(ValueError, "symmetric blocks of 32 along axis -1"):
                mxkit.to_weight_tiles(mxkit.quantize(x, "mxfp4_e2m1", **spec))
        codes, scales = mxkit.to_weight_tiles(mxkit.quantize(x, "mxfp4_e2m1"))
        with self.assertRaisesRegex(ValueError, "do not match the shape"):
            mxkit.from_weight_tiles(codes[:-1], scales, "mxfp4_e2m1", 16, 64)
        with self.assertRaisesRegex(ValueError, "unknown element format 'fp5'"):
            mxkit.from_weight_tiles(codes, scales, "fp5", 16, 64)
