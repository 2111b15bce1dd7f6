"""The torch side of every proxy: statistics collection and the operator implementations.

This module imports torch only. `synth.export` copies its source verbatim into
each exported `proxy.py`, so the engine and a stand-alone proxy run the same
code: what the engine measured is what a user's exported file computes.

Values flowing through a program:
- a tensor-typed value is a `Layers`: every layer's matrix in one flat buffer,
  so an element-wise op is one torch call for all layers and a per-layer
  reduction is one segment reduction, not a Python loop over layers;
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


def _row_subset(n_rows, max_rows, seed):
    """Sorted indices of at most `max_rows` of `n_rows` rows, the same for every call with these arguments."""
    if not max_rows or n_rows <= max_rows:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_rows, generator=generator)[:max_rows].sort().values


def collect_statistics(model, inputs, targets, wanted, max_rows=None, row_seed=0):
    """Per-layer tensors of one forward and backward pass with cross-entropy.

    Only what `wanted` needs is run: no backward pass when no gradient is
    wanted, no pass at all for weights alone.

    `wanted` is an iterable of names 'kind.quantity' (kind msa or mlp;
    quantity weight, weight_grad, input or output_grad). Returns
    {name: Layers}. Activations and output gradients are flattened to
    (samples x tokens, features); with `max_rows`, each layer keeps a seeded
    subset of at most that many rows, the same rows for its input and its
    output gradient, so their products stay meaningful while memory stays
    bounded. Weight gradients are always exact.
    """
    wanted = sorted(set(wanted))
    layers = linear_layers_by_kind(model)
    for name in wanted:
        kind, _, quantity = name.partition(".")
        if kind not in layers or quantity not in QUANTITIES:
            raise ValueError(f"unknown statistic {name!r}")
    acts, grads, handles = {}, {}, []

    def rows(t):
        flat = t.detach().reshape(-1, t.shape[-1])
        keep = _row_subset(flat.shape[0], max_rows, row_seed)
        return (flat if keep is None else flat[keep.to(flat.device)]).float().clone()

    def keep_input(key):
        def hook(module, args, output):
            acts[key] = rows(args[0])

        return hook

    def keep_output_grad(key):
        def hook(module, grad_input, grad_output):
            grads[key] = rows(grad_output[0])

        return hook

    for kind, modules in layers.items():
        for i, module in enumerate(modules):
            if f"{kind}.input" in wanted:
                handles.append(module.register_forward_hook(keep_input((kind, i))))
            if f"{kind}.output_grad" in wanted:
                handles.append(module.register_full_backward_hook(keep_output_grad((kind, i))))
    needs_backward = any(name.split(".")[1] in ("weight_grad", "output_grad") for name in wanted)
    needs_forward = needs_backward or any(name.endswith(".input") for name in wanted)
    try:
        model.zero_grad(set_to_none=True)
        model.train()
        if needs_backward:
            F.cross_entropy(model(inputs), targets).backward()
        elif needs_forward:
            with torch.no_grad():  # activations only: no graph, no backward pass
                model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    stats = {}
    for name in wanted:
        kind, quantity = name.split(".")
        modules = layers[kind]
        if quantity == "weight":
            tensors = [m.weight.detach().float() for m in modules]
        elif quantity == "weight_grad":
            tensors = [m.weight.grad.detach().float() for m in modules]
        elif quantity == "input":
            tensors = [acts[(kind, i)] for i in range(len(modules))]
        else:
            tensors = [grads[(kind, i)] for i in range(len(modules))]
        stats[name] = Layers.from_list(tensors)
    return stats


# ---------------------------------------------------------------- per-layer values


class Layout:
    """Shapes of a list of per-layer matrices, stored in one flat buffer grouped by shape.

    Layers of one shape sit next to each other in the buffer (groups in order of
    first appearance, layers in order within a group), so a per-layer reduction
    or normalisation is one batched torch call per distinct shape (a handful per
    network) instead of one call per layer; `offsets[i]` finds layer i.
    """

    _cache = {}

    def __init__(self, shapes, device):
        self.shapes = tuple(tuple(int(d) for d in shape) for shape in shapes)
        self.device = device
        members = {}
        for i, shape in enumerate(self.shapes):
            members.setdefault(shape, []).append(i)
        self.groups = []  # (shape, layer indices as a tensor, start, layer count)
        self.offsets = [0] * len(self.shapes)
        position = 0
        for shape, layers in members.items():
            size = shape[0] * shape[1]
            self.groups.append((shape, torch.tensor(layers, device=device), position, len(layers)))
            for j, i in enumerate(layers):
                self.offsets[i] = position + j * size
            position += len(layers) * size
        self.numel = position

    @classmethod
    def of(cls, shapes, device):
        """The shared layout object for these shapes on this device."""
        key = (tuple(tuple(int(d) for d in s) for s in shapes), str(device))
        if key not in cls._cache:
            cls._cache[key] = cls(key[0], device)
        return cls._cache[key]

    @property
    def layers(self):
        return len(self.shapes)


class Layers:
    """One tensor per layer, stored flat: `data` is 1-D, `layout` gives each layer's 2-D shape and place."""

    __slots__ = ("data", "layout")

    def __init__(self, data, layout):
        self.data = data
        self.layout = layout

    @classmethod
    def from_list(cls, tensors):
        """Pack a list of per-layer tensors (each flattened to 2-D) into one buffer."""
        mats = [t.reshape(t.shape[0], -1) if t.dim() != 2 else t for t in tensors]
        device = mats[0].device if mats else "cpu"
        layout = Layout.of([m.shape for m in mats], device)
        parts = [mats[i].reshape(-1) for _, layers, _, _ in layout.groups for i in layers.tolist()]
        return cls(torch.cat(parts) if parts else torch.zeros(0, device=device), layout)

    def blocks(self):
        """(shape, layer indices, view of shape (layers, rows, cols)) for each group of equal shapes."""
        for shape, layers, start, count in self.layout.groups:
            size = shape[0] * shape[1]
            yield shape, layers, self.data[start : start + count * size].view(count, *shape)

    def matrices(self):
        """Each layer's matrix, in layer order, as views into the flat buffer."""
        lay = self.layout
        return [self.data[o : o + r * c].view(r, c) for o, (r, c) in zip(lay.offsets, lay.shapes)]

    def with_data(self, data):
        return Layers(data, self.layout)

    def float(self):
        return self if self.data.dtype == torch.float32 else Layers(self.data.float(), self.layout)


