"""Scores of a regression over a whole set: one definition for training, the registry's
champion comparison, the evaluation suites, the figures and the benchmarks."""

from __future__ import annotations

import numpy as np

__all__ = ["DEGENERATE_MIN_R", "DEGENERATE_MIN_SPREAD", "degenerate_reason", "pearson", "scores"]


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


#: a network whose predictions correlate with the labels below this Pearson r is degenerate ...
DEGENERATE_MIN_R = 0.3
#: ... or whose predictions spread (standard deviation) less than this fraction of the labels'
#: (issue 16: the demo's asymmetry network predicted ~0.020 for every galaxy, r = 0.22)
DEGENERATE_MIN_SPREAD = 0.2


def degenerate_reason(labels, predictions) -> str | None:
    """Why ``predictions`` are not a result (None when they are one).

    Degenerate: Pearson r with the labels below :data:`DEGENERATE_MIN_R` (or undefined: a
    constant), or a spread below :data:`DEGENERATE_MIN_SPREAD` of the labels' spread.
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    if y.size < 3:
        return f"{y.size} test galaxies"
    r = pearson(y, p)
    spread = float(np.std(p) / np.std(y)) if np.std(y) > 0 else float("nan")
    if not r >= DEGENERATE_MIN_R:
        return f"Pearson r {r:.2f} < {DEGENERATE_MIN_R:g} with the labels"
    if not spread >= DEGENERATE_MIN_SPREAD:
        return f"spread {spread:.0%} of the labels' (< {DEGENERATE_MIN_SPREAD:.0%})"
    return None
