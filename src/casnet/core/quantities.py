"""The quantities casnet measures and learns: one schema (issue 32).

Every stage, network, suite, figure and report iterates over :data:`SCHEMA` instead of naming
the quantities: what a quantity is called, its symbol, the column of each of its values in every
table, how a network's error on it is expressed, and the paper's numbers for it live here and
nowhere else. A new quantity (smoothness S) is one more :class:`Target` here, plus its
measurement module, its settings and its tests.

The column vocabulary (the evaluation tables', the science report's and ``casnet predict``'s):

============================  ======================  =========================================
value                         column                  example (C)
============================  ======================  =========================================
the conventional labels       ``label_<name>``        ``label_concentration``
the simulator's truth         ``true_<name>``         ``true_concentration``
the conventional measurement  ``conventional_<name>`` ``conventional_concentration``
a network                     ``net_<name>``          ``net_concentration``
a standard deviation          ``<column>_err``        ``net_concentration_err``
============================  ======================  =========================================

(The data stages' stores keep the measurement's own names, ``<name>`` and ``<name>_true``, for
the catalogues written before; :meth:`Target.column` names both.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["ERR", "ROLES", "SCHEMA", "TARGETS", "Target", "quantity", "symbol", "targets_of"]

#: suffix of a value's standard deviation in every table and response (``concentration_err``:
#: the conventional measurement's error, or the sigma of a network with a Gaussian head)
ERR = "_err"
#: the values a quantity has, by the prefix of their column (the module docstring)
ROLES = {"label": "label", "truth": "true", "conventional": "conventional", "network": "net"}
Role = Literal["label", "truth", "conventional", "network"]


@dataclass(frozen=True)
class Target:
    """One quantity: its names, its columns, how an error on it is expressed, the paper's
    numbers.

    Attributes
    ----------
    name : str
        The name in every table and output (``concentration``).
    symbol : str
        The symbol of figures and reports (``C``).
    description : str
        One line: what it measures.
    residual : {"fractional", "absolute"}
        How a network's error on it is reported: C's as a fraction of the reference (Tohill et
        al. 2021 Fig. 6 and Sec. 4.1, C spans 2-5 and its scatter grows with it), A's absolute
        (it spans 0-1 about 0).
    paper : mapping
        Tohill et al. 2021's headline numbers for it (Sec. 4.1: the network against the
        labels on the test set; ``mae``, ``rmse``, ``pearson_r``).
    """

    name: str
    symbol: str
    description: str
    residual: Literal["fractional", "absolute"]
    paper: Mapping[str, float] = field(default_factory=dict)

    def column(self, role: Role | Literal["store", "store_truth"]) -> str:
        """The column of this quantity's ``role`` value (the module docstring); ``store`` and
        ``store_truth``: the data stages' catalogue names (``<name>``, ``<name>_true``)."""
        if role == "store":
            return self.name
        if role == "store_truth":
            return f"{self.name}_true"
        return f"{ROLES[role]}_{self.name}"

    def err(self, role: Role | Literal["store"] = "store") -> str:
        """The column of the standard deviation of this quantity's ``role`` value."""
        return self.column(role) + ERR

    def residual_of(self, value, reference) -> np.ndarray:
        """``value - reference``, as a fraction of ``reference`` for a fractional quantity."""
        v, r = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (v - r) / r if self.residual == "fractional" else v - r

    def residual_label(self, what: str, reference: str) -> str:
        """The axis label of :meth:`residual_of` (``C: (network - truth) / truth``)."""
        if self.residual == "fractional":
            return f"{self.symbol}: ({what}) / {reference}"
        return f"{self.symbol}: {what}"


#: the quantities, in the order of every network output and every table (Tohill et al. 2021
#: learn C and A)
SCHEMA: tuple[Target, ...] = (
    Target(
        "concentration",
        "C",
        "C = 5 log10(r80 / r20) inside 1.5 Petrosian radii",
        residual="fractional",
        paper={"mae": 0.15, "rmse": 0.21, "pearson_r": 0.75},
    ),
    Target(
        "asymmetry",
        "A",
        "A = sum|I - I_180| / sum|I| minimised over the centre, minus sky",
        residual="absolute",
        paper={"mae": 0.045, "rmse": 0.065, "pearson_r": 0.76},
    ),
)
#: their names, in that order
TARGETS: tuple[str, ...] = tuple(t.name for t in SCHEMA)
_BY_NAME = {t.name: t for t in SCHEMA}


def quantity(name: str) -> Target:
    """The :class:`Target` called ``name``.

    Raises
    ------
    KeyError
        For a name that is not one of :data:`TARGETS` (the message lists them).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no quantity {name!r}: casnet knows {', '.join(TARGETS)}") from None


def symbol(name: str) -> str:
    """The symbol of the quantity ``name`` (``C``), for figures, tables and reports."""
    return quantity(name).symbol


def targets_of(names) -> Iterator[Target]:
    """The :class:`Target` of each name of ``names`` that casnet knows, in their order (a model
    records its own targets: one made before a quantity was added still loads)."""
    return (_BY_NAME[n] for n in names if n in _BY_NAME)