def _per_layer_scalar(fn, v):
    """fn(block of shape (layers, elements)) -> (layers,), gathered back into layer order."""
    out = torch.empty(v.layout.layers, dtype=v.data.dtype, device=v.data.device)
    for _, layers, block in v.blocks():
        out[layers] = fn(block.reshape(block.shape[0], -1))
    return out


def _per_block(fn, v):
    """A Layers value whose blocks are fn(block of shape (layers, rows, cols))."""
    parts = [fn(block).reshape(-1) for _, _, block in v.blocks()]
    return v.with_data(torch.cat(parts) if len(parts) > 1 else parts[0])


def _std_rows(t, keepdim=False):
    """Population standard deviation over the last axis, as the norm of the centred values
    (torch.std along an axis is about ten times slower on the CPU)."""
    centred = t - t.mean(dim=-1, keepdim=True)
    return torch.linalg.vector_norm(centred, dim=-1, keepdim=keepdim) / t.shape[-1] ** 0.5


def _zscore_rows(t):
    """(x - mean) / std over the last axis (population std)."""
    centred = t - t.mean(dim=-1, keepdim=True)
    return centred / (torch.linalg.vector_norm(centred, dim=-1, keepdim=True) / t.shape[-1] ** 0.5 + EPS)


def _minmax_rows(t):
    lo, hi = t.amin(dim=-1, keepdim=True), t.amax(dim=-1, keepdim=True)
    return (t - lo) / (hi - lo + EPS)


def _elementwise(fn, x):
    """Apply an element-wise `fn` to a value of any kind."""
    if isinstance(x, Layers):
        return x.with_data(fn(x.data))
    if isinstance(x, torch.Tensor):
        return fn(x)
    return float(fn(torch.tensor(float(x))))


def _whole(flat_fn, tensor_fn, x):
    """An op whose value depends on the whole tensor: `flat_fn(Layers) -> Layers`, `tensor_fn` otherwise."""
    if isinstance(x, Layers):
        return flat_fn(x)
    if isinstance(x, torch.Tensor):
        return tensor_fn(x)
    raise ValueError("a normalisation needs a tensor argument, not a constant")


def _reduce(flat_fn, tensor_fn, x):
    """A reduction: Layers -> 1-D tensor (one value per layer); tensor -> 0-d tensor."""
    if isinstance(x, Layers):
        return flat_fn(x)
    if isinstance(x, torch.Tensor):
        return tensor_fn(x)
    raise ValueError("a reduction needs a tensor argument, not a constant")


def _pairwise(fn, a, b):
    """Combine two values element by element; constants and scalars broadcast."""
    if isinstance(a, Layers) and isinstance(b, Layers):
        if a.layout.shapes != b.layout.shapes:
            raise ValueError("per-layer shapes differ")
        return a.with_data(fn(a.data, b.data))
    if isinstance(a, Layers):
        return a.with_data(fn(a.data, b))
    if isinstance(b, Layers):
        return b.with_data(fn(a, b.data))
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
    return _elementwise(lambda t: torch.pow(t, exponent), x)


# ---------------------------------------------------------------- element-wise unary


def op_log(x):
    """log|x| (protected)."""
    return _elementwise(lambda t: torch.log(t.abs() + EPS), x)


