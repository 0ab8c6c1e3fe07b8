"""Calibration of per-galaxy uncertainties on a table of test galaxies (issue 18).

Any method that gives a value and a sigma per galaxy is scored the same way, the networks' and
the conventional measurement's alike: the observed coverage at 1 and 2 sigma (issue 18's targets
0.60-0.76 and 0.90-0.98, :data:`casnet.core.calibration.TARGETS_1_2_SIGMA`) against each
reference (the simulator's noiseless truth, the labels), overall and per SNR_p bin, and the
reliability diagram (observed against nominal coverage). A method is a column prefix: the table
holds ``{method}_{target}`` and ``{method}_{target}_err``; a reference ``{reference}_{target}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from casnet.core.calibration import (
    TARGETS_1_2_SIGMA,
    coverage,
    miscalibration_reason,
    reliability,
)
from casnet.core.figures import save_figure
from casnet.core.layout import TARGETS

__all__ = ["calibration_score", "calibration_table", "has_sigma", "reliability_figure"]

#: the references a method is scored against, and their names in tables
REFERENCES = {"true": "truth", "label": "label"}


def has_sigma(table: pd.DataFrame, method: str) -> bool:
    """Whether ``method`` gives a finite sigma for at least one galaxy of ``table``."""
    cols = [f"{method}_{t}_err" for t in TARGETS if f"{method}_{t}_err" in table]
    return any(np.isfinite(table[c].to_numpy(float)).any() for c in cols)


def _row(part: pd.DataFrame, method: str, target: str, reference: str) -> dict:
    y = part[f"{reference}_{target}"].to_numpy(float)
    p = part[f"{method}_{target}"].to_numpy(float)
    s = part[f"{method}_{target}_err"].to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(s) & (s > 0)
    c1, c2 = coverage(y, p, s, 1.0), coverage(y, p, s, 2.0)
    return {"n": int(ok.sum()), "coverage_1sigma": c1, "coverage_2sigma": c2,
            "median_sigma": float(np.median(s[ok])) if ok.any() else np.nan,
            "rms_error": float(np.sqrt(np.mean((p[ok] - y[ok]) ** 2))) if ok.any() else np.nan,
            "calibrated": not miscalibration_reason(c1, c2, int(ok.sum()))}  # fmt: skip


def calibration_table(table: pd.DataFrame, methods: dict[str, str], *,
                      references: Iterable[str] = ("true", "label"),
                      snr_edges: Sequence[float] | None = None,
                      skip: Iterable[tuple[str, str]] = ()) -> pd.DataFrame:  # fmt: skip
    """Coverage at 1 and 2 sigma of each method, per target and reference, over all galaxies and
    per SNR_p bin (``snr_edges``, on column ``snr_p``).

    Parameters
    ----------
    methods : dict
        Column prefix -> the name printed (e.g. ``{"net": "network (Gaussian head)"}``).
    references : iterable of str
        Reference prefixes present in ``table`` (``true``, ``label``).
    skip : iterable of (prefix, reference)
        Pairs not scored (the conventional measurement against labels that are that measurement).

    Returns
    -------
    DataFrame
        ``method``, ``target``, ``reference``, ``snr`` (``all`` or ``lo-hi``), ``n``,
        ``coverage_1sigma``, ``coverage_2sigma``, ``median_sigma``, ``rms_error`` and
        ``calibrated`` (both coverages inside issue 18's ranges:
        :func:`casnet.core.calibration.miscalibration_reason` is empty).
    """
    skip = set(skip)
    bins: list[tuple[str, pd.DataFrame]] = [("all", table)]
    if snr_edges is not None and "snr_p" in table:
        snr = table["snr_p"].to_numpy(float)
        bins += [(f"{lo:g}-{hi:g}", table[(snr > lo) & (snr <= hi)])
                 for lo, hi in itertools.pairwise(snr_edges)]  # fmt: skip
    rows = []
    for (prefix, name), ref, t in itertools.product(methods.items(), references, TARGETS):
        needed = (f"{ref}_{t}", f"{prefix}_{t}", f"{prefix}_{t}_err")
        if (prefix, ref) in skip or not all(c in table for c in needed):
            continue
        for label, part in bins:
            rows.append({"method": name, "target": t, "reference": REFERENCES.get(ref, ref),
                         "snr": label, **_row(part, prefix, t, ref)})  # fmt: skip
    return pd.DataFrame(rows)


def calibration_score(frame: pd.DataFrame) -> pd.Series:
    """How far each method is from calibrated over all galaxies: the mean, over targets and
    references, of ``|coverage_1sigma - 0.683| + |coverage_2sigma - 0.954|`` (0 is perfect).
    The method with the lowest score is the better calibrated."""
    overall = frame[frame["snr"] == "all"]
    dev = (overall["coverage_1sigma"] - 0.6827).abs() + (overall["coverage_2sigma"] - 0.9545).abs()
    return dev.groupby(overall["method"]).mean().sort_values()


def reliability_figure(table: pd.DataFrame, methods: dict[str, str], out: str | Path, *,
                       reference: str = "true",
                       skip: Iterable[tuple[str, str]] = ()) -> Path:  # fmt: skip
    """The reliability diagram: observed against nominal coverage of each method's sigma
    against ``reference``, one panel per target, with issue 18's target ranges at 1 and 2
    sigma."""
    skip = set(skip)
    fig = Figure(figsize=(9, 4.2))
    axes = fig.subplots(1, 2)
    for ax, t in zip(axes, TARGETS, strict=True):
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, label="calibrated")
        for (k, (lo, hi)), nominal in zip(TARGETS_1_2_SIGMA.items(), (0.683, 0.954), strict=True):
            ax.plot([nominal, nominal], [lo, hi], color="0.6", lw=6, alpha=0.5,
                    label="issue 18's range" if k == 1.0 else None)  # fmt: skip
        for i, (prefix, name) in enumerate(methods.items()):
            cols = (f"{reference}_{t}", f"{prefix}_{t}", f"{prefix}_{t}_err")
            if (prefix, reference) in skip or not all(c in table for c in cols):
                continue
            curve = reliability(*(table[c] for c in cols))
            if curve["n"].iloc[0] == 0:
                continue
            ax.plot(curve["nominal"], curve["observed"], marker="o", ms=3, color=f"C{i}",
                    label=f"{name} (n={curve['n'].iloc[0]})")  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal coverage")
        ax.set_ylabel(f"observed coverage vs {REFERENCES.get(reference, reference)}")
        ax.set_title(t)
        ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, out)
