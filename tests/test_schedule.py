"""The training schedule (issue 30): learning-rate reduction and early stopping on the validation
RMSE, and a killed training that resumes with the schedule's state (``casnet.networks.callbacks``).

The validation RMSE is scripted (a callback writes it into the epoch's logs before the schedule
reads it), so every decision of the schedule is known in advance: the tests check the decisions,
not the optimiser's numerics.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from casnet.networks.callbacks import STATE_FILE, training_callbacks
from casnet.networks.metrics import EARLY_STOPPING
from casnet.networks.settings import SearchConfig

#: the scripted validation RMSE per epoch: best at index 1, three worse epochs (one short of
#: the patience), a new best at index 5, then a plateau long enough to stop (patience 4: the
#: training stops after index 9)
VAL = [1.0, 0.9, 0.95, 0.96, 0.97, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]
BUDGET = SearchConfig(max_epochs=len(VAL), patience=4, lr_patience=2, lr_factor=0.5,
                      min_learning_rate=1e-4)  # fmt: skip
LR0 = 0.1


class Scripted(keras.callbacks.Callback):
    """Writes ``VAL[epoch]`` as the validation RMSE and records each epoch's weights' first
    value (to tell which epoch's weights a model ends with)."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[int, float] = {}

    def on_epoch_end(self, epoch, logs=None):
        logs[EARLY_STOPPING] = VAL[epoch]
        self.marks[epoch] = float(self.model.get_weights()[0].ravel()[0])


class Kill(keras.callbacks.Callback):
    """Interrupts the training at the start of epoch ``at`` (0-based), as a kill would."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR0), loss="mse")
    return model


def _fit(model, backup, *, state: bool, kill: int | None = None) -> tuple[dict, Scripted]:
    x = np.linspace(0, 1, 24, dtype="float32").reshape(8, 3)
    y = x.sum(axis=1, keepdims=True)
    scripted = Scripted()
    callbacks = [scripted, keras.callbacks.BackupAndRestore(str(backup)),
                 *training_callbacks(BUDGET, state_dir=backup if state else None)]  # fmt: skip
    if kill is not None:
        callbacks.append(Kill(kill))
    history = model.fit(x, y, epochs=BUDGET.max_epochs, batch_size=4, shuffle=False, verbose=0,
                        callbacks=callbacks)  # fmt: skip
    return history.history, scripted


def _lr(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_the_schedule_reduces_the_rate_on_a_plateau_and_stops_with_the_best_weights(tmp_path):
    model = _model()
    history, scripted = _fit(model, tmp_path / "backup", state=True)
    # stopped 4 epochs after the best (index 5): 10 epochs
    assert len(history["loss"]) == 10
    # the rate (logged: the one each epoch trained with) halved after 2 epochs without
    # improvement (index 3), the count restarted by index 5's best, halved after 7 and 9
    want = [LR0] * 4 + [LR0 / 2] * 4 + [LR0 / 4] * 2
    assert history["learning_rate"] == pytest.approx(want)
    assert _lr(model) == pytest.approx(LR0 / 8)
    # the best epoch's weights restored, not the last epoch's
    assert float(model.get_weights()[0].ravel()[0]) == pytest.approx(scripted.marks[5])
    assert scripted.marks[5] != pytest.approx(scripted.marks[9])
    assert not (tmp_path / "backup").exists()  # a finished training leaves no backup


@pytest.mark.parametrize("kill", [3, 5, 8])
def test_a_killed_training_resumes_with_the_schedules_state(tmp_path, kill):
    """Killed at epoch ``kill`` and started again with the same backup folder, the training
    ends as the uninterrupted one: the same epochs, rate and best weights."""
    straight = _model()
    want, scripted_straight = _fit(straight, tmp_path / "straight", state=True)

    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, tmp_path / "backup", state=True, kill=kill)
    assert (tmp_path / "backup" / STATE_FILE).is_file()
    resumed = _model()  # a new process: a new model, the weights from the backup
    rest, scripted = _fit(resumed, tmp_path / "backup", state=True)
    assert kill + len(rest["loss"]) == len(want["loss"])
    assert rest["learning_rate"] == pytest.approx(want["learning_rate"][kill:])
    assert _lr(resumed) == pytest.approx(_lr(straight))
    # the best weights (epoch index 5) are the resumed training's own or read back from the state
    best = scripted.marks.get(5, scripted_straight.marks[5])
    assert float(resumed.get_weights()[0].ravel()[0]) == pytest.approx(best, rel=1e-5)


def test_without_the_state_a_resumed_training_forgets_its_schedule(tmp_path):
    """What the state is for: Keras's BackupAndRestore alone restarts the counters and the best
    value, so the resumed training runs longer than the uninterrupted one."""
    want, _ = _fit(_model(), tmp_path / "straight", state=False)
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path / "backup", state=False, kill=8)
    rest, _ = _fit(_model(), tmp_path / "backup", state=False)
    assert 8 + len(rest["loss"]) > len(want["loss"])


def test_no_rate_reduction_when_training_would_stop_first():
    budget = SearchConfig(patience=3, lr_patience=3)
    kinds = [type(c).__name__ for c in training_callbacks(budget)]
    assert kinds == ["ResumableEarlyStopping"]
    kinds = [type(c).__name__ for c in training_callbacks(SearchConfig(patience=8))]
    assert kinds == ["ResumableReduceLROnPlateau", "ResumableEarlyStopping"]


def test_the_console_gets_one_line_per_epoch(tmp_path):
    """Issue 31: `casnet train` prints one line per epoch (no Keras progress lines): the loss,
    the validation RMSE with the best so far, and the learning rate."""
    from casnet.networks.callbacks import EpochLine

    lines: list[str] = []
    model = _model()
    x = np.linspace(0, 1, 24, dtype="float32").reshape(8, 3)
    model.fit(x, x.sum(axis=1, keepdims=True), epochs=7, batch_size=4, shuffle=False, verbose=0,
              callbacks=[Scripted(), *training_callbacks(BUDGET),
                         EpochLine(lines.append, "asymmetry", 7)])  # fmt: skip
    assert len(lines) == 7
    assert lines[0].startswith("asymmetry epoch 1/7: loss ")
    assert "val RMSE 0.9500 (best 0.9000 at 2)" in lines[2]
    assert "val RMSE 0.8500 (best 0.8500 at 6)" in lines[5]
    assert lines[4].endswith("lr 0.05")  # halved after epochs 3 and 4 without improvement
