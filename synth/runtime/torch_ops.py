"""The operators' torch code: one `op_*` function per sympy node a formula can hold (synth.execute
maps nodes to them), and `op_plugin`, which applies a plugin op's torch function as its role says.

An op never changes its arguments (they may be statistics or values shared between formulas),
but a chain of steps works in place on the one temporary it makes: on the CPU a fresh buffer of
a few MB can cost more to map and fault in than the arithmetic done in it.

Part of the torch-only runtime that `synth.export` copies into every exported `proxy.py`.
"""

import torch

from synth.runtime.values import EPS, Layers, _elementwise, _minmax_rows, _pairwise, _per_block, _per_layer_scalar, _reduce, _std_rows, _whole, _zscore_rows


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
    return _elementwise(lambda t: t.abs().add_(EPS).log_(), x)


def op_abs(x):
    return _elementwise(torch.abs, x)


def op_exp(x):
    return _elementwise(torch.exp, x)


def op_sqrt(x):
    """sqrt|x| (protected)."""
    return _elementwise(lambda t: t.abs().sqrt_(), x)


def op_inverse(x):
    """1/x with |x| clamped below at EPS, sign kept (0 and -0 count as positive)."""
    return _elementwise(lambda t: t.abs().clamp_min_(EPS).reciprocal_().copysign_(t).masked_fill_(t == 0, 1 / EPS), x)


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


def op_max(x):
    """Largest value (of each layer's tensor, or of a per-layer vector); NaN where there is none."""
    return _reduce(lambda v: _per_layer_scalar(lambda b: b.amax(dim=1), v), lambda t: _extreme(torch.amax, t), x)


def op_min(x):
    """Smallest value (of each layer's tensor, or of a per-layer vector); NaN where there is none."""
    return _reduce(lambda v: _per_layer_scalar(lambda b: b.amin(dim=1), v), lambda t: _extreme(torch.amin, t), x)


def _extreme(fn, t):
    return fn(t) if t.numel() else t.new_tensor(float("nan"))


def op_fro(x):
    """Frobenius (L2) norm."""
    return _reduce(lambda v: _per_layer_scalar(lambda b: torch.linalg.vector_norm(b, dim=1), v), torch.linalg.vector_norm, x)


def op_l1(x):
    return _reduce(lambda v: _per_layer_scalar(lambda b: b.abs().sum(dim=1), v), lambda t: t.abs().sum(), x)


def _nuclear_norms(v):
    """Nuclear norm of each layer's matrix: square roots of the eigenvalues of the smaller Gram
    matrix, summed; the layers of one shape go through one batched eigvalsh, in float64.

    float32 was tried (with a float64 redo where its error estimate exceeded 1e-4): the programs of
    a real ViT-Bench-101 run then scored 0.89-0.95x as fast on an idle machine, because the nearly
    rank-one matrices programs make (exp, sigmoid of weights; weight gradients) needed the redo."""
    out = torch.empty(v.layout.layers, dtype=v.data.dtype, device=v.data.device)
    for (r, c), layers, block in v.blocks():
        stack = block.double()
        gram = stack @ stack.transpose(1, 2) if r <= c else stack.transpose(1, 2) @ stack
        out[layers] = torch.sqrt(torch.linalg.eigvalsh(gram).clamp_min(0)).sum(dim=1).to(out.dtype)
    return out


def op_nuclear(x):
    """Nuclear norm: sum of singular values of each layer's matrix."""
    return _reduce(_nuclear_norms, lambda t: torch.linalg.matrix_norm(t, ord="nuc"), x)


# ---------------------------------------------------------------- channel-wise reductions


def _per_column(fn, x):
    """Layers of 1 x columns rows: fn(block of shape (layers, rows, cols)) -> (layers, cols) for each
    group of equal shapes, put back in layer order (shapes change, so the layout is rebuilt)."""
    if not isinstance(x, Layers):
        raise ValueError("a channel-wise reduction needs a per-layer tensor")
    out = [None] * x.layout.layers
    for _, layers, block in x.blocks():
        for i, row in zip(layers.tolist(), fn(block)):
            out[i] = row.reshape(1, -1)
    return Layers.from_list(out)


