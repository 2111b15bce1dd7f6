"""Where synth keeps what it can compute again (statistics, network sizes, downloaded benchmarks),
and the one way it names an entry: a digest of everything that determines its content.

Several layers cache (the statistics of synth/stats.py, the sizes of synth/baselines.py, the files
of synth/bench/sources.py) and several identify inputs by digest (a build's recipe and data, a
dataset's listing); keeping both here means a key is computed the same way everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["cache_root", "digest"]


def cache_root() -> Path:
    """`$SYNTH_CACHE`, else ~/.cache/synth."""
    return Path(os.environ.get("SYNTH_CACHE") or Path.home() / ".cache" / "synth")


def digest(identity, length: int = 16) -> str:
    """The first `length` hex digits of the sha256 of `identity` as JSON with sorted keys: equal for
    equal content whatever the order its mappings were built in."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:length]
