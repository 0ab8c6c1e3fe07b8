"""A network's mean output recalibrated on the validation set (issue 30 item 2: the merger regime).

The 2026-12-02 champion squeezed high asymmetry: on test galaxies with A_label > 0.3 its bias
was -0.117 and, at the conventional cut A > 0.3, it found 45% of the galaxies its labels put
there. A network trained with a squared loss on noisy labels predicts E[label | image]; a network
that stops early or averages over its training noise shrinks further toward the middle, and then
the labels' mean given the network's output is no longer the output itself (on the real suite's
faint views the reference's slope on the network's A is about 2, ``benchmarks/realgap.md``).

A monotone map fitted on the validation set after training undoes that, the ranking unchanged:

- ``isotonic``: the least-squares non-decreasing function of the output
  (:class:`sklearn.isotonic.IsotonicRegression`), i.e. E[label | output]: calibrated in the mean,
  never worse in RMSE on the set it was fitted on;
- ``quantile``: the output's distribution matched to the labels' (quantile mapping), so counts
  above a cut (a merger fraction) follow the labels, at some cost in RMSE where the output is
  noisy.

The map is sampled at :data:`N_KNOTS` quantiles of the validation outputs and applied by a
:class:`MeanMap` layer inside the network (so the registry, the pretrained default and serving
carry it), piecewise linear between knots and with slope 1 beyond them (an output outside the
validation range moves as the network's did). Only the mean is mapped: a Gaussian head's sigma
is recalibrated afterwards by its own factor (:class:`casnet.networks.uncertainty.SigmaScale`).
"""

from __future__ import annotations

from typing import Literal

import keras
import numpy as np
from keras import ops

__all__ = ["N_KNOTS", "RECALIBRATIONS", "MeanMap", "apply_mean_map", "bare_network",
           "fit_mean_map", "with_mean_map"]  # fmt: skip

#: the recalibrations of the mean (``search.recalibration``)
RECALIBRATIONS = ("none", "isotonic", "quantile")
Recalibration = Literal["none", "isotonic", "quantile"]
#: knots of the map: quantiles of the validation outputs (a few hundred galaxies per segment on
#: the science run's validation set; fewer where the set is small)
N_KNOTS = 20


def fit_mean_map(outputs, labels, method: str, *, n_knots: int = N_KNOTS
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The knots ``(x, y)`` of the monotone map ``method`` from ``outputs`` to ``labels``.

    Parameters
    ----------
    outputs, labels : array-like
        The network's mean outputs and the values it learnt, on the validation set (pairs with
        a NaN are left out).
    method : {"isotonic", "quantile"}
        The module docstring.
    n_knots : int
        At most this many knots, at evenly spaced quantiles of ``outputs`` (fewer where those
        coincide).

    Returns
    -------
    (x, y)
        Strictly increasing ``x``, non-decreasing ``y``, float64.

    Raises
    ------
    ValueError
        An unknown method, fewer than 2 usable pairs, or a constant output.
    """
    from sklearn.isotonic import IsotonicRegression

    if method not in ("isotonic", "quantile"):
        raise ValueError(f"method must be isotonic or quantile, got {method!r}")
    p = np.asarray(outputs, dtype=np.float64).ravel()
    v = np.asarray(labels, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(v)
    p, v = p[ok], v[ok]
    if p.size < 2 or not np.ptp(p) > 0:
        raise ValueError(f"a map needs at least 2 distinct outputs, got {p.size} pairs")
    q = np.linspace(0.0, 1.0, max(2, int(n_knots)))
    xq = np.quantile(p, q)
    keep = np.r_[True, np.diff(xq) > 0]  # tied quantiles (repeated outputs): one knot
    x = xq[keep]
    if method == "isotonic":
        y = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(p, v).predict(x)
    else:  # the labels' quantile at each knot's level
        y = np.quantile(v, q)[keep]
    return x.astype(np.float64), np.maximum.accumulate(np.asarray(y, dtype=np.float64))


def apply_mean_map(values, x, y) -> np.ndarray:
    """The map of knots ``(x, y)`` applied to ``values`` (numpy): linear between knots, slope 1
    beyond them; what :class:`MeanMap` computes inside a network."""
    v = np.asarray(values, dtype=np.float64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out = np.interp(v, x, y)
    out = np.where(v < x[0], y[0] + (v - x[0]), out)
    return np.where(v > x[-1], y[-1] + (v - x[-1]), out)


@keras.saving.register_keras_serializable(package="casnet")
class MeanMap(keras.layers.Layer):
    """Maps a network's mean output (column 0) through the knots ``(knots_x, knots_y)``
    (:func:`apply_mean_map`), passing any further column (a Gaussian head's raw scale)
    unchanged; the knots travel inside the network."""

    def __init__(self, knots_x=(0.0, 1.0), knots_y=(0.0, 1.0), **kwargs) -> None:
        super().__init__(**kwargs)
        self.knots_x = [float(v) for v in knots_x]
        self.knots_y = [float(v) for v in knots_y]
        if len(self.knots_x) != len(self.knots_y) or len(self.knots_x) < 2:
            raise ValueError("knots_x and knots_y must have the same length, at least 2")
        if np.any(np.diff(self.knots_x) <= 0):
            raise ValueError("knots_x must be strictly increasing")

    def call(self, x):
        mu = x[:, :1]
        kx, ky = np.asarray(self.knots_x), np.asarray(self.knots_y)
        slopes = np.diff(ky) / np.diff(kx)
        out = ky[0] + ops.minimum(mu - kx[0], 0.0) + ops.maximum(mu - kx[-1], 0.0)
        for k, s in enumerate(slopes):
            out = out + float(s) * (ops.clip(mu, kx[k], kx[k + 1]) - kx[k])
        return ops.concatenate([out, x[:, 1:]], axis=1) if x.shape[-1] > 1 else out

    def get_config(self) -> dict:
        return {**super().get_config(), "knots_x": self.knots_x, "knots_y": self.knots_y}


def with_mean_map(model: keras.Model, x, y) -> keras.Model:
    """``model`` with its mean output mapped by the knots ``(x, y)`` (shared weights)."""
    out = MeanMap(list(x), list(y), name="mean_map")(model.output)
    return keras.Model(model.input, out, name=model.name)


def bare_network(network: keras.Model) -> keras.Model:
    """``network`` without its recalibrations (the trailing :class:`MeanMap` and
    :class:`~casnet.networks.uncertainty.SigmaScale` layers), sharing its weights: what the
    training fitted them on (refitted by a fine-tuning; compared by the science report)."""
    from casnet.networks.uncertainty import SigmaScale

    while network.layers and isinstance(network.layers[-1], (SigmaScale, MeanMap)):
        network = keras.Model(network.inputs, network.layers[-1].input, name=network.name)
    return network
