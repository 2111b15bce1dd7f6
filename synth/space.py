"""Search spaces: YAML files in `spaces/` describing architectures built from timm blocks.

A space file names a builder (a function registered here), fixed constructor
arguments, network-level choices and per-layer choices. An architecture is a
plain dict: one value per network-level choice plus, for each per-layer choice,
a list whose length is the depth. Its key is the compact JSON of that dict.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from synth.builders import register_builder, registered_builders
from synth.errors import SpaceError
from synth.resources import read_yaml

__all__ = ["SearchSpace", "load_space", "register_builder", "arch_key", "count_params"]


def _builders() -> dict:
    """The builder registry, with synth's own builders (synth.models) registered."""
    import synth.models  # noqa: F401  (registering is importing)

    return registered_builders()


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
    family: str = ""  # network family ('vit', 'cnn'): which zoo proxies apply; '' for unknown (all)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "SearchSpace":
        return cls(**raw)

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

    # ------------------------------------------------------------ enumeration and encoding

    def _depths(self) -> list[int]:
        """The depths per-layer choices may take (1 when the space has no depth choice)."""
        depths = self.choices.get("depth", [1])
        return [d for d in depths if isinstance(d, int)] or [1]

    def size(self) -> int:
        """Number of distinct architectures, counted without enumerating them."""
        fixed_part = math.prod(len(v) for k, v in self.choices.items() if not (self.per_layer and k == "depth"))
        if not self.per_layer:
            return fixed_part
        per_block = math.prod(len(v) for v in self.per_layer.values())
        return fixed_part * sum(per_block**d for d in self._depths())

    def enumerate(self):
        """Every architecture once, in a deterministic order (choices in file order)."""
        names = list(self.choices)
        for combo in itertools.product(*(self.choices[n] for n in names)):
            arch = dict(zip(names, combo))
            if not self.per_layer:
                yield arch
                continue
            depth = arch.get("depth", 1)
            layer_names = list(self.per_layer)
            per_block = list(itertools.product(*(self.per_layer[n] for n in layer_names)))
            for blocks in itertools.product(per_block, repeat=depth):
                yield {**arch, **{n: [b[j] for b in blocks] for j, n in enumerate(layer_names)}}

    def encoding_length(self) -> int:
        return len(self.choices) + len(self.per_layer) * max(self._depths())

    def encode(self, arch: dict) -> list[int]:
        """Fixed-length integer code: the index of each choice; per-layer choices padded with -1 to the maximum depth."""
        self.validate(arch)
        code = [self.choices[n].index(arch[n]) for n in self.choices]
        width = max(self._depths())
        for n, values in self.per_layer.items():
            layer_codes = [values.index(v) for v in arch[n]]
            code += layer_codes + [-1] * (width - len(layer_codes))
        return code

    def decode(self, code: list[int]) -> dict:
        """The architecture of an `encode`d list."""
        if len(code) != self.encoding_length():
            raise SpaceError(f"code of length {len(code)}; space {self.name!r} codes have length {self.encoding_length()}")
        arch = {n: self.choices[n][code[i]] for i, n in enumerate(self.choices)}
        depth, width, start = arch.get("depth", 1), max(self._depths()), len(self.choices)
        for j, (n, values) in enumerate(self.per_layer.items()):
            block = code[start + j * width : start + j * width + depth]
            arch[n] = [values[c] for c in block]
        return self.validate(arch)

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

        self.validate(arch)
        torch.manual_seed(seed)
        return _builders()[self.builder](arch, **self.fixed)


_SPACE_KEYS = {"name", "builder", "family", "fixed", "choices", "per_layer", "description"}


