"""Where the project lives: the root that holds ``params.yaml``, ``data/`` and the MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root"]

_MARKERS = ("params.yaml", "dvc.yaml")


def project_root(start: str | Path | None = None) -> Path:
    """Return the project root.

    ``$CASNET_ROOT`` wins; otherwise the first folder, from ``start`` (default: the working
    directory) upwards, holding both ``params.yaml`` and ``dvc.yaml``; otherwise the source checkout
    this package was installed from (editable install); otherwise the working directory. Resolving
    it explicitly lets commands run from any folder (and ``dvc exp run --temp``) share one store.
    """
    env = os.environ.get("CASNET_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in _MARKERS):
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if all((checkout / m).exists() for m in _MARKERS):
        return checkout
    return here
