"""What a statistic reads at one site: row subsets, per-sample gradient moments, attention maps,
im2col patches and structural numbers, each from a module and the tensors its hooks captured.

Part of the torch-only runtime that `synth.export` copies into every exported `proxy.py`.
"""

import torch
import torch.nn.functional as F

SAMPLE_GRAD_CHUNK = 1 << 24  # per-sample gradient elements formed at once (64 MB in float32)


def _row_subset(n_rows, max_rows, seed):
    """Sorted indices of at most `max_rows` of `n_rows` rows, the same for every call with these arguments."""
    if not max_rows or n_rows <= max_rows:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_rows, generator=generator)[:max_rows].sort().values


def _sign_codes(t, options):
    """0/1 codes of `t` > 0, one row per sample: (samples, kept tokens x units).

    Bounded like the activation rows: at most `max_rows` (samples x tokens) are kept, by one seeded
    subset of the token positions shared by every sample, so the codes of two samples still compare
    unit by unit (at 224 px a ViT block has 197 tokens x up to 960 hidden units per sample; all of
    them would be over 100 MB per network). With every token kept they are NWOT's codes exactly."""
    flat = t.detach().reshape(t.shape[0], -1, t.shape[-1])
    budget = options["max_rows"]
    keep = _row_subset(flat.shape[1], max(1, budget // flat.shape[0]) if budget else None, options["row_seed"])
    if keep is not None:
        flat = flat[:, keep.to(flat.device)]
    return (flat > 0).reshape(flat.shape[0], -1).float()


def _rows(t, options):
    """`t` flattened to (samples x tokens, features), keeping the seeded row subset of `options`."""
    flat = t.detach().reshape(-1, t.shape[-1])
    keep = _row_subset(flat.shape[0], options["max_rows"], options["row_seed"])
    return (flat if keep is None else flat[keep.to(flat.device)]).float().clone()


def _sample_grad_moments(captured):
    """(mean over samples n of |g_n|, population std over samples of g_n) for a linear layer, where
    g_n = N gy_n^T x_n is the weight gradient of sample n's own loss (the batch loss is the mean of
    N samples' losses, so gy_n is 1/N of that sample's output gradient; tokens are summed).

    Exact, and bounded in memory: the mean of the g_n is gy^T x over all rows (one product), and
    per-sample gradients are formed a few samples at a time to sum |g_n| and (g_n - mean)^2 (two
    passes, so the variance does not cancel). Computed once per layer and kept in `captured`.
    """
    if "sample_grad_moments" not in captured:
        x, gy = captured["input"].detach(), captured["output_grad"].detach()
        n = x.shape[0]
        x, gy = x.reshape(n, -1, x.shape[-1]).float(), gy.reshape(n, -1, gy.shape[-1]).float()
        mean = gy.reshape(-1, gy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        abs_sum, square_sum = torch.zeros_like(mean), torch.zeros_like(mean)
        step = max(1, SAMPLE_GRAD_CHUNK // mean.numel())
        for start in range(0, n, step):
            g = n * (gy[start : start + step].transpose(1, 2) @ x[start : start + step])
            abs_sum += g.abs().sum(dim=0)
            square_sum += (g - mean).square().sum(dim=0)
        captured["sample_grad_moments"] = (abs_sum / n, (square_sum / n).sqrt())
    return captured["sample_grad_moments"]


def _attention(site, captured):
    """(softmax(q k^T / sqrt(d)), v) per head, each (samples, heads, tokens, ...), recomputed from the
    attention module's input with its own qkv layer, q/k norms and scale; kept in `captured`."""
    if "attention" not in captured:
        module, x = site.module, captured["input"].detach()
        if not isinstance(getattr(module, "norm", torch.nn.Identity()), torch.nn.Identity) or getattr(module, "gate", None) is not None:
            raise ValueError("attention statistics need an attention module without output norm or gate")
        n, t = x.shape[0], x.shape[1]
        with torch.no_grad():
            qkv = F.linear(x, module.qkv.weight, module.qkv.bias)  # not module.qkv(x): its hooks must see one call
            q, k, v = qkv.reshape(n, t, 3, module.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            q, k = module.q_norm(q), module.k_norm(k)
            scores = (q * module.scale) @ k.transpose(-2, -1)
        captured["attention"] = (torch.softmax(scores.float(), dim=-1), v.float())
    return captured["attention"]


def _attention_grad(site, captured):
    """dL/dA per head, (samples, heads, tokens, tokens): the attention output is O = A v, and the
    gradient at O is the module's output gradient through `proj`, dL/dO = gy W_proj (split into heads)."""
    maps, v = _attention(site, captured)
    gy = captured["output_grad"].detach().float()
    n, heads, t = maps.shape[0], maps.shape[1], maps.shape[2]
    grad_out = (gy @ site.module.proj.weight.detach().float()).reshape(n, t, heads, -1).transpose(1, 2)
    return grad_out @ v.transpose(-2, -1)


def _channels_last(t):
    """A (samples, channels, *spatial) activation as (samples, *spatial, channels), so that rows are
    positions and columns channels; a 2-D (samples, features) tensor is already so."""
    return t.movedim(1, -1) if t.dim() >= 3 else t


def _padded(module, x):
    """A conv's input with the module's padding applied, so every patch is a plain slice of it."""
    (kh, kw), (dh, dw) = module.kernel_size, module.dilation
    if module.padding == "valid":
        pads = (0, 0, 0, 0)
    elif module.padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    else:
        ph, pw = module.padding
        pads = (pw, pw, ph, ph)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    return F.pad(x, pads, mode=mode) if any(pads) else x


def _out_size(size, kernel, stride, dilation):
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _patch_rows(module, x, options):
    """im2col rows of a conv input: one row per (sample, output position), the in x kh x kw patch that
    output position sees, in the order of `weight.reshape(out, -1)` (channel, then kernel row and
    column). So rows @ W^T is the conv's output (bias aside) and output_grad^T @ rows its weight
    gradient, exactly as for a linear layer. With `max_rows`, the seeded subset of rows that `_rows`
    keeps of the output gradient, gathered patch by patch: the full im2col matrix is never formed."""
    x = _padded(module, x.detach())
    n, (kh, kw), (sh, sw), (dh, dw) = x.shape[0], module.kernel_size, module.stride, module.dilation
    ho, wo = _out_size(x.shape[2], kh, sh, dh), _out_size(x.shape[3], kw, sw, dw)
    keep = _row_subset(n * ho * wo, options["max_rows"], options["row_seed"])
    rows = torch.arange(n * ho * wo) if keep is None else keep
    rows = rows.to(x.device)
    sample, position = rows // (ho * wo), rows % (ho * wo)
    ky = (torch.arange(kh, device=x.device) * dh).repeat_interleave(kw)
    kx = (torch.arange(kw, device=x.device) * dw).repeat(kh)
    ys = (position // wo * sh)[:, None] + ky[None]
    xs = (position % wo * sw)[:, None] + kx[None]
    patches = x[sample[:, None], :, ys, xs]  # (rows, kh x kw, channels): advanced indices first
    return patches.transpose(1, 2).reshape(rows.shape[0], -1).float()


def _conv_sample_grad_moments(site, captured):
    """(mean over samples n of |g_n|, population std over samples of g_n) for a Conv2d, weight-shaped
    (out x in/groups*kh*kw), where g_n = N gy_n^T P_n: gy_n the output gradient at sample n's
    positions, P_n its im2col patches (see `_patch_rows`). As for a linear layer, g_n is sample n's
    share of the batch gradient (their mean is `weight_grad`); without batch norm it is the gradient
    of sample n's own loss, with batch norm the samples are coupled through the batch statistics.

    Exact and bounded in memory: the mean comes from one `conv2d_weight`, then the patches of a few
    samples at a time are unfolded to sum |g_n| and (g_n - mean)^2 (no cancellation).
    Computed once per layer and kept in `captured`.
    """
    if "sample_grad_moments" not in captured:
        module = site.module
        x = _padded(module, captured["input"].detach().float())
        gy = captured["output_grad"].detach().float()
        n, groups, shape = x.shape[0], module.groups, module.weight.shape
        mean = torch.nn.grad.conv2d_weight(x, shape, gy, module.stride, 0, module.dilation, groups).reshape(shape[0], -1)
        abs_sum, square_sum = torch.zeros_like(mean), torch.zeros_like(mean)
        out_g, in_g = shape[0] // groups, mean.shape[1]
        step = max(1, SAMPLE_GRAD_CHUNK // (mean.numel() + in_g * groups * gy[0, 0].numel()))
        for start in range(0, n, step):
            cols = F.unfold(x[start : start + step], module.kernel_size, module.dilation, 0, module.stride)
            grads = gy[start : start + step].flatten(2)
            for g in range(groups):  # (chunk, out/groups, in/groups x kh x kw) per group of channels
                rows = slice(g * out_g, (g + 1) * out_g)
                per_sample = n * (grads[:, rows] @ cols[:, g * in_g : (g + 1) * in_g].transpose(1, 2))
                abs_sum[rows] += per_sample.abs().sum(dim=0)
                square_sum[rows] += (per_sample - mean[rows]).square().sum(dim=0)
        captured["sample_grad_moments"] = (abs_sum / n, (square_sum / n).sqrt())
    return captured["sample_grad_moments"]


def _channel_width(t):
    """Channels of an activation: axis 1 of a (samples, channels, *spatial) tensor, else the last."""
    return t.shape[1] if t.dim() >= 3 else t.shape[-1]


def _spatial(t):
    """Positions per sample of an activation: H x W of a (samples, channels, H, W) tensor, 1 for 2-D."""
    return t[0, 0].numel() if t.dim() >= 3 else 1


def _trainable_numel(module):
    """Elements of the module's own trainable parameters (weight and bias), as synth.zoo's #params counts them."""
    return sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)


def _affine(module, name):
    """A batch-norm layer's affine weight (or its gradient) as a 1 x channels row: 1 (gradient 0)
    where the layer has no affine parameters."""
    weight = module.weight
    if weight is None:
        return torch.full((1, module.num_features), 1.0 if name == "weight" else 0.0)
    value = weight if name == "weight" else weight.grad
    return (torch.zeros_like(weight) if value is None else value).detach().float().reshape(1, -1)


def _norm_ratio(numerator, denominator):
    """|numerator| / |denominator|, Frobenius norms over the batch: a block's gain, forward (output over
    input) or backward (input gradient over output gradient). NaN where the numerator is None (an
    input that takes no gradient); 0 where the denominator is zero (a block no gradient reaches)."""
    if numerator is None:
        return torch.tensor(float("nan"))
    below = denominator.detach().float().norm()
    return numerator.detach().float().norm() / below if below > 0 else torch.tensor(0.0)


def _scalar(value):
    return torch.tensor(float(value))


def _grad_of(weight):
    """A weight's gradient as float32, zeros where the pass left it None (a weight the loss does not reach)."""
    return (torch.zeros_like(weight) if weight.grad is None else weight.grad).detach().float()
