"""The mxkit operators on PyTorch tensors, registered as torch.ops.mxkit.*:

    fake_quantize(Tensor x, str spec) -> Tensor
    quantize(Tensor x, str spec) -> (Tensor packed, Tensor scales, Tensor offsets)
    dequantize(Tensor packed, Tensor scales, Tensor offsets, int[] shape, str spec,
               ScalarType dtype) -> Tensor
    quantize_dual(Tensor x, str spec) -> (rows' packed, scales, offsets, columns' ...)
    mx_matmul(Tensor a_packed, Tensor a_scales, Tensor b_packed, Tensor b_scales, int[] mnk,
              str a_spec, str b_spec, Tensor? bias, ScalarType out_dtype) -> Tensor

`spec` is JSON text of mxkit.quantize's keywords. Packed codes and scales are uint8 tensors laid
out as mxkit.MxArray's `packed` and `scales()`; offsets are bfloat16 per block for asymmetric
specs, else empty. CPU tensors go through the numpy module. CUDA tensors run mxkit's CUDA
kernels on the tensor's device and PyTorch's current stream, when the module was built with
CUDA; otherwise they are copied to the host and back. Every operator has a Meta kernel, so that
FakeTensor tracing (torch.compile) sees shapes without running it.

mx_matmul is D [M, N] = A [M, K] · B [N, K]ᵀ (+ bias) from two operands with blocks of 32 along
K: on a GPU of compute capability 9.0 or newer the device's fastest MX route
(mx/kernels/cuda/mx_gemm_route.h: on Hopper both operands decoded to bfloat16, then cuBLASLt's
product with float32 sums; on Blackwell cuBLASLt's block-scaled product where it takes the pair),
elsewhere the float32 product of the dequantized operands.
"""

import functools
import json
import typing

import numpy as np
import torch

from mxkit import _mxkit

# Whether the CUDA kernels are in the module (a build with nvcc).
CUDA_KERNELS = hasattr(_mxkit, "_cuda_fake_quantize")

_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
_DUAL_REFUSAL = "dual quantize needs a 2-D [M, K] matrix"


def dtype_name(t):
    """The mxkit name of t's dtype; TypeError when mxkit cannot quantize it."""
    name = _DTYPE_NAMES.get(t.dtype)
    if name is None:
        raise TypeError(f"dtype {t.dtype} cannot be quantized "
                        "(expected float32, float16 or bfloat16)")
    return name


def _layout(shape, spec):
    """(packed bytes, scale shape, offset count) of `shape` under the spec dict."""
    return _mxkit._storage_layout(list(shape), spec)


def _parts_like(shape, spec, device):
    """Empty packed, scales and offsets tensors for `shape` under the spec dict."""
    packed_bytes, scale_shape, offsets = _layout(shape, spec)
    return (torch.empty(packed_bytes, dtype=torch.uint8, device=device),
            torch.empty(scale_shape, dtype=torch.uint8, device=device),
            torch.empty(scale_shape if offsets else (0,), dtype=torch.bfloat16, device=device))


def _dual_specs(x, spec):
    """The row (axis -1) and column (axis 0) specs of a dual quantization of x."""
    if x.dim() != 2:
        raise ValueError(_DUAL_REFUSAL)
    if "tile" in spec or spec.get("block", 32) != 32:
        raise ValueError("dual quantize needs 1-D blocks of 32")
    return {**spec, "axis": -1}, {**spec, "axis": 0}


# --- CPU: the numpy module -------------------------------------------------------------------

def _to_numpy(x):
    """x (contiguous, on the CPU) as a numpy array, and the dtype keyword mxkit needs for it."""
    name = dtype_name(x)
    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(np.uint16), name
    return x.numpy(), name


def _from_numpy(a, dtype):
    a = np.ascontiguousarray(a)
    if dtype == torch.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _fake_quantize_cpu(x, spec):
    values, name = _to_numpy(x.detach().contiguous())
    return _from_numpy(_mxkit.fake_quantize(values, dtype=name, **json.loads(spec)), x.dtype)


