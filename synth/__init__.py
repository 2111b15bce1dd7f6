"""synth: symbolic program synthesis of zero-cost proxies for neural architecture search.

The Python API mirrors the command line (`synth evolve|bench|zoo|search`) and runs the same engine:

    Evolution(grammar, bench, **config).fit()      evolve a proxy (synth evolve); then
        .hall_of_fame                              the best formulas: complexity, fitness, sympy, LaTeX
        .best                                      the final pick: .sympy, .latex, .torch_source, .score(model, inputs, targets)
        .save(dir), Evolution.load(dir)            run directories (JSON), also those synth evolve writes
    load_grammar(name_or_path) -> Grammar          a grammar file, fully checked
    load_space(name_or_path) -> SearchSpace        a search-space file
    load_benchmark(source=None, tasks=None) -> Benchmark   the embedded default, a named source or a file
    search(proxy, space, out=..., **config) -> SearchResult   training-free architecture search (synth search)
    zoo.score(name, model, inputs, targets)        a hand-designed zero-cost proxy's score (synth zoo)
    register_op(name, role=...), register_statistic(name, at=...)   decorators a grammar's plugin
                                                   module uses to add ops and statistics (loaded only
                                                   with allow_plugins=True, synth evolve --allow-plugins)

Typed settings and records: EvolveConfig, SearchConfig, RunRecord, HallOfFameEntry, SearchResult,
SearchPick, Proxy, HallOfFame. Errors: SynthError; InputError and its kinds ConfigError, GrammarError,
SpaceError, BenchError, RunDirError.

Every name is imported on first use, so `import synth` (and `synth --help`) does not import torch.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it (a name that is itself a module of synth is that module)
_HOMES = {
    "Evolution": "synth.estimator", "Proxy": "synth.estimator", "HallOfFame": "synth.estimator",
    "EvolveConfig": "synth.config", "RunRecord": "synth.records", "HallOfFameEntry": "synth.records",
    "load_grammar": "synth.grammar", "load_space": "synth.space", "load_benchmark": "synth.bench",
    "search": "synth.search", "SearchConfig": "synth.search", "SearchResult": "synth.search", "SearchPick": "synth.search",
    "zoo": "synth.zoo", "register_op": "synth.plugins", "register_statistic": "synth.plugins",
    "SynthError": "synth.errors", "InputError": "synth.errors", "ConfigError": "synth.errors",
    "GrammarError": "synth.errors", "SpaceError": "synth.errors", "BenchError": "synth.errors",
    "RunDirError": "synth.errors",
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name: str):
    """Import a public name's module when the name is first used (PEP 562). `synth.search` and
    `synth.zoo` are modules (`synth.search` is callable: it runs a search)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'synth' has no attribute {name!r}")
    module = importlib.import_module(_HOMES[name])
    value = module if module.__name__ == f"synth.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
