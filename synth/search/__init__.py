"""Training-free architecture search: evolution over a space's choices, driven by any proxy.

The loop is AutoFormer's evolutionary search (Chen et al., ICCV 2021), which
TF-TAS and Auto-Prox reuse with a zero-cost proxy in place of supernet
accuracy: a population of architectures within the budget; each iteration the
best `parents` breed `mutations` children by per-choice mutation and
`crossovers` children by uniform crossover; children that break the budget or
were seen before are redrawn; the population becomes the best `population` of
parents and children. Every architecture is scored once (memoised), so the
cost is one network per distinct architecture.

A search directory holds `search.json` (the result), `checkpoint.json` (the
state at the start of the current iteration: population, random state,
history) and `evaluated.jsonl` (one line per scored architecture, appended as
it finishes). A killed search resumes from the checkpoint and replays the
interrupted iteration from the memo, so it ends exactly where an
uninterrupted one would.

With `finalists` and `init_seeds` (or `probe_seeds`), the search's best architectures are then
scored under several initialisations (or probe batches) and ordered by mean rank (`finalists.jsonl`,
resumable too), so that the pick does not hang on one draw of initial weights or images.

    config.py     SearchConfig and the records (SearchPick, SearchResult); file names
    memo.py       the memo of scored architectures, mutation and crossover
    scorer.py     the probe and the scorer (this process or a pool)
    finalists.py  re-ranking the best architectures over initialisation and probe seeds
    loop.py       run_search: the loop and its checkpoint

This package is also callable: `synth.search(...)` is the `search` function below (see _CallableModule).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from synth.config import config_from
from synth.errors import ConfigError
from synth.rundir import locked_run_dir, new_run_dir, refuse_existing_run
from synth.search.config import CHECKPOINT, EVALUATED, RESULT, SEARCH_FORMAT, SearchConfig, SearchPick, SearchResult, parse_count
from synth.search.loop import run_search
from synth.search.memo import crossover, mutate
from synth.search.scorer import search_probe
from synth.space import SearchSpace, load_space

__all__ = ["SearchConfig", "SearchPick", "SearchResult", "mutate", "crossover", "run_search", "search", "search_probe",
           "parse_count", "SEARCH_FORMAT", "RESULT", "CHECKPOINT", "EVALUATED"]


def search(proxy: str | None = None, space: str | SearchSpace | None = None, *, out: str | Path | None = None,
           resume: bool = False, probe: dict | None = None, device: str = "cpu", workers: int = 1, progress=None, log=None,
           **settings) -> SearchResult:
    """Search `space` for the architectures `proxy` scores highest, as `synth search` does.

    Args:
        proxy: a zoo proxy name, an exported proxy.py or a `synth evolve` run directory.
        space: a space name, YAML file or `SearchSpace`.
        out: the search directory (default: a new folder under runs/); a folder that holds a search
            is refused unless `resume`.
        resume: continue the search in `out` from its checkpoint, with its own proxy, space and
            settings (give none of them).
        probe: Probe fields to override, e.g. {"batch_size": 32}.
        device, workers: where networks run, and how many single-threaded processes score them.
        progress, log: a progress-bar factory (synth.rundir.no_progress) and a line printer.
        **settings: SearchConfig fields; budgets may be written as in the CLI ("6M").

    Returns:
        The SearchResult also written as `out`/search.json.

    Raises:
        ConfigError: an unknown or out-of-range setting, named.

    Example:
        >>> synth.search("params", "vit-digits", out="runs/s", population=8, iterations=2)  # doctest: +SKIP
    """
    config = None
    if resume:
        if settings or proxy or space:
            raise ConfigError("a resumed search keeps its proxy, space and settings; give only `out` (and `resume`)")
    elif proxy is None or space is None:
        raise ConfigError("`proxy` and `space` are required (or `resume=True` with `out`)")
    else:
        config = config_from(SearchConfig, {k: _budget(k, v) for k, v in settings.items()}, "synth.search").validate()
        space = load_space(space) if isinstance(space, (str, Path)) else space
    if workers < 1:
        raise ConfigError(f"`workers` must be at least 1 (got {workers!r})")
    out = Path(out) if out is not None else new_run_dir()
    with locked_run_dir(out):
        if not resume:
            refuse_existing_run(out, (CHECKPOINT, RESULT))
        (log or (lambda message: None))(f"search directory: {out}")
        return run_search(proxy, space, config, out, probe, device=device, workers=workers, resume=resume,
                          progress=progress, log=log)


def _budget(name: str, value):
    """A budget setting written as people write counts ('6M') as its number; other settings as given."""
    if name not in ("max_params", "max_flops") or not isinstance(value, str):
        return value
    try:
        return parse_count(value)
    except ValueError as exc:
        raise ConfigError(f"`{name}`: {exc}") from None


class _CallableModule(types.ModuleType):
    """`synth.search` is this package and, called, its `search` function: a package attribute cannot be
    both a subpackage and a function of the same name, so the package itself is callable."""

    def __call__(self, *args, **kwargs) -> SearchResult:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
