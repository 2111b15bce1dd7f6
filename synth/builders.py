"""The registry of model builders: name -> `fn(arch: dict, **fixed) -> nn.Module`, the `builder` a
space file names. A module of its own so that the module defining synth's builders (synth.models)
and the one using them (synth.space) need not import each other."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["register_builder", "registered_builders"]

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_builder(name: str):
    """Decorator registering a model builder `fn(arch: dict, **fixed) -> nn.Module`."""

    def wrap(fn):
        _BUILDERS[name] = fn
        return fn

    return wrap


def registered_builders() -> dict[str, Callable[..., Any]]:
    """The builders registered so far, by name (synth.space adds synth's own by importing synth.models)."""
    return _BUILDERS
