"""Scores of a regression over a whole set: one definition for training, the registry's
champion comparison, the evaluation suites, the figures and the benchmarks."""

from __future__ import annotations

import numpy as np

__all__ = ["pearson", "scores"]


def pearson(a, b) -> float:
    """Pearson r of two samples; NaN with fewer than 3 values or a constant sample (a network
    that predicts a constant has no correlation, it is not r = 0)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.size < 3 or not (np.std(x) > 0 and np.std(y) > 0):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def scores(labels, predictions) -> dict[str, float]:
    """RMSE, MAE and Pearson r of ``predictions`` against ``labels`` over a whole set (float64),
    and the count ``n``."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.size == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "pearson_r": float("nan"), "n": 0}
    return {"rmse": float(np.sqrt(np.mean((p - y) ** 2))), "mae": float(np.mean(np.abs(p - y))),
            "pearson_r": pearson(y, p), "n": int(y.size)}  # fmt: skip
