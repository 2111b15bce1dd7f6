"""Everything the CLI prints: one renderer for tables (rich or JSON), progress bars, errors.

Library code never prints; it reports through callbacks that these objects provide. Text is never
read as rich markup (a key, op or path may hold brackets such as `[/x]`); synth's own styling is
applied as styles. Output that is not a terminal (a pipe, a file) is not cut to a width.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

__all__ = ["Output"]


class Output:
    """Human output through rich on stderr/stdout; `quiet` silences it, `json_mode` prints JSON only."""

    def __init__(self, quiet: bool = False, json_mode: bool = False):
        self.quiet = quiet
        self.json_mode = json_mode
        self.console = _console(stderr=False)
        self.err = _console(stderr=True)

    def info(self, message: str) -> None:
        if not (self.quiet or self.json_mode):
            self.err.print(message)

    def warn(self, message: str) -> None:
        """A problem synth worked around (shown unless --quiet, also with --json: it goes to stderr)."""
        from rich.text import Text

        if not self.quiet:
            self.err.print(Text.assemble(("warning:", "bold yellow"), " ", message))

    def error(self, message: str) -> None:
        from rich.text import Text

        self.err.print(Text.assemble(("error:", "bold red"), " ", message))

    def json(self, payload) -> None:
        from synth.rundir import json_text

        sys.stdout.write(json_text(payload, indent=2) + "\n")

    def table(self, title: str, columns: list[str], rows: list[list]) -> None:
        if self.quiet or self.json_mode:
            return
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(title), title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(Text(column), justify="left" if i == 0 else "right", overflow="fold")
        for row in rows:
            table.add_row(*(Text(_cell(v)) for v in row))
        self.console.print(table)

    @contextmanager
    def progress(self, description: str, total: int):
        """A progress bar; yields `advance(done, total=None)` that sets the completed count."""
        if self.quiet or self.json_mode or not total:
            yield lambda done, total=None: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=total)

            def advance(done, new_total=None):
                bar.update(task, completed=done, **({"total": new_total} if new_total else {}))

            yield advance
            bar.update(task, total=bar.tasks[0].completed)  # finished: work the run skipped is not pending


def _console(stderr: bool):
    """A rich console that never reads markup; off a terminal, lines are as long as their content."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, markup=False)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, highlight=False, markup=False, width=_UNLIMITED, soft_wrap=True)


_UNLIMITED = 100_000  # columns: wide enough for any table, which rich sizes to its content


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)
