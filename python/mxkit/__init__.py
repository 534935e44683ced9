"""mxkit: the OCP Microscaling (MX) formats for numpy arrays.

    import numpy as np, mxkit
    a = mxkit.quantize(np.random.randn(4, 64).astype(np.float32), "mxfp4_e2m1")
    a.dequantize()              # float32 values, bit for bit those of `mx cast`
    a.packed, a.scales()        # zero-copy views of the packed codes and E8M0 scales

Every function is the C++ library's own (python/*.cpp only converts arguments); bad arguments
raise ValueError or TypeError with the message the `mx` command prints for the same mistake.
"""

from mxkit._mxkit import (
    MxArray,
    __version__,
    fake_quantize,
    formats,
    from_ggml_mxfp4,
    from_gpt_oss,
    from_weight_tiles,
    gptq,
    hessian,
    load,
    quantize,
    recipe,
    recipe_presets,
    save,
    swizzle_scales,
    to_ggml_mxfp4,
    to_gpt_oss,
    to_weight_tiles,
    unswizzle_scales,
)

__all__ = [
    "MxArray",
    "fake_quantize",
    "formats",
    "from_ggml_mxfp4",
    "from_gpt_oss",
    "from_weight_tiles",
    "gptq",
    "hessian",
    "load",
    "quantize",
    "recipe",
    "recipe_presets",
    "save",
    "swizzle_scales",
    "to_ggml_mxfp4",
    "to_gpt_oss",
    "to_weight_tiles",
    "unswizzle_scales",
]
