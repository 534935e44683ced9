"""from_microxcaling: our recipe for a microxcaling MxSpecs dictionary."""

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
