"""Calibration of per-galaxy uncertainties (issue 18; Tohill et al. 2021 Sec. 4.4 names their
absence as the paper's outstanding issue).

An uncertainty sigma is calibrated when the true value lies within k sigma of the prediction as
often as a Gaussian says: 68.3% at 1 sigma, 95.4% at 2 sigma. These functions measure that
against any reference (the simulator's noiseless truth, or the labels), for the networks and for
the conventional measurement's errors alike, one definition for training, the suites and the
report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

__all__ = ["NOMINAL_LEVELS", "TARGETS_1_2_SIGMA", "coverage", "fit_sigma_scale", "reliability"]

#: nominal coverages of the reliability diagram
NOMINAL_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.683, 0.7, 0.8, 0.9, 0.954, 0.99)
#: issue 18's accepted ranges of the observed coverage at 1 and 2 sigma (68% +- 8 points; 0.90-0.98)
TARGETS_1_2_SIGMA = {1.0: (0.60, 0.76), 2.0: (0.90, 0.98)}


def _valid(values, predictions, sigma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    s = np.asarray(sigma, dtype=np.float64).reshape(-1)
    if not (y.shape == p.shape == s.shape):
        raise ValueError(f"values, predictions and sigma differ in length: "
                         f"{y.size}, {p.size}, {s.size}")  # fmt: skip
    ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(s) & (s > 0)
    return y[ok], p[ok], s[ok]


def coverage(values, predictions, sigma, k: float = 1.0) -> float:
    """Fraction of galaxies with ``|prediction - value| <= k * sigma``.

    Galaxies without a finite value, prediction or a positive finite sigma are left out (NaN when
    none is left): an uncertainty that is missing is not one that covers.
    """
    y, p, s = _valid(values, predictions, sigma)
    if y.size == 0:
        return float("nan")
    return float(np.mean(np.abs(p - y) <= k * s))


def reliability(values, predictions, sigma,
                levels: Sequence[float] = NOMINAL_LEVELS) -> pd.DataFrame:  # fmt: skip
    """Observed against nominal coverage (the reliability diagram): for each nominal level q,
    the fraction within the central Gaussian interval of probability q (``k = Phi^-1((1+q)/2)``).

    Returns
    -------
    DataFrame
        ``nominal``, ``k`` (sigmas) and ``observed``, one row per level, and ``n`` (galaxies
        used).
    """
    y, p, s = _valid(values, predictions, sigma)
    z = np.abs(p - y) / s if y.size else np.zeros(0)
    rows = []
    for q in levels:
        if not 0 < q < 1:
            raise ValueError(f"nominal levels must lie in (0, 1), got {q}")
        k = float(norm.ppf((1 + q) / 2))
        rows.append({"nominal": float(q), "k": k,
                     "observed": float(np.mean(z <= k)) if z.size else float("nan"),
                     "n": int(z.size)})  # fmt: skip
    return pd.DataFrame(rows)


def fit_sigma_scale(values, predictions, sigma,
                    grid: Sequence[float] | None = None) -> float:  # fmt: skip
    """The factor ``c`` that makes ``c * sigma`` best calibrated on a held-out set: the one
    minimising ``|coverage_1sigma - 0.683| + |coverage_2sigma - 0.954|`` over ``grid`` (default
    0.05-20, log-spaced; ties go to the factor nearest 1). 1.0 when nothing is valid.

    Recalibration by one variance factor fitted on validation data (Kuleshov et al. 2018; Levi
    et al. 2019): a Gaussian head trained with dropout learns the scatter of its training-time
    predictions, dropout noise included, so its sigma over-covers at inference (issue 18: 0.89
    at 1 sigma for C on the science run's test set before this factor).
    """
    y, p, s = _valid(values, predictions, sigma)
    if y.size == 0:
        return 1.0
    z = np.sort(np.abs(p - y) / s)
    c = np.geomspace(0.05, 20.0, 1201) if grid is None else np.asarray(grid, dtype=np.float64)
    cov1 = np.searchsorted(z, c, side="right") / z.size
    cov2 = np.searchsorted(z, 2.0 * c, side="right") / z.size
    dev = np.abs(cov1 - 0.6827) + np.abs(cov2 - 0.9545)
    best = np.flatnonzero(dev <= dev.min() + 1e-12)
    return float(c[best[np.argmin(np.abs(np.log(c[best])))]])
