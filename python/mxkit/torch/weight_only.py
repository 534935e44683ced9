"""Weights stored in MX, inputs and outputs in the model's dtype: for inference, where the
weights' memory and bandwidth dominate.

    weight_only_matmul(Tensor x, Tensor codes, Tensor scales, int[] nk, str format,
                       Tensor? bias) -> Tensor

is y = x · Wᵀ (+ bias) for x [..., K] and W [N, K] held in the weight-tile layout
(mxkit.to_weight_tiles: symmetric blocks of 32 along K). x is rounded to bfloat16 and the codes
decode to bfloat16, products summed in float32, y in x's dtype. On a Hopper GPU this is mxkit's
weight-only kernel (mx/kernels/cuda/mx_gemm.h), which reads the codes as stored, rows of x in
slices of 64; elsewhere the float32 product of x and the dequantized weight. The two differ
only in the order of float32 sums.

MXWeightOnlyLinear passes gradients to x and the bias (dx = dy · W with W decoded on the CPU, so
slowly on a GPU); the stored weight itself has none.
"""

import functools

import numpy as np
import torch

from mxkit import _mxkit
from mxkit.torch.casts import quantize
from mxkit.torch.linear import linear_weight, replace_linears
from mxkit.torch.ops import (_DTYPE_NAMES, _launch, _through_host, dtype_name,
                             hopper_gemms_run_on, register_operator)

# Rows of x per launch of the weight-only kernel (mx_gemm_weight_only_cuda's limit).
_KERNEL_ROWS = 64


@functools.lru_cache(maxsize=None)
def _tile_bytes(format, n, k):
    return _mxkit._weight_tile_bytes(format, n, k)


def _check_operands(x, codes, scales, nk, format, bias):
    """Raises ValueError unless the tiles hold an [N, K] weight that x [..., K] can multiply,
    and bias, when given, is N values on x's device."""
    n, k = nk
    if bias is not None and (tuple(bias.shape) != (n,) or bias.device != x.device):
        raise ValueError(f"bias must be {n} values on {x.device}")
    dtype_name(x)
    if x.dim() == 0 or x.shape[-1] != k:
        raise ValueError(f"x {tuple(x.shape)} does not end in the weight's {k} input features")
    code_bytes, scale_bytes = _tile_bytes(format, n, k)
    for part, size, what in ((codes, code_bytes, "codes"), (scales, scale_bytes, "scales")):
        if part.dtype != torch.uint8 or part.numel() != size or part.device != x.device:
            raise ValueError(f"{what} must be {size} uint8 bytes on {x.device} for a {n}x{k} "
                             f"{format} weight, not {part.numel()} {part.dtype} on {part.device}")


def dequantize_tiles(codes, scales, nk, format, dtype=torch.float32):
    """The [N, K] weight held in weight tiles, decoded on the CPU."""
    a = _mxkit.from_weight_tiles(codes.cpu().contiguous().numpy(),
                                 scales.cpu().contiguous().numpy(), format, nk[0], nk[1])
    w = torch.from_numpy(np.array(a.dequantize("float32")))
    return w.to(dtype)


def _weight_only_cpu(x, codes, scales, nk, format, bias):
    _check_operands(x, codes, scales, nk, format, bias)
    y = x.to(torch.bfloat16).float() @ dequantize_tiles(codes, scales, nk, format).t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def _weight_only_cuda(x, codes, scales, nk, format, bias):
    if not hopper_gemms_run_on(x.device.index):
        return _through_host(_weight_only_cpu)(x, codes, scales, nk, format, bias)
    _check_operands(x, codes, scales, nk, format, bias)
    n, k = nk
    x2 = x.reshape(-1, k).to(torch.bfloat16).contiguous()
    out = torch.empty(x2.shape[0], n, device=x.device,
                      dtype=torch.bfloat16 if x.dtype == torch.bfloat16 else torch.float32)
    if bias is not None:
        bias = bias.float().contiguous()
    codes, scales = codes.contiguous(), scales.contiguous()
    for start in range(0, x2.shape[0], _KERNEL_ROWS):
        rows = min(_KERNEL_ROWS, x2.shape[0] - start)
        _mxkit._cuda_mx_gemm_weight_only(rows, n, k, x2[start].data_ptr(), codes.data_ptr(),
                                         scales.data_ptr(), format,
                                         0 if bias is None else bias.data_ptr(),
                                         out[start].data_ptr(), _DTYPE_NAMES[out.dtype],
                                         **_launch(x))
    return out.to(x.dtype).reshape(*x.shape[:-1], n)


