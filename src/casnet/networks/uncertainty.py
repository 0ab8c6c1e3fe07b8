"""A heteroscedastic Gaussian head: each network predicts C (or A) and its standard deviation
(issue 18).

The output layer has two units, the mean ``mu`` and a raw scale ``s``; the standard deviation is
``sigma = softplus(s) + SIGMA_FLOOR`` (positive, smooth, and linear for large ``s`` so a large
error is not squashed as ``exp`` would inflate it). The Gaussian negative log-likelihood per
galaxy, ``log sigma + (y - mu)^2 / (2 sigma^2)`` (constant dropped; Nix & Weigend 1994;
Lakshminarayanan et al. 2017), makes ``sigma`` learn the scatter of the labels about ``mu`` at
that kind of galaxy: noise, blending and the measurement's own scatter.

Trained on the NLL alone, the mean learns badly: its gradient ``(mu - y) / sigma^2`` vanishes
where sigma is large, so a network can explain its errors away instead of reducing them (Seitzer
et al. 2022). On the science run's data the first search with the plain NLL reached a validation
RMSE of 0.225 for C where the point networks reached ~0.19, and two of four trials ended above
2. The head's loss (:func:`gaussian_loss`) is therefore decoupled: the mean is trained by the
point networks' RMSE, and the sigma by the NLL with the mean held fixed (``stop_gradient``), so
the mean is as good as a point network's and the sigma is the likelihood's estimate of its error.
The point metrics (RMSE, MAE, Pearson r) are of ``mu`` (:class:`OfMean`), so a Gaussian network
is compared with a point network on the same terms.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = [
    "SIGMA_FLOOR",
    "Coverage",
    "DetachedSigmaDense",
    "OfMean",
    "SigmaScale",
    "gaussian_loss",
    "gaussian_nll",
    "mean_and_sigma",
    "sigma_of",
    "with_sigma_scale",
]

#: the smallest standard deviation (keeps the loss finite when a batch fits exactly)
SIGMA_FLOOR = 1e-4


def sigma_of(raw):
    """The standard deviation from the head's raw scale unit (backend tensors)."""
    return ops.softplus(raw) + SIGMA_FLOOR


@keras.saving.register_keras_serializable(package="casnet")
def gaussian_nll(y_true, y_pred):
    """Mean Gaussian negative log-likelihood of a batch (without the constant ``log sqrt(2
    pi)``); ``y_pred`` is (N, 2): mean and raw scale."""
    y = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
    mu, sigma = y_pred[:, 0], sigma_of(y_pred[:, 1])
    return ops.mean(ops.log(sigma) + 0.5 * ops.square((y - mu) / sigma))


@keras.saving.register_keras_serializable(package="casnet")
def gaussian_loss(y_true, y_pred):
    """The Gaussian head's training loss: the RMSE of the mean (as a point network) plus the
    Gaussian NLL of the sigma with the mean held fixed (``stop_gradient``), so the mean's
    gradient is never damped by a large sigma; ``y_pred`` is (N, 2): mean and raw scale."""
    y = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
    mu, sigma = y_pred[:, 0], sigma_of(y_pred[:, 1])
    rmse = ops.sqrt(ops.mean(ops.square(y - mu)))
    fixed = ops.stop_gradient(mu)
    return rmse + ops.mean(ops.log(sigma) + 0.5 * ops.square((y - fixed) / sigma))


@keras.saving.register_keras_serializable(package="casnet")
class OfMean(keras.metrics.Metric):
    """A point metric (MAE, RMSE, Pearson r, ...) of the mean column of a Gaussian head."""

    def __init__(self, inner: keras.metrics.Metric | dict | None = None, name: str | None = None,
                 **kwargs) -> None:  # fmt: skip
        if isinstance(inner, dict):
            inner = keras.saving.deserialize_keras_object(inner)
        inner = inner or keras.metrics.RootMeanSquaredError(name="rmse")
        super().__init__(name=name or inner.name, **kwargs)
        self.inner = inner

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        self.inner.update_state(y_true, y_pred[:, :1], sample_weight)

    def result(self):
        return self.inner.result()

    def reset_state(self) -> None:
        self.inner.reset_state()

    def get_config(self) -> dict:
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}


@keras.saving.register_keras_serializable(package="casnet")
class Coverage(keras.metrics.Mean):
    """Fraction of galaxies with ``|y - mu| <= k sigma`` over everything seen since the last
    reset (a mean of indicators: exact over the epoch, whatever the batch size); ~0.683 at
    ``k = 1`` and ~0.954 at ``k = 2`` when the sigmas are calibrated
    (:func:`casnet.core.calibration.coverage` is the same on arrays)."""

    def __init__(self, k: float = 1.0, name: str | None = None, **kwargs) -> None:
        super().__init__(name=name or f"coverage_{k:g}sigma", **kwargs)
        self.k = float(k)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
        inside = ops.abs(y - y_pred[:, 0]) <= self.k * sigma_of(y_pred[:, 1])
        super().update_state(ops.cast(inside, "float32"), sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="casnet")
class DetachedSigmaDense(keras.layers.Dense):
    """A Gaussian head's output layer (2 units: mean, raw scale) whose sigma column reads the
    features through ``stop_gradient`` (``sigma_gradient: detached``, issue 30 item 3): the
    likelihood then trains only the sigma's own weights, never the trunk the mean shares, so
    the trunk learns the mean alone. A ``Dense`` in every other respect (the out-of-distribution
    features and the architecture readers see the same layer)."""

    def call(self, inputs, training=None):
        kernel = self.kernel
        mean = ops.matmul(inputs, kernel[:, :1])
        scale = ops.matmul(ops.stop_gradient(inputs), kernel[:, 1:])
        x = ops.concatenate([mean, scale], axis=-1)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x


@keras.saving.register_keras_serializable(package="casnet")
class SigmaScale(keras.layers.Layer):
    """Multiplies a Gaussian head's sigma by a fixed factor (its validation-set recalibration,
    :func:`casnet.core.calibration.fit_sigma_scale`), returning the head's (mean, raw scale)
    layout so that every reader of the outputs (:func:`mean_and_sigma`) is unchanged; the
    factor travels inside the network (registry, pretrained default, serving)."""

    def __init__(self, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        sigma = sigma_of(x[:, 1:2]) * self.scale
        # the raw unit of that sigma: softplus^-1(y) = y + log(-expm1(-y)), stable for any y > 0
        y = ops.maximum(sigma - SIGMA_FLOOR, 1e-12)
        return ops.concatenate([x[:, :1], y + ops.log(-ops.expm1(-y))], axis=1)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


def with_sigma_scale(model: keras.Model, scale: float) -> keras.Model:
    """``model`` (a Gaussian head) with its sigma multiplied by ``scale`` (shared weights)."""
    out = SigmaScale(scale, name="sigma_scale")(model.output)
    return keras.Model(model.input, out, name=model.name)


def mean_and_sigma(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` (float64, shape (N,)) from a network's outputs: (N, 2) of a Gaussian
    head, or (N, 1) of a point head (sigma NaN: no uncertainty, not a zero one)."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        mu = out.reshape(-1)
        return mu, np.full(mu.shape, np.nan)
    if out.ndim != 2 or out.shape[1] != 2:
        raise ValueError(f"a network outputs (N, 1) or, with a Gaussian head, (N, 2); got "
                         f"{out.shape}")  # fmt: skip
    raw = out[:, 1]
    # softplus, stable for large |raw| (the same function as sigma_of)
    sigma = np.logaddexp(0.0, raw) + SIGMA_FLOOR
    return out[:, 0], sigma
