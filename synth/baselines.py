"""Size baselines every proxy is compared with: parameter count and FLOPs (multiply-adds).

Both are computed on the meta device (no weights are allocated) and kept in
a small JSON file per space under the statistics cache, so a benchmark is
measured once.
"""

from __future__ import annotations

import json

import numpy as np

from synth.cache import cache_root
from synth.rundir import write_json
from synth.space import arch_key, count_params

__all__ = ["size_baselines", "arch_size"]


def arch_size(space, arch, flops: bool = True) -> list[float]:
    """[parameter count, multiply-adds of one image (None unless `flops`)] of `arch`, measured on the
    meta device: nothing is initialised or computed, so it costs one network construction."""
    import torch

    from synth.zoo.size import multiply_adds

    size, chans = space.fixed.get("img_size", 224), space.fixed.get("in_chans", 3)
    with torch.device("meta"):
        model = space.build(arch)
    return [float(count_params(model)), multiply_adds(model, (1, chans, size, size)) if flops else None]


def size_baselines(space, archs, flops: bool = True) -> dict[str, np.ndarray]:
    """{'params': count per architecture, 'flops': multiply-adds of one forward pass of one image};
    without `flops` only 'params', which costs a tenth as much (no pass is traced). Both are cached
    per space; an entry counted without its multiply-adds gets them when they are first asked for."""
    path = cache_root() / "sizes" / f"{space.name}.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        known = {}
    identity = json.dumps([space.builder, space.fixed], sort_keys=True)
    table = known.get(identity, {})
    missing = [a for a in archs if arch_key(a) not in table or (flops and table[arch_key(a)][1] is None)]
    for arch in missing:
        table[arch_key(arch)] = arch_size(space, arch, flops)
    if missing:
        write_json(path, {**known, identity: table})
    values = np.asarray([[np.nan if v is None else v for v in table[arch_key(a)]] for a in archs], dtype=float)
    values = values.reshape(len(archs), 2)
    return {"params": values[:, 0], "flops": values[:, 1]} if flops else {"params": values[:, 0]}