def _mx_array_parts(a):
    offsets = a.offsets()
    return (torch.from_numpy(np.array(a.packed)), torch.from_numpy(np.array(a.scales())),
            torch.empty(0, dtype=torch.bfloat16) if offsets is None
            else _from_numpy(np.array(offsets).view(np.uint16), torch.bfloat16))


def _quantize_cpu(x, spec):
    values, name = _to_numpy(x.detach().contiguous())
    return _mx_array_parts(_mxkit.quantize(values, dtype=name, **json.loads(spec)))


def _dequantize_cpu(packed, scales, offsets, shape, spec, dtype):
    offsets = (offsets.contiguous().view(torch.int16).numpy().view(np.uint16)
               if offsets.numel() else None)
    a = _mxkit.MxArray.from_packed(packed.contiguous().numpy(), scales.contiguous().numpy(),
                                   list(shape), offsets, **json.loads(spec))
    return _from_numpy(a.dequantize(_DTYPE_NAMES[dtype]), dtype)


def _quantize_dual_cpu(x, spec):
    rows, cols = _dual_specs(x, json.loads(spec))
    return (*_quantize_cpu(x, json.dumps(rows)), *_quantize_cpu(x, json.dumps(cols)))


# --- CUDA: the module's kernels on PyTorch's memory and stream -------------------------------

def _to_float16(v):
    """float32 values rounded to float16 as the library rounds them. The kernels have no float16
    output; torch's conversion rounds alike but makes every NaN 0x7FFF, where the library keeps
    the sign and the payload's top bits (mx/core/half.h)."""
    bits = v.view(torch.int32)
    nan_bits = ((bits >> 16) & 0x8000) | 0x7E00 | ((bits >> 13) & 0x3FF)
    return torch.where(v.isnan(), nan_bits.to(torch.int16).view(torch.float16),
                       v.to(torch.float16))


def _launch(t):
    """The stream and device arguments of a kernel on t's device."""
    return {"stream": torch.cuda.current_stream(t.device).cuda_stream, "device": t.device.index}


def _fake_quantize_cuda(x, spec):
    name = dtype_name(x)
    x = x.detach().contiguous()
    # float16 is no output of the kernels: decode to float32 (exact) and round once, as on the CPU.
    out = torch.empty_like(x, dtype=torch.float32 if x.dtype == torch.float16 else x.dtype)
    if x.numel():
        _mxkit._cuda_fake_quantize(x.data_ptr(), name, list(x.shape), out.data_ptr(),
                                   _DTYPE_NAMES[out.dtype], spec=json.loads(spec), **_launch(x))
    return _to_float16(out) if x.dtype == torch.float16 else out


def _quantize_cuda(x, spec):
    name, spec_dict = dtype_name(x), json.loads(spec)
    x = x.detach().contiguous()
    packed, scales, offsets = _parts_like(x.shape, spec_dict, x.device)
    if x.numel():
        _mxkit._cuda_quantize(x.data_ptr(), name, list(x.shape), packed.data_ptr(),
                              scales.data_ptr(), offsets.data_ptr() if offsets.numel() else 0,
                              spec=spec_dict, **_launch(x))
    return packed, scales, offsets


def _check_part(part, like, what):
    if part.shape != like.shape or part.dtype != like.dtype or part.device != like.device:
        raise ValueError(f"{what} must be {like.dtype} of shape {tuple(like.shape)} on "
                         f"{like.device}, not {part.dtype} of shape {tuple(part.shape)} on "
                         f"{part.device}")
    return part.contiguous()


