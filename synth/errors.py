"""Errors users can act on. The CLI maps each to one message and an exit code."""

import difflib

__all__ = ["SynthError", "InputError", "ConfigError", "GrammarError", "SpaceError", "BenchError", "RunDirError",
           "DamagedFileWarning", "did_you_mean"]


class SynthError(Exception):
    """Base class: an error whose message is meant for the user."""

    exit_code = 1


class InputError(SynthError):
    """A user-supplied file or value is malformed. Exit code 2, like a usage error."""

    exit_code = 2


class ConfigError(InputError, ValueError):
    """A setting (of EvolveConfig, SearchConfig, `synth.Evolution(**config)`, `synth.search(**config)`)
    is unknown or out of range; the message names the setting. Also a ValueError, as configs raised
    before this class existed, so callers that catch ValueError keep working."""


class GrammarError(InputError):
    """A grammar file is malformed; the message names the file and the line or key."""


class SpaceError(InputError):
    """A search-space file or architecture is malformed."""


class BenchError(InputError):
    """A benchmark file is malformed or lacks values."""


class RunDirError(InputError):
    """A run directory cannot be resumed."""


class DamagedFileWarning(UserWarning):
    """A checkpoint, log record or cache entry failed its checksum (or could not be read) and was not
    used: its work is done again. The CLI prints it as one 'warning:' line."""


def did_you_mean(name, known) -> str:
    """"; did you mean `a`, `b`?" naming up to three of the `known` names close to `name`, or "" when
    none is: the hint every "unknown name" message ends with."""
    hint = difflib.get_close_matches(str(name), [str(k) for k in known], n=3)
    return f"; did you mean {', '.join(f'`{h}`' for h in hint)}?" if hint else ""
