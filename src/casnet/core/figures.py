"""Figures: stamp grids (Tohill et al. 2021 Fig. 3) and other plots, written as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from casnet.core.scores import pearson

__all__ = [
    "asinh_stretch",
    "label_histograms",
    "mag_size",
    "predicted_vs_label",
    "save_figure",
    "stamp_grid",
]


def asinh_stretch(image: np.ndarray) -> np.ndarray:
    """asinh stretch between the 1st and 99.8th percentiles (faint structure and cores visible)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros_like(image)
    lo, hi = np.percentile(finite, [1.0, 99.8])
    scaled = np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return np.arcsinh(10 * scaled) / np.arcsinh(10)


def stamp_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str],
    out: str | Path,
    *,
    ncols: int = 4,
    suptitle: str | None = None,
) -> Path:
    """Save a grid of stamps with a title under each (id, C, A ...) to ``out`` (PNG)."""
    n = len(images)
    if n == 0:
        raise ValueError("no stamps to draw")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    # A bare Figure (no pyplot): no global backend state, safe in workers and tests.
    fig = Figure(figsize=(2.2 * ncols, 2.45 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, image, title in zip(axes.ravel(), images, titles, strict=False):
        ax.imshow(asinh_stretch(np.asarray(image, dtype=float)), origin="lower", cmap="gray_r")
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save_figure(fig, out)


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Lay out, write ``fig`` to ``out`` (folders made) and return the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def mag_size(mag: np.ndarray, r_half: np.ndarray, selected: np.ndarray, out: str | Path) -> Path:
    """H magnitude against half-light radius, selected galaxies highlighted (the paper's Fig. 1)."""
    fig = Figure(figsize=(5.0, 4.0))
    ax = fig.subplots()
    ax.scatter(mag[~selected], r_half[~selected], s=6, c="0.7", label="removed by the cuts")
    ax.scatter(mag[selected], r_half[selected], s=8, c="C0", label="selected")
    ax.set_xlabel("H (AB mag)")
    ax.set_ylabel("half-light radius (px)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def label_histograms(
    before: dict[str, np.ndarray], after: dict[str, np.ndarray], bins: int, out: str | Path
) -> Path:
    """C and A distributions before and after augmentation (the paper's Fig. 2)."""
    fig = Figure(figsize=(8.0, 3.4))
    axes = fig.subplots(1, len(before))
    for ax, key in zip(np.atleast_1d(axes), before, strict=True):
        lo = float(min(np.min(before[key]), np.min(after[key])))
        hi = float(max(np.max(before[key]), np.max(after[key])))
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        ax.hist(after[key], bins=edges, color="C1", alpha=0.6, label="after augmentation")
        ax.hist(before[key], bins=edges, color="C0", alpha=0.8, label="before")
        ax.set_xlabel(key)
        ax.set_ylabel("galaxies")
        ax.legend(fontsize=8)
    return save_figure(fig, out)


def predicted_vs_label(
    panels: dict[str, tuple[np.ndarray, np.ndarray]], quantity: str, out: str | Path
) -> Path:
    """Network prediction against the label, one panel per split (the paper's Figs. 5-6).

    ``panels`` maps a split name to ``(labels, predictions)``; each panel gives N, RMSE and
    Pearson r and the one-to-one line.
    """
    fig = Figure(figsize=(4.2 * len(panels), 4.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, (label, pred)) in zip(axes, panels.items(), strict=True):
        label, pred = np.asarray(label, float), np.asarray(pred, float)
        lo = float(np.nanmin([label.min(initial=0), pred.min(initial=0)]))
        hi = float(np.nanmax([label.max(initial=1), pred.max(initial=1)]))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.scatter(label, pred, s=6, alpha=0.6)
        rmse = float(np.sqrt(np.mean((pred - label) ** 2))) if label.size else float("nan")
        r = pearson(label, pred)
        ax.set_title(f"{name}: N={label.size}, RMSE={rmse:.3f}, r={r:.3f}", fontsize=9)
        ax.set_xlabel(f"{quantity} (label)")
        ax.set_ylabel(f"{quantity} (network)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    return save_figure(fig, out)
