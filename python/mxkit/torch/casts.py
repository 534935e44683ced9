"""MX casts of PyTorch tensors: fake_quantize (straight-through), quantize to MxTensor, and the
dual row + column quantization, over the torch.ops.mxkit operators."""

from typing import NamedTuple, Optional

import torch

from mxkit import _mxkit
from mxkit.torch import ops  # noqa: F401 (registers torch.ops.mxkit)


def _json_value(key, v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if any(c in v for c in '"\\') or not v.isprintable():
            raise ValueError(f"{key} {v!r} is not a spec value")
        return f'"{v}"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_json_value(key, e) for e in v) + "]"
    raise TypeError(f"{key} must be a str, int, bool or tuple, not {type(v).__name__}")


def spec_json(spec):
    """The operators' spec argument: JSON text of the given keywords, None ones dropped.

    Written out by hand rather than by json.dumps, which torch.compile cannot trace."""
    unknown = set(spec) - set(_mxkit._spec_keywords)
    if unknown:
        raise TypeError(f"unknown spec keyword(s): {', '.join(sorted(unknown))}")
    items = [f'"{k}": {_json_value(k, spec[k])}' for k in sorted(spec) if spec[k] is not None]
    return "{" + ", ".join(items) + "}"


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec):
        return torch.ops.mxkit.fake_quantize(x, spec)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def fake_quantize(x, format="mxfp8_e4m3", **spec):
    """x cast to `format` and back, in x's dtype, with mxkit.fake_quantize's keywords (block,
    axis, tile, scale, round, seed, asym, flush_subnormals); the gradient passes straight
    through."""
    return _StraightThrough.apply(x, spec_json({"format": format, **spec}))


class MxTensor(NamedTuple):
    """A quantized tensor on the device of its parts: the packed element codes (uint8, laid out
    as mxkit.MxArray.packed), one E8M0 scale byte per block (uint8, in the block grid's shape),
    and for asymmetric specs one bfloat16 offset per block (else None)."""

    packed: torch.Tensor
    scales: torch.Tensor
    offsets: Optional[torch.Tensor]
    shape: tuple
    spec: dict

    def dequantize(self, dtype=torch.float32):
        """The decoded values as float32, float16 or bfloat16, on the parts' device."""
        offsets = self.offsets if self.offsets is not None else torch.empty(
            0, dtype=torch.bfloat16, device=self.packed.device)
        return torch.ops.mxkit.dequantize(self.packed, self.scales, offsets, list(self.shape),
                                          spec_json(self.spec), dtype)


def _mx_tensor(parts, shape, spec):
    packed, scales, offsets = parts
    return MxTensor(packed, scales, offsets if offsets.numel() else None, tuple(shape), spec)


def quantize(x, format="mxfp8_e4m3", **spec):
    """x quantized to an MxTensor on x's device, with mxkit.quantize's keywords."""
    spec = {"format": format, **{k: v for k, v in spec.items() if v is not None}}
    return _mx_tensor(torch.ops.mxkit.quantize(x, spec_json(spec)), x.shape, spec)


def quantize_dual(x, format="mxfp8_e4m3", **spec):
    """A 2-D x quantized twice in one read: (rows, cols), MxTensors with blocks of 32 along
    axis -1 and along axis 0, each equal to quantize() with that axis."""
    spec = {"format": format, **{k: v for k, v in spec.items() if v is not None}}
    spec.pop("axis", None)
    parts = torch.ops.mxkit.quantize_dual(x, spec_json(spec))
    return (_mx_tensor(parts[:3], x.shape, {**spec, "axis": -1}),
            _mx_tensor(parts[3:], x.shape, {**spec, "axis": 0}))


def _matmul_operands(a, b):
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} are not [M, K] and [N, K]")
    if a.offsets is not None or b.offsets is not None:
        raise ValueError("mx_matmul takes symmetric operands (no offsets)")
    mnk = [a.shape[0], b.shape[0], a.shape[1]]
    return a.packed, a.scales, b.packed, b.scales, mnk, spec_json(a.spec), spec_json(b.spec)


def mx_matmul(a, b, bias=None, out_dtype=torch.float32):
    """D = A · Bᵀ (+ bias) from MxTensors a [M, K] and b [N, K] with blocks of 32 along K. On a
    GPU of compute capability 9.0 or newer it takes the device's fastest route for the operands
    as stored (mx_matmul_route names it); elsewhere the float32 product of the dequantized
    operands. Equals that product up to the order of float32 sums."""
    return torch.ops.mxkit.mx_matmul(*_matmul_operands(a, b), bias, out_dtype)


def mx_matmul_route(a, b, bias=None, out_dtype=torch.float32):
    """Which route mx_matmul takes for CUDA operands a and b: "dequantized + cuBLASLt BF16"
    (Hopper), "block-scaled cuBLASLt" (Blackwell, where cuBLASLt takes the pair), "fused" (the
    Hopper kernel that decodes in its main loop, for shapes cuBLASLt's routes refuse), or "none"
    (the dequantized operands' float32 product in PyTorch)."""
    return ops.mx_matmul_route(*_matmul_operands(a, b), bias, out_dtype)
