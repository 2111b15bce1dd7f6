"""The registry of model builders: name -> `fn(arch: dict, **fixed) -> nn.Module`, the `builder` a
space file names. A module of its own so that the module defining synth's builders (synth.models)
and the one using them (synth.space) need not import each other; synth.models is imported on the
first lookup."""

from __future__ import annotations

from typing import Any, Callable

from synth.errors import SpaceError
from synth.registry import Registry

__all__ = ["BUILDERS", "register_builder", "registered_builders"]

BUILDERS: Registry[Callable[..., Any]] = Registry("builder", SpaceError, modules=("synth.models",))


def register_builder(name: str):
    """Decorator registering a model builder `fn(arch: dict, **fixed) -> nn.Module`; DuplicateName
    when another function holds the name (it used to replace it silently)."""
    return BUILDERS.register(name)


def registered_builders() -> dict[str, Callable[..., Any]]:
    """Every builder by name, synth's own (synth.models) included."""
    return dict(BUILDERS.items())
