"""Exception family of casnet.

Every error a user can cause (bad input, bad configuration) is a :class:`CasnetError`; the
subclasses are also builtin exceptions so that ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["CasnetConfigError", "CasnetError", "CasnetInputError"]


class CasnetError(Exception):
    """Base class of every error raised on purpose by casnet."""


class CasnetInputError(CasnetError, ValueError):
    """An input (array, file, catalogue) cannot be used; the message says why."""


class CasnetConfigError(CasnetError, ValueError):
    """``params.yaml`` (or an override) holds an unknown key or an invalid value."""