def op_abs(x):
    return _elementwise(torch.abs, x)


def op_exp(x):
    return _elementwise(torch.exp, x)


def op_sqrt(x):
    """sqrt|x| (protected)."""
    return _elementwise(lambda t: torch.sqrt(t.abs()), x)


def op_inverse(x):
    """1/x with |x| clamped below at EPS, sign kept (0 counts as positive)."""
    return _elementwise(lambda t: torch.where(t < 0, -1.0, 1.0) / t.abs().clamp_min(EPS), x)


def op_relu(x):
    return _elementwise(torch.relu, x)


def op_sigmoid(x):
    return _elementwise(torch.sigmoid, x)


# ---------------------------------------------------------------- per-layer normalisations


def _flattened(fn):
    """fn over each layer's whole matrix: the block seen as (layers, elements)."""
    return lambda block: fn(block.reshape(block.shape[0], -1))


def op_zscore(x):
    """(x - mean) / std over each layer's tensor (population std)."""
    return _whole(lambda v: _per_block(_flattened(_zscore_rows), v), lambda t: _zscore_rows(t.reshape(1, -1)).reshape(t.shape), x)


def op_minmax(x):
    """(x - min) / (max - min) over each layer's tensor."""
    return _whole(lambda v: _per_block(_flattened(_minmax_rows), v), lambda t: _minmax_rows(t.reshape(1, -1)).reshape(t.shape), x)


def op_softmax(x):
    """Softmax along the last axis (rows of each layer's matrix; layers of a per-layer vector)."""
    return _whole(lambda v: _per_block(lambda b: torch.softmax(b, dim=-1), v), lambda t: torch.softmax(t, dim=-1), x)


def op_log_softmax(x):
    return _whole(lambda v: _per_block(lambda b: torch.log_softmax(b, dim=-1), v), lambda t: torch.log_softmax(t, dim=-1), x)


# ---------------------------------------------------------------- matrix products


def _per_matrix(fn, a, b):
    if not (isinstance(a, Layers) and isinstance(b, Layers)) or a.layout.layers != b.layout.layers:
        raise ValueError("a matrix product needs two per-layer tensors of the same layers")
    return Layers.from_list([fn(x, y) for x, y in zip(a.matrices(), b.matrices())])


def op_matmul(a, b):
    """a @ b per layer."""
    return _per_matrix(lambda x, y: x @ y, a, b)


def op_matmul_tn(a, b):
    """a^T @ b per layer (e.g. output gradient^T x input, weight-shaped)."""
    return _per_matrix(lambda x, y: x.transpose(0, 1) @ y, a, b)


def op_matmul_nt(a, b):
    """a @ b^T per layer (e.g. input x weight^T, output-shaped)."""
    return _per_matrix(lambda x, y: x @ y.transpose(0, 1), a, b)


# ---------------------------------------------------------------- reductions and aggregations


def op_mean(x):
    return _reduce(lambda v: _per_layer_scalar(lambda b: b.mean(dim=1), v), torch.mean, x)


def op_std(x):
    return _reduce(lambda v: _per_layer_scalar(_std_rows, v), lambda t: _std_rows(t.reshape(-1)), x)


def op_sum(x):
    return _reduce(lambda v: _per_layer_scalar(lambda b: b.sum(dim=1), v), torch.sum, x)


def op_fro(x):
    """Frobenius (L2) norm."""
    return _reduce(lambda v: _per_layer_scalar(lambda b: torch.linalg.vector_norm(b, dim=1), v), torch.linalg.vector_norm, x)


def op_l1(x):
    return _reduce(lambda v: _per_layer_scalar(lambda b: b.abs().sum(dim=1), v), lambda t: t.abs().sum(), x)


def _nuclear_norms(v):
    """Nuclear norm of each layer's matrix: the square roots of the eigenvalues of its smaller Gram
    matrix, summed, in float32 (at most a few 1e-4 relative error against a float64 SVD, even for
    near rank-one matrices such as exp(W); tested). The Grams of one shape are one batched product;
    the eigenvalues are taken matrix by matrix, which on the CPU is several times faster than
    torch's batched eigvalsh once other processes compete for the cores."""
    out = torch.empty(v.layout.layers, dtype=torch.float32, device=v.data.device)
    for (r, c), layers, block in v.blocks():
        stack = block.float()
        grams = stack @ stack.transpose(1, 2) if r <= c else stack.transpose(1, 2) @ stack
        eig = torch.linalg.eigvalsh(grams) if grams.is_cuda else torch.stack([torch.linalg.eigvalsh(g) for g in grams])
        out[layers] = torch.sqrt(eig.clamp_min(0)).sum(dim=1)
    return out.to(v.data.dtype)


def op_nuclear(x):
    """Nuclear norm: sum of singular values of each layer's matrix."""
    return _reduce(_nuclear_norms, lambda t: torch.linalg.matrix_norm(t, ord="nuc"), x)
