"""`synth.Evolution`: the Python face of `synth evolve`, one estimator object as PySR's.

    evolution = synth.Evolution("vit", None, iterations=50, out="runs/mine").fit()
    evolution.hall_of_fame          # the best formulas: complexity, fitness, sympy, LaTeX
    evolution.best.sympy            # the final pick; .latex, .torch_source, .score(model, x, y)
    synth.Evolution.load("runs/mine")

`fit` runs the engine `synth evolve` runs (`synth.run.run_evolve_locked`) and writes the same run
directory; `load` reads one back from its run.json (JSON only, never a pickle: a run directory may
come from someone else). Settings are stored as given and checked when `fit` runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from synth import __version__
from synth.bench.load import EMBEDDED_PREFIX
from synth.config import EvolveConfig, config_from
from synth.execute import evaluate
from synth.export import proxy_source
from synth.grammar import load_grammar
from synth.probe import Probe
from synth.programs import ProgramSpace
from synth.records import RunRecord, read_run_record
from synth.run import run_evolve_locked, write_run_files
from synth.rundir import CHECKPOINT, new_run_dir, no_progress, write_text
from synth.runtime import collect_statistics
from synth.symbolic import to_formula

__all__ = ["Evolution", "Proxy", "HallOfFame"]


@dataclass(frozen=True)
class Proxy:
    """One discovered formula: its canonical form, complexity and search-split fitness (JCM), and the
    program it was simplified from, which the grammar turns back into sympy, LaTeX and torch."""

    formula: str  # canonical sympy form, the key fitness was memoised under
    complexity: int
    fitness: float
    program: str  # DEAP tree text
    grammar: str  # path of the grammar file
    probe: dict  # the run's Probe fields: exported and direct scores use its activation-row subset
    allow_plugins: bool = False  # whether the grammar's plugins may be imported (the Evolution's setting)

    @functools.cached_property
    def _formula(self):
        """The synth.symbolic.Formula of the program, built as the engine built it."""
        grammar = _grammar(self.grammar, self.allow_plugins)
        latex = {name: t.latex for name, t in grammar.terminals.items()}
        return to_formula(ProgramSpace(grammar).parse(self.program, where=f"program of {self.formula}"), grammar, latex)

    @property
    def sympy(self):
        """The formula as a sympy expression (terminals are real symbols)."""
        return self._formula.expr

    @property
    def latex(self) -> str:
        return self._formula.latex

    @property
    def torch_source(self) -> str:
        """The stand-alone proxy.py of this formula (needs torch only), as `synth evolve` exports it."""
        return proxy_source(self._formula, _grammar(self.grammar, self.allow_plugins), Probe(**self.probe), self.fitness,
                            __version__)

    @functools.cached_property
    def statistics(self) -> dict[str, str]:
        """{terminal: statistic} of the terminals the formula reads: what a pass must collect (read
        once per network by score_statistics, so computed once per proxy)."""
        grammar = _grammar(self.grammar, self.allow_plugins)
        return {symbol.name: grammar.terminals[symbol.name].stat for symbol in self.sympy.free_symbols}

    def score(self, model, inputs, targets) -> float:
        """The formula's score of `model` on one probe batch (higher is predicted better): the
        statistics its terminals name, collected with the run's activation-row subset, then the
        formula evaluated by the engine, as the run scored its benchmark's networks."""
        stats = collect_statistics(model, inputs, targets, set(self.statistics.values()), self.probe.get("max_rows"),
                                   self.probe.get("seed", 0))
        return self.score_statistics(stats)

    def score_statistics(self, stats: dict) -> float:
        """The formula on statistics already collected ({statistic: value}, a superset of
        `statistics`' values under this run's probe): several formulas can share one pass."""
        return evaluate(self.sympy, {name: stats[stat] for name, stat in self.statistics.items()})


@functools.lru_cache(maxsize=8)
def _grammar(path: str, allow_plugins: bool):
    """The grammar file at `path`, loaded once per process for every formula that needs it."""
    return load_grammar(path, allow_plugins=allow_plugins)


class HallOfFame(tuple):
    """The best distinct formulas of a run, best first: a tuple of Proxy whose repr is a table
    (complexity, fitness, formula), as PySR prints its equations."""

    def __repr__(self) -> str:
        lines = [f"{'complexity':>10}  {'fitness':>8}  formula"]
        lines += [f"{p.complexity:>10}  {p.fitness:>8.4f}  {p.formula}" for p in self]
        return "\n".join(lines)


