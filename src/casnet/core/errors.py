"""Exception family of casnet, and the exit statuses of the command line.

Every error a user can cause (bad input, bad configuration) is a :class:`CasnetError`; the
subclasses are also builtin exceptions so that ``except ValueError`` keeps working. The command line
ends every one of them with a one-line message and the status :func:`exit_status` gives it.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_STORE",
    "EXIT_USAGE",
    "CasnetConfigError",
    "CasnetError",
    "CasnetInputError",
    "CasnetStoreError",
    "exit_status",
]

#: the work failed (a model that does not load, no champion to combine, a search with no trial)
EXIT_FAILURE = 1
#: the command line is wrong: an unknown option, or an option value the command refuses (click's
#: own status for usage errors)
EXIT_USAGE = 2
#: an input (file, store, catalogue) or the configuration (params.yaml, or an override of it on the
#: command line) cannot be used; the message names the file or the key
EXIT_BAD_INPUT = 3
#: the MLflow tracking store is missing (a read-only command never creates one), damaged, or
#: does not hold what was asked (a registered version whose artifacts are gone)
EXIT_STORE = 4


class CasnetError(Exception):
    """Base class of every error raised on purpose by casnet."""


class CasnetInputError(CasnetError, ValueError):
    """An input (array, file, catalogue) cannot be used; the message says why."""


class CasnetConfigError(CasnetError, ValueError):
    """``params.yaml`` (or an override) holds an unknown key or an invalid value."""


class CasnetStoreError(CasnetError):
    """The MLflow tracking store is missing, damaged, or lacks what was asked; the message names
    it and says what to do."""


def exit_status(exc: CasnetError) -> int:
    """The command line's exit status for ``exc``: bad input or configuration
    :data:`EXIT_BAD_INPUT`, a tracking store :data:`EXIT_STORE`, anything else
    :data:`EXIT_FAILURE`."""
    if isinstance(exc, CasnetStoreError):
        return EXIT_STORE
    if isinstance(exc, CasnetInputError | CasnetConfigError):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE
