"""The `synth` command: assembles the sub-commands and maps errors to exit codes.

Exit codes: 0 success, 1 runtime failure, 2 bad input (usage, grammar, space,
benchmark or run directory), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager

from synth import __version__

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from synth.cli import bench, evolve, search, zoo

    parser = argparse.ArgumentParser(
        prog="synth",
        description="Discover zero-cost proxies for neural architecture search by typed genetic programming.",
    )
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    _add_output_options(parser, default=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    evolve.add_parser(commands)
    bench.add_parser(commands)
    zoo.add_parser(commands)
    search.add_parser(commands)
    for command in _command_parsers(parser):
        _add_output_options(command, default=argparse.SUPPRESS)
    return parser


def _add_output_options(parser: argparse.ArgumentParser, default) -> None:
    """-q/--quiet and --json, on the root parser and again on every command, so they work before or
    after it; a command's own option of that name (zoo's --json FILE) keeps its meaning there.
    Commands default to SUPPRESS, so an option given before the command is not reset by it."""
    options = ((("-q", "--quiet"), {"dest": "quiet", "help": "print nothing but errors"}),
               (("--json",), {"dest": "json_mode", "help": "print machine-readable JSON on stdout"}))
    for flags, spec in options:
        try:
            parser.add_argument(*flags, action="store_true", default=default, **spec)
        except argparse.ArgumentError:  # the command defines this option itself
            continue


def _command_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command's and sub-command's parser below `parser` (argparse keeps them in its actions)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):  # aliases share one parser
                found += [command, *_command_parsers(command)]
    return found


def main(argv: list[str] | None = None) -> int:
    from synth.cli._output import Output
    from synth.errors import SynthError

    args = build_parser().parse_args(argv)
    out = Output(quiet=args.quiet, json_mode=args.json_mode)
    try:
        with _warnings_to(out):
            return args.handler(args, out)
    except SynthError as exc:
        out.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - one place turns crashes into one line and exit 1
        if os.environ.get("SYNTH_DEBUG"):
            raise
        out.error(f"{type(exc).__name__}: {exc} (set SYNTH_DEBUG=1 for the traceback)")
        return 1


@contextmanager
def _warnings_to(out):
    """Show synth's own warnings (a damaged cache entry or checkpoint that is recomputed) as one
    'warning:' line each through `out`, not as Python's two-line form with a source path."""
    import warnings

    from synth.errors import DamagedFileWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DamagedFileWarning):
            out.warn(str(message))
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", DamagedFileWarning)
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
