"""gptq_: post-training quantization of a PyTorch model's linear weights by error diffusion,
layer after layer, as `mx ptq` quantizes the models it reads (docs/NUMERICS.md, section 17).

Each weight's Hessian H = X^T X comes from the inputs the layer sees while the model runs over
the calibration batches with every layer before it already quantized, so that each layer
corrects the error of those before it. The order is the one in which the forward pass first
calls the layers. Each group of layers that read one tensor (q, k and v) costs one pass over
the batches.
"""

import numpy as np
import torch

import mxkit
from mxkit.torch.linear import is_linear_layer, linear_weight


def _linears(model, filter_fn):
    return {module: name for name, module in model.named_modules()
            if is_linear_layer(module) and (filter_fn is None or filter_fn(module, name))}


def _run(model, batches, forward):
    with torch.no_grad():
        for batch in batches:
            forward(model, batch)


def _call(model, batch):
    return model(*batch) if isinstance(batch, (tuple, list)) else model(batch)


def gptq_(model, batches, format="mxfp4_e2m1", *, filter_fn=None, forward=None,
          order="natural", damp=0.01, scale_choice="rule", refine=0, **spec):
    """Quantizes, in place, the weight of every nn.Linear and Hugging Face Conv1D of `model`
    (for which filter_fn(module, name) holds, when given) by error diffusion (mxkit.gptq) and
    writes back the values its MX blocks decode to, in the weight's dtype. `batches`: an
    iterable that can be walked once per layer (a list), each item passed to forward(model,
    item) (default: model(item), or model(*item) for a tuple). The keywords are mxkit.gptq's.
    Returns {name: MxArray} of the quantized weights, in quantization order, for mxkit.save.
    Put the model in eval mode first: dropout would change the Hessians from one pass to the
    next."""
    if iter(batches) is batches:
        raise TypeError("batches must be walkable once per layer (a list, not an iterator)")
    forward = forward or _call
    targets = _linears(model, filter_fn)
    # Each layer's input on its first call; kept alive through the pass, so that no two inputs
    # share an identity.
    first_input = {}

    def first_call(module, args):
        if module not in first_input:
            first_input[module] = args[0]

    hooks = [m.register_forward_pre_hook(first_call) for m in targets]
    try:
        _run(model, batches, forward)
    finally:
        for h in hooks:
            h.remove()
    missing = [targets[m] for m in targets if m not in first_input]
    if missing:
        raise ValueError(f"the calibration batches never reach {', '.join(missing)}")
    # Layers that read the same tensor (q, k and v of one block) share one Hessian and one pass:
    # their input cannot depend on one another's weights.
    groups = []
    for module, x in first_input.items():
        group = next((g for g in groups if first_input[g[0]] is x), None)
        if group is None:
            groups.append([module])
        else:
            group.append(module)
    first_input.clear()
    quantized = {}
    for group in groups:
        k = linear_weight(group[0]).shape[1]
        total = torch.zeros(k, k, dtype=torch.float64)

        def collect(m, args):
            x = args[0].detach().reshape(-1, k).to(torch.float32).cpu()
            total.add_(torch.from_numpy(mxkit.hessian(x.numpy())).to(torch.float64))

        hook = group[0].register_forward_pre_hook(collect)
        try:
            _run(model, batches, forward)
        finally:
            hook.remove()
        hessian = total.to(torch.float32).numpy()
        for module in group:
            w = np.ascontiguousarray(linear_weight(module).detach().to(torch.float32).cpu())
            q = mxkit.gptq(w, hessian, format, order=order, damp=damp,
                           scale_choice=scale_choice, refine=refine, **spec)
            with torch.no_grad():
                linear_weight(module).copy_(torch.from_numpy(np.ascontiguousarray(q.dequantize())))
            quantized[targets[module]] = q
    return quantized
