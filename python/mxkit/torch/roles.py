"""Recipe roles as the casts take them: what MXLinear and scaled_dot_product_attention share."""

import torch

import mxkit
from mxkit.torch.casts import spec_json


def as_recipe(recipe):
    """A recipe dict as mxkit.recipe gives it, from itself or from what mxkit.recipe reads."""
    return recipe if isinstance(recipe, dict) else mxkit.recipe(recipe)


def role_spec(role, axis):
    """A role as cast() takes it: "" keeps the operand, "bf16" rounds it to bfloat16, else the
    operator's spec text with blocks along `axis` (a 2-D tile role has no axis). Held as text,
    so that torch.compile sees constants."""
    if role is None:
        return ""
    if role == "bf16":
        return "bf16"
    return spec_json(role if "tile" in role else {**role, "axis": axis})


def cast(t, spec):
    """t cast per a role_spec."""
    if spec == "":
        return t
    if spec == "bf16":
        return t.to(torch.bfloat16).to(t.dtype)
    return torch.ops.mxkit.fake_quantize(t, spec)
