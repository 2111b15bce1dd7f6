"""The zoo of hand-designed zero-cost proxies, registered by name.

Every proxy follows one contract, the same as an exported evolved `proxy.py`:

    score(model, inputs, targets, loss_fn=None) -> float

`model` is an untrained network, (`inputs`, `targets`) one probe batch, and
`loss_fn(logits, targets)` the loss where the proxy uses one (cross-entropy by
default). Higher scores predict higher accuracy. A proxy never changes the
caller's model: one that must alter weights (synflow, zen, ...) works on a copy.

Proxies are registered with `register_proxy` in `PROXIES` (a synth.registry.Registry), which
records the paper, the network families the proxy applies to ('cnn', 'vit') and whether it reads
the probe data at all. The modules that define them are imported on first lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F

from synth.errors import InputError
from synth.registry import Registry

__all__ = ["ProxySpec", "PROXIES", "UnknownProxy", "register_proxy", "get_proxy", "proxy_names", "score", "FAMILIES"]

FAMILIES = ("cnn", "vit")
# modules holding proxy definitions; importing one registers its proxies
_MODULES = ("size", "saliency", "jacobian", "gradient_stats", "expressivity", "feature_maps")


class UnknownProxy(InputError, KeyError):
    """An unknown proxy name: an InputError (the CLI answers exit 2) and, as `get_proxy` raised before
    the registry, a KeyError, so callers catching that keep working. Its message is not quoted."""

    __str__ = Exception.__str__


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
            loss_fn = F.cross_entropy
        return float(self.fn(model, inputs, targets, loss_fn))


PROXIES: Registry[ProxySpec] = Registry("proxy", UnknownProxy, modules=tuple(f"synth.zoo.{m}" for m in _MODULES))


def register_proxy(name: str, *, paper: str, families=FAMILIES, uses_data: bool = True):
    """Decorator registering `fn(model, inputs, targets, loss_fn) -> float` as proxy `name`;
    DuplicateName when another function holds the name."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"proxy {name!r}: unknown families {sorted(unknown)}; known: {FAMILIES}")

    def wrap(fn):
        PROXIES.register(name, ProxySpec(name, fn, paper, tuple(families), uses_data))
        return fn

    return wrap


def get_proxy(name: str) -> ProxySpec:
    """The proxy registered as `name`; UnknownProxy (an InputError and a KeyError) naming close
    names otherwise."""
    return PROXIES.get(name)


def proxy_names(family: str | None = None) -> list[str]:
    """Registered proxy names, sorted; only those defined for `family` when given."""
    return [name for name, proxy in PROXIES.items() if family is None or family in proxy.families]


def score(name: str, model, inputs, targets, loss_fn=None) -> float:
    return get_proxy(name)(model, inputs, targets, loss_fn)
