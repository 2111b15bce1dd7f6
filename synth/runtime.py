"""The torch side of every proxy: statistics collection and the operator implementations.

This module imports torch only. `synth.export` copies its source verbatim into
each exported `proxy.py`, so the engine and a stand-alone proxy run the same
code: what the engine measured is what a user's exported file computes.

Values flowing through a program:
- a tensor-typed value is a Python list with one tensor per layer;
- a per-layer scalar value is a 1-D tensor (one entry per layer);
- a network scalar is a 0-d tensor;
- a plain Python number is a constant that broadcasts.
"""

import torch
import torch.nn.functional as F

EPS = 1e-12  # protection for log, inverse and the normalisations
QUANTITIES = ("weight", "weight_grad", "input", "output_grad")


# ---------------------------------------------------------------- statistics


def linear_layers_by_kind(model):
    """The model's linear layers grouped as {'msa': [...], 'mlp': [...]} in forward order.

    Found by structure, not class name, so any timm ViT family model works
    (VisionTransformer, DeiT, PiT): an attention module holds `qkv` and `proj`
    linear layers; an MLP module holds `fc1` and `fc2`.
    """
    kinds = {"msa": [], "mlp": []}
    for module in model.modules():
        if isinstance(getattr(module, "qkv", None), torch.nn.Linear) and isinstance(
            getattr(module, "proj", None), torch.nn.Linear
        ):
            kinds["msa"] += [module.qkv, module.proj]
        elif isinstance(getattr(module, "fc1", None), torch.nn.Linear) and isinstance(
            getattr(module, "fc2", None), torch.nn.Linear
        ):
            kinds["mlp"] += [module.fc1, module.fc2]
    return kinds


def collect_statistics(model, inputs, targets, wanted):
    """Per-layer tensors of one forward and backward pass with cross-entropy.

    `wanted` is an iterable of names 'kind.quantity' (kind msa or mlp;
    quantity weight, weight_grad, input or output_grad). Returns
    {name: [float32 tensor per layer]}; activations are flattened to
    (samples x tokens, features).
    """
    wanted = sorted(set(wanted))
    layers = linear_layers_by_kind(model)
    acts, grads, handles = {}, {}, []

    def keep_input(name):
        def hook(module, args, output):
            acts[name] = args[0].detach().reshape(-1, args[0].shape[-1]).float()

        return hook

    def keep_output_grad(name):
        def hook(module, grad_input, grad_output):
            grads[name] = grad_output[0].detach().reshape(-1, grad_output[0].shape[-1]).float()

        return hook

    for kind, modules in layers.items():
        for i, module in enumerate(modules):
            if f"{kind}.input" in wanted:
                handles.append(module.register_forward_hook(keep_input((kind, i))))
            if f"{kind}.output_grad" in wanted:
                handles.append(module.register_full_backward_hook(keep_output_grad((kind, i))))
    try:
        model.zero_grad(set_to_none=True)
        model.train()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    stats = {}
    for name in wanted:
        kind, quantity = name.split(".")
        if kind not in layers or quantity not in QUANTITIES:
            raise ValueError(f"unknown statistic {name!r}")
        modules = layers[kind]
        if quantity == "weight":
            stats[name] = [m.weight.detach().float().clone() for m in modules]
        elif quantity == "weight_grad":
            stats[name] = [m.weight.grad.detach().float().clone() for m in modules]
        elif quantity == "input":
            stats[name] = [acts[(kind, i)] for i in range(len(modules))]
        else:
            stats[name] = [grads[(kind, i)] for i in range(len(modules))]
    return stats


# ---------------------------------------------------------------- value helpers


def _per_layer(fn, x):
    """Apply `fn` to each layer's tensor of a list, or to the tensor itself."""
    if isinstance(x, list):
        return [fn(t) for t in x]
    if isinstance(x, torch.Tensor):
        return fn(x)
    return float(fn(torch.tensor(float(x))))