class Evolution:
    """Evolve a zero-cost proxy on a benchmark: `synth evolve` as an object.

    Args:
        grammar: grammar file or shipped name. Default is `"vit"`.
        bench: benchmark source (a named source or a file). Default is `None`, the embedded vit-digits.
        tasks: accuracy columns to correlate with. Default is `None`, the benchmark's.
        out: run directory. Default is `None`, a new folder under runs/.
        force: replace a run already in `out`. Default is `False` (refuse it).
        device: where statistics are computed and programs evaluated. Default is `"cpu"`.
        probe: Probe fields to override, e.g. `{"batch_size": 32}`. Default is `None`.
        allow_plugins: import the Python modules the grammar names under `plugins:` (their code runs).
            Default is `False`: such a grammar is refused (GrammarError).
        **config: EvolveConfig fields (population, iterations, seed, metric, ...), each with
            `synth evolve`'s default.

    Raises (from `fit`):
        ConfigError: an unknown setting (with the closest names) or one out of range, named.
    """

    def __init__(self, grammar: str = "vit", bench: str | None = None, *, tasks: list[str] | None = None,
                 out: str | Path | None = None, force: bool = False, device: str = "cpu", probe: dict | None = None,
                 allow_plugins: bool = False, **config):
        self.grammar, self.bench, self.tasks = grammar, bench, tasks
        self.out, self.force, self.device = out, force, device
        self.probe = dict(probe or {})
        self.allow_plugins = allow_plugins
        self.config = config
        self.record: RunRecord | None = None  # the fitted run's record
        self.run_dir: Path | None = None

    def fit(self, progress=None, log=None, log_every: int = 0) -> "Evolution":
        """Run the evolution, write its run directory and keep its record; returns `self`.
        `progress` and `log` are the engine's reporters (synth.rundir.no_progress, a line printer)."""
        config = EvolveConfig.from_dict(self.config, "synth.Evolution").validate()
        config_from(Probe, self.probe, "synth.Evolution probe")  # names a field Probe does not have
        run_dir = Path(self.out) if self.out is not None else new_run_dir()
        self.record = run_evolve_locked(
            self.grammar, self.bench, run_dir, config, tasks=self.tasks, probe_overrides=self.probe, device=self.device,
            force=self.force, allow_plugins=self.allow_plugins, progress=progress or no_progress,
            log=log or (lambda message: None), log_every=log_every)
        self.run_dir = run_dir
        return self

    @property
    def hall_of_fame(self) -> HallOfFame:
        """The best distinct formulas seen, best first (ties: simpler first)."""
        record = self._fitted()
        program_of = {p["formula"]: p["program"] for p in record.programs}
        return HallOfFame(self._proxy(e.formula, e.complexity, e.fitness, program_of[e.formula]) for e in record.hall_of_fame)

    @property
    def best(self) -> Proxy:
        """The run's final pick (the fittest of the final population, or with `validation` the Pareto
        front's best on the inner fold): the formula run.json and proxy.py hold."""
        record = self._fitted()
        return self._proxy(record.formula, record.complexity, record.fitness, record.program)

    def save(self, run_dir: str | Path) -> Path:
        """Write this evolution's run directory to `run_dir`: run.json, proxy.py, hall_of_fame.csv, and
        the checkpoint when the run has one (so `synth evolve --resume` works there too)."""
        record, run_dir = self._fitted(), Path(run_dir)
        write_run_files(run_dir, record, self.best.torch_source)
        checkpoint = self.run_dir / CHECKPOINT if self.run_dir else None
        if checkpoint and checkpoint.is_file() and checkpoint.resolve() != (run_dir / CHECKPOINT).resolve():
            write_text(run_dir / CHECKPOINT, checkpoint.read_text())
        return run_dir

    @classmethod
    def load(cls, run_dir: str | Path, allow_plugins: bool = False) -> "Evolution":
        """The fitted evolution of a run directory written by `fit`, `save` or `synth evolve`, read
        from its run.json. RunDirError naming the file when it is missing or not a run record.
        `allow_plugins` lets its formulas import the plugins their grammar names."""
        record = read_run_record(run_dir)
        source = record.bench["source"]
        evolution = cls(record.grammar, None if source.startswith(EMBEDDED_PREFIX) else source, tasks=record.bench["tasks"],
                        out=run_dir, device=record.device, probe=record.probe, allow_plugins=allow_plugins,
                        **record.config.to_dict())
        evolution.record, evolution.run_dir = record, Path(run_dir)
        return evolution

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        head = f"Evolution(grammar={self.grammar!r}, bench={self.bench!r}{', ' + settings if settings else ''})"
        return head if self.record is None else f"{head}\nbest: {self.record.formula}\n{self.hall_of_fame!r}"

    def _fitted(self) -> RunRecord:
        if self.record is None:
            raise RuntimeError("this Evolution has not run: call .fit(), or read a run with Evolution.load(run_dir)")
        return self.record

    def _proxy(self, formula: str, complexity: int, fitness: float, program: str) -> Proxy:
        return Proxy(formula, complexity, fitness, program, self.record.grammar, self.record.probe, self.allow_plugins)