def op_channel_mean(x):
    """Mean over the rows of each column: per channel, over samples and positions, for activation rows."""
    return _per_column(lambda b: b.mean(dim=1), x)


def op_channel_std(x):
    """Population standard deviation over the rows of each column (float64 accumulation, as `std`)."""
    return _per_column(lambda b: _std_rows(b.transpose(1, 2)), x)


def op_channel_norm(x):
    """Euclidean norm over the rows of each column."""
    return _per_column(lambda b: torch.linalg.vector_norm(b, dim=1), x)


# ---------------------------------------------------------------- per-sample kernels


def op_hamming_kernel(x):
    """NWOT's kernel of 0/1 codes: K[i, j] = number of units where samples i and j agree, over all layers.

    Each layer's matrix has one row per sample (codes c in {0, 1}); K = sum over layers of
    c c^T + (1 - c)(1 - c)^T, computed in float64 (counts stay exact), a samples x samples tensor.
    """
    if not isinstance(x, Layers):
        raise ValueError("hamming_kernel needs per-layer codes (one row per sample)")
    samples = {shape[0] for shape in x.layout.shapes}
    if len(samples) != 1:
        raise ValueError("hamming_kernel needs the same number of samples (rows) in every layer")
    n = samples.pop()
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.data.device)
    for _, _, block in x.blocks():
        for code in block.double():
            kernel += code @ code.T + (1 - code) @ (1 - code).T
    return kernel


def op_logdet(k):
    """log |det K| of a samples x samples kernel (-inf when K is singular), in float64."""
    if not isinstance(k, torch.Tensor) or k.dim() != 2:
        raise ValueError("logdet needs a samples x samples kernel")
    return torch.linalg.slogdet(k.double()).logabsdet


# ---------------------------------------------------------------- plugin ops

PLUGIN_OPS = {}  # op name -> (role, whole_tensor, torch function): the ops plugins register (synth.plugins)


def _per_layer(fn, x, what):
    """fn(each layer's matrix), the per-layer matrices of a Layers value."""
    if not isinstance(x, Layers):
        raise ValueError(f"{what} needs a per-layer tensor")
    return [fn(m) for m in x.matrices()]


def _plugin_unary(fn, whole_tensor, x):
    """Element-wise: fn on all layers' values at once; whole tensor: fn on each layer's matrix."""
    if not whole_tensor:
        return _elementwise(fn, x)
    return _whole(lambda v: Layers.from_list(_per_layer(fn, v, "a plugin op")), fn, x)


def _plugin_reduce(fn, x):
    """fn(matrix) -> one number, per layer: a 1-D tensor (a 0-d tensor for a whole tensor)."""
    return _reduce(lambda v: torch.stack([torch.as_tensor(fn(m)).reshape(()) for m in v.matrices()]), fn, x)


def _plugin_call(role, whole_tensor, fn, args):
    """A plugin op's value on program values, its torch function applied as its role says."""
    if role == "unary":
        return _plugin_unary(fn, whole_tensor, args[0])
    if role == "binary":
        return _pairwise(fn, *args)
    if role == "reduce":
        return _plugin_reduce(fn, args[0])
    if role == "matmul":
        return _per_matrix(fn, *args)
    if role == "channel":
        return Layers.from_list([row.reshape(1, -1) for row in _per_layer(fn, args[0], "a channel-wise op")])
    if role == "kernel":
        return fn(_per_layer(lambda m: m, args[0], "a kernel op"))
    return fn(args[0])  # aggregate (a 1-D tensor over layers) and kernel_reduce (a samples x samples kernel)


def op_plugin(name, *args):
    """The value of plugin op `name` (registered in PLUGIN_OPS) on its arguments."""
    role, whole_tensor, fn = PLUGIN_OPS[name]
    return _plugin_call(role, whole_tensor, fn, args)
