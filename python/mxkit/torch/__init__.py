"""mxkit.torch: MX casts of PyTorch tensors, layers and models.

    import torch, mxkit.torch as mxt
    y = mxt.fake_quantize(x, "mxfp6_e3m2")   # the gradient passes straight through
    q = mxt.quantize(x, "mxfp4_e2m1")        # packed codes and scales on x's device
    mxt.quantize_(model, "mxfp6")            # every nn.Linear becomes an MXLinear, in place
                                             # (Hugging Face's Conv1D an MXConv1D)
    mxt.quantize_weights_(model, "mxfp4_e2m1")  # weights stored in MX, for inference
    mxt.gptq_(model, batches, "mxfp4_e2m1")  # weights by error diffusion (GPTQ), in place
    o = mxt.scaled_dot_product_attention(q, k, v, "mxfp6", is_causal=True)

The casts are mxkit's own, so their bits are those of `mx cast` and of `mx train`. CPU tensors
go through the numpy module. CUDA tensors run mxkit's CUDA kernels on the tensor's device and
PyTorch's current stream when the module was built with CUDA (mxkit.torch.CUDA_KERNELS), and
are copied to the host and back otherwise. The operators are torch.ops.mxkit.fake_quantize,
quantize, dequantize, quantize_dual, mx_matmul (mxkit.torch.ops; mx_matmul_route names the
route it takes on a GPU) and weight_only_matmul (mxkit.torch.weight_only), each with a Meta
kernel, so that torch.compile traces them without graph breaks.
"""

from mxkit.torch.attention import (attention_specs, cast_attention_calls,
                                   scaled_dot_product_attention)
from mxkit.torch.casts import (MxTensor, fake_quantize, mx_matmul, mx_matmul_route, quantize,
                               quantize_dual)
from mxkit.torch.gptq import gptq_
from mxkit.torch.linear import MXConv1D, MXLinear, quantize_
from mxkit.torch.microxcaling import from_microxcaling
from mxkit.torch.ops import CUDA_KERNELS
from mxkit.torch.weight_only import MXWeightOnlyLinear, quantize_weights_

__all__ = ["CUDA_KERNELS", "MXConv1D", "MXLinear", "MXWeightOnlyLinear", "MxTensor",
           "attention_specs", "cast_attention_calls", "fake_quantize", "from_microxcaling", "gptq_",
           "mx_matmul", "mx_matmul_route", "quantize", "quantize_", "quantize_dual",
           "quantize_weights_", "scaled_dot_product_attention"]
