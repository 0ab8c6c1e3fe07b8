"""casnet: concentration and asymmetry of galaxies, conventionally and with CNNs.

Following Tohill et al. 2021, AJ 162, 4 ("Quantifying Non-parametric Structure of High-redshift
Galaxies with Deep Learning"). Start from :func:`measure` (the conventional measurement of one
stamp, :mod:`casnet.morphology`) and :func:`load_model` (the networks: ``load_model().predict
(stamps)``); :mod:`casnet.api` says more.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from casnet._version import __version__

if TYPE_CHECKING:
    from casnet.api import Model, load_model, measure

__all__ = ["Model", "__version__", "load_model", "measure"]

# loaded on first use: ``import casnet`` stays light (no TensorFlow, no MLflow)
_LAZY = {"Model": "casnet.api", "load_model": "casnet.api", "measure": "casnet.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'casnet' has no attribute {name!r}")
