"""Everything the CLI prints: one renderer for tables (rich or JSON), progress bars, errors.

Library code never prints; it reports through callbacks that these objects provide.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

__all__ = ["Output"]


class Output:
    """Human output through rich on stderr/stdout; `quiet` silences it, `json_mode` prints JSON only."""

    def __init__(self, quiet: bool = False, json_mode: bool = False):
        from rich.console import Console

        self.quiet = quiet
        self.json_mode = json_mode
        self.console = Console(stderr=False, highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def info(self, message: str) -> None:
        if not (self.quiet or self.json_mode):
            self.err.print(message)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)

    def json(self, payload) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")

    def table(self, title: str, columns: list[str], rows: list[list]) -> None:
        if self.quiet or self.json_mode:
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right", overflow="fold")
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        self.console.print(table)

    @contextmanager
    def progress(self, description: str, total: int):
        """A progress bar; yields `advance(done, total=None)` that sets the completed count."""
        if self.quiet or self.json_mode or not total:
            yield lambda done, total=None: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=total)

            def advance(done, new_total=None):
                bar.update(task, completed=done, **({"total": new_total} if new_total else {}))

            yield advance


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)
