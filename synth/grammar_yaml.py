"""YAML with line numbers, and errors that name them: what lets every grammar check report
'FILE:LINE: KEY: message' for the offending key instead of a bare message."""

from __future__ import annotations

from pathlib import Path

import yaml

from synth.errors import GrammarError, did_you_mean

__all__ = ["LineLoader", "Map", "Seq", "Context"]


class Map(dict):
    """A YAML mapping that remembers its own line and each key's."""

    lines: dict
    line: int


class Seq(list):
    """A YAML list that remembers its own line and each item's."""

    lines: list
    line: int


class LineLoader(yaml.SafeLoader):
    """Safe loader whose mappings and lists remember the line of each key and item."""


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = Map()
    out.line, out.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key in out.lines:
            problem = f"{key}: key given twice" if key in out.lines else f"{key!r} cannot be a key"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader, node):
    out = Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return out


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


class Context:
    """Formats errors as 'file:line: key: message'."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where, key: str, message: str) -> GrammarError:
        """The error for `key`; `where` is a line number, or a mapping or list whose own line is meant."""
        line = where if isinstance(where, int) else getattr(where, "line", None) if where is not None else None
        location = f"{self.path}:{line}" if line else str(self.path)
        return GrammarError(f"{location}: {key}: {message}")

    @staticmethod
    def line_of(mapping, key):
        """The line of `key` in `mapping`, else the mapping's own line (None for plain data)."""
        lines = getattr(mapping, "lines", {})
        return lines.get(key, getattr(mapping, "line", None))

    @staticmethod
    def item_line(items, index: int, default=None):
        """The line of list item `index` (`default` for a list without lines)."""
        return items.lines[index] if hasattr(items, "lines") else default

    def check_keys(self, mapping, allowed, where_key: str):
        """Refuse a non-mapping, and any key not `allowed`, naming close matches."""
        if not isinstance(mapping, dict):
            raise self.error(mapping, where_key, f"expected a mapping, got {type(mapping).__name__}")
        for key in mapping:
            if key not in allowed:
                raise self.error(
                    self.line_of(mapping, key),
                    f"{where_key}.{key}" if where_key else str(key),
                    f"unknown key{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})",
                )
