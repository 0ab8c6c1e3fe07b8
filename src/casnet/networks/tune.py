"""Bayesian optimisation of the CASNET networks with every trial tracked in MLflow (Sec. 3.3-3.4).

Tohill et al. 2021 chose each network's architecture with Keras Tuner's Bayesian optimisation over
the space of Table 1, scored by the validation RMSE. Here a search is:

- one MLflow *parent* run (``tune``, tagged with the target and a key that identifies the search),
  holding the search space as params, the trivial baseline (predict the training mean), and, at
  the end, the best trial's id and hyperparameters (params and ``best_hyperparameters.json``) and
  a table of all trials (``trials.csv``);
- one *child* run per trial (``mlflow.parentRunId`` = the parent), with every hyperparameter as a
  param, per-epoch train/val RMSE, MAE and Pearson r (step = epoch, from 1), the trial status and
  the best epoch.

Every run carries lineage tags (git commit, DVC hashes of the data read) and MLflow dataset inputs.

Keras Tuner 1.4 ignores its ``logger=`` argument and deep-copies the callbacks given to
``search()``, so the MLflow logging lives in :meth:`MlflowTuner.run_trial`, which adds a fresh
per-epoch callback to each trial. All MLflow calls go through an explicit ``MlflowClient`` on run
ids, never the fluent "active run", so that chief and worker processes of a distributed search
(Keras Tuner's ``KERASTUNER_*`` environment) log to one parent without sharing state.

A search is identified by its key: a hash of the target, the search space and budget, the early
stopping settings and the DVC hashes of the data. Rerunning with the same key resumes it (Keras
Tuner state under ``.tuning/<target>-<key>``, the same parent run); anything else starts anew.

Why ~510 lines: the MLflow-logging tuner, the search's identity and resumption, the distributed
roles and the trial summary share one vocabulary of run tags and one parent run; split, that
vocabulary would cross modules.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import keras_tuner as kt
import numpy as np
import pandas as pd

from casnet.core.errors import CasnetConfigError, CasnetError
from casnet.core.layout import EXPERIMENTS, project_root
from casnet.core.tracking import data_inputs, lineage_tags, tracking_uri
from casnet.data.io.store import CATALOG, StampStore
from casnet.networks.callbacks import EpochLogger, mlflow_metrics, training_callbacks
from casnet.networks.dataset import check_inputs, store_dataset, store_input
from casnet.networks.hypermodel import CasnetHyperModel
from casnet.networks.settings import SearchConfig

__all__ = [
    "EXPERIMENT",
    "EpochLogger",
    "MlflowTuner",
    "TuneResult",
    "baseline_scores",
    "best_search",
    "search_key",
    "tune",
]

#: MLflow experiment of every search.
EXPERIMENT = EXPERIMENTS["tune"]
#: The objective (Sec. 3.4): RMSE over the whole validation set.
OBJECTIVE = "val_rmse"
Role = Literal["single", "chief", "worker"]

_SEARCH_TAG = "casnet.search_key"
_KIND_TAG = "casnet.run_kind"
_TARGET_TAG = "casnet.target"
_TRIAL_TAG = "casnet.trial_id"
_PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class TuneResult:
    """What a search found (the chief's or a single process's view; workers get None fields)."""

    parent_run_id: str
    key: str
    directory: Path
    baseline: dict[str, float]
    best_trial_id: str | None = None
    best_hyperparameters: dict[str, Any] = field(default_factory=dict)
    best_val_rmse: float | None = None
    trials: pd.DataFrame | None = None


def best_search(
    target: str, *, root: Path | None = None, data: dict[str, str | Path] | None = None
) -> str | None:
    """The parent run id of the finished search for ``target`` with the lowest best validation
    RMSE, or None. With ``data`` (role -> path of ``train`` and ``val``), only among searches of
    the same data (by the DVC hashes of the lineage tags)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(root))
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    query = (f"tags.`{_KIND_TAG}` = 'search' and tags.`{_TARGET_TAG}` = '{target}' "
             "and attributes.status = 'FINISHED' and metrics.best_val_rmse > -1")  # fmt: skip
    for key, value in lineage_tags(data or {}, root).items():
        if key.endswith(".dvc_md5") and value != "untracked":
            query += f" and tags.`{key}` = '{value}'"  # a search of this very data
    found = client.search_runs([exp.experiment_id], filter_string=query,
                               order_by=["metrics.best_val_rmse ASC"], max_results=1)  # fmt: skip
    return found[0].info.run_id if found else None


