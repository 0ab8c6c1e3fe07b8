"""Network inference on arrays in memory, batch by batch (the serving and scoring hot path), and
on a whole store (:func:`predict_store`: training's validation, the suites and reports).

``keras.Model.predict`` wraps every call in a data pipeline (an adapter over the NumPy array,
callbacks, a progress bar and the concatenation of the outputs); on 2 CPU cores that costs a
third of the time of a Table 1 network's forward pass (``casnet benchmark profile``: 200 vs
330 images/s for the concentration network). :func:`predict_array` calls the model's compiled
predict step on consecutive slices instead (``predict_on_batch``): the same graph, so the same
numbers to the last bit, without the per-call pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from casnet.data.io.store import StampStore

__all__ = ["predict_array", "predict_mean_sigma", "predict_store"]


def predict_array(model: Any, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """``model``'s outputs for ``x`` (first axis: images), ``batch_size`` images per call.

    Parameters
    ----------
    model : keras.Model
        A built network (compiled or not).
    x : ndarray
        Network inputs, e.g. (N, 60, 60, 1) float32.
    batch_size : int
        Images per forward pass (memory is bounded by one batch's activations).

    Returns
    -------
    ndarray
        float32, first axis N (``(0, 1)`` for no image).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    outputs = [np.asarray(model.predict_on_batch(x[lo : lo + batch_size]))
               for lo in range(0, len(x), batch_size)]  # fmt: skip
    if not outputs:
        return np.zeros((0, 1), dtype=np.float32)
    return np.concatenate(outputs)


def predict_mean_sigma(model: Any, x: np.ndarray,
                       batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``model``'s values and standard deviations for ``x`` (float64, shape (N,) each): the
    sigma of a Gaussian head (issue 18), NaN for a point network."""
    from casnet.networks.uncertainty import mean_and_sigma

    return mean_and_sigma(predict_array(model, x, batch_size))


def predict_store(model, store: str | Path, target: str, *, batch_size: int = 512,
                  labels: str = "label", with_sigma: bool = False):  # fmt: skip
    """``(labels, predictions)`` of ``model`` on a store of network-ready stamps, chunk by chunk;
    ``labels``: which values to return beside the predictions (``label`` or ``truth``);
    ``with_sigma``: also the standard deviations (``(labels, predictions, sigmas)``; NaN for a
    point network)."""
    # imported here: the dataset module needs TensorFlow, which predict_array does not (the
    # GPU machine runs Keras on JAX)
    from casnet.networks.dataset import label_column

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
