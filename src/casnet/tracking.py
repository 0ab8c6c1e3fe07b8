"""MLflow set-up: one tracking store per project, wherever a command runs from.

With no ``MLFLOW_TRACKING_URI``, MLflow 3 would use ``sqlite:///<cwd>/mlflow.db`` and ``./mlruns``
relative to the working directory, so two commands started from different folders would write to
different stores. casnet resolves the project root explicitly instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from casnet.paths import project_root

__all__ = ["artifact_root", "configure", "tracking_uri"]


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def artifact_root(root: Path | None = None) -> str:
    """Artifact location of experiments casnet creates: ``<project root>/mlartifacts``."""
    return ((root or project_root()) / "mlartifacts").resolve().as_uri()


def configure(experiment: str, root: Path | None = None) -> str:
    """Point MLflow at the project store and select ``experiment`` (created if missing).

    Returns
    -------
    str
        The experiment id.
    """
    import mlflow  # imported here: it is slow to import and most commands never need it

    mlflow.set_tracking_uri(tracking_uri(root))
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        exp_id = mlflow.create_experiment(experiment, artifact_location=artifact_root(root))
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
