"""mxkit.quantize gives, bit for bit, what `mx cast` writes for the same array and flags."""
import itertools
import unittest
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import mxkit
from helpers import ROUNDINGS, SCALES, bits, cast, half, mx_ok, save_bfloat16_npy, Scratch, varied


def cast_outputs(scratch_dir, x, flags, emits=("packed", "scales", "dequant")):
    """mx cast's outputs for one set of flags, in a folder of their own (calls run in threads)."""
    src = f"{scratch_dir}/in.npy"
    out = {}
    for emit in emits:
        path = f"{scratch_dir}/{emit}.{abs(hash(tuple(flags)))}.npy"
        mx_ok("cast", "--quiet", src, "-o", path, "--emit", emit, *flags)
        out[emit] = np.load(path)
    return out


class QuantizeEqualsMxCast(unittest.TestCase):
    def assert_same(self, a, got_cli, what):
        self.assertEqual(a.packed.tobytes(), got_cli["packed"].tobytes(), f"packed, {what}")
        self.assertEqual(a.scales().shape, got_cli["scales"].shape, f"scale shape, {what}")
        self.assertEqual(a.scales().tobytes(), got_cli["scales"].tobytes(), f"scales, {what}")
        np.testing.assert_array_equal(bits(a.dequantize()), bits(got_cli["dequant"]), what)

    def test_every_format_scale_rule_and_rounding(self):
        scratch = Scratch(self)
        x = varied()
        np.save(scratch.path("in.npy"), x)
        combos = list(itertools.product(mxkit.formats(), SCALES, ROUNDINGS))
        args = [["--format", f, "--scale", s, "--round", r, "--seed", "7"] for f, s, r in combos]
        with ThreadPoolExecutor(2) as pool:
            cli = list(pool.map(lambda flags: cast_outputs(scratch.dir, x, flags), args))
        self.assertEqual(len(combos), 9 * 4 * 4)
        for (f, s, r), got in zip(combos, cli):
            a = mxkit.quantize(x, f, scale=s, round=r, seed=7)
            self.assert_same(a, got, f"{f} {s} {r}")

    def test_codes_of_every_format(self):
        scratch = Scratch(self)
        x = varied(seed=2)
        for f in mxkit.formats():
            a = mxkit.quantize(x, f)
            want = cast(scratch, x, "codes", "--format", f)
            self.assertEqual(a.codes().dtype, np.uint8)
            np.testing.assert_array_equal(a.codes(), want, f)

    def test_float16_and_bfloat16_inputs(self):
        scratch = Scratch(self)
        x = varied(seed=3)
        f16 = half(x)
        bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncated: any bits will do
        for f in ["mxfp8_e4m3", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8"]:
            a = mxkit.quantize(f16, f, scale="even")
            np.save(scratch.path("in.npy"), f16)
            self.assert_same(a, cast_outputs(scratch.dir, f16, ["--format", f, "--scale", "even"]),
                             f"float16 {f}")
            b = mxkit.quantize(bf16, f, round="toward-zero", dtype="bfloat16")
            save_bfloat16_npy(scratch.path("in.npy"), bf16)
            self.assert_same(
                b, cast_outputs(scratch.dir, bf16, ["--format", f, "--round", "toward-zero"]),
                f"bfloat16 {f}")

    def test_block_shapes_presets_and_options(self):
        scratch = Scratch(self)
        x = varied(rows=12, cols=40, seed=4).reshape(3, 4, 40)
        np.save(scratch.path("in.npy"), x)
        cases = [
            (dict(block=16, axis=0), ["--block", "16", "--axis", "0"]),
            (dict(block=3, axis=1), ["--block", "3", "--axis", "1"]),
            (dict(tile=(2, 8)), ["--tile", "2x8"]),
            (dict(tile="4x4"), ["--tile", "4x4"]),
            (dict(asym=True), ["--asym"]),
            (dict(asym=True, tile=(2, 4), round="stochastic", seed=3),
             ["--asym", "--tile", "2x4", "--round", "stochastic", "--seed", "3"]),
            (dict(preset="microxcaling"), ["--preset", "microxcaling"]),
            (dict(preset="te", round="nearest-away"),
             ["--preset", "te", "--round", "nearest-away"]),
            (dict(flush_subnormals=True), ["--flush-subnormals"]),
            (dict(round="stochastic", seed=2**64 - 1),
             ["--round", "stochastic", "--seed", str(2**64 - 1)]),
        ]
        for f in ["mxfp8_e5m2", "mxint8", "mxfp4_e2m1"]:
            for kwargs, flags in cases:
                a = mxkit.quantize(x, f, **kwargs)
                got = cast_outputs(scratch.dir, x, ["--format", f, *flags])
                self.assert_same(a, got, f"{f} {kwargs}")

    def test_non_contiguous_input_is_read_as_its_values(self):
        x = varied(seed=5)
        for view in [x[:, ::2], x.T, x[::-1]]:
            a, b = mxkit.quantize(view, "mxfp6_e2m3", axis=0), mxkit.quantize(
                np.ascontiguousarray(view), "mxfp6_e2m3", axis=0)
            self.assertEqual(a.packed.tobytes(), b.packed.tobytes())
            self.assertEqual(a.scales().tobytes(), b.scales().tobytes())


class MxArrayViews(unittest.TestCase):
    def test_packed_and_scales_are_read_only_views_without_copies(self):
        a = mxkit.quantize(varied(), "mxfp4_e2m1")
        packed, scales = a.packed, a.scales()
        self.assertTrue(np.shares_memory(packed, a.packed))
        self.assertTrue(np.shares_memory(scales, a.scales()))
        self.assertFalse(packed.flags.writeable)
        with self.assertRaises(ValueError):
            scales[0, 0] = 1
        want = packed.copy()
        del a  # the views keep the array alive
        junk = [np.full(384, 0xAA, np.uint8) for _ in range(100)]
        self.assertEqual(packed.nbytes, 8 * 3 * 16)
        np.testing.assert_array_equal(packed, want)
        del junk

    def test_shape_spec_and_sizes(self):
        a = mxkit.quantize(np.zeros((2, 3, 64), np.float32), "mxfp6_e3m2", block=16, asym=True)
        self.assertEqual(a.shape, (2, 3, 64))
        self.assertEqual(a.format, "mxfp6_e3m2")
        self.assertEqual(a.spec["block"], 16)
        self.assertTrue(a.spec["asym"])
        self.assertEqual(a.scales().shape, (2, 3, 4))
        self.assertEqual(a.offsets().shape, (2, 3, 4))
        self.assertEqual(a.packed.nbytes, 2 * 3 * 64 * 6 // 8)
        self.assertEqual(a.nbytes, a.packed.nbytes + 24 + 2 * 24)
        self.assertIsNone(mxkit.quantize(np.zeros(32, np.float32)).offsets())

    def test_formats_lists_the_mx_formats_with_their_traits(self):
        f = mxkit.formats()
        self.assertEqual(len(f), 9)
        self.assertEqual(f["mxfp8_e4m3"]["max_normal"], 448.0)
        self.assertEqual(f["mxfp4_e2m1"]["bits"], 4)
        self.assertTrue(f["mxint8"]["is_integer"])


if __name__ == "__main__":
    unittest.main()
