"""Training a CASNET network and logging it to MLflow (Tohill et al. 2021 Sec. 3.4).

The hyperparameters come from the ``model`` params (the paper's Table 1, the default) or from the
best trial of a search (:mod:`casnet.networks.tune`). Training stops early on the validation loss
and
restores the best epoch's weights; the run (experiment ``casnet-train``) logs the architecture as
params, per-epoch metrics, the final validation and test RMSE, MAE and Pearson r computed over the
whole sets, lineage tags, a predicted-vs-label figure and the model (Keras flavour, with a
signature and a sample serving payload). Registration and aliases are
:mod:`casnet.networks.registry`'s.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from casnet.core.calibration import coverage, fit_sigma_scale
from casnet.core.errors import CasnetInputError
from casnet.core.layout import EXPERIMENTS, project_root
from casnet.core.scores import scores
from casnet.core.tracking import (
    data_inputs,
    ensure_experiment,
    lineage_tags,
    tracking_uri,
    use_store,
)
from casnet.data.io.store import StampStore
from casnet.data.preprocess import CROP_SIZE
from casnet.networks.architecture import build_model
from casnet.networks.dataset import label_column, store_dataset, store_input
from casnet.networks.inference import predict_mean_sigma
from casnet.networks.metrics import EARLY_STOPPING
from casnet.networks.settings import ArchitectureConfig, SearchConfig
from casnet.networks.tune import EpochLogger, best_search, check_inputs
from casnet.networks.uncertainty import with_sigma_scale

__all__ = [
    "EXPERIMENT",
    "TrainResult",
    "architecture_from_search",
    "model_requirements",
    "network_signature",
    "predict_store",
    "train",
]

EXPERIMENT = EXPERIMENTS["train"]


@dataclass(frozen=True)
class TrainResult:
    """A finished training run."""

    run_id: str
    target: str
    architecture: ArchitectureConfig
    model_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0


def predict_store(model, store: str | Path, target: str, *, batch_size: int = 512,
                  labels: str = "label", with_sigma: bool = False):  # fmt: skip
    """``(labels, predictions)`` of ``model`` on a store of network-ready stamps, chunk by chunk;
    ``labels``: which values to return beside the predictions (``label`` or ``truth``);
    ``with_sigma``: also the standard deviations (``(labels, predictions, sigmas)``; NaN for a
    point network)."""
    src = StampStore(store)
    values = src.catalog[label_column(target, labels)].to_numpy(dtype=np.float64)
    images = src.array("image")
    means, sigmas = [np.zeros(0)], [np.zeros(0)]
    for start in range(0, len(src), src.chunk_size):
        chunk = np.asarray(images[start : start + src.chunk_size], dtype=np.float32)[..., None]
        mu, sigma = predict_mean_sigma(model, chunk, batch_size)
        means.append(mu)
        sigmas.append(sigma)
    preds, sigma = np.concatenate(means), np.concatenate(sigmas)
    return (values, preds, sigma) if with_sigma else (values, preds)


def network_signature(input_size: int = CROP_SIZE, outputs: int = 1):
    """MLflow signature of one network: (N, s, s, 1) float32 in (s = ``input_size``, the
    :class:`~casnet.data.preprocess.NetworkInput` size), (N, ``outputs``) float32 out (2 for a
    Gaussian head: mean and raw scale)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, input_size, input_size, 1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, outputs))]),
    )


