"""Training a CASNET network and logging it to MLflow (Tohill et al. 2021 Sec. 3.4).

The hyperparameters come from the ``model`` params (the paper's Table 1, the default) or from the
best trial of a search (:mod:`casnet.networks.tune`). Training stops early on the validation loss
and
restores the best epoch's weights; the run (experiment ``casnet-train``) logs the architecture as
params, per-epoch metrics, the final validation and test RMSE, MAE and Pearson r computed over the
whole sets, lineage tags, a predicted-vs-label figure and the model (Keras flavour, with a
signature and a sample serving payload). Registration and aliases are
:mod:`casnet.networks.registry`'s.

**Fine-tuning** (``init``, issue 29: transfer to a user's survey): the network starts from an
existing model's network for the target (the shipped pretrained model, a registered model or a
model folder), its architecture and weights; the architecture from params or a search is then
ignored (only its optimizer and batch size are used), at a lower learning rate
(:data:`FINETUNE_LR_FACTOR`). A Gaussian head is recalibrated on the validation set as in any
training. The run carries the tag ``casnet.init``.

**Evaluation-only galaxies** (the real suite's) are refused as training data
(:func:`casnet.networks.dataset.refuse_evaluation_only`). ``allow_evaluation_only`` lifts that
for one purpose, the worked example of ``casnet benchmark finetune``; such a run is tagged
``casnet.evaluation_only_override=true`` and its network is never logged as a model, so it cannot
be registered, promoted or shipped (:func:`casnet.networks.registry.check_promotable` says so
for any run).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from casnet.core.calibration import coverage, fit_sigma_scale
from casnet.core.config import parse_yaml
from casnet.core.errors import CasnetConfigError, CasnetInputError
from casnet.core.layout import EXPERIMENTS, NETWORK_MODELS, TARGETS, project_root
from casnet.core.scores import scores
from casnet.core.tracking import (
    data_inputs,
    ensure_experiment,
    lineage_tags,
    tracking_uri,
    use_store,
)
from casnet.data.io.store import StampStore
from casnet.networks.architecture import build_model
from casnet.networks.callbacks import EpochLine, EpochLogger, training_callbacks
from casnet.networks.dataset import (
    OVERRIDE_TAG,
    check_inputs,
    evaluation_only_count,
    refuse_evaluation_only,
    store_dataset,
    store_input,
)
from casnet.networks.inference import predict_store
from casnet.networks.metrics import EARLY_STOPPING
from casnet.networks.mlmodel import model_requirements, network_signature
from casnet.networks.recalibration import bare_network, fit_mean_map, with_mean_map
from casnet.networks.settings import ArchitectureConfig, SearchConfig
from casnet.networks.tune import best_search
from casnet.networks.uncertainty import DetachedSigmaDense, with_sigma_scale

__all__ = [
    "EXPERIMENT",
    "FINETUNE_LR_FACTOR",
    "INIT_TAG",
    "TrainResult",
    "architecture_from_search",
    "init_network",
    "start_network",
    "train",
]

EXPERIMENT = EXPERIMENTS["train"]
#: a fine-tuning's default learning rate: this times the architecture's. The whole network is
#: trained (a CASNET network is small: frozen convolutions would leave little to adapt), and a
#: few hundred stamps at the from-scratch rate would overwrite in a few steps what 20000
#: simulated galaxies taught (catastrophic forgetting) and fit their labels' noise; a tenth
#: moves the weights gently from the start. The worked example measures the choice
#: (``casnet benchmark finetune --learning-rate-factor``)
FINETUNE_LR_FACTOR = 0.1
#: the run tag that says where a fine-tuned network started (``pretrained``, a URI, a folder)
INIT_TAG = "casnet.init"


@dataclass(frozen=True)
class TrainResult:
    """A finished training run."""

    run_id: str
    target: str
    architecture: ArchitectureConfig
    model_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    #: where the network started (``init``; None: from scratch)
    init: str | None = None
    #: trained on evaluation-only galaxies (the override): ``model_uri`` is "", nothing logged
    #: can be registered
    evaluation_only: bool = False
    #: the trained network (Keras, sigma recalibrated), as logged
    network: Any = field(default=None, repr=False, compare=False)


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
    init: str | None = None,
    learning_rate: float | None = None,
    allow_evaluation_only: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``arch`` for ``target`` and log the run, its metrics, figure and model.

    Parameters
    ----------
    budget : SearchConfig
        ``max_epochs``, ``seed`` and the schedule (:func:`casnet.networks.callbacks.
        training_callbacks`: ``patience``, ``lr_factor``, ``lr_patience``,
        ``min_learning_rate``) are used.
    source : str
        Where the hyperparameters came from (``params.yaml`` or a search run id), a tag.
    labels : {"label", "truth"}
        What the network learns (:data:`casnet.networks.dataset.LABEL_SOURCES`); its scores are
        against the same values. A tag and a param of the run.
    backup : Path, optional
        Keras ``BackupAndRestore`` folder: a training killed midway and started again with the
        same folder continues from its last finished epoch, with the schedule's state (the
        early-stopping counter, best value and weights, the learning rate) as it was (the
        folder is removed at the end).
    init : str, optional
        Fine-tune: start from this model's ``target`` network, its architecture and weights
        (:func:`init_network`: ``pretrained``, a ``models:/`` or ``runs:/`` URI, or a model
        folder). ``arch`` then gives only the optimizer and the batch size; its layers are
        ignored (said through ``log`` and in the tag ``casnet.init``). The network's sigma
        recalibration, if any, is dropped and fitted again on ``val``. None: a new network.
    learning_rate : float, optional
        The optimizer's learning rate; default ``arch.learning_rate``, times
        :data:`FINETUNE_LR_FACTOR` with ``init``.
    allow_evaluation_only : bool
        Train on stores that hold evaluation-only galaxies (the real suite's), refused otherwise.
        For the worked example of ``casnet benchmark finetune`` only: the run is tagged
        ``casnet.evaluation_only_override=true`` and the network is not logged as a model
        (``model_uri`` is "", :attr:`TrainResult.network` holds it), so it cannot be
        registered or shipped.
    log : callable, optional
        Where the notes go (the fine-tuning start); default ``print`` when ``verbose``.

    Raises
    ------
    CasnetInputError
        Unusable stores, an evaluation-only store without the override, an ``init`` that names
        no model, has no network for ``target``, is not a CASNET architecture or takes another
        crop size than the stores' stamps, a learning rate <= 0.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Param

    check_inputs(target, train, val)
    check_inputs(target, test, val)
    net_input = store_input(train, val, test)
    # before any run is created: a refused store leaves no trace in the tracking store
    held = sum(evaluation_only_count(StampStore(s)) for s in (train, val))
    if held and not allow_evaluation_only:
        for store in (train, val):
            refuse_evaluation_only(StampStore(store))
    override_used = bool(held) and allow_evaluation_only
    if learning_rate is not None and not learning_rate > 0:
        raise CasnetInputError(f"learning_rate must be > 0, got {learning_rate!r}")
    say = log if log is not None else (print if verbose else (lambda _msg: None))
    root = root or project_root()
    keras.utils.set_random_seed(budget.seed)
    start, what = None, None
    if init is not None:
        start, arch, what = start_network(init, target, arch, input_size=net_input.size,
                                          learning_rate=learning_rate, root=root)  # fmt: skip
        say(f"{target}: fine-tuning {what}: its network's architecture and weights; the "
            f"architecture from {source} is ignored (its optimizer {arch.optimizer} and batch "
            f"size {arch.batch_size} are used), learning rate {arch.learning_rate:g}")  # fmt: skip
    elif learning_rate is not None:
        arch = ArchitectureConfig(**{**arch.model_dump(), "learning_rate": learning_rate})
    data = {"train": str(train), "val": str(val), "test": str(test)}
    uri = tracking_uri(root)
    client = MlflowClient(uri)
    exp = ensure_experiment(EXPERIMENT, root)
    tags = {**lineage_tags(data, root), "casnet.target": target,
            "casnet.hyperparameters_from": source, "casnet.labels": labels}  # fmt: skip
    if init is not None:
        tags[INIT_TAG] = init
        tags["casnet.init_description"] = what[:5000]
    if override_used:
        tags[OVERRIDE_TAG] = "true"
        tags["casnet.not_for_release"] = (
            f"trained on {held} evaluation-only galaxies (the real suite's) by the override of "
            "casnet benchmark finetune's worked example: its network is not logged as a model"
        )
    name = f"{'finetune' if init is not None else 'train'}-{target}"
    run_id = client.create_run(exp, run_name=name, tags=tags).info.run_id
    params = {**arch.model_dump(mode="json"), "target": target,
              "max_epochs": budget.max_epochs, "patience": budget.patience,
              "lr_factor": budget.lr_factor, "lr_patience": budget.lr_patience,
              "min_learning_rate": budget.min_learning_rate,
              "recalibration": budget.recalibration,
              "seed": budget.seed, "input_size": net_input.size, "labels": labels}  # fmt: skip
    if init is not None:
        params["init"] = init
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    client.log_inputs(run_id, datasets=data_inputs(data, root))
    try:
        if start is None:
            model = build_model(arch, input_size=net_input.size, name=f"casnet_{target}")
        else:
            model = start
        resume = [keras.callbacks.BackupAndRestore(str(backup))] if backup is not None else []
        history = model.fit(
            store_dataset(train, target, batch_size=arch.batch_size, shuffle=True,
                          seed=budget.seed, labels=labels,
                          allow_evaluation_only=allow_evaluation_only),
            validation_data=store_dataset(val, target, batch_size=arch.batch_size,
                                          labels=labels,
                                          allow_evaluation_only=allow_evaluation_only),
            epochs=budget.max_epochs,
            shuffle=False,  # the dataset shuffles itself
            verbose=0,  # the console gets EpochLine's one line per epoch (issue 31)
            # the schedule after BackupAndRestore: its state is written after the checkpoint
            callbacks=[*resume, *training_callbacks(budget, state_dir=backup),
                       EpochLogger(run_id, uri),
                       *([EpochLine(say, target, budget.max_epochs)] if verbose else [])],
        )  # fmt: skip
        metrics: dict[str, float] = {"epochs": len(history.history["loss"])}
        watched = np.asarray(history.history.get(EARLY_STOPPING, [np.nan]), dtype=float)
        if np.isfinite(watched).any():
            metrics["best_epoch"] = int(np.nanargmin(watched)) + 1
        if budget.recalibration != "none":
            # the mean first (issue 30: a squeezed high-A tail), then the sigma around it
            values, preds = predict_store(model, val, target, labels=labels)
            knots = fit_mean_map(preds, values, budget.recalibration)
            model = with_mean_map(model, *knots)
            metrics["recalibration_knots"] = len(knots[0])
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
            if not override_used:  # no stamp of an evaluation-only galaxy leaves the store
                example = Path(tmp) / "serving_example.json"
                first = np.asarray(StampStore(val).array("image")[:2], dtype=np.float32)
                example.write_text(json.dumps({"inputs": first[..., None].tolist()}))
                client.log_artifact(run_id, str(example))
        model_uri = ""
        if not override_used:
            with use_store(root), mlflow.start_run(run_id=run_id):
                # keras flavour with a signature; no input_example (log_model then fails with
                # FileNotFoundError in MLflow 3.17): the sample payload is the artifact above
                signature = network_signature(net_input.size,
                                              2 if arch.head == "gaussian" else 1)  # fmt: skip
                info = mlflow.keras.log_model(model, name="model", signature=signature,
                                              pip_requirements=model_requirements())  # fmt: skip
            model_uri = info.model_uri
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return TrainResult(run_id=run_id, target=target, architecture=arch, model_uri=model_uri,
                       metrics=metrics, epochs=int(metrics["epochs"]), init=init,
                       evaluation_only=override_used, network=model)  # fmt: skip


def init_network(init: str, target: str, *, root: Path | None = None) -> tuple[Any, str]:
    """The ``target`` network a fine-tuning starts from, and what it is (for messages).

    Parameters
    ----------
    init : str
        ``pretrained`` (the packaged model, :mod:`casnet.networks.pretrained`), a ``models:/`` or
        ``runs:/`` URI of the project's store, or a local model folder; of the combined model
        (``casnet``: its ``target`` network) or of one network (``casnet-<target>``).
    target : {"concentration", "asymmetry"}

    Returns
    -------
    (keras.Model, str)
        The network without its recalibrations (a :class:`SigmaScale` and a
        :class:`~casnet.networks.recalibration.MeanMap` layer, fitted again after the
        fine-tuning), and a description.

    Raises
    ------
    CasnetInputError
        ``init`` names no model, a network of the other target, or a folder casnet did not
        write. Nothing shipped in the model runs: the combined model is checked and loaded by
        :func:`casnet.networks.trust.load_combined`, a single network's ``.keras`` file in
        Keras's safe mode.
    """
    from casnet.networks import pretrained

    if target not in TARGETS:
        raise CasnetInputError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if init in pretrained.NAMES:
        shipped = pretrained.folder_of(init)
        return (_network_in(pretrained.model_path(shipped), init, target),
                pretrained.describe(shipped))  # fmt: skip
    if init.startswith(("models:/", "runs:/")):
        named = init.removeprefix("models:/").split("@")[0].split("/")[0]
        for other, registered in NETWORK_MODELS.items():
            if named == registered and other != target:
                raise CasnetInputError(f"{init} is the {other} network: it has no {target} "
                                       f"network (give models:/{NETWORK_MODELS[target]}@champion, "
                                       "models:/casnet@champion or pretrained)")  # fmt: skip
        from casnet.networks.registry import pull

        with tempfile.TemporaryDirectory(prefix="casnet-init-") as tmp:
            return _network_in(pull(init, tmp, root), init, target), init
    if not (Path(init) / "MLmodel").is_file():
        raise CasnetInputError(f"init {init!r} is not 'pretrained', a models:/ URI or a model "
                               "folder (no MLmodel file in it)")  # fmt: skip
    return _network_in(Path(init), init, target), init


def start_network(
    init: str,
    target: str,
    arch: ArchitectureConfig,
    *,
    input_size: int,
    learning_rate: float | None = None,
    root: Path | None = None,
) -> tuple[Any, ArchitectureConfig, str]:
    """The compiled network a fine-tuning of ``target`` starts from: :func:`init_network`'s
    architecture and weights, ``arch``'s optimizer and batch size.

    Parameters
    ----------
    init : str
        See :func:`init_network`.
    arch : ArchitectureConfig
        Only its optimizer, batch size and learning rate are used.
    input_size : int
        The stamps' side (:func:`casnet.networks.dataset.store_input`); the network must take it.
    learning_rate : float, optional
        Default ``arch.learning_rate * FINETUNE_LR_FACTOR``.

    Returns
    -------
    (keras.Model, ArchitectureConfig, str)
        The network (built by :func:`casnet.networks.architecture.build_model`, compiled, with
        the init network's weights; no sigma recalibration), its architecture (what a training
        logs as params) and a description of ``init``.

    Raises
    ------
    CasnetInputError
        As :func:`init_network`; a network of another input size, or not a CASNET
        architecture.
    """
    network, what = init_network(init, target, root=root)
    size = network.input_shape[1]
    if size != input_size:
        raise CasnetInputError(f"{init}: its {target} network takes {size}x{size} px stamps, "
                               f"the stores hold {input_size}x{input_size} px stamps")  # fmt: skip
    lr = learning_rate if learning_rate is not None else arch.learning_rate * FINETUNE_LR_FACTOR
    arch = _architecture_of(network, arch, lr, name=init)
    model = build_model(arch, input_size=input_size, name=f"casnet_{target}")
    _copy_weights(network, model, name=init, target=target)
    return model, arch, what


def _network_in(path: Path, name: str, target: str):
    """The ``target`` network of the model folder ``path`` (combined or single), its
    recalibrations (sigma factor, mean map) removed."""
    from casnet.networks.trust import load_combined

    try:
        spec = parse_yaml((path / "MLmodel").read_bytes(), source=f"{name}: MLmodel")
    except (CasnetConfigError, OSError) as exc:
        raise CasnetInputError(f"{name}: unreadable MLmodel ({exc})") from None
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    if isinstance(flavors, dict) and isinstance(flavors.get("keras"), dict):
        network = _single_network(path, flavors["keras"], name)
        found = str(network.name).removeprefix("casnet_")
        if found in TARGETS and found != target:
            raise CasnetInputError(f"{name} is the {found} network: it has no {target} network")
    else:
        network = load_combined(path, name).unwrap_python_model().networks[target]
    # the recalibrations are refitted on the fine-tuning's own validation set
    return bare_network(network)


def _single_network(path: Path, flavor: dict, name: str):
    """One network's ``.keras`` file (MLflow's Keras flavour) loaded in Keras's safe mode (no
    ``Lambda`` code) without its optimizer."""
    rel = Path(str(flavor.get("data", "data")))
    if rel.is_absolute() or ".." in rel.parts:
        raise CasnetInputError(f"{name}: its Keras data path {str(rel)[:100]!r} leads outside it")
    file = path / rel / "model.keras"
    if not file.is_file():
        raise CasnetInputError(f"{name}: no {rel / 'model.keras'} in it")
    try:
        return keras.saving.load_model(file, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zip errors ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CasnetInputError(f"{name}: its network does not load ({first})") from None


def _architecture_of(network, base: ArchitectureConfig, learning_rate: float, *,
                     name: str) -> ArchitectureConfig:  # fmt: skip
    """The :class:`ArchitectureConfig` of a network :func:`build_model` built (its blocks,
    convolutions, filters, dense layers, dropout and head), with ``base``'s optimizer and batch
    size and ``learning_rate``."""
    layers = network.layers
    convs = [x for x in layers if isinstance(x, keras.layers.Conv2D)]
    pools = [x for x in layers if isinstance(x, keras.layers.AveragePooling2D)]
    dense = [x for x in layers if isinstance(x, keras.layers.Dense)]
    drops = [x for x in layers if isinstance(x, keras.layers.Dropout)]
    if not (convs and pools and dense and len(drops) == 1 and len(convs) % len(pools) == 0):
        raise CasnetInputError(f"{name}: its network is not a CASNET architecture (blocks "
                               "of convolutions, average pooling, dense layers, one "
                               "dropout)")  # fmt: skip
    found = {
        "blocks": len(pools),
        "conv_per_block": len(convs) // len(pools),
        "filters": int(convs[0].filters),
        "dense_layers": len(dense) - 1,
        "dense_units": int(dense[0].units) if len(dense) > 1 else base.dense_units,
        "dropout": float(drops[0].rate),
        "head": "gaussian" if int(dense[-1].units) == 2 else "point",
        "sigma_gradient": "detached" if isinstance(dense[-1], DetachedSigmaDense) else "shared",
        "learning_rate": float(learning_rate),
    }
    try:
        return ArchitectureConfig(**{**base.model_dump(), **found})
    except ValueError as exc:
        first = str(exc).splitlines()[0][:300]
        raise CasnetInputError(f"{name}: its network is outside the CASNET space ({first})"
                               ) from None  # fmt: skip


def _copy_weights(source, model, *, name: str, target: str) -> None:
    """Give ``model`` (built from :func:`_architecture_of`) the weights of ``source``, layer by
    layer; refuse when the layers differ (a network not built as casnet builds them)."""

    def layout(net):
        kinds = [type(x).__name__ for x in net.layers if not isinstance(x, keras.layers.InputLayer)]
        shapes = [tuple(w.shape) for w in net.weights]
        return kinds, shapes

    if layout(source) != layout(model):
        raise CasnetInputError(f"{name}: its {target} network's layers differ from the CASNET "
                               "architecture they describe (not built by casnet?)")  # fmt: skip
    for src, dst in zip(source.layers, model.layers, strict=True):
        if src.weights:
            dst.set_weights(src.get_weights())


def _metric_list(values: dict[str, Any]) -> list:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None]