def _dequantize_cuda(packed, scales, offsets, shape, spec, dtype):
    spec_dict = json.loads(spec)
    want = _parts_like(shape, spec_dict, packed.device)
    packed = _check_part(packed, want[0], "packed")
    scales = _check_part(scales, want[1], "scales")
    offsets = _check_part(offsets, want[2], "offsets")
    out = torch.empty(list(shape), device=packed.device,
                      dtype=torch.float32 if dtype == torch.float16 else dtype)
    if out.numel():
        _mxkit._cuda_dequantize(packed.data_ptr(), scales.data_ptr(),
                                offsets.data_ptr() if offsets.numel() else 0, list(shape),
                                out.data_ptr(), _DTYPE_NAMES[out.dtype], spec=spec_dict,
                                **_launch(packed))
    return _to_float16(out) if dtype == torch.float16 else out


def _quantize_dual_cuda(x, spec):
    name, spec_dict = dtype_name(x), json.loads(spec)
    rows_spec, cols_spec = _dual_specs(x, spec_dict)
    x = x.detach().contiguous()
    rows = _parts_like(x.shape, rows_spec, x.device)
    cols = _parts_like(x.shape, cols_spec, x.device)
    if x.numel():
        pointers = [[t.data_ptr() if t.numel() else 0 for t in side] for side in (rows, cols)]
        _mxkit._cuda_quantize_dual(x.data_ptr(), name, list(x.shape), *pointers,
                                   spec=rows_spec, **_launch(x))
    return (*rows, *cols)


def _through_host(cpu_kernel):
    """A CUDA kernel for builds without CUDA: cpu_kernel on host copies, results moved back."""
    def kernel(*args):
        device = next(a.device for a in args if isinstance(a, torch.Tensor))
        host = [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]
        out = cpu_kernel(*host)
        return tuple(t.to(device) for t in out) if isinstance(out, tuple) else out.to(device)
    return kernel


# --- MX matrix products ----------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _gemm_operand(spec, what):
    """The element format of a product's operand: blocks of 32 along K, symmetric, 2-D."""
    spec = json.loads(spec)
    if "tile" in spec or spec.get("block", 32) != 32 or spec.get("axis", -1) not in (-1, 1):
        raise ValueError(f"{what} must have blocks of 32 along its last axis")
    if spec.get("asym"):
        raise ValueError(f"{what} must be symmetric (no offsets)")
    return spec.get("format", "mxfp8_e4m3")


def _dequantized_product(dequantize, a_packed, a_scales, b_packed, b_scales, mnk, a_spec, b_spec,
                         bias, out_dtype):
    """The float32 product of the two operands, each decoded by `dequantize`."""
    m, n, k = mnk
    none = torch.empty(0, dtype=torch.bfloat16, device=a_packed.device)
    a = dequantize(a_packed, a_scales, none, [m, k], a_spec, torch.float32)
    b = dequantize(b_packed, b_scales, none, [n, k], b_spec, torch.float32)
    d = a @ b.t()
    return (d if bias is None else d + bias.float()).to(out_dtype)


def _mx_matmul_cpu(a_packed, a_scales, b_packed, b_scales, mnk, a_spec, b_spec, bias, out_dtype):
    _gemm_operand(a_spec, "a"), _gemm_operand(b_spec, "b")
    return _dequantized_product(_dequantize_cpu, a_packed, a_scales, b_packed, b_scales, mnk,
                                a_spec, b_spec, bias, out_dtype)


@functools.lru_cache(maxsize=None)
def hopper_gemms_run_on(device_index):
    """Whether mxkit's matrix-product kernels (built for sm_90a only) run on the CUDA device."""
    return torch.cuda.get_device_capability(device_index) == (9, 0)


def _aligned(t):
    """t contiguous and 16-byte aligned, as the GEMM kernels read their operands."""
    t = t.contiguous()
    return t if t.data_ptr() % 16 == 0 else t.clone()


class _GemmPlan(typing.NamedTuple):
    """What a product's description decides: the route, its workspace, the operands' layout."""
    route: str
    workspace_bytes: int
    a_format: str
    b_format: str
    a_parts: tuple  # (packed bytes, scale shape) of A [M, K]
    b_parts: tuple


# An address that every alignment rule accepts, standing in for the operands when the route is
# asked: the route depends on shapes, formats, the output's dtype and the pointers' alignment
# only, and the product always gets 16-byte aligned operands (_aligned) and a fresh output.
_ALIGNED_STAND_IN = 256


