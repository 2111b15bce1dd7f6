"""The zoo of hand-designed zero-cost proxies, registered by name.

Every proxy follows one contract, the same as an exported evolved `proxy.py`:

    score(model, inputs, targets, loss_fn=None) -> float

`model` is an untrained network, (`inputs`, `targets`) one probe batch, and
`loss_fn(logits, targets)` the loss where the proxy uses one (cross-entropy by
default). Higher scores predict higher accuracy. A proxy never changes the
caller's model: one that must alter weights (synflow, zen, ...) works on a copy.

Proxies are registered with `register_proxy`, which records the paper, the
network families the proxy applies to ('cnn', 'vit') and whether it reads the
probe data at all. The modules that define them are imported on first lookup.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Callable

__all__ = ["ProxySpec", "register_proxy", "get_proxy", "proxy_names", "score", "FAMILIES"]

FAMILIES = ("cnn", "vit")
# modules holding proxy definitions; importing one registers its proxies
_MODULES = ("size", "saliency", "jacobian", "gradient_stats", "expressivity", "feature_maps")


@dataclass(frozen=True)
class ProxySpec:
    name: str
    fn: Callable  # fn(model, inputs, targets, loss_fn) -> float; loss_fn is always given
    paper: str  # short citation: authors, title, venue year
    families: tuple = FAMILIES  # network families the proxy is defined for
    uses_data: bool = True  # False: the score ignores the probe images (params, synflow, l2_norm, ...)

    def __call__(self, model, inputs, targets, loss_fn=None) -> float:
        """The score; `loss_fn` defaults to cross-entropy, so `fn` always receives a callable."""
        if loss_fn is None:
            import torch.nn.functional as F

            loss_fn = F.cross_entropy
        return float(self.fn(model, inputs, targets, loss_fn))


_PROXIES: dict[str, ProxySpec] = {}


def register_proxy(name: str, *, paper: str, families=FAMILIES, uses_data: bool = True):
    """Decorator registering `fn(model, inputs, targets, loss_fn) -> float` as proxy `name`."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"proxy {name!r}: unknown families {sorted(unknown)}; known: {FAMILIES}")

    def wrap(fn):
        if name in _PROXIES and _PROXIES[name].fn is not fn:
            raise ValueError(f"proxy {name!r} is registered twice")
        _PROXIES[name] = ProxySpec(name, fn, paper, tuple(families), uses_data)
        return fn

    return wrap


def _registry() -> dict[str, ProxySpec]:
    for module in _MODULES:
        importlib.import_module(f"synth.zoo.{module}")
    return _PROXIES


def get_proxy(name: str) -> ProxySpec:
    """The proxy registered as `name`; a KeyError suggesting close names otherwise."""
    proxies = _registry()
    if name not in proxies:
        hint = difflib.get_close_matches(name, proxies, n=3)
        raise KeyError(f"unknown proxy {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else "")
                       + f" (known: {', '.join(sorted(proxies))})")
    return proxies[name]


def proxy_names(family: str | None = None) -> list[str]:
    """Registered proxy names, sorted; only those defined for `family` when given."""
    return sorted(n for n, p in _registry().items() if family is None or family in p.families)


def score(name: str, model, inputs, targets, loss_fn=None) -> float:
    return get_proxy(name)(model, inputs, targets, loss_fn)
