"""Figures of the evaluation suites (Tohill et al. 2021 Figs. 7, 9-10, 12-13), as PNG."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from casnet.core.figures import save_figure

__all__ = ["deviation_vs_grid", "residuals_vs_snr"]


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray):
    centres, mean, std = [], [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (x >= lo) & (x < hi) & np.isfinite(y)
        if sel.sum() >= 3:
            centres.append(np.sqrt(lo * hi))
            mean.append(float(np.mean(y[sel])))
            std.append(float(np.std(y[sel])))
    return np.array(centres), np.array(mean), np.array(std)


def residuals_vs_snr(table: pd.DataFrame, out: str | Path) -> Path:
    """Network minus label against SNR_p, with the binned mean and 1 and 2 sigma bands (Fig. 7)."""
    fig = Figure(figsize=(9, 3.8))
    axes = fig.subplots(1, 2)
    snr = table["snr_p"].to_numpy(float)
    good = np.isfinite(snr) & (snr > 0)
    edges = np.geomspace(max(snr[good].min(initial=1.0), 0.5), snr[good].max(initial=10.0) * 1.01,
                         9) if good.any() else np.array([1.0, 10.0])  # fmt: skip
    for ax, target in zip(axes, ("concentration", "asymmetry"), strict=True):
        res = (table[f"net_{target}"] - table[f"label_{target}"]).to_numpy(float)
        ax.scatter(snr, res, s=5, alpha=0.5, color="0.3")
        c, m, s = _binned(snr, res, edges)
        if len(c):
            ax.plot(c, m, color="C0", label="mean")
            ax.fill_between(c, m - s, m + s, color="C0", alpha=0.3, label="1 sigma")
            ax.fill_between(c, m - 2 * s, m + 2 * s, color="C0", alpha=0.12, label="2 sigma")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("SNR_p")
        ax.set_ylabel(f"{target}: network - label")
        ax.legend(fontsize=7)
    return save_figure(fig, out)


def deviation_vs_grid(summary: pd.DataFrame, grid: str, out: str | Path) -> Path:
    """Mean and 1 sigma of the deviation per grid value, network and conventional side by side.

    ``summary``: rows per (method, target, grid value) with ``mean`` and ``std`` (Figs. 9-10,
    12-13).
    """
    fig = Figure(figsize=(9, 3.8))
    axes = fig.subplots(1, 2)
    for ax, target in zip(axes, ("concentration", "asymmetry"), strict=True):
        for i, method in enumerate(("network", "conventional")):
            rows = summary[(summary["method"] == method) & (summary["target"] == target)]
            rows = rows.sort_values(grid)
            x = rows[grid].to_numpy(float) + (i - 0.5) * 0.08
            ax.errorbar(x, rows["mean"], yerr=rows["std"], fmt="o-", ms=4, capsize=2,
                        label=method)  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(grid.replace("_", " "))
        ax.set_ylabel(f"delta {target}")
        ax.legend(fontsize=7)
    return save_figure(fig, out)