def search_key(target: str, space: SearchConfig, data: dict[str, str]) -> str:
    """12 hex digits identifying a search: target, whole ``search`` section, data hashes."""
    ident = {"target": target, "search": space.model_dump(mode="json"), "data": data}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _fingerprint(dvc_md5: str, store: str | Path) -> str:
    """The DVC hash of a store, or for data outside DVC a hash of its catalogue (ids, labels)."""
    if dvc_md5 != "untracked":
        return dvc_md5
    digest = hashlib.md5((Path(store) / CATALOG).read_bytes()).hexdigest()
    return f"untracked:{digest}"


def baseline_scores(train: str | Path, val: str | Path, target: str) -> dict[str, float]:
    """RMSE and MAE on the validation set of predicting the training mean for every galaxy.

    The trivial model every trial has to beat: a network is only a result if it beats it.
    """
    column = f"label_{target}"
    mean = float(StampStore(train).catalog[column].mean())
    labels = StampStore(val).catalog[column].to_numpy(dtype=float)
    return {
        "baseline_val_rmse": float(np.sqrt(np.mean((labels - mean) ** 2))),
        "baseline_val_mae": float(np.mean(np.abs(labels - mean))),
        "baseline_train_mean": mean,
    }


class MlflowTuner(kt.BayesianOptimization):
    """Keras Tuner's Bayesian optimisation with one nested MLflow run per trial.

    Parameters
    ----------
    hypermodel : CasnetHyperModel
    parent_run_id, experiment_id, tracking_uri : str
        Where the child runs go.
    tags : dict
        Tags of every child run (target, search key, lineage).
    data : dict
        Role -> path of the data read, logged as MLflow dataset inputs.
    schedule : SearchConfig
        The training schedule of every trial (:func:`casnet.networks.callbacks.
        training_callbacks`: learning-rate reduction and early stopping on the validation RMSE,
        Sec. 3.4), as ``casnet train`` trains, so a trial's score is the trained network's.
    progress : callable, optional
        Called with one line per finished trial (its scores and hyperparameters), the search's
        console output when Keras Tuner's own is off.
    **kwargs
        Passed to :class:`keras_tuner.BayesianOptimization`.
    """

    def __init__(self, hypermodel, *, parent_run_id: str, experiment_id: str, tracking_uri: str,
                 tags: dict[str, str], data: dict[str, str], schedule: Any,
                 progress: Callable[[str], None] | None = None, **kwargs: Any) -> None:  # fmt: skip
        self.parent_run_id = parent_run_id
        self.progress = progress
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri
        self.run_tags = dict(tags)
        self.data = dict(data)
        self.schedule = schedule
        super().__init__(hypermodel, objective=kt.Objective(OBJECTIVE, "min"), **kwargs)

    def _client(self):
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri)

    def _child_run(self, client, trial) -> str:
        """The trial's run: the existing one when an interrupted trial is retried, else new."""
        from mlflow.entities import Param

        found = client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.{_PARENT_TAG} = '{self.parent_run_id}' and "
            f"tags.`{_TRIAL_TAG}` = '{trial.trial_id}'",
        )
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            return run_id
        tags = {**self.run_tags, _PARENT_TAG: self.parent_run_id, _TRIAL_TAG: trial.trial_id,
                "casnet.tuner_id": str(self.tuner_id),
                "casnet.trial_status": "RUNNING"}  # fmt: skip
        run = client.create_run(self.experiment_id, run_name=f"trial-{trial.trial_id}", tags=tags)
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in sorted(trial.hyperparameters.values.items())]
        client.log_batch(run_id, params=params)
        client.log_inputs(run_id, datasets=data_inputs(self.data))
        return run_id

    def run_trial(self, trial, *args, **kwargs):
        client = self._client()
        run_id = self._child_run(client, trial)
        callbacks = [
            *kwargs.pop("callbacks", []),
            *training_callbacks(self.schedule, restore_best_weights=False),
            EpochLogger(run_id, self.tracking_uri),
        ]
        try:
            histories = super().run_trial(trial, *args, callbacks=callbacks, **kwargs)
        except BaseException as exc:
            client.set_tag(run_id, "casnet.trial_status", "FAILED")
            client.set_tag(run_id, "casnet.error", f"{type(exc).__name__}: {exc}"[:5000])
            client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt)
                                  else "FAILED")  # fmt: skip
            raise
        history = histories[-1].history
        val = np.asarray(history.get(OBJECTIVE, [math.nan]), dtype=float)
        summary = {"epochs": len(val)}
        if np.isfinite(val).any():
            best = int(np.nanargmin(val))
            summary["best_epoch"] = best + 1
            for key in ("val_rmse", "val_mae", "val_pearson_r"):
                if key in history:
                    summary[f"best_{key}"] = float(history[key][best])
            status = "COMPLETED"
        else:
            status = "INVALID"  # no finite validation RMSE: nothing for the oracle to learn from
        client.log_batch(run_id, metrics=mlflow_metrics(summary, 0))
        client.set_tag(run_id, "casnet.trial_status", status)
        client.set_terminated(run_id, "FINISHED" if status == "COMPLETED" else "FAILED")
        if self.progress is not None:
            self.progress(trial_line(trial.trial_id, self.oracle.max_trials, summary,
                                     trial.hyperparameters.values, status))  # fmt: skip
        return histories


