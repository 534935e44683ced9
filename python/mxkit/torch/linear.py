"""mxkit.torch: MX fake-quantization of PyTorch tensors, layers and models.

    import torch, mxkit.torch as mxt
    y = mxt.fake_quantize(x, "mxfp6_e3m2")   # the gradient passes straight through
    mxt.quantize_(model, "mxfp6")            # every nn.Linear becomes an MXLinear, in place

The casts are mxkit's own (the C++ library through the numpy module), so their bits are those
of `mx cast` and of `mx train`'s CPU backend. They run on the CPU: a CUDA tensor is copied to
the host and back. The operator is registered as torch.ops.mxkit.fake_quantize, with a Meta
implementation for shape propagation.

MXLinear casts each operand of its three products per role of an `mx train` recipe (a preset
name, JSON text or a JSON file; mxkit.recipe): the forward's x and W along the input features,
the input gradient's dy and W along the output features, the weight gradient's dy and x along
the tokens. A stochastic role rounds with its recipe seed; unlike `mx train`, no per-layer or
per-step stream is mixed in.
"""

import json

import numpy as np
import torch

import mxkit

__all__ = ["fake_quantize", "MXLinear", "quantize_", "from_microxcaling"]

# Keywords of mxkit.fake_quantize that a spec may carry (the axis is given separately).
_SPEC_KEYS = ("format", "block", "tile", "scale", "round", "seed", "asym", "flush_subnormals")


def _numpy_view(x):
    """x (contiguous, on the CPU) as a numpy array, and the dtype keyword mxkit needs for it."""
    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(np.uint16), "bfloat16"
    if x.dtype in (torch.float32, torch.float16):
        return x.numpy(), None
    raise TypeError(f"dtype {x.dtype} cannot be quantized (expected float32, float16 or bfloat16)")


def _cast_cpu(x, spec_json):
    spec = json.loads(spec_json)
    host = x.detach().to("cpu").contiguous()
    values, dtype = _numpy_view(host)
    out = mxkit.fake_quantize(values, dtype=dtype, **spec)
    if x.dtype == torch.bfloat16:
        result = torch.from_numpy(np.ascontiguousarray(out).view(np.int16)).view(torch.bfloat16)
    else:
        result = torch.from_numpy(np.ascontiguousarray(out))
    return result.to(x.device)


def _shape_only(x, spec_json):
    return torch.empty_like(x)


_lib = torch.library.Library("mxkit", "DEF")
_lib.define("fake_quantize(Tensor x, str spec) -> Tensor")
_lib.impl("fake_quantize", _cast_cpu, "CPU")
_lib.impl("fake_quantize", _cast_cpu, "CUDA")
for _key in ("Meta", "AutogradMeta"):
    _lib.impl("fake_quantize", _shape_only, _key)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec_json):
        return torch.ops.mxkit.fake_quantize(x, spec_json)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _spec_json(spec):
    unknown = set(spec) - set(_SPEC_KEYS) - {"axis"}
    if unknown:
        raise TypeError(f"unknown spec keyword(s): {', '.join(sorted(unknown))}")
    return json.dumps({k: v for k, v in spec.items() if v is not None}, sort_keys=True)


def fake_quantize(x, format="mxfp8_e4m3", **spec):
    """x cast to `format` and back, in x's dtype, with mxkit.fake_quantize's keywords (block,
    axis, tile, scale, round, seed, asym, flush_subnormals); the gradient passes straight
    through."""
    return _StraightThrough.apply(x, _spec_json({"format": format, **spec}))


def _as_recipe(recipe):
    """A recipe dict as mxkit.recipe gives it, from itself or from what mxkit.recipe reads."""
    return recipe if isinstance(recipe, dict) else mxkit.recipe(recipe)


def _cast(t, role, axis):
    """t cast for one GEMM role of a recipe: None keeps it, "bf16" rounds it to bfloat16; an MX
    role's blocks run along `axis` (a 2-D tile role has no axis)."""
    if role is None:
        return t
    if role == "bf16":
        return t.to(torch.bfloat16).to(t.dtype)
    spec = role if "tile" in role else {**role, "axis": axis}
    return torch.ops.mxkit.fake_quantize(t, _spec_json(spec))


class _MxLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, recipe):
        x2 = x.reshape(-1, x.shape[-1])
        y = _cast(x2, recipe["act_fwd"], -1) @ _cast(weight, recipe["weight_fwd"], -1).t()
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x2, weight)
        ctx.recipe = recipe
        ctx.x_shape = x.shape
        ctx.has_bias = bias is not None
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, dy):
        x2, weight = ctx.saved_tensors
        r = ctx.recipe
        dy2 = dy.reshape(-1, weight.shape[0])
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = _cast(dy2, r["grad_out_dx"], -1) @ _cast(weight, r["weight_dx"], 0)
            dx = dx.reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            dw = _cast(dy2, r["grad_out_dw"], 0).t() @ _cast(x2, r["act_dw"], 0)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy2.sum(0)
        return dx, dw, db, None


