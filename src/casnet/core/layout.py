"""Where things live: the project root, the data stages' paths and the MLflow names.

One home for each name the commands, the stages and the MLflow code share, so that a path or an
experiment name is spelled once (``dvc.yaml``, ``MLproject`` and the ``Makefile`` spell the data
paths too; ``tests/test_packaging.py`` keeps them in agreement with these).
"""

from __future__ import annotations

import os
from pathlib import Path

# the quantities (their names in the order of every output, and the suffix of a standard
# deviation's column) live in the schema, casnet.core.quantities; re-exported here
from casnet.core.quantities import ERR, TARGETS

__all__ = [
    "AUGMENTED",
    "CLEANED",
    "COMBINED_MODEL",
    "ERR",
    "EVALUATION_ONLY",
    "EXPERIMENTS",
    "EXPERIMENT_DESCRIPTIONS",
    "MEASURED",
    "NETWORK_MODELS",
    "RAW",
    "SELECTED",
    "SPLIT",
    "TARGETS",
    "TEST",
    "TRAIN",
    "VAL",
    "project_root",
]


#: catalogue column of galaxies that may be scored but never learnt from: the real COSMOS galaxies
#: of the real suite (issue 29: "no shipped network is ever trained on these galaxies"); the
#: stages carry catalogue columns along, so a store made from them keeps it, and training
#: refuses it (``casnet.networks.dataset.refuse_evaluation_only``)
EVALUATION_ONLY = "evaluation_only"

# The data stages' outputs (dvc.yaml), relative to the project root.
RAW = "data/raw"
CLEANED = "data/cleaned"
MEASURED = "data/measured.parquet"
SELECTED = "data/selected"
SPLIT = "data/split"
TRAIN = f"{SPLIT}/train"
VAL = f"{SPLIT}/val"
TEST = f"{SPLIT}/test"
AUGMENTED = "data/augmented"

#: MLflow experiments, by what runs in them
EXPERIMENTS = {
    "tune": "casnet-tune",
    "train": "casnet-train",
    "registry": "casnet-registry",
    "evaluate": "casnet-evaluate",
    "benchmark": "casnet-benchmark",
}
#: what each experiment holds (its MLflow description, issue 31: the UI said nothing)
EXPERIMENT_DESCRIPTIONS = {
    "casnet-tune": "Bayesian architecture searches (casnet tune): one parent run per search, "
    "one child run per trial with its hyperparameters, per-epoch metrics and validation RMSE.",
    "casnet-train": "Trainings of the C and A networks (casnet train): architecture, budget, "
    "per-epoch metrics, validation and test scores, the logged Keras network.",
    "casnet-registry": "Registrations of the combined casnet model (both champions and their "
    "cleaning), which takes raw stamps.",
    "casnet-evaluate": "Evaluations (casnet evaluate): the test, noise, redshift and real-galaxy "
    "suites of a model, beside the conventional measurement; summary, tables and figures.",
    "casnet-benchmark": "Benchmarks (casnet benchmark): speed and agreement figures.",
}
#: registered models: one per network, and the combined model that serves both
NETWORK_MODELS = {t: f"casnet-{t}" for t in TARGETS}
COMBINED_MODEL = "casnet"

_MARKERS = ("params.yaml", "dvc.yaml")


def project_root(start: str | Path | None = None) -> Path:
    """Return the project root.

    ``$CASNET_ROOT`` wins; otherwise the first folder, from ``start`` (default: the working
    directory) upwards, holding both ``params.yaml`` and ``dvc.yaml``; otherwise the working
    directory (``start``). Resolving it explicitly lets commands run from any subfolder (and
    ``dvc exp run --temp``) share one store.

    Never the source checkout the package was installed from: with an editable install that made
    every folder on the machine part of the checkout's project, so ``casnet predict`` anywhere
    scored with the demo's toy champion instead of the pretrained model (issue 28).
    """
    env = os.environ.get("CASNET_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in _MARKERS):
            return folder
    return here
