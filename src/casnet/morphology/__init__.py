"""Conventional CAS measurement (the role MORFOMETRYKA plays in Tohill et al. 2021 Sec. 2.2-2.3).

One entry point, :func:`measure`, built from one module per concept: :mod:`.sky`,
:mod:`.segmentation`, :mod:`.shape`, :mod:`.growth`, :mod:`.petrosian`, :mod:`.concentration`,
:mod:`.rotate`, :mod:`.asymmetry`, :mod:`.snr`, :mod:`.uncertainty`; its settings are
:mod:`.settings`, its flags :class:`casnet.core.flags.Flag`.

The names below are loaded on first use (PEP 562): reading the settings (``params.yaml``, the
cleaning's) must not load the measurement's compiled kernels.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casnet.core.flags import FATAL, Flag
    from casnet.morphology.measurement import COLUMNS, Measurement, measure

__all__ = ["COLUMNS", "FATAL", "Flag", "Measurement", "measure"]

#: public name -> the module that defines it
_LAZY = {
    "COLUMNS": "casnet.morphology.measurement",
    "Measurement": "casnet.morphology.measurement",
    "measure": "casnet.morphology.measurement",
    "FATAL": "casnet.core.flags",
    "Flag": "casnet.core.flags",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