def _weight_only_meta(x, codes, scales, nk, format, bias):
    dtype_name(x)
    return torch.empty(*x.shape[:-1], nk[0], dtype=x.dtype, device=x.device)


register_operator("weight_only_matmul(Tensor x, Tensor codes, Tensor scales, int[] nk, "
                  "str format, Tensor? bias) -> Tensor",
                  _weight_only_cpu, _weight_only_cuda, _weight_only_meta)


class _WeightOnlyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, codes, scales, nk, format):
        ctx.save_for_backward(codes, scales)
        ctx.nk, ctx.format, ctx.has_bias = nk, format, bias is not None
        return torch.ops.mxkit.weight_only_matmul(x, codes, scales, nk, format, bias)

    @staticmethod
    def backward(ctx, dy):
        codes, scales = ctx.saved_tensors
        dx = db = None
        dy2 = dy.reshape(-1, ctx.nk[0])
        if ctx.needs_input_grad[0]:
            w = dequantize_tiles(codes, scales, ctx.nk, ctx.format).to(dy.device, dy.dtype)
            dx = (dy2 @ w).reshape(*dy.shape[:-1], ctx.nk[1])
        if ctx.has_bias and ctx.needs_input_grad[1]:
            db = dy2.sum(0)
        return dx, db, None, None, None, None


class MXWeightOnlyLinear(torch.nn.Module):
    """A linear layer for inference whose weight is stored in MX weight tiles (buffers `codes`
    and `scales`), about bits/16 of a bfloat16 weight's memory plus a scale byte per 32."""

    def __init__(self, codes, scales, in_features, out_features, format, bias=None):
        super().__init__()
        self.in_features, self.out_features, self.format = in_features, out_features, format
        self.register_buffer("codes", codes)
        self.register_buffer("scales", scales)
        self.bias = bias

    @classmethod
    def from_linear(cls, linear, format="mxfp4_e2m1", scale=None, round=None, seed=None):
        """`linear`'s weight (an nn.Linear's or a Hugging Face Conv1D's) quantized in blocks
        of 32 along its input features (with mxkit.quantize's scale rule, rounding and seed),
        on its device; the bias is shared."""
        w = linear_weight(linear).detach().contiguous()
        q = quantize(w, format, scale=scale, round=round, seed=seed)
        a = _mxkit.MxArray.from_packed(q.packed.cpu().numpy(), q.scales.cpu().numpy(),
                                       list(w.shape), None, **q.spec)
        codes, scales = (torch.from_numpy(t).to(w.device) for t in _mxkit.to_weight_tiles(a))
        out_features, in_features = w.shape
        return cls(codes, scales, in_features, out_features, format, linear.bias)

    def dequantized_weight(self, dtype=torch.float32):
        """The stored weight decoded, [out_features, in_features], on the CPU."""
        return dequantize_tiles(self.codes, self.scales, self._nk(), self.format, dtype)

    def _nk(self):
        return [self.out_features, self.in_features]

    def forward(self, x):
        wants_grad = x.requires_grad or (self.bias is not None and self.bias.requires_grad)
        if torch.is_grad_enabled() and wants_grad:
            return _WeightOnlyFunction.apply(x, self.bias, self.codes, self.scales, self._nk(),
                                             self.format)
        return torch.ops.mxkit.weight_only_matmul(x, self.codes, self.scales, self._nk(),
                                                  self.format, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, format={self.format}")


def quantize_weights_(model, format="mxfp4_e2m1", filter_fn=None, **spec):
    """Replaces every nn.Linear and Hugging Face Conv1D of `model` (for which filter_fn(module,
    name) holds, when given) by an MXWeightOnlyLinear of `format` (keywords as from_linear's),
    in place. Returns the model."""
    replace_linears(model, filter_fn,
                    lambda linear: MXWeightOnlyLinear.from_linear(linear, format, **spec))
    return model
