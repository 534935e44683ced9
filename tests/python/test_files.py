"""save/load round trips, and the files are those the `mx` commands read and write."""
import os
import unittest

import numpy as np

import mxkit
from helpers import bits, half, mx_error, mx_ok, Scratch, varied


def assert_same_mx(test, a, b, what=""):
    test.assertEqual(a.shape, b.shape, what)
    test.assertEqual(a.spec, b.spec, what)
    test.assertEqual(a.packed.tobytes(), b.packed.tobytes(), what)
    test.assertEqual(a.scales().tobytes(), b.scales().tobytes(), what)
    if a.spec["asym"]:
        test.assertEqual(a.offsets().tobytes(), b.offsets().tobytes(), what)


class SafetensorsRoundTrip(unittest.TestCase):
    def test_every_format_and_block_shape_comes_back_unchanged(self):
        scratch = Scratch(self)
        x = varied(rows=6, cols=64, seed=21)
        tensors = {}
        for f in mxkit.formats():
            tensors[f] = mxkit.quantize(x, f)
        tensors["tiled"] = mxkit.quantize(x, "mxint8", tile=(2, 16), scale="rceil")
        tensors["asym"] = mxkit.quantize(x, "mxfp6_e2m3", block=5, axis=0, asym=True)
        tensors["stochastic"] = mxkit.quantize(x, "mxint4", round="stochastic", seed=9)
        plain = {
            "f32": x,
            "f16": np.arange(-4, 4, dtype=np.float16) / 3,
            "u8": np.arange(10, dtype=np.uint8),
            "i32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        }
        path = scratch.path("m.safetensors")
        mxkit.save(path, {**tensors, **plain})
        back = mxkit.load(path)
        self.assertEqual(sorted(back), sorted([*tensors, *plain]))
        for name, a in tensors.items():
            self.assertIsInstance(back[name], mxkit.MxArray)
            assert_same_mx(self, a, back[name], name)
        for name, v in plain.items():
            self.assertEqual(back[name].dtype, v.dtype)
            np.testing.assert_array_equal(bits(back[name]) if v.dtype.kind == "f" else back[name],
                                          bits(v) if v.dtype.kind == "f" else v, name)

    def test_mx_quantize_output_loads_as_mxkit_quantize_makes_it(self):
        scratch = Scratch(self)
        rng = np.random.default_rng(22)
        weights = {"a.weight": rng.standard_normal((32, 96)).astype(np.float32),
                   "b.weight": rng.standard_normal((16, 64)).astype(np.float32)}
        src, out = scratch.path("in.safetensors"), scratch.path("out.safetensors")
        mxkit.save(src, weights)
        mx_ok("quantize", "--quiet", src, "-o", out, "--format", "mxfp6_e2m3", "--scale", "ceil")
        back = mxkit.load(out)
        for name, w in weights.items():
            assert_same_mx(self, back[name], mxkit.quantize(w, "mxfp6_e2m3", scale="ceil"), name)

    def test_mx_dequantize_reads_what_save_writes(self):
        scratch = Scratch(self)
        x = varied(rows=6, cols=64, seed=23)
        a = mxkit.quantize(x, "mxfp8_e4m3", block=16, asym=True)
        src, out = scratch.path("q.safetensors"), scratch.path("d.safetensors")
        mxkit.save(src, {"w": a})
        mx_ok("dequantize", src, "-o", out)
        np.testing.assert_array_equal(bits(mxkit.load(out)["w"]), bits(a.dequantize()))


class GgufRoundTrip(unittest.TestCase):
    def test_mxfp4_and_plain_tensors_come_back_unchanged(self):
        scratch = Scratch(self)
        x = varied(rows=6, cols=64, seed=24).reshape(3, 2, 64)
        a = mxkit.quantize(x, "mxfp4_e2m1")
        path = scratch.path("m.gguf")
        mxkit.save(path, {"w": a, "norm": x[0, 0], "h": half(x)})
        back = mxkit.load(path)
        assert_same_mx(self, a, back["w"])
        np.testing.assert_array_equal(bits(back["norm"]), bits(x[0, 0]))
        np.testing.assert_array_equal(bits(back["h"]), bits(half(x)))

    def test_mx_quantize_gguf_loads_as_mxkit_quantize_makes_it(self):
        scratch = Scratch(self)
        w = np.random.default_rng(25).standard_normal((8, 128)).astype(np.float32)
        src, out = scratch.path("in.safetensors"), scratch.path("out.gguf")
        mxkit.save(src, {"blk.0.ffn_up.weight": w})
        mx_ok("quantize", "--quiet", "--plain-gguf", src, "-o", out)
        got = mxkit.load(out)["blk.0.ffn_up.weight"]
        assert_same_mx(self, got, mxkit.quantize(w, "mxfp4_e2m1"))

    def test_other_specs_are_refused_with_the_librarys_reason_and_no_file(self):
        scratch = Scratch(self)
        path = scratch.path("m.gguf")
        with self.assertRaises(ValueError) as e:
            mxkit.save(path, {"w": mxkit.quantize(np.ones((2, 64), np.float32), "mxfp8_e4m3")})
        self.assertIn("tensor 'w'", str(e.exception))
        self.assertIn("E2M1", str(e.exception))
        self.assertEqual(os.listdir(scratch.dir), [])


class FileErrors(unittest.TestCase):
    def test_unknown_extension(self):
        with self.assertRaisesRegex(ValueError, r"x\.bin: unknown file type"):
            mxkit.save("x.bin", {})
        with self.assertRaisesRegex(ValueError, r"x\.npy: unknown file type"):
            mxkit.load("x.npy")

    def test_a_damaged_file_gives_the_message_mx_gives(self):
        scratch = Scratch(self)
        path = scratch.path("bad.safetensors")
        with open(path, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
        with self.assertRaises(ValueError) as e:
            mxkit.load(path)
        want = mx_error("dequantize", path, "-o", scratch.path("o.safetensors"))
        self.assertEqual(str(e.exception), want)

    def test_unstorable_dtype_is_a_type_error(self):
        scratch = Scratch(self)
        with self.assertRaisesRegex(TypeError, "complex128"):
            mxkit.save(scratch.path("c.safetensors"), {"c": np.zeros(2, complex)})
        with self.assertRaisesRegex(TypeError, "numpy array"):
            mxkit.save(scratch.path("c.safetensors"), {"c": [1.0, 2.0]})


if __name__ == "__main__":
    unittest.main()
