"""Figures of the evaluation suites (Tohill et al. 2021 Figs. 7, 9-10, 12-13), as PNG."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from casnet.core.figures import save_figure
from casnet.core.quantities import SCHEMA

__all__ = ["GRID_LABELS", "deviation_histograms", "deviation_vs_grid", "residuals_vs_snr"]

#: the physical name of each suite's grid, for axes and titles (issue 31: "snr target" and "z")
GRID_LABELS = {"snr_target": "SNR_p", "z": "redshift z"}


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray):
    centres, mean, std = [], [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (x >= lo) & (x < hi) & np.isfinite(y)
        if sel.sum() >= 3:
            centres.append(np.sqrt(lo * hi))
            mean.append(float(np.mean(y[sel])))
            std.append(float(np.std(y[sel])))
    return np.array(centres), np.array(mean), np.array(std)


def residuals_vs_snr(table: pd.DataFrame, out: str | Path, *, reference: str = "label",
                     methods: tuple[str, ...] = ("net",),
                     suite: str = "test set") -> Path:  # fmt: skip
    """Residuals against SNR_p with the binned mean and 1 and 2 sigma bands (Fig. 7).

    C residuals are fractions of the reference value (``(C - C_ref) / C_ref``), A residuals
    absolute, as the paper draws them. ``reference``: the columns' prefix to subtract
    (``label`` or ``true``); ``methods``: column prefixes drawn (``net``, ``conventional``), one
    row each, on the same y range per quantity; the title says what is compared and N.
    """
    fig = Figure(figsize=(9, 3.8 * len(methods) + 0.4))
    axes = np.atleast_2d(fig.subplots(len(methods), len(SCHEMA), sharey="col"))
    snr = table["snr_p"].to_numpy(float)
    good = np.isfinite(snr) & (snr > 0)
    edges = np.geomspace(max(snr[good].min(initial=1.0), 0.5), snr[good].max(initial=10.0) * 1.01,
                         9) if good.any() else np.array([1.0, 10.0])  # fmt: skip
    names = {"net": "network", "conventional": "conventional", "label": "label", "true": "truth"}
    for row, method in zip(axes, methods, strict=True):
        for ax, target in zip(row, SCHEMA, strict=True):
            ref = table[f"{reference}_{target.name}"].to_numpy(float)
            res = target.residual_of(table[f"{method}_{target.name}"].to_numpy(float), ref)
            ax.scatter(snr, res, s=5, alpha=0.5, color="0.3")
            c, m, s = _binned(snr, res, edges)
            if len(c):
                ax.plot(c, m, color="C0", label="mean")
                ax.fill_between(c, m - s, m + s, color="C0", alpha=0.3, label="1 sigma")
                ax.fill_between(c, m - 2 * s, m + 2 * s, color="C0", alpha=0.12, label="2 sigma")
            ax.axhline(0, color="k", lw=0.8)
            if good.any():  # a store without SNR_p (none measured) gets an empty linear axis
                ax.set_xscale("log")
            # plain SNR_p labels: matplotlib labels the minor ticks of a short log axis too, and
            # "2x10^0 3x10^0 ..." overprint each other
            ax.xaxis.set_minor_formatter(NullFormatter())
            ticks = [v for v in (2, 3, 5, 10, 20, 50, 100, 200, 500) if edges[0] <= v <= edges[-1]]
            ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
            ax.set_xlabel("SNR_p")
            what = f"{names[method]} - {names[reference]}"
            ax.set_ylabel(target.residual_label(what, names[reference]))
            ax.legend(fontsize=7)
    drawn = " and ".join(names[m] for m in methods)
    fig.suptitle(f"{suite.capitalize()}: {drawn} against the {names[reference]}, by SNR_p "
                 f"(N = {len(table)} galaxies)", fontsize=10)  # fmt: skip
    return save_figure(fig, out)


def deviation_vs_grid(summary: pd.DataFrame, grid: str, out: str | Path,
                      what: str | None = None, *, reference: float | None = None,
                      suite: str = "") -> Path:  # fmt: skip
    """Mean and 1 sigma of the deviation per grid value, network and conventional side by side.

    ``summary``: rows per (method, target, grid value) with ``mean``, ``std`` and ``n`` (Figs.
    9-10, 12-13); ``what`` names the deviation on the y axis (default: "deviation from <grid> =
    <reference>"); ``suite`` heads the title, which gives N, the galaxies per grid value.
    """
    name = GRID_LABELS.get(grid, grid.replace("_", " "))
    if what is None:
        what = f"deviation from {name} = {reference:g}" if reference is not None else "deviation"
    fig = Figure(figsize=(9, 4.1))
    axes = fig.subplots(1, len(SCHEMA))
    for ax, target in zip(axes, SCHEMA, strict=True):
        for i, method in enumerate(("network", "conventional")):
            rows = summary[(summary["method"] == method) & (summary["target"] == target.name)]
            rows = rows.sort_values(grid)
            x = rows[grid].to_numpy(float) + (i - 0.5) * 0.08
            ax.errorbar(x, rows["mean"], yerr=rows["std"], fmt="o-", ms=4, capsize=2,
                        label=method)  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(name)
        ax.set_ylabel(f"{target.symbol}: {what}")
        ax.legend(fontsize=7)
    n = int(summary["n"].max()) if "n" in summary and len(summary) else 0
    head = f"{suite.capitalize()}: " if suite else ""
    fig.suptitle(f"{head}network and conventional, {what} by {name} (N = {n} galaxies per "
                 "value; mean and 1 sigma)", fontsize=10)  # fmt: skip
    return save_figure(fig, out)


def deviation_histograms(deviations: dict[tuple[str, str], np.ndarray], out: str | Path) -> Path:
    """Distributions of the pooled deviations, network and conventional overlaid, with the 2 sigma
    bounds of each (the catastrophic limits of Sec. 4.2), one panel per target.

    ``deviations``: ``(method, target) -> values``.
    """
    fig = Figure(figsize=(9, 4.1))
    axes = fig.subplots(1, len(SCHEMA))
    for ax, target in zip(axes, SCHEMA, strict=True):
        values = {m: np.asarray(v, float) for (m, t), v in deviations.items() if t == target.name}
        values = {m: v[np.isfinite(v)] for m, v in values.items()}
        both = np.concatenate([v for v in values.values() if v.size] or [np.zeros(1)])
        lo, hi = np.percentile(both, [0.5, 99.5]) if both.size > 1 else (-1.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 31)
        for i, (method, v) in enumerate(sorted(values.items(), reverse=True)):
            if not v.size:
                continue
            colour = f"C{i}"
            ax.hist(v, bins=bins, histtype="step", color=colour, label=f"{method} (N = {v.size})")
            for sign in (-1, 1):
                ax.axvline(v.mean() + sign * 2 * v.std(), color=colour, ls=":", lw=0.8)
        ax.set_xlabel(f"{target.symbol}: deviation from its value at the reference SNR_p")
        ax.set_ylabel("galaxies x noise draws")
        ax.legend(fontsize=7)
    fig.suptitle("Noise suite: pooled deviations, network and conventional (dotted: 2 sigma, "
                 "the catastrophic limits of Sec. 4.2)", fontsize=10)  # fmt: skip
    return save_figure(fig, out)