def _reduce(fn, x):
    """A per-layer reduction: list of tensors -> 1-D tensor; tensor -> 0-d tensor."""
    if isinstance(x, list):
        return torch.stack([fn(t) for t in x])
    if isinstance(x, torch.Tensor):
        return fn(x)
    raise ValueError("a reduction needs a tensor argument, not a constant")


def _pairwise(fn, a, b):
    """Combine two values layer by layer; constants and scalars broadcast."""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            raise ValueError(f"layer counts differ: {len(a)} vs {len(b)}")
        return [fn(x, y) for x, y in zip(a, b)]
    if isinstance(a, list):
        return [fn(x, b) for x in a]
    if isinstance(b, list):
        return [fn(a, y) for y in b]
    return fn(a, b)


def op_add(*args):
    out = args[0]
    for arg in args[1:]:
        out = _pairwise(lambda x, y: x + y, out, arg)
    return out


def op_mul(*args):
    out = args[0]
    for arg in args[1:]:
        out = _pairwise(lambda x, y: x * y, out, arg)
    return out


def op_pow(x, exponent):
    return _per_layer(lambda t: torch.pow(t, exponent), x)


# ---------------------------------------------------------------- element-wise unary


def op_log(x):
    """log|x| (protected)."""
    return _per_layer(lambda t: torch.log(t.abs() + EPS), x)


def op_abs(x):
    return _per_layer(torch.abs, x)


def op_exp(x):
    return _per_layer(torch.exp, x)


def op_sqrt(x):
    """sqrt|x| (protected)."""
    return _per_layer(lambda t: torch.sqrt(t.abs()), x)


def op_inverse(x):
    """1/x with |x| clamped below at EPS, sign kept (0 counts as positive)."""
    return _per_layer(lambda t: torch.where(t < 0, -1.0, 1.0) / t.abs().clamp_min(EPS), x)


def op_relu(x):
    return _per_layer(torch.relu, x)


def op_sigmoid(x):
    return _per_layer(torch.sigmoid, x)


def op_zscore(x):
    """(x - mean) / std over each layer's tensor (population std)."""
    return _per_layer(lambda t: (t - t.mean()) / (t.std(unbiased=False) + EPS), x)


def op_minmax(x):
    """(x - min) / (max - min) over each layer's tensor."""
    return _per_layer(lambda t: (t - t.min()) / (t.max() - t.min() + EPS), x)


def op_softmax(x):
    """Softmax along the last axis (rows of a matrix; layers of a per-layer vector)."""
    return _per_layer(lambda t: torch.softmax(t, dim=-1), x)


def op_log_softmax(x):
    return _per_layer(lambda t: torch.log_softmax(t, dim=-1), x)


# ---------------------------------------------------------------- matrix products


def op_matmul(a, b):
    """a @ b per layer."""
    return _pairwise(lambda x, y: x @ y, a, b)


def op_matmul_tn(a, b):
    """a^T @ b per layer (e.g. output gradient^T x input, weight-shaped)."""
    return _pairwise(lambda x, y: x.transpose(-1, -2) @ y, a, b)


def op_matmul_nt(a, b):
    """a @ b^T per layer (e.g. input x weight^T, output-shaped)."""
    return _pairwise(lambda x, y: x @ y.transpose(-1, -2), a, b)


# ---------------------------------------------------------------- reductions and aggregations


def op_mean(x):
    return _reduce(torch.mean, x)


def op_std(x):
    return _reduce(lambda t: t.std(unbiased=False), x)


def op_sum(x):
    return _reduce(torch.sum, x)


def op_fro(x):
    """Frobenius (L2) norm."""
    return _reduce(lambda t: torch.linalg.vector_norm(t), x)


def op_l1(x):
    return _reduce(lambda t: t.abs().sum(), x)


def op_nuclear(x):
    """Nuclear norm: sum of singular values of each layer's matrix."""
    return _reduce(lambda t: torch.linalg.matrix_norm(t, ord="nuc"), x)
