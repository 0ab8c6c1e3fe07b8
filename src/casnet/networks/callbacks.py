"""The training schedule: early stopping and learning-rate reduction that survive a restart.

Issue 30 (science run 2): at a fixed learning rate with patience 3 over 15 epochs, early
stopping fired on fluctuations of the validation RMSE (the last epoch 12-41% above the best),
and Keras ``BackupAndRestore`` brings back the weights, the optimizer and the epoch of a killed
training but not the callbacks' state: a resumed training forgot its best validation RMSE, its
best weights and how long it had waited, and so stopped differently from one never killed.

:func:`training_callbacks` gives the schedule every training uses (``casnet train`` and the
search's trials): ``ReduceLROnPlateau`` on the validation RMSE (the rate times
``budget.lr_factor`` after ``budget.lr_patience`` epochs without improvement, down to
``budget.min_learning_rate``), then ``EarlyStopping`` after ``budget.patience`` epochs without
improvement with the best epoch's weights restored. With a ``state_dir`` (the training's backup
folder) both write their state there after every epoch (the stopping counter, the best value and
weights, the plateau counter, the learning rate) and read it back when the training starts
again, so a resumed training continues exactly where the killed one was.

The state is written after ``BackupAndRestore``'s checkpoint of the same epoch (the callbacks'
order in :func:`training_callbacks`' caller): a kill between the two repeats that epoch with the
previous epoch's counters, never skips one.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from casnet.networks.metrics import EARLY_STOPPING

__all__ = [
    "STATE_FILE",
    "EpochLine",
    "EpochLogger",
    "ResumableEarlyStopping",
    "ResumableReduceLROnPlateau",
    "mlflow_metrics",
    "training_callbacks",
]

#: the schedule's state in a training's backup folder (JSON), and the best weights beside it
STATE_FILE = "casnet_schedule.json"
_WEIGHTS_FILE = "casnet_best_weights.npz"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file (a kill never leaves half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_state(state_dir: Path | None) -> dict[str, Any]:
    if state_dir is None:
        return {}
    path = Path(state_dir) / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # a damaged state: start the schedule afresh, as Keras would
        return {}


def _update_state(state_dir: Path, key: str, value: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(state_dir)
    state[key] = value
    _write_json(state_dir / STATE_FILE, state)


def _number(value: Any) -> float | None:
    """A JSON-safe best value: None (no epoch scored yet) stays None, a NaN becomes None."""
    if value is None:
        return None
    v = float(value)
    return v if np.isfinite(v) else None


def _best(value: Any) -> float | None:
    return None if value is None else float(value)


class _Resumable:
    """What the two resumable callbacks share: a ``state_dir`` and their entry (``_KEY``) of the
    state file in it."""

    _KEY = ""

    def __init__(self, *, state_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_dir = None if state_dir is None else Path(state_dir)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)  # Keras resets the callback's state here ...
        state = _read_state(self.state_dir).get(self._KEY)
        if state:  # ... which a resumed training then takes back as the last epoch left it
            self._restore(state)

    def _restore(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _save(self, state: dict[str, Any]) -> None:
        if self.state_dir is not None:
            _update_state(self.state_dir, self._KEY, state)


class ResumableEarlyStopping(_Resumable, keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose counter, best value, best epoch and best weights are kept in
    ``state_dir`` after every epoch and read back at the start of training.

    Parameters
    ----------
    state_dir : Path, optional
        Where the state goes (a training's backup folder); None: plain ``EarlyStopping``.
    **kwargs
        ``keras.callbacks.EarlyStopping``'s.
    """

    _KEY = "early_stopping"

    def _restore(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.best = _best(state["best"])
        self.best_epoch = int(state["best_epoch"])
        weights = self.state_dir / _WEIGHTS_FILE
        if self.restore_best_weights and weights.is_file():
            with np.load(weights) as saved:
                self.best_weights = [saved[f"w{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        best_before = self.best
        super().on_epoch_end(epoch, logs)
        if self.state_dir is None:
            return
        if self.best_weights is not None and (
            self.best != best_before or not (self.state_dir / _WEIGHTS_FILE).is_file()
        ):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / (_WEIGHTS_FILE + ".tmp.npz")
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(self.best_weights)})
            os.replace(tmp, self.state_dir / _WEIGHTS_FILE)
        self._save({"wait": int(self.wait), "best": _number(self.best),
                    "best_epoch": int(self.best_epoch), "epoch": int(epoch)})  # fmt: skip


class ResumableReduceLROnPlateau(_Resumable, keras.callbacks.ReduceLROnPlateau):
    """``ReduceLROnPlateau`` whose counters, best value and learning rate are kept in
    ``state_dir`` after every epoch and read back at the start of training.

    Parameters
    ----------
    state_dir : Path, optional
        Where the state goes; None: plain ``ReduceLROnPlateau``.
    **kwargs
        ``keras.callbacks.ReduceLROnPlateau``'s.
    """

    _KEY = "reduce_lr"

    def _restore(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.best = _best(state["best"])
        self.model.optimizer.learning_rate = float(state["learning_rate"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if self.state_dir is None:
            return
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._save({"wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter),
                    "best": _number(self.best), "learning_rate": lr,
                    "epoch": int(epoch)})  # fmt: skip


class EpochLine(keras.callbacks.Callback):
    """One line per epoch on the console (issue 31: in place of Keras's progress lines):
    ``<name> epoch 3/30: loss 0.121, val RMSE 0.1043 (best 0.1012 at 2), lr 0.0005``.

    Parameters
    ----------
    say : callable
        Where the line goes (``print``).
    name : str
        What is trained (the target).
    epochs : int
        The maximum number of epochs.
    """

    def __init__(self, say, name: str, epochs: int) -> None:
        super().__init__()
        self.say, self.name, self.epochs = say, name, int(epochs)
        self.best: tuple[float, int] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        parts = []
        if "loss" in logs:
            parts.append(f"loss {float(logs['loss']):.4g}")
        val = logs.get(EARLY_STOPPING)
        if val is not None and np.isfinite(val):
            if self.best is None or val < self.best[0]:
                self.best = (float(val), epoch + 1)
            parts.append(f"val RMSE {float(val):.4f} (best {self.best[0]:.4f} at "
                         f"{self.best[1]})")  # fmt: skip
        if "learning_rate" in logs:
            parts.append(f"lr {float(logs['learning_rate']):.2g}")
        self.say(f"{self.name} epoch {epoch + 1}/{self.epochs}: " + ", ".join(parts))


def training_callbacks(
    budget: Any, *, state_dir: Path | None = None, restore_best_weights: bool = True
) -> list[keras.callbacks.Callback]:
    """The schedule of every training, on the validation RMSE (:data:`EARLY_STOPPING`):
    learning-rate reduction, then early stopping (the module docstring).

    Parameters
    ----------
    budget : SearchConfig
        ``patience``, ``lr_factor``, ``lr_patience`` and ``min_learning_rate``; no
        learning-rate reduction where ``lr_patience >= patience`` (the training would stop
        first).
    state_dir : Path, optional
        The training's backup folder: the schedule's state survives a restart there.
    restore_best_weights : bool
        End with the best epoch's weights (a search trial only scores, it need not).
    """
    out: list[keras.callbacks.Callback] = []
    if budget.lr_patience < budget.patience:  # else the rate could never drop before stopping
        out.append(ResumableReduceLROnPlateau(
            state_dir=state_dir, monitor=EARLY_STOPPING, mode="min", factor=budget.lr_factor,
            patience=budget.lr_patience, min_lr=budget.min_learning_rate, verbose=0,
        ))  # fmt: skip
    out.append(ResumableEarlyStopping(state_dir=state_dir, monitor=EARLY_STOPPING, mode="min",
                                      patience=budget.patience,
                                      restore_best_weights=restore_best_weights))  # fmt: skip
    return out


def _metric_name(key: str) -> str:
    return key if key.startswith("val_") else f"train_{key}"


def mlflow_metrics(values: dict[str, float], step: int) -> list:
    """MLflow metrics of the finite ``values`` (issue 31: MLflow stores an infinite metric as
    1.8e308, which read as a score; a diverged trial's metrics are left out instead)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in values.items()
            if v is not None and math.isfinite(float(v))]  # fmt: skip


class EpochLogger(keras.callbacks.Callback):
    """Log a trial's metrics to its MLflow run after every epoch (step = epoch number, from 1).

    Holds only strings (run id, tracking URI) so Keras Tuner may copy it freely.
    """

    def __init__(self, run_id: str, tracking_uri: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from mlflow import MlflowClient

        values = {_metric_name(k): float(v) for k, v in (logs or {}).items()
                  if isinstance(v, (int, float, np.floating))}  # fmt: skip
        MlflowClient(self.tracking_uri).log_batch(
            self.run_id, metrics=mlflow_metrics(values, epoch + 1)
        )
