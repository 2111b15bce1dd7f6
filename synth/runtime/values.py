"""Values flowing through a program, and the helpers that apply a torch function to each kind:

- a tensor-typed value is a `Layers`: every layer's matrix in one flat buffer,
  so an element-wise op is one torch call for all layers and a per-layer
  reduction is one segment reduction, not a Python loop over layers;
- a per-layer scalar value is a 1-D tensor (one entry per layer);
- a network scalar is a 0-d tensor;
- a plain Python number is a constant that broadcasts.

Part of the torch-only runtime that `synth.export` copies into every exported `proxy.py`.
"""

import torch

EPS = 1e-12  # protection for log, inverse and the normalisations


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

    def to(self, device):
        """The same layers on `device` (as `Tensor.to`, so any statistic's value moves alike)."""
        return Layers(self.data.to(device), Layout.of(self.layout.shapes, device))

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
    (torch.std along an axis is about ten times slower on the CPU), accumulated in float64:
    in float32 the norm of a few 100k values (a layer's activations or sign codes) drifts by
    1e-5 relative, which a program subtracting two close numbers amplifies."""
    centred = t - t.mean(dim=-1, keepdim=True)
    norm = torch.linalg.vector_norm(centred, dim=-1, keepdim=keepdim, dtype=torch.float64).to(t.dtype)
    return norm / t.shape[-1] ** 0.5


def _zscore_rows(t):
    """(x - mean) / std over the last axis (population std)."""
    centred = t - t.mean(dim=-1, keepdim=True)
    return centred.div_(torch.linalg.vector_norm(centred, dim=-1, keepdim=True) / t.shape[-1] ** 0.5 + EPS)


def _minmax_rows(t):
    lo, hi = t.amin(dim=-1, keepdim=True), t.amax(dim=-1, keepdim=True)
    return (t - lo).div_(hi - lo + EPS)


def _elementwise(fn, x):
    """Apply an element-wise `fn` to a value of any kind."""
    if isinstance(x, Layers):
        return x.with_data(fn(x.data))
    if isinstance(x, torch.Tensor):
        return fn(x)
    return float(fn(torch.tensor(float(x))))


def _on_tensor(flat_fn, tensor_fn, x, what: str):
    """`flat_fn(Layers)` or `tensor_fn(tensor)`: an op that needs a tensor argument (`what` it is, for the error)."""
    if isinstance(x, Layers):
        return flat_fn(x)
    if isinstance(x, torch.Tensor):
        return tensor_fn(x)
    raise ValueError(f"{what} needs a tensor argument, not a constant")


def _whole(flat_fn, tensor_fn, x):
    """An op whose value depends on the whole tensor: `flat_fn(Layers) -> Layers`, `tensor_fn` otherwise."""
    return _on_tensor(flat_fn, tensor_fn, x, "a normalisation")


def _reduce(flat_fn, tensor_fn, x):
    """A reduction: Layers -> 1-D tensor (one value per layer); tensor -> 0-d tensor."""
    return _on_tensor(flat_fn, tensor_fn, x, "a reduction")


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