def trial_line(trial_id: str, max_trials: int, summary: dict, hps: dict, status: str) -> str:
    """One console line for a finished trial: its validation RMSE, epochs and hyperparameters
    (the per-epoch history is in its MLflow run)."""
    score = (f"val RMSE {summary['best_val_rmse']:.4f} at epoch {summary['best_epoch']} of "
             f"{summary['epochs']}" if "best_val_rmse" in summary else status)  # fmt: skip
    arch = (f"{hps.get('blocks')}x{hps.get('conv_per_block')} conv, {hps.get('filters')} filters, "
            f"{hps.get('dense_layers')}x{hps.get('dense_units')} dense, dropout "
            f"{float(hps.get('dropout', float('nan'))):.2f}, {hps.get('optimizer')} "
            f"{hps.get('learning_rate')}, batch {hps.get('batch_size')}")  # fmt: skip
    # the trial's id as the table, trials.csv and its MLflow run (trial-<id>) name it (issue 31:
    # the console counted from 1, everything else from 0), then how far the search is
    return f"trial {trial_id} ({int(trial_id) + 1}/{max_trials}): {score}; {arch}"


def _flat_params(target: str, space: SearchConfig) -> dict[str, str]:
    params = {"target": target}
    for key, value in space.model_dump(mode="json").items():
        params[f"search.{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return params


def _find_parent(client, experiment_id: str, key: str):
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{_SEARCH_TAG}` = '{key}' and tags.`{_KIND_TAG}` = 'search'",
        order_by=["attributes.start_time ASC"],
    )
    return runs[0] if runs else None


def _parent_run(client, experiment_id: str, key: str, target: str, space: SearchConfig,
                tags: dict[str, str], data: dict[str, str],
                baseline: dict[str, float]) -> str:  # fmt: skip
    """The search's parent run: found by its key (resume) or created with the search as params."""
    from mlflow.entities import Param

    found = _find_parent(client, experiment_id, key)
    if found is not None:
        client.update_run(found.info.run_id, status="RUNNING")
        return found.info.run_id
    run = client.create_run(experiment_id, run_name=f"tune-{target}",
                            tags={**tags, _KIND_TAG: "search"})  # fmt: skip
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in _flat_params(target, space).items()],
                     metrics=mlflow_metrics(baseline, 0))  # fmt: skip
    client.log_inputs(run_id, datasets=data_inputs(data))
    return run_id


def _link_launcher(client, parent: str) -> None:
    """Under ``mlflow run`` (MLFLOW_RUN_ID set), cross-link the launcher's run and the search."""
    from mlflow.exceptions import MlflowException

    launcher = os.environ.get("MLFLOW_RUN_ID")
    if not launcher or launcher == parent:
        return
    try:
        client.set_tag(launcher, "casnet.search_run_id", parent)
        client.set_tag(parent, "casnet.launched_by", launcher)
    except MlflowException:
        pass  # the launcher logs to another store: nothing to link


def _wait_for_parent(client, experiment_id: str, key: str, timeout: float) -> str:
    """A worker's parent run: created by the chief, which may still be starting."""
    deadline = time.monotonic() + timeout
    while True:
        found = _find_parent(client, experiment_id, key)
        if found is not None:
            return found.info.run_id
        if time.monotonic() > deadline:
            raise CasnetError(
                f"no search with key {key} appeared in the tracking store within {timeout:.0f} s: "
                "start the chief first, with the same params, data and MLFLOW_TRACKING_URI"
            )
        time.sleep(1.0)


def trials_table(tuner: kt.Tuner, client, experiment_id: str, parent_run_id: str) -> pd.DataFrame:
    """One row per trial: id, status, score (best validation RMSE), best epoch, run id, HPs."""
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.{_PARENT_TAG} = '{parent_run_id}'",
        max_results=50000,
    )  # fmt: skip
    run_ids = {r.data.tags.get(_TRIAL_TAG): r.info.run_id for r in children}
    # the status casnet gave each finished trial (its MLflow run's tag, the console's word):
    # Keras Tuner calls a diverged trial (validation RMSE inf) COMPLETED with the score inf,
    # and a NaN one FAILED (issue 31: one trial, three statuses)
    statuses = {r.data.tags.get(_TRIAL_TAG): r.data.tags.get("casnet.trial_status")
                for r in children}  # fmt: skip
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        score = trial.score if trial.score is not None and math.isfinite(trial.score) else None
        rows.append({
            "trial_id": trial_id,
            "status": statuses.get(trial_id) or str(trial.status),
            "val_rmse": score,
            "best_epoch": None if trial.best_step is None else int(trial.best_step) + 1,
            "run_id": run_ids.get(trial_id),
            **trial.hyperparameters.values,
        })  # fmt: skip
    return pd.DataFrame(rows)


def _log_summary(client, tuner: kt.Tuner, experiment_id: str, parent_run_id: str) -> dict:
    """Best trial (tags, params, JSON) and the trials table on the parent run."""
    from mlflow.entities import Param

    table = trials_table(tuner, client, experiment_id, parent_run_id)
    best = [t for t in tuner.oracle.get_best_trials(1)
            if t.score is not None and math.isfinite(t.score)]  # fmt: skip
    summary: dict[str, Any] = {"trials": table}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trials.csv"
        table.to_csv(path, index=False)
        client.log_artifact(parent_run_id, str(path))
        if best:
            trial = best[0]
            hps = dict(trial.hyperparameters.values)
            (Path(tmp) / "best_hyperparameters.json").write_text(json.dumps(
                {"trial_id": trial.trial_id, "val_rmse": trial.score, "hyperparameters": hps},
                indent=2))  # fmt: skip
            client.log_artifact(parent_run_id, str(Path(tmp) / "best_hyperparameters.json"))
            client.log_batch(
                parent_run_id,
                params=[Param(f"best.{k}", str(v)) for k, v in sorted(hps.items())],
                metrics=mlflow_metrics({"best_val_rmse": trial.score, "n_trials": len(table)}, 0),
            )
            client.set_tag(parent_run_id, "casnet.best_trial_id", trial.trial_id)
            summary.update(best_trial_id=trial.trial_id, best_hyperparameters=hps,
                           best_val_rmse=trial.score)  # fmt: skip
    return summary


def _role_environment(role: Role, oracle: str | None, tuner_id: str | None) -> None:
    """Keras Tuner's distributed mode reads these variables (keras_tuner.src.distribute)."""
    if role == "single":
        for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            if var in os.environ:
                raise CasnetConfigError(f"{var} is set: use --role chief|worker, or unset it")
        return
    if not oracle or ":" not in oracle:
        raise CasnetConfigError(f"--role {role} needs --oracle HOST:PORT, got {oracle!r}")
    host, port = oracle.rsplit(":", 1)
    if not port.isdigit():
        raise CasnetConfigError(f"--oracle port must be a number, got {port!r}")
    if role == "worker" and not tuner_id:
        raise CasnetConfigError("--role worker needs a unique --tuner-id (e.g. worker0)")
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = port
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if role == "chief" else str(tuner_id)


def tune(
    target: str,
    space: SearchConfig,
    *,
    train: str | Path,
    val: str | Path,
    role: Role = "single",
    oracle: str | None = None,
    tuner_id: str | None = None,
    root: Path | None = None,
    verbose: int = 1,
    parent_timeout: float = 300.0,
) -> TuneResult:
    """Run (or resume, or join) the Bayesian-optimisation search for ``target``.

    Parameters
    ----------
    target : {"concentration", "asymmetry"}
    space : SearchConfig
        The ``search`` params: space, budget (max_trials, max_epochs), patience, seeds.
    train, val : path
        Stores of network-ready stamps: ``data/augmented`` and ``data/split/val``.
    role : {"single", "chief", "worker"}
        One process, or Keras Tuner's distributed mode: the chief serves the oracle at
        ``oracle`` (HOST:PORT) and writes the summary; each worker (unique ``tuner_id``) runs
        trials. All must share the data, the params and the MLflow tracking server.
    verbose : int
        0 silent; 1 one line per finished trial (the default of ``casnet tune``; every epoch
        is in the trial's MLflow run); 2 also Keras Tuner's trial tables and a line per epoch.
    parent_timeout : float
        How long a worker waits for the chief's parent run (s).

    Returns
    -------
    TuneResult
    """
    from mlflow import MlflowClient

    from casnet.core import tracking

    check_inputs(target, train, val)
    _role_environment(role, oracle, tuner_id)
    root = root or project_root()
    data = {"train": str(train), "val": str(val)}
    tags = lineage_tags(data, root)
    key = search_key(target, space, {k: _fingerprint(tags[f"casnet.data.{k}.dvc_md5"], path)
                                     for k, path in data.items()})  # fmt: skip
    tags.update({_TARGET_TAG: target, _SEARCH_TAG: key})
    experiment_id = tracking.ensure_experiment(EXPERIMENT, root)
    uri = tracking.tracking_uri(root)
    client = MlflowClient(uri)
    baseline = baseline_scores(train, val, target)
    if role == "worker":
        parent = _wait_for_parent(client, experiment_id, key, parent_timeout)
    else:
        parent = _parent_run(client, experiment_id, key, target, space, tags, data, baseline)
    _link_launcher(client, parent)
    directory = root / ".tuning"
    tuner = MlflowTuner(
        CasnetHyperModel(space, input_size=store_input(train, val).size),
        parent_run_id=parent,
        experiment_id=experiment_id,
        tracking_uri=uri,
        tags=tags,
        data=data,
        schedule=space,
        max_trials=space.max_trials,
        num_initial_points=space.num_initial_points,
        seed=space.seed,
        directory=str(directory),
        project_name=f"{target}-{key}",
        overwrite=False,
        progress=functools.partial(print, flush=True) if verbose == 1 else None,
    )
    train_fn = _dataset(train, target, shuffle=True, seed=space.seed)
    val_fn = _dataset(val, target, shuffle=False, seed=0)
    try:
        with warnings.catch_warnings():
            # the Bayesian oracle's Gaussian process, fitted on a handful of trials, often puts a
            # length scale at its bound: scikit-learn says so after every trial (issue 31: a
            # quiet console); the search is no worse for it
            warnings.filterwarnings("ignore", message=".*length_scale is close to the specified",
                                    category=UserWarning)  # fmt: skip
            # shuffle=False: the training dataset shuffles itself (chunk order and a buffer)
            tuner.search(train_fn, validation_data=val_fn, epochs=space.max_epochs,
                         shuffle=False, verbose=2 if verbose >= 2 else 0)  # fmt: skip
    except BaseException:
        if role != "worker":
            client.set_terminated(parent, "FAILED")
        raise
    result = TuneResult(parent_run_id=parent, key=key, directory=directory / f"{target}-{key}",
                        baseline=baseline)  # fmt: skip
    if role == "worker":
        return result
    summary = _log_summary(client, tuner, experiment_id, parent)
    client.set_terminated(parent, "FINISHED")
    return TuneResult(parent_run_id=parent, key=key, directory=result.directory,
                      baseline=baseline, **summary)  # fmt: skip


def _dataset(store: str | Path, target: str, *, shuffle: bool, seed: int):
    def make(batch_size: int):
        return store_dataset(store, target, batch_size=batch_size, shuffle=shuffle, seed=seed)

    return make


def format_trials(result: TuneResult, columns: Iterable[str] = ()) -> str:
    """The trials table as markdown (best first), with the baseline to beat."""
    if result.trials is None or result.trials.empty:
        return "no trials"
    table = result.trials.sort_values("val_rmse", na_position="last")
    cols = ["trial_id", "status", "val_rmse", "best_epoch", *columns]
    cols += [c for c in table.columns if c not in cols and c != "run_id"]
    lines = [f"baseline (training mean): val RMSE {result.baseline['baseline_val_rmse']:.4f}",
             table[cols].to_markdown(index=False, floatfmt=".4g")]  # fmt: skip
    return "\n".join(lines)