def load_space(name_or_path: str) -> SearchSpace:
    """Load a space by shipped name (e.g. 'vit-digits') or by path to a YAML file.

    The file is checked completely here, before any work: keys, the shape and types of `fixed`,
    `choices` and `per_layer`, and a shapes-only build of its smallest architecture, so a bad
    constructor argument or value is a SpaceError naming the file, not a traceback mid-run.
    """
    path, raw = read_yaml(name_or_path, "spaces", SpaceError)
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: a space file must be a mapping")
    unknown = set(map(str, raw)) - _SPACE_KEYS
    if unknown:
        raise SpaceError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPACE_KEYS)}")
    for key in ("name", "builder"):
        if key not in raw:
            raise SpaceError(f"{path}: missing key {key!r}")
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise SpaceError(f"{path}: key {key!r} must be a non-empty string, got {raw[key]!r}")
    if raw["builder"] not in _builders():
        raise SpaceError(f"{path}: key 'builder': unknown builder {raw['builder']!r}; known: {sorted(_builders())}")
    sections = {key: _mapping(path, raw, key) for key in ("fixed", "choices", "per_layer")}
    for key in ("choices", "per_layer"):
        for choice, values in sections[key].items():
            _check_values(path, f"{key}.{choice}", values)
    for name, value in sections["fixed"].items():
        _check_numbers(path, f"fixed.{name}", value)
    if sections["per_layer"]:
        _check_depths(path, sections["choices"].get("depth"))
    space = SearchSpace(
        name=raw["name"],
        builder=raw["builder"],
        fixed=sections["fixed"],
        choices=sections["choices"],
        per_layer=sections["per_layer"],
        description=str(raw.get("description") or "").strip(),
        source=str(Path(path)),
        family=str(raw.get("family") or ""),
    )
    _check_builds(path, space)
    return space


def _mapping(path, raw: dict, key: str) -> dict:
    """Section `key` of a space file (absent: empty), which must map string names to values."""
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise SpaceError(f"{path}: key {key!r} must be a mapping of name -> value, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            raise SpaceError(f"{path}: key '{key}.{name}': names must be strings")
    return dict(value)


def _kind(value) -> str:
    """The kind a choice value has, for 'all values of one choice are alike'."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    return "string" if isinstance(value, str) else type(value).__name__


def _numbers(value):
    """The numbers in a choice value (itself, or the items of a list value)."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if _kind(v) == "number"]


def _check_values(path, where: str, values) -> None:
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{path}: key {where!r} must be a non-empty list of values, got {values!r}")
    kinds = {_kind(v) for v in values}
    if len(kinds) > 1 or not kinds <= {"number", "string", "list", "boolean"}:
        raise SpaceError(f"{path}: key {where!r}: values must be all numbers, all strings or all lists, got {values!r}")
    for value in values:
        _check_numbers(path, where, value)


def _check_numbers(path, where: str, value) -> None:
    """Sizes, counts, ratios and rates: no space has a use for negative or non-finite numbers."""
    bad = [n for n in _numbers(value) if not (math.isfinite(n) and n >= 0)]
    if bad:
        raise SpaceError(f"{path}: key {where!r}: numbers must be finite and not negative, got {bad[0]!r}")


def _check_depths(path, depths) -> None:
    """Per-layer choices give one value per block, so the space's depths must be positive integers."""
    if depths is None:
        return  # one block
    bad = [d for d in depths if isinstance(d, bool) or not isinstance(d, int) or d < 1]
    if bad:
        raise SpaceError(f"{path}: key 'choices.depth': with per_layer choices each depth is a number of blocks "
                         f"(a positive integer), got {bad[0]!r}")


def _smallest(space: SearchSpace) -> dict:
    arch = {name: min(values) for name, values in space.choices.items()}
    depth = arch.get("depth", 1)
    return {**arch, **{name: [min(values)] * depth for name, values in space.per_layer.items()}}


def _check_builds(path, space: SearchSpace) -> None:
    """Build the smallest architecture with shapes only (meta tensors, no initialisation, the random
    state untouched): a wrong constructor argument or value shows now, naming the file."""
    import warnings

    import torch

    try:
        arch = _smallest(space)
    except TypeError:  # e.g. list values holding numbers and strings
        raise SpaceError(f"{path}: choice values of one kind must be comparable (to find the smallest "
                         "architecture); lists must hold numbers alike") from None
    try:
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]), torch.device("meta"), _shapes_only_mode():
            warnings.simplefilter("ignore")  # e.g. zero-element tensors: a check, not a build the user sees
            _builders()[space.builder](arch, **space.fixed)
    except SpaceError as exc:
        raise SpaceError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a builder's failure on the file's values is the file's error
        raise SpaceError(f"{path}: its smallest architecture {arch_key(arch)} does not build with builder "
                         f"{space.builder!r} and fixed {space.fixed}: {type(exc).__name__}: {exc}") from None


def _shapes_only_mode():
    from torch.overrides import TorchFunctionMode

    class ShapesOnly(TorchFunctionMode):
        """Skips in-place tensor ops (weight initialisation) on meta tensors, where they are slow."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name.endswith("_") and not name.endswith("__") and args and getattr(args[0], "is_meta", False):
                return args[0]
            return func(*args, **(kwargs or {}))

    return ShapesOnly()

