"""torch.ops.mxkit on CUDA tensors: mxkit's CUDA kernels give the CPU's bits for every format,
rounding and layout, on PyTorch's current stream. Skipped with the reason where there is no
CUDA device or the module was built without CUDA."""
import unittest

import numpy as np

import mxkit
from helpers import ROUNDINGS, varied
from torch_helpers import WHY, mxt, torch

if WHY is None and not torch.cuda.is_available():
    WHY = "no CUDA device (torch.cuda.is_available() is False)"
elif WHY is None and not mxt.CUDA_KERNELS:
    WHY = "the module was built without CUDA (nvcc not found at configure time)"

LAYOUTS = [{}, {"axis": 0}, {"tile": (4, 8)}, {"asym": True}, {"block": 16, "scale": "rceil"}]


def requires_cuda(cls):
    return unittest.skipIf(WHY is not None, WHY or "")(cls)


def int_view(t):
    """t's bits as integers on the host, so that NaNs and signed zeros compare exactly."""
    t = t.cpu()
    return t.view({4: torch.int32, 2: torch.int16, 1: torch.uint8}[t.element_size()]).numpy()


@requires_cuda
class TorchCudaOperators(unittest.TestCase):
    def assert_same(self, got, want, where):
        self.assertEqual(got.device.type, "cuda", where)
        self.assertEqual((got.dtype, tuple(got.shape)), (want.dtype, tuple(want.shape)), where)
        np.testing.assert_array_equal(int_view(got), int_view(want), where)

    def test_fake_quantize_gives_the_cpus_bits_in_every_format_rounding_and_layout(self):
        x = torch.from_numpy(varied(rows=64, cols=96, seed=41))
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            xd = x.to(dtype)
            for f in mxkit.formats():
                for spec in LAYOUTS:
                    for rnd in ROUNDINGS:
                        where = f"{dtype} {f} {spec} {rnd}"
                        want = mxt.fake_quantize(xd, f, round=rnd, seed=7, **spec)
                        got = mxt.fake_quantize(xd.cuda(), f, round=rnd, seed=7, **spec)
                        self.assert_same(got, want, where)

    def test_quantize_and_dequantize_give_the_cpus_bytes_and_values(self):
        x = torch.from_numpy(varied(rows=64, cols=96, seed=42)).to(torch.bfloat16)
        for f in mxkit.formats():
            for spec in LAYOUTS:
                for rnd in ("nearest-even", "stochastic"):
                    where = f"{f} {spec} {rnd}"
                    want = mxt.quantize(x, f, round=rnd, seed=3, **spec)
                    got = mxt.quantize(x.cuda(), f, round=rnd, seed=3, **spec)
                    self.assert_same(got.packed, want.packed, where)
                    self.assert_same(got.scales, want.scales, where)
                    if want.offsets is not None:
                        self.assert_same(got.offsets, want.offsets, where)
                    for dtype in (torch.float32, torch.bfloat16, torch.float16):
                        self.assert_same(got.dequantize(dtype), want.dequantize(dtype), where)

    def test_dual_gives_the_cpus_rows_and_columns(self):
        x = torch.from_numpy(varied(rows=96, cols=160, seed=43)).to(torch.bfloat16)
        for f in ("mxfp8_e4m3", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8"):
            for extra in ({}, {"round": "stochastic", "seed": 11}, {"asym": True}):
                want = mxt.quantize_dual(x, f, **extra)
                got = mxt.quantize_dual(x.cuda(), f, **extra)
                for g, w, side in zip(got, want, ("rows", "cols")):
                    where = f"{f} {extra} {side}"
                    self.assert_same(g.packed, w.packed, where)
                    self.assert_same(g.scales, w.scales, where)
                    if w.offsets is not None:
                        self.assert_same(g.offsets, w.offsets, where)

    def test_runs_on_the_current_stream_so_that_a_cuda_graph_captures_it(self):
        x = torch.randn(256, 512, device="cuda", dtype=torch.bfloat16)
        spec = '{"format": "mxfp4_e2m1", "round": "stochastic", "seed": 1}'
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            torch.ops.mxkit.fake_quantize(x, spec)  # warm-up outside the capture
            with torch.cuda.graph(graph):
                y = torch.ops.mxkit.fake_quantize(x, spec)
        x.copy_(torch.randn_like(x))
        graph.replay()
        torch.cuda.synchronize()
        self.assert_same(y, torch.ops.mxkit.fake_quantize(x.cpu(), spec).cuda(), "replay")

    def test_empty_and_strided_tensors(self):
        e = torch.empty(0, 64, device="cuda")
        self.assertEqual(tuple(mxt.fake_quantize(e, "mxint8").shape), (0, 64))
        x = torch.randn(96, 64, device="cuda").t()  # not contiguous
        self.assert_same(mxt.fake_quantize(x, "mxfp6_e3m2"),
                         mxt.fake_quantize(x.cpu(), "mxfp6_e3m2").cuda(), "transposed")

    def test_mx_matmul_equals_the_dequantized_product_for_every_pair_of_formats(self):
        rng = np.random.default_rng(45)
        a = torch.from_numpy(rng.standard_normal((136, 200)).astype(np.float32))
        b = torch.from_numpy(rng.standard_normal((72, 200)).astype(np.float32))
        bias = torch.from_numpy(rng.standard_normal(72).astype(np.float32))
        for fa in mxkit.formats():
            for fb in mxkit.formats():
                qa, qb = mxt.quantize(a.cuda(), fa), mxt.quantize(b.cuda(), fb)
                want = mxt.mx_matmul(mxt.quantize(a, fa), mxt.quantize(b, fb), bias)
                got = mxt.mx_matmul(qa, qb, bias.cuda())
                finite = torch.isfinite(want)
                torch.testing.assert_close(got.cpu()[finite], want[finite], rtol=1e-4,
                                           atol=1e-3, msg=f"{fa} x {fb}")

    def test_mx_matmul_is_exact_where_every_partial_sum_is(self):
        rng = np.random.default_rng(46)
        a = torch.from_numpy((rng.integers(-3, 4, (64, 256)) * 2.0).astype(np.float32)).cuda()
        b = torch.from_numpy((rng.integers(-3, 4, (96, 256)) / 4.0).astype(np.float32)).cuda()
        qa, qb = mxt.quantize(a, "mxfp8_e4m3"), mxt.quantize(b, "mxfp6_e3m2")
        want = qa.dequantize().cpu().double() @ qb.dequantize().cpu().double().T
        np.testing.assert_array_equal(mxt.mx_matmul(qa, qb).cpu().double().numpy(),
                                      want.numpy())

    def test_mx_matmul_takes_hoppers_routes_and_each_gives_the_dequantized_product(self):
        if torch.cuda.get_device_capability() != (9, 0):
            self.skipTest("the routes named here are those of compute capability 9.0")
        rng = np.random.default_rng(47)
        a = torch.from_numpy(rng.standard_normal((64, 96)).astype(np.float32))
        # Rows of 72 float32 values (288 bytes) suit cuBLASLt; rows of 35 (140 bytes) do not,
        # and take the fused kernel.
        for n, route in ((72, "dequantized + cuBLASLt BF16"), (35, "fused")):
            b = torch.from_numpy(rng.standard_normal((n, 96)).astype(np.float32))
            qa, qb = mxt.quantize(a.cuda(), "mxfp8_e4m3"), mxt.quantize(b.cuda(), "mxfp4_e2m1")
            self.assertEqual(mxt.mx_matmul_route(qa, qb), route, f"N = {n}")
            want = mxt.mx_matmul(mxt.quantize(a, "mxfp8_e4m3"), mxt.quantize(b, "mxfp4_e2m1"))
            torch.testing.assert_close(mxt.mx_matmul(qa, qb).cpu(), want, rtol=1e-4, atol=1e-3,
                                       msg=f"N = {n}, {route}")

    def test_mx_matmul_refuses_parts_of_another_layout_on_the_gpu(self):
        if torch.cuda.get_device_capability() < (9, 0):
            self.skipTest("mxkit's MX products need compute capability 9.0")
        qa = mxt.quantize(torch.randn(64, 96, device="cuda"), "mxfp8_e4m3")
        qb = mxt.quantize(torch.randn(32, 96, device="cuda"), "mxfp4_e2m1")
        spec_a, spec_b = mxt.casts.spec_json(qa.spec), mxt.casts.spec_json(qb.spec)
        good = (qa.packed, qa.scales, qb.packed, qb.scales)
        for i, bad in ((0, qa.packed[:-1]), (1, qa.scales.float()), (3, qb.scales.cpu())):
            parts = list(good)
            parts[i] = bad
            with self.assertRaisesRegex(ValueError, "must be torch.uint8 of shape"):
                torch.ops.mxkit.mx_matmul(*parts, [64, 32, 96], spec_a, spec_b, None,
                                          torch.float32)
        # The same description again, after the refusals, still multiplies.
        torch.testing.assert_close(mxt.mx_matmul(qa, qb).cpu(),
                                   qa.dequantize().cpu() @ qb.dequantize().cpu().T,
                                   rtol=1e-4, atol=1e-3)

    def test_mxlinear_on_cuda_matches_the_cpu(self):
        torch.manual_seed(4)
        cpu = mxt.MXLinear(64, 96, recipe="mxfp6")
        gpu = mxt.MXLinear(64, 96, recipe="mxfp6").cuda()
        gpu.load_state_dict(cpu.state_dict())
        x = torch.randn(32, 64)
        dy = torch.randn(32, 96)
        xc, xg = x.clone().requires_grad_(), x.cuda().requires_grad_()
        cpu(xc).backward(dy)
        gpu(xg).backward(dy.cuda())
        tol = dict(rtol=1e-4, atol=1e-4)  # the casts are equal; the float32 products may differ
        torch.testing.assert_close(xg.grad.cpu(), xc.grad, **tol)
        torch.testing.assert_close(gpu.weight.grad.cpu(), cpu.weight.grad, **tol)


if __name__ == "__main__":
    unittest.main()
