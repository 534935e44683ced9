"""MXLinear and quantize_.

MXLinear casts each operand of its three products per role of an `mx train` recipe (a preset
name, JSON text or a JSON file; mxkit.recipe): the forward's x and W along the input features,
the input gradient's dy and W along the output features, the weight gradient's dy and x along
the tokens. A stochastic role rounds with its recipe seed; unlike `mx train`, no per-layer or
per-step stream is mixed in.
"""

import torch

from mxkit.torch.attention import cast_attention_calls
from mxkit.torch.roles import as_recipe, cast, role_spec


# The recipe roles of the three products, each with the axis its blocks run along: the forward
# reduces over the input features, dx over the output features, dW over the tokens.
_ROLES = (("act_fwd", -1), ("weight_fwd", -1), ("grad_out_dx", -1), ("weight_dx", 0),
          ("grad_out_dw", 0), ("act_dw", 0))


def _role_specs(recipe):
    """The casts of the three products' operands, in _ROLES' order."""
    return tuple(role_spec(recipe[role], axis) for role, axis in _ROLES)


class _MxLinearFunction(torch.autograd.Function):
    """y = x Wᵀ + b with the operands of all three products cast by `specs` (_ROLES' order).
    The backward's products run in dy's dtype, as autocast would run them."""

    @staticmethod
    def forward(ctx, x, weight, bias, specs):
        x2 = x.reshape(-1, x.shape[-1])
        y = cast(x2, specs[0]) @ cast(weight, specs[1]).t()
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x2, weight)
        ctx.specs = specs
        ctx.x_shape = x.shape
        ctx.has_bias = bias is not None
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, dy):
        x2, weight = ctx.saved_tensors
        specs = ctx.specs
        dy2 = dy.reshape(-1, weight.shape[0])
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = cast(dy2, specs[2]) @ cast(weight.to(dy.dtype), specs[3])
            dx = dx.reshape(ctx.x_shape).to(x2.dtype)
        if ctx.needs_input_grad[1]:
            dw = cast(dy2, specs[4]).t() @ cast(x2.to(dy.dtype), specs[5])
            dw = dw.to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy2.sum(0).to(weight.dtype)
        return dx, dw, db, None


def is_conv1d(module):
    """Whether `module` is a Hugging Face Conv1D, GPT-2's linear layer: y = x W + b with W
    stored [in_features, out_features] and out_features in `nf`. Recognized by its name and
    shape, so that mxkit does not need transformers."""
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and isinstance(getattr(module, "nf", None), int)
            and isinstance(weight, torch.Tensor) and weight.dim() == 2
            and weight.shape[1] == module.nf)


def is_linear_layer(module):
    """Whether mxkit treats `module` as a linear layer: an nn.Linear (not a subclass, such as
    MXLinear) or a Hugging Face Conv1D."""
    return type(module) is torch.nn.Linear or is_conv1d(module)


def linear_weight(module):
    """The [out_features, in_features] weight of an nn.Linear or a Conv1D (a transposed view
    of the latter's parameter)."""
    return module.weight.t() if is_conv1d(module) else module.weight


class MXLinear(torch.nn.Linear):
    """nn.Linear whose three products cast their operands per role of a recipe."""

    def __init__(self, in_features, out_features, bias=True, recipe="mxfp6", **kwargs):
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.recipe = as_recipe(recipe)
        self._specs = _role_specs(self.recipe)

    @classmethod
    def from_linear(cls, linear, recipe):
        """An MXLinear that shares `linear`'s weight and bias (its own are never allocated)."""
        m = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                recipe=recipe, device="meta")
        m.weight, m.bias = linear.weight, linear.bias
        return m

    def forward(self, x):
        return _MxLinearFunction.apply(x, self.weight, self.bias, self._specs)

    def extra_repr(self):
        return f"{super().extra_repr()}, recipe={self.recipe['name']}"


class MXConv1D(torch.nn.Module):
    """A Hugging Face Conv1D (y = x W + b, W stored [in, out]) whose three products cast their
    operands as MXLinear's do. It shares the layer's weight and bias, so that the model's state
    dict keeps its names and shapes."""

    def __init__(self, conv1d, recipe="mxfp6"):
        super().__init__()
        self.nf = conv1d.nf
        self.weight, self.bias = conv1d.weight, conv1d.bias
        self.recipe = as_recipe(recipe)
        self._specs = _role_specs(self.recipe)

    def forward(self, x):
        return _MxLinearFunction.apply(x, self.weight.t(), self.bias, self._specs)

    def extra_repr(self):
        return (f"in_features={self.weight.shape[0]}, out_features={self.nf}, "
                f"recipe={self.recipe['name']}")


def replace_linears(model, filter_fn, make):
    """Replaces, in place, every nn.Linear or Conv1D child of `model`'s modules for which
    filter_fn(layer, its dotted name) holds (every one when filter_fn is None) by make(layer)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if is_linear_layer(child) and (filter_fn is None or filter_fn(child, full)):
                setattr(module, child_name, make(child))


def quantize_(model, recipe, filter_fn=None, attention=False):
    """Replaces every nn.Linear of `model` (for which filter_fn(module, name) holds, when given)
    by an MXLinear under `recipe` that shares its parameters, and every Hugging Face Conv1D
    (GPT-2's layers) by an MXConv1D likewise; with attention=True, also runs
    the model's calls of torch.nn.functional.scaled_dot_product_attention with the recipe's
    casts (cast_attention_calls). Returns the model."""
    spec = as_recipe(recipe)
    if spec.get("bf16_classifier"):
        # Refused rather than ignored: every selected layer gets the same casts here, and which
        # one is the classifier only the caller knows.
        raise ValueError(
            f"recipe {spec['name']} keeps the classifier's products in bfloat16 "
            "(bf16_classifier), which quantize_ cannot tell apart: leave the classifier out with "
            "filter_fn and quantize_ it under a recipe of bfloat16 casts")
    replace_linears(model, filter_fn,
                    lambda layer: MXConv1D(layer, spec) if is_conv1d(layer)
                    else MXLinear.from_linear(layer, spec))
    if attention:
        cast_attention_calls(model, spec)
    return model