@functools.lru_cache(maxsize=1024)
def _gemm_plan(m, n, k, a_spec, b_spec, with_bias, out_dtype, device_index):
    """The product's plan on CUDA device `device_index`, computed once per description rather
    than on every call (parsing the specs, laying out the parts, asking the route)."""
    a_format, b_format = _gemm_operand(a_spec, "a"), _gemm_operand(b_spec, "b")
    a_layout, b_layout = _layout([m, k], json.loads(a_spec)), _layout([n, k], json.loads(b_spec))
    a_parts, b_parts = (a_layout[0], tuple(a_layout[1])), (b_layout[0], tuple(b_layout[1]))
    route, workspace_bytes = "none", 0
    if CUDA_KERNELS and torch.cuda.get_device_capability(device_index) >= (9, 0):
        out_name = "bfloat16" if out_dtype == torch.bfloat16 else "float32"
        at = _ALIGNED_STAND_IN
        route, workspace_bytes = _mxkit._cuda_mx_gemm_route(
            m, n, k, at, at, a_format, at, at, b_format, at if with_bias else 0, at, out_name,
            device=device_index)
    return _GemmPlan(route, workspace_bytes, a_format, b_format, a_parts, b_parts)


def _check_layout(part, parts, device, what):
    """part, contiguous, if it is the uint8 tensor of parts' shape on device; else ValueError."""
    if part.shape != parts or part.dtype != torch.uint8 or part.device != device:
        raise ValueError(f"{what} must be torch.uint8 of shape {parts} on {device}, not "
                         f"{part.dtype} of shape {tuple(part.shape)} on {part.device}")
    return part.contiguous()


def _mx_gemm_arguments(a_packed, a_scales, b_packed, b_scales, mnk, bias, out_dtype, plan):
    """The checked operands, the output and the arguments of _mxkit's MX product on their GPU."""
    m, n, k = mnk
    device = a_packed.device
    a_packed = _aligned(_check_layout(a_packed, (plan.a_parts[0],), device, "a's packed codes"))
    a_scales = _check_layout(a_scales, plan.a_parts[1], device, "a's scales")
    b_packed = _aligned(_check_layout(b_packed, (plan.b_parts[0],), device, "b's packed codes"))
    b_scales = _check_layout(b_scales, plan.b_parts[1], device, "b's scales")
    if bias is not None:
        if bias.shape != (n,) or bias.device != device:
            raise ValueError(f"bias must be {n} values on {device}")
        bias = bias.float().contiguous()
    out = torch.empty(m, n, device=device,
                      dtype=out_dtype if out_dtype == torch.bfloat16 else torch.float32)
    keep = (a_packed, a_scales, b_packed, b_scales, bias, out)
    args = (m, n, k, a_packed.data_ptr(), a_scales.data_ptr(), plan.a_format, b_packed.data_ptr(),
            b_scales.data_ptr(), plan.b_format, 0 if bias is None else bias.data_ptr(),
            out.data_ptr(), _DTYPE_NAMES[out.dtype])
    return keep, args


def mx_matmul_route(a_packed, a_scales, b_packed, b_scales, mnk, a_spec, b_spec, bias=None,
                    out_dtype=torch.float32):
    """The route mx_matmul takes for these CUDA operands: a name of mx_gemm_route.h ("dequantized
    + cuBLASLt BF16", "block-scaled cuBLASLt", "fused"), or "none" where it falls back to the
    dequantized operands' float32 product in PyTorch."""
    _gemm_operand(a_spec, "a"), _gemm_operand(b_spec, "b")
    device = a_packed.device
    if device.type != "cuda":
        return "none"
    m, n, k = mnk
    plan = _gemm_plan(m, n, k, a_spec, b_spec, bias is not None, out_dtype, device.index)
    if plan.route != "none":
        _mx_gemm_arguments(a_packed, a_scales, b_packed, b_scales, mnk, bias, out_dtype, plan)
    return plan.route


