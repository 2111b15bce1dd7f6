"""Search spaces: YAML files in `spaces/` describing architectures built from timm blocks.

A space file names a builder (a function registered here), fixed constructor
arguments, network-level choices and per-layer choices. An architecture is a
plain dict: one value per network-level choice plus, for each per-layer choice,
a list whose length is the depth. Its key is the compact JSON of that dict.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from synth.errors import SpaceError
from synth.resources import read_yaml

__all__ = ["SearchSpace", "load_space", "register_builder", "arch_key", "count_params"]

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_builder(name: str):
    """Decorator registering a model builder `fn(arch: dict, **fixed) -> nn.Module`."""

    def wrap(fn):
        _BUILDERS[name] = fn
        return fn

    return wrap


def arch_key(arch: dict) -> str:
    """Canonical string of an architecture: sorted-key compact JSON."""
    return json.dumps(arch, sort_keys=True, separators=(",", ":"))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class SearchSpace:
    name: str
    builder: str
    fixed: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)  # network-level name -> list of values
    per_layer: dict = field(default_factory=dict)  # per-block name -> list of values
    description: str = ""
    source: str = ""  # file the space came from

    def sample(self, rng: random.Random) -> dict:
        """One architecture drawn uniformly, choice by choice."""
        arch = {name: rng.choice(values) for name, values in self.choices.items()}
        depth = arch.get("depth", 1)
        for name, values in self.per_layer.items():
            arch[name] = [rng.choice(values) for _ in range(depth)]
        return arch

    def sample_distinct(self, n: int, seed: int) -> list[dict]:
        """`n` distinct architectures, reproducible from `seed`."""
        rng = random.Random(seed)
        seen: dict[str, dict] = {}
        for _ in range(1000 * n):
            arch = self.sample(rng)
            seen.setdefault(arch_key(arch), arch)
            if len(seen) == n:
                return list(seen.values())
        raise SpaceError(f"space {self.name!r} has fewer than {n} distinct architectures")

    def validate(self, arch: dict) -> dict:
        """The architecture itself if every value is a legal choice; SpaceError naming the field otherwise."""
        expected = set(self.choices) | set(self.per_layer)
        missing, extra = expected - set(arch), set(arch) - expected
        if missing or extra:
            raise SpaceError(
                f"architecture for space {self.name!r}: missing {sorted(missing)} unexpected {sorted(extra)}"
            )
        for name, values in self.choices.items():
            if arch[name] not in values:
                raise SpaceError(f"architecture field {name!r}={arch[name]!r} not in {values} (space {self.name!r})")
        depth = arch.get("depth", 1)
        for name, values in self.per_layer.items():
            layer_values = arch[name]
            if not isinstance(layer_values, list) or len(layer_values) != depth:
                raise SpaceError(f"architecture field {name!r} must be a list of {depth} values (the depth)")
            bad = [v for v in layer_values if v not in values]
            if bad:
                raise SpaceError(f"architecture field {name!r} has values {bad} not in {values}")
        return arch

    def build(self, arch: dict, seed: int = 0):
        """The network for `arch`, its weights initialised from `seed`."""
        import torch

        import synth.models  # noqa: F401  (registers the builders)

        self.validate(arch)
        torch.manual_seed(seed)
        return _BUILDERS[self.builder](arch, **self.fixed)


_SPACE_KEYS = {"name", "builder", "fixed", "choices", "per_layer", "description"}


def load_space(name_or_path: str) -> SearchSpace:
    """Load a space by shipped name (e.g. 'vit-digits') or by path to a YAML file."""
    path, raw = read_yaml(name_or_path, "spaces", SpaceError)
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: a space file must be a mapping")
    unknown = set(raw) - _SPACE_KEYS
    if unknown:
        raise SpaceError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPACE_KEYS)}")
    for key in ("name", "builder"):
        if key not in raw:
            raise SpaceError(f"{path}: missing key {key!r}")
    import synth.models  # noqa: F401  (registers the builders)

    if raw["builder"] not in _BUILDERS:
        raise SpaceError(f"{path}: key 'builder': unknown builder {raw['builder']!r}; known: {sorted(_BUILDERS)}")
    for key in ("choices", "per_layer"):
        for choice, values in (raw.get(key) or {}).items():
            if not isinstance(values, list) or not values:
                raise SpaceError(f"{path}: key '{key}.{choice}' must be a non-empty list")
    return SearchSpace(
        name=raw["name"],
        builder=raw["builder"],
        fixed=dict(raw.get("fixed") or {}),
        choices=dict(raw.get("choices") or {}),
        per_layer=dict(raw.get("per_layer") or {}),
        description=str(raw.get("description", "")).strip(),
        source=str(Path(path)),
    )