class MXLinear(torch.nn.Linear):
    """nn.Linear whose three products cast their operands per role of a recipe."""

    def __init__(self, in_features, out_features, bias=True, recipe="mxfp6", **kwargs):
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.recipe = _as_recipe(recipe)

    @classmethod
    def from_linear(cls, linear, recipe):
        """An MXLinear that shares `linear`'s weight and bias (its own are never allocated)."""
        m = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                recipe=recipe, device="meta")
        m.weight, m.bias = linear.weight, linear.bias
        return m

    def forward(self, x):
        return _MxLinearFunction.apply(x, self.weight, self.bias, self.recipe)

    def extra_repr(self):
        return f"{super().extra_repr()}, recipe={self.recipe['name']}"


def quantize_(model, recipe, filter_fn=None):
    """Replaces every nn.Linear of `model` (for which filter_fn(module, name) holds, when given)
    by an MXLinear under `recipe` that shares its parameters; returns the model."""
    spec = _as_recipe(recipe)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is torch.nn.Linear and (filter_fn is None or filter_fn(child, full)):
                setattr(module, child_name, MXLinear.from_linear(child, spec))
    return model


# microxcaling's element format names and ours.
_MICROXCALING_FORMATS = {
    "int8": "mxint8",
    "int4": "mxint4",
    "int2": "mxint2",
    "fp8_e5m2": "mxfp8_e5m2",
    "fp8_e4m3": "mxfp8_e4m3",
    "fp6_e3m2": "mxfp6_e3m2",
    "fp6_e2m3": "mxfp6_e2m3",
    "fp4_e2m1": "mxfp4_e2m1",
    "fp4": "mxfp4_e2m1",
    "fp4_e3m0": "mxfp4_e3m0",
}
# Its rounding modes: "nearest" rounds half away from zero, "even" half to even.
_MICROXCALING_ROUNDING = {"nearest": "nearest-away", "even": "nearest-even",
                          "floor": "toward-zero", "dither": "stochastic"}
# Its MxSpecs field for each of our roles (MX_REFERENCE: microxcaling's linear layer), and for a
# backward role the forward field it defaults to.
_MICROXCALING_ROLES = {
    "weight_fwd": ("w_elem_format", None),
    "act_fwd": ("a_elem_format", None),
    "grad_out_dx": ("a_elem_format_bp_os", "a_elem_format"),
    "weight_dx": ("w_elem_format_bp", "w_elem_format"),
    "grad_out_dw": ("a_elem_format_bp_ex", "a_elem_format"),
    "act_dw": ("a_elem_format_bp", "a_elem_format"),
}


def from_microxcaling(specs):
    """Our recipe (a dict, as mxkit.recipe gives) for a microxcaling MxSpecs dictionary.

    Maps w_elem_format, a_elem_format and their _bp, _bp_ex and _bp_os fields (the backward
    roles follow the forward ones when quantize_backprop is set and they are absent),
    block_size, round (nearest, even, floor, dither), mx_flush_fp32_subnorms and bfloat (16:
    vector ops in bfloat16). Refused: block_size 0 (microxcaling's default, one block per whole
    axis), scale_bits other than 8 (E8M0 scales), shared_exp_method other than "max", and unknown
    element formats. Ignored: custom_cuda and the other implementation switches."""
    s = dict(specs)
    if s.get("scale_bits", 8) != 8:
        raise ValueError(f"scale_bits {s['scale_bits']} has no MX equivalent "
                         "(E8M0 scales are 8 bits)")
    if s.get("shared_exp_method", "max") != "max":
        raise ValueError(f"shared_exp_method {s['shared_exp_method']!r} is not supported "
                         "(only 'max')")
    block = int(s.get("block_size", 0))
    if block <= 0:
        raise ValueError(f"block_size {block} is not an MX block (MX blocks are 32 values)")
    rounding = s.get("round", "nearest")
    if rounding not in _MICROXCALING_ROUNDING:
        raise ValueError(f"round {rounding!r} is not one of {', '.join(_MICROXCALING_ROUNDING)}")
    backprop = s.get("quantize_backprop", True)
    recipe = {"name": "microxcaling", "bf16_vector_ops": s.get("bfloat", 0) == 16}
    for role, (field, forward_field) in _MICROXCALING_ROLES.items():
        if forward_field is None:
            fmt = s.get(field)
        else:
            fmt = s.get(field, s.get(forward_field)) if backprop else None
        if fmt is None:
            recipe[role] = None
            continue
        if fmt not in _MICROXCALING_FORMATS:
            raise ValueError(f"{field} {fmt!r} is not a known element format "
                             f"({', '.join(_MICROXCALING_FORMATS)})")
        recipe[role] = {"format": _MICROXCALING_FORMATS[fmt], "block": block, "scale": "floor",
                        "round": _MICROXCALING_ROUNDING[rounding], "seed": 0, "asym": False,
                        "flush_subnormals": bool(s.get("mx_flush_fp32_subnorms", False))}
    return recipe
