"""Loss and metrics of the networks (Tohill et al. 2021 Sec. 3.4): RMSE, MAE and Pearson r.

Pearson r is computed over the whole validation set from running sums (a streaming metric), not as
an average of per-batch correlations, which is biased and depends on the batch size.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["EARLY_STOPPING", "PearsonR", "rmse"]

#: what early stopping watches, in training and in every trial of a search: the validation RMSE
#: (of the mean, for a Gaussian head), the quantity the search ranks trials by. Not the loss: a
#: Gaussian head's loss adds the sigma's likelihood, which worsens as the sigma fits the training
#: set while the mean still improves (issue 18: the science run's first Gaussian networks stopped
#: after 8 epochs at a C test RMSE of 0.211, the point networks' was 0.197)
EARLY_STOPPING = "val_rmse"


@keras.saving.register_keras_serializable(package="casnet")
def rmse(y_true, y_pred):
    """Root-mean-square error of a batch (the paper's loss)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    return ops.sqrt(ops.mean(ops.square(y_pred - y_true)))


@keras.saving.register_keras_serializable(package="casnet")
class PearsonR(keras.metrics.Metric):
    """Pearson correlation of predictions and labels over everything seen since the last reset.

    Keeps n, sums of x, y, x^2, y^2 and xy (float64 where the backend allows), so the value at
    the end of an epoch is the correlation over the whole epoch, whatever the batch size.
    """

    def __init__(self, name: str = "pearson_r", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self._sums = [
            self.add_variable(shape=(), initializer="zeros", name=f"s_{k}", dtype="float64")
            for k in ("n", "x", "y", "xx", "yy", "xy")
        ]

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        x = ops.cast(ops.reshape(y_pred, (-1,)), "float64")
        y = ops.cast(ops.reshape(y_true, (-1,)), "float64")
        parts = (ops.cast(ops.shape(x)[0], "float64"), ops.sum(x), ops.sum(y),
                 ops.sum(x * x), ops.sum(y * y), ops.sum(x * y))  # fmt: skip
        for var, part in zip(self._sums, parts, strict=True):
            var.assign_add(part)

    def result(self):
        n, sx, sy, sxx, syy, sxy = self._sums
        cov = sxy - sx * sy / n
        var_x = sxx - sx * sx / n
        var_y = syy - sy * sy / n
        return ops.cast(cov / ops.sqrt(var_x * var_y), "float32")

    def reset_state(self) -> None:
        for var in self._sums:
            var.assign(0.0)