def _mx_matmul_cuda(a_packed, a_scales, b_packed, b_scales, mnk, a_spec, b_spec, bias, out_dtype):
    device = a_packed.device
    m, n, k = mnk
    plan = _gemm_plan(m, n, k, a_spec, b_spec, bias is not None, out_dtype, device.index)
    if plan.route == "none":
        # No mxkit route for these arguments on this GPU: the dequantized operands' product.
        return _dequantized_product(_dequantize_cuda, a_packed, a_scales, b_packed, b_scales,
                                    mnk, a_spec, b_spec, bias, out_dtype)
    keep, args = _mx_gemm_arguments(a_packed, a_scales, b_packed, b_scales, mnk, bias, out_dtype,
                                    plan)
    # PyTorch's allocator orders the workspace's reuse on the stream that the product runs on.
    workspace = torch.empty(plan.workspace_bytes, dtype=torch.uint8, device=device)
    _mxkit._cuda_mx_gemm(*args, workspace.data_ptr(), plan.workspace_bytes, **_launch(keep[0]))
    out = keep[-1]
    return out.to(out_dtype)


# --- Meta: shapes only -----------------------------------------------------------------------

def _fake_quantize_meta(x, spec):
    dtype_name(x)
    return torch.empty_like(x)


def _quantize_meta(x, spec):
    dtype_name(x)
    return _parts_like(x.shape, json.loads(spec), x.device)


def _dequantize_meta(packed, scales, offsets, shape, spec, dtype):
    return torch.empty(list(shape), dtype=dtype, device=packed.device)


def _quantize_dual_meta(x, spec):
    dtype_name(x)
    rows_spec, cols_spec = _dual_specs(x, json.loads(spec))
    return (*_parts_like(x.shape, rows_spec, x.device), *_parts_like(x.shape, cols_spec, x.device))


def _mx_matmul_meta(a_packed, a_scales, b_packed, b_scales, mnk, a_spec, b_spec, bias,
                    out_dtype):
    _gemm_operand(a_spec, "a"), _gemm_operand(b_spec, "b")
    return torch.empty(mnk[0], mnk[1], dtype=out_dtype, device=a_packed.device)


_OPERATORS = {
    "fake_quantize(Tensor x, str spec) -> Tensor":
        (_fake_quantize_cpu, _fake_quantize_cuda, _fake_quantize_meta),
    "quantize(Tensor x, str spec) -> (Tensor, Tensor, Tensor)":
        (_quantize_cpu, _quantize_cuda, _quantize_meta),
    "dequantize(Tensor packed, Tensor scales, Tensor offsets, int[] shape, str spec, "
    "ScalarType dtype) -> Tensor":
        (_dequantize_cpu, _dequantize_cuda, _dequantize_meta),
    "quantize_dual(Tensor x, str spec) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)":
        (_quantize_dual_cpu, _quantize_dual_cuda, _quantize_dual_meta),
    "mx_matmul(Tensor a_packed, Tensor a_scales, Tensor b_packed, Tensor b_scales, int[] mnk, "
    "str a_spec, str b_spec, Tensor? bias, ScalarType out_dtype) -> Tensor":
        (_mx_matmul_cpu, _mx_matmul_cuda, _mx_matmul_meta),
}

_lib = torch.library.Library("mxkit", "DEF")


def register_operator(schema, cpu, cuda, meta):
    """Defines torch.ops.mxkit.<schema's name> with its CPU, CUDA and Meta kernels; the CUDA
    kernel runs on host copies when the module was built without CUDA."""
    name = schema.split("(", 1)[0]
    _lib.define(schema)
    _lib.impl(name, cpu, "CPU")
    _lib.impl(name, cuda if CUDA_KERNELS else _through_host(cpu), "CUDA")
    for key in ("Meta", "AutogradMeta"):
        _lib.impl(name, meta, key)


for _schema, _kernels in _OPERATORS.items():
    register_operator(_schema, *_kernels)
