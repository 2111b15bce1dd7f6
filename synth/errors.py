"""Errors users can act on. The CLI maps each to one message and an exit code."""

__all__ = ["SynthError", "InputError", "GrammarError", "SpaceError", "BenchError", "RunDirError", "DamagedFileWarning"]


class SynthError(Exception):
    """Base class: an error whose message is meant for the user."""

    exit_code = 1


class InputError(SynthError):
    """A user-supplied file or value is malformed. Exit code 2, like a usage error."""

    exit_code = 2


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
