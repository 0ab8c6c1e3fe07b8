"""Monte Carlo dropout: a network's uncertainty from the spread of its predictions with dropout
left on at inference (Gal & Ghahramani 2016), the second method issue 18 compares with the
Gaussian head (:mod:`casnet.networks.uncertainty`).

Each pass draws a new dropout mask; the mean over passes is the prediction and their standard
deviation the *epistemic* part of the uncertainty (what the network does not know about this kind
of galaxy). A Gaussian head adds its own *aleatoric* part (the scatter of the labels it learnt),
and the two combine in quadrature (Kendall & Gal 2017): ``sigma^2 = var(mu_i) + mean(sigma_i^2)``.
Batch normalisation stays in inference mode: only the dropout layers are stochastic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from casnet.networks.inference import predict_array
from casnet.networks.uncertainty import mean_and_sigma

__all__ = ["DEFAULT_PASSES", "MCDropout", "mc_dropout", "stochastic_network"]

#: forward passes per galaxy: the sigma of 30 passes is known to ~13% (1 / sqrt(2 (30 - 1)))
DEFAULT_PASSES = 30


class _AlwaysDropout(keras.layers.Layer):
    """Dropout applied whatever the training flag (a new mask per call)."""

    def __init__(self, rate: float, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x):
        return keras.random.dropout(x, self.rate, seed=self.seed_generator)


def stochastic_network(model: keras.Model, seed: int = 0) -> keras.Model:
    """A network sharing ``model``'s weights whose dropout layers drop at inference.

    Raises
    ------
    ValueError
        When ``model`` is not a chain of layers (the CASNET architectures are) or has no dropout
        layer (MC dropout would return a zero spread).
    """
    layers = model.layers
    if not layers or not isinstance(layers[0], keras.layers.InputLayer):
        raise ValueError("MC dropout needs a functional network starting with its Input layer")
    dropouts = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    if not dropouts or all(layer.rate <= 0 for layer in dropouts):
        raise ValueError(f"network {model.name!r} has no dropout: MC dropout has no spread")
    inputs = keras.Input(shape=model.input_shape[1:], name="stamp")
    x = inputs
    for i, (prev, layer) in enumerate(itertools.pairwise(layers)):
        if layer.input is not prev.output:
            raise ValueError(f"MC dropout needs a chain of layers; {layer.name!r} is not in one")
        if isinstance(layer, keras.layers.Dropout):
            x = _AlwaysDropout(layer.rate, seed + i, name=f"{layer.name}_mc")(x)
        else:
            x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_mc")


@dataclass(frozen=True)
class MCDropout:
    """MC-dropout estimates for N galaxies (float64 arrays, shape (N,)).

    Attributes
    ----------
    mean : ndarray
        Mean prediction over the passes.
    epistemic : ndarray
        Standard deviation of the passes' predictions.
    aleatoric : ndarray
        Root-mean-square sigma of a Gaussian head over the passes; NaN for a point network.
    passes : int
    """

    mean: np.ndarray
    epistemic: np.ndarray
    aleatoric: np.ndarray
    passes: int

    @property
    def total(self) -> np.ndarray:
        """Epistemic and aleatoric parts in quadrature (the epistemic part alone for a point
        network)."""
        aleatoric = np.nan_to_num(self.aleatoric, nan=0.0)
        return np.sqrt(self.epistemic**2 + aleatoric**2)


def mc_dropout(model: keras.Model, x: np.ndarray, *, passes: int = DEFAULT_PASSES,
               seed: int = 0, batch_size: int = 512,
               network: Any | None = None) -> MCDropout:  # fmt: skip
    """MC-dropout predictions of ``model`` for network inputs ``x`` (N, s, s, 1).

    Parameters
    ----------
    model : keras.Model
        A trained CASNET network (point or Gaussian head).
    x : ndarray
        Network-ready inputs (:class:`casnet.data.preprocess.NetworkInput`).
    passes : int
        Stochastic forward passes (>= 2).
    seed : int
        Seed of the dropout masks: the same seed gives the same numbers.
    network : keras.Model, optional
        A :func:`stochastic_network` of ``model`` already built (reused across calls).
    """
    if passes < 2:
        raise ValueError(f"MC dropout needs at least 2 passes, got {passes}")
    net = network if network is not None else stochastic_network(model, seed)
    mus, sigmas = [], []
    for _ in range(passes):
        mu, sigma = mean_and_sigma(predict_array(net, x, batch_size))
        mus.append(mu)
        sigmas.append(sigma)
    mus, sigmas = np.stack(mus), np.stack(sigmas)
    aleatoric = np.sqrt(np.mean(sigmas**2, axis=0))
    return MCDropout(mean=mus.mean(axis=0), epistemic=mus.std(axis=0, ddof=1),
                     aleatoric=aleatoric, passes=passes)  # fmt: skip