def architecture_from_search(
    target: str,
    run: str = "best",
    root: Path | None = None,
    data: dict[str, str | Path] | None = None,
):
    """The best trial's architecture of a search: ``run`` is a parent run id, or ``best`` (the
    finished search for ``target`` with the lowest validation RMSE; with ``data`` (role ->
    path of ``train`` and ``val``), only among searches of the same data, by DVC hash).

    Returns
    -------
    (ArchitectureConfig, str)
        The architecture and the id of the search run it came from.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri(root))
    if run == "best":
        found = best_search(target, root=root, data=data)
        if found is None:
            raise CasnetInputError(
                f"no finished search for {target}{' on this data' if data else ''} in "
                f"{tracking_uri(root)}: run `casnet tune --target {target}` first, or train "
                "from params.yaml"
            )
        run = found
    try:
        parent = client.get_run(run)
    except MlflowException:
        raise CasnetInputError(f"no run {run!r} in {tracking_uri(root)}") from None
    if parent.data.tags.get("casnet.target") not in (None, target):
        raise CasnetInputError(
            f"run {run} searched {parent.data.tags['casnet.target']}, not {target}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run, "best_hyperparameters.json", tmp)
        except (MlflowException, OSError):
            raise CasnetInputError(
                f"run {run} has no best_hyperparameters.json (not a finished search?)"
            ) from None
        best = json.loads(Path(path).read_text())
    return ArchitectureConfig(**best["hyperparameters"]), run


def train(
    target: str,
    arch: ArchitectureConfig,
    *,
    train: str | Path,
    val: str | Path,
    test: str | Path,
    budget: SearchConfig,
    root: Path | None = None,
    source: str = "params.yaml",
    figure: bool = True,
    verbose: int = 1,
    labels: str = "label",
    backup: Path | None = None,
) -> TrainResult:
    """Train ``arch`` for ``target`` and log the run, its metrics, figure and model.

    Parameters
    ----------
    budget : SearchConfig
        ``max_epochs``, ``patience`` and ``seed`` are used.
    source : str
        Where the hyperparameters came from (``params.yaml`` or a search run id), a tag.
    labels : {"label", "truth"}
        What the network learns (:data:`casnet.networks.dataset.LABEL_SOURCES`); its scores are
        against the same values. A tag and a param of the run.
    backup : Path, optional
        Keras ``BackupAndRestore`` folder: a training killed midway and started again with the
        same folder continues from its last finished epoch (the folder is removed at the end).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Param

    check_inputs(target, train, val)
    check_inputs(target, test, val)
    net_input = store_input(train, val, test)
    root = root or project_root()
    keras.utils.set_random_seed(budget.seed)
    data = {"train": str(train), "val": str(val), "test": str(test)}
    uri = tracking_uri(root)
    client = MlflowClient(uri)
    exp = ensure_experiment(EXPERIMENT, root)
    tags = {**lineage_tags(data, root), "casnet.target": target,
            "casnet.hyperparameters_from": source, "casnet.labels": labels}  # fmt: skip
    run_id = client.create_run(exp, run_name=f"train-{target}", tags=tags).info.run_id
    params = {**arch.model_dump(mode="json"), "target": target,
              "max_epochs": budget.max_epochs, "patience": budget.patience,
              "seed": budget.seed, "input_size": net_input.size, "labels": labels}  # fmt: skip
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_inputs(run_id, datasets=data_inputs(data, root))
    try:
        model = build_model(arch, input_size=net_input.size, name=f"casnet_{target}")
        resume = [keras.callbacks.BackupAndRestore(str(backup))] if backup is not None else []
        history = model.fit(
            store_dataset(train, target, batch_size=arch.batch_size, shuffle=True,
                          seed=budget.seed, labels=labels),
            validation_data=store_dataset(val, target, batch_size=arch.batch_size,
                                          labels=labels),
            epochs=budget.max_epochs,
            shuffle=False,  # the dataset shuffles itself
            verbose=2 if verbose else 0,
            callbacks=[
                *resume,
                EpochLogger(run_id, uri),
                keras.callbacks.EarlyStopping(monitor=EARLY_STOPPING, mode="min",
                                              patience=budget.patience,
                                              restore_best_weights=True),
            ],
        )  # fmt: skip
        metrics: dict[str, float] = {"epochs": len(history.history["loss"])}
        watched = np.asarray(history.history.get(EARLY_STOPPING, [np.nan]), dtype=float)
        if np.isfinite(watched).any():
            metrics["best_epoch"] = int(np.nanargmin(watched)) + 1
        if arch.head == "gaussian":
            # the sigma learnt the scatter of training-time (dropout-on) predictions: one factor
            # fitted on the validation set recalibrates it; the test set stays the check
            values, preds, sigma = predict_store(model, val, target, labels=labels,
                                                 with_sigma=True)  # fmt: skip
            metrics["sigma_scale"] = fit_sigma_scale(values, preds, sigma)
            model = with_sigma_scale(model, metrics["sigma_scale"])
        panels = {}
        for split, store in (("val", val), ("test", test)):
            values, preds, sigma = predict_store(model, store, target, labels=labels,
                                                 with_sigma=True)  # fmt: skip
            ok = np.isfinite(values)
            panels[split] = (values[ok], preds[ok])
            prefix = "final_val" if split == "val" else "test"
            for key, value in scores(values[ok], preds[ok]).items():
                metrics[f"{prefix}_{key}"] = value
            if arch.head == "gaussian":  # calibration against what it learnt (issue 18)
                for k in (1.0, 2.0):
                    metrics[f"{prefix}_coverage_{k:g}sigma"] = coverage(values, preds, sigma, k)
        client.log_batch(run_id, metrics=_metric_list(metrics))
        with tempfile.TemporaryDirectory() as tmp:
            if figure:
                from casnet.core.figures import predicted_vs_label

                png = predicted_vs_label(panels, target, Path(tmp) / f"predicted_vs_{target}.png")
                client.log_artifact(run_id, str(png))
            example = Path(tmp) / "serving_example.json"
            first = np.asarray(StampStore(val).array("image")[:2], dtype=np.float32)
            example.write_text(json.dumps({"inputs": first[..., None].tolist()}))
            client.log_artifact(run_id, str(example))
        with use_store(root), mlflow.start_run(run_id=run_id):
            # keras flavour with a signature; no input_example (log_model then fails with
            # FileNotFoundError in MLflow 3.17): the sample payload is the artifact above
            signature = network_signature(net_input.size, 2 if arch.head == "gaussian" else 1)
            info = mlflow.keras.log_model(model, name="model", signature=signature,
                                          pip_requirements=model_requirements())  # fmt: skip
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return TrainResult(run_id=run_id, target=target, architecture=arch,
                       model_uri=info.model_uri, metrics=metrics,
                       epochs=int(metrics["epochs"]))  # fmt: skip


def model_requirements(combined: bool = False) -> list[str]:
    """pip requirements logged with a model (MLflow cannot infer them for in-memory models).

    The combined model also needs casnet itself (``pip install -e .`` of this repository), which
    is not on PyPI: serve it with ``--env-manager local`` from the project's environment.
    """
    from importlib.metadata import version

    reqs = [f"keras=={keras.__version__}", f"tensorflow-cpu=={version('tensorflow-cpu')}"]
    if combined:
        reqs += [f"mlflow=={version('mlflow')}", f"astropy=={version('astropy')}",
                 f"pandas=={version('pandas')}"]  # fmt: skip
    return reqs


def _metric_list(values: dict[str, Any]) -> list:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None]
