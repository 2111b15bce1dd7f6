"""One registry class for every kind of named thing synth looks up: model builders, zoo proxies,
benchmark sources, grammar ops and statistics.

Each kind used to keep its own dict with its own rules (one refused a duplicate name, another
silently overwrote it; each wrote its own "did you mean"). A `Registry` behaves the same for all:
`register` refuses a name taken by another item, `get` names close matches when a name is unknown,
and `names` lists what is there. Modules that register items on import (synth's own zoo, its model
builders) are imported on the first lookup, so registering costs nothing at `import synth`.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

from synth.errors import InputError, did_you_mean

__all__ = ["Registry", "DuplicateName"]

T = TypeVar("T")


class DuplicateName(ValueError):
    """A name registered twice for different items: a programming error in the registering module
    (or two plugins choosing one name), reported when that module is imported."""


class Registry(Generic[T]):
    """Named items of one `kind` ("proxy", "builder", ...).

    `error` is the exception `get` raises for an unknown name (an InputError subclass, so the CLI
    answers exit 2); `modules` are imported on the first lookup to register synth's own items.
    `items` is the dict the items live in, for a table that other code reads as a plain dict (the
    torch-only runtime reads its statistics table, which an exported proxy.py holds without synth).
    """

    def __init__(self, kind: str, error: type[Exception] = InputError, modules: tuple[str, ...] = (),
                 items: dict[str, T] | None = None):
        self.kind, self.error, self.modules = kind, error, modules
        self._items: dict[str, T] = {} if items is None else items
        self._loaded = not modules

    def register(self, name: str, item: T | None = None) -> T | Callable[[T], T]:
        """Register `item` as `name`; without `item`, a decorator that registers what it decorates.
        DuplicateName when `name` holds another item already (registering the same item again, as a
        re-imported module does, is allowed)."""
        if item is None:
            return lambda decorated: self.register(name, decorated)
        if not isinstance(name, str) or not name:
            raise DuplicateName(f"a {self.kind} needs a non-empty name, not {name!r}")
        if name in self._items and not _same(self._items[name], item):
            raise DuplicateName(f"{self.kind} {name!r} is registered twice ({_origin(self._items[name])} and {_origin(item)})")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item registered as `name`; `error` naming close matches and every known name otherwise."""
        items = self._all()
        if name not in items:
            known = sorted(items)
            raise self.error(f"unknown {self.kind} {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})")
        return items[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._all())

    def items(self) -> list[tuple[str, T]]:
        """(name, item) pairs, sorted by name."""
        items = self._all()
        return [(name, items[name]) for name in sorted(items)]

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> dict[str, T]:
        if not self._loaded:
            self._loaded = True  # first, so that a module registering items may look others up
            for module in self.modules:
                importlib.import_module(module)
        return self._items


def _same(a, b) -> bool:
    """Whether two registrations are one item: equal, or wrapping the same function (`fn`)."""
    return a is b or a == b or (getattr(a, "fn", None) is not None and getattr(a, "fn", None) is getattr(b, "fn", None))


def _origin(item) -> str:
    fn = getattr(item, "fn", item)
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(item)
