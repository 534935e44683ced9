"""torch.ops.mxkit on CPU tensors: quantize, dequantize and the dual quantization give the numpy
module's bytes and values, and each operator's Meta kernel gives the shapes it will produce.
Skipped with the reason where PyTorch cannot be imported (Debian: python3-torch)."""
import unittest

import numpy as np

import mxkit
from helpers import ROUNDINGS, bits, varied
from torch_helpers import mxt, requires_torch, torch

# Spec keyword sets that reach every kind of block: rows, columns, 2-D tiles, asymmetric blocks.
LAYOUTS = [{}, {"axis": 0}, {"tile": (4, 8)}, {"asym": True}, {"block": 16, "scale": "rceil"}]


@requires_torch
class TorchQuantizeOperators(unittest.TestCase):
    def test_quantize_gives_the_numpy_modules_packed_codes_scales_and_offsets(self):
        x = varied(seed=31)
        for f in mxkit.formats():
            for spec in LAYOUTS:
                for rnd in ROUNDINGS:
                    want = mxkit.quantize(x, f, round=rnd, seed=5, **spec)
                    got = mxt.quantize(torch.from_numpy(x), f, round=rnd, seed=5, **spec)
                    where = f"{f} {spec} {rnd}"
                    np.testing.assert_array_equal(got.packed.numpy(), want.packed, where)
                    np.testing.assert_array_equal(got.scales.numpy(), want.scales(), where)
                    if spec.get("asym"):
                        np.testing.assert_array_equal(
                            got.offsets.view(torch.int16).numpy().view(np.uint16),
                            np.asarray(want.offsets()).view(np.uint16), where)
                    else:
                        self.assertIsNone(got.offsets, where)

    def test_dequantize_gives_the_numpy_modules_values_in_each_dtype(self):
        x = varied(seed=32)
        for f in ("mxfp8_e4m3", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8"):
            for spec in LAYOUTS:
                want = mxkit.quantize(x, f, **spec)
                q = mxt.quantize(torch.from_numpy(x), f, **spec)
                np.testing.assert_array_equal(bits(q.dequantize().numpy()),
                                              bits(want.dequantize()), f"{f} {spec}")
                np.testing.assert_array_equal(
                    q.dequantize(torch.bfloat16).view(torch.int16).numpy().view(np.uint16),
                    np.asarray(want.dequantize("bfloat16")).view(np.uint16))
                np.testing.assert_array_equal(bits(q.dequantize(torch.float16).numpy()),
                                              bits(want.dequantize("float16")))

    def test_dual_equals_quantizing_along_rows_and_along_columns(self):
        x = torch.from_numpy(varied(rows=64, cols=96, seed=33)).to(torch.bfloat16)
        for f in ("mxfp8_e5m2", "mxfp6_e3m2", "mxfp4_e2m1", "mxint8"):
            rows, cols = mxt.quantize_dual(x, f, round="stochastic", seed=9)
            for got, axis in ((rows, -1), (cols, 0)):
                want = mxt.quantize(x, f, round="stochastic", seed=9, axis=axis)
                self.assertEqual(got.spec["axis"], axis)
                np.testing.assert_array_equal(got.packed.numpy(), want.packed.numpy(), f)
                np.testing.assert_array_equal(got.scales.numpy(), want.scales.numpy(), f)

    def test_dual_refuses_what_it_cannot_do(self):
        with self.assertRaisesRegex(ValueError, "2-D"):
            mxt.quantize_dual(torch.zeros(2, 32, 32), "mxint8")
        with self.assertRaisesRegex(ValueError, "blocks of 32"):
            mxt.quantize_dual(torch.zeros(32, 32), "mxint8", tile=(8, 8))

    def test_dequantize_refuses_parts_that_do_not_fit_the_shape(self):
        q = mxt.quantize(torch.ones(4, 64), "mxfp4_e2m1")
        short = mxt.MxTensor(q.packed[:-1], q.scales, None, q.shape, q.spec)
        with self.assertRaisesRegex(ValueError, "element"):
            short.dequantize()

    def test_meta_kernels_give_the_shapes_of_every_part(self):
        x = torch.empty(64, 96, device="meta", dtype=torch.bfloat16)
        spec = '{"format": "mxfp6_e3m2", "asym": true}'
        packed, scales, offsets = torch.ops.mxkit.quantize(x, spec)
        self.assertEqual((packed.shape, scales.shape, offsets.shape),
                         ((64 * 96 * 6 // 8,), (64, 3), (64, 3)))
        parts = torch.ops.mxkit.quantize_dual(x, '{"format": "mxfp4_e2m1"}')
        self.assertEqual([tuple(p.shape) for p in parts],
                         [(3072,), (64, 3), (0,), (3072,), (2, 96), (0,)])
        y = torch.ops.mxkit.dequantize(packed, scales, offsets, [64, 96], spec, torch.float16)
        self.assertEqual((y.device.type, y.dtype, tuple(y.shape)),
                         ("meta", torch.float16, (64, 96)))


@requires_torch
class TorchMxMatmul(unittest.TestCase):
    def test_is_the_float32_product_of_the_dequantized_operands(self):
        rng = np.random.default_rng(36)
        a = torch.from_numpy(rng.standard_normal((24, 80)).astype(np.float32))
        b = torch.from_numpy(rng.standard_normal((40, 80)).astype(np.float32))
        bias = torch.from_numpy(rng.standard_normal(40).astype(np.float32))
        for fa, fb in (("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp4_e2m1", "mxfp6_e3m2"),
                       ("mxint8", "mxfp8_e5m2")):
            qa, qb = mxt.quantize(a, fa), mxt.quantize(b, fb)
            want = (qa.dequantize().double() @ qb.dequantize().double().T + bias.double())
            got = mxt.mx_matmul(qa, qb, bias)
            self.assertEqual((got.dtype, tuple(got.shape)), (torch.float32, (24, 40)))
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{fa} x {fb}")
            bf = mxt.mx_matmul(qa, qb, out_dtype=torch.bfloat16)
            self.assertEqual(bf.dtype, torch.bfloat16)

    def test_is_exact_where_every_partial_sum_is(self):
        # Small integers times powers of two: every product and partial sum is a float32.
        rng = np.random.default_rng(37)
        a = torch.from_numpy((rng.integers(-3, 4, (16, 64)) * 2.0).astype(np.float32))
        b = torch.from_numpy((rng.integers(-3, 4, (8, 64)) / 4.0).astype(np.float32))
        qa, qb = mxt.quantize(a, "mxint8"), mxt.quantize(b, "mxfp8_e4m3")
        want = qa.dequantize().double() @ qb.dequantize().double().T
        np.testing.assert_array_equal(mxt.mx_matmul(qa, qb).double().numpy(), want.numpy())

    def test_refuses_operands_without_blocks_of_32_along_k(self):
        a = torch.ones(32, 64)
        good = mxt.quantize(a, "mxint8")
        for bad in (mxt.quantize(a, "mxint8", axis=0), mxt.quantize(a, "mxint8", tile=(8, 8)),
                    mxt.quantize(a, "mxint8", block=16)):
            with self.assertRaisesRegex(ValueError, "blocks of 32"):
                mxt.mx_matmul(good, bad)
        with self.assertRaisesRegex(ValueError, "symmetric"):
            mxt.mx_matmul(good, mxt.quantize(a, "mxint8", asym=True))
        with self.assertRaisesRegex(ValueError, r"\[M, K\]"):
            mxt.mx_matmul(good, mxt.quantize(torch.ones(32, 96), "mxint8"))

    def test_names_no_gpu_route_for_operands_on_the_cpu(self):
        qa = mxt.quantize(torch.ones(16, 64), "mxfp8_e4m3")
        self.assertEqual(mxt.mx_matmul_route(qa, qa), "none")


class MxArrayFromPacked(unittest.TestCase):
    def test_rebuilds_an_array_from_its_stored_parts(self):
        x = varied(seed=34)
        a = mxkit.quantize(x, "mxfp6_e3m2", asym=True, axis=0)
        b = mxkit.MxArray.from_packed(a.packed, a.scales(), list(x.shape), a.offsets(),
                                      format="mxfp6_e3m2", asym=True, axis=0)
        np.testing.assert_array_equal(bits(b.dequantize()), bits(a.dequantize()))

    def test_refuses_parts_of_the_wrong_size_or_spec(self):
        a = mxkit.quantize(varied(seed=35), "mxint8")
        with self.assertRaisesRegex(ValueError, "element"):
            mxkit.MxArray.from_packed(a.packed[:-1], a.scales(), list(a.shape), format="mxint8")
        with self.assertRaisesRegex(TypeError, "unknown spec keyword"):
            mxkit.MxArray.from_packed(a.packed, a.scales(), list(a.shape), fromat="mxint8")


if __name__ == "__main__":
    unittest.main()
