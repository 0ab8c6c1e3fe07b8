"""Figures: stamp grids (Tohill et al. 2021 Fig. 3) and other plots, written as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["stamp_grid"]


def _stretch(image: np.ndarray) -> np.ndarray:
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
        ax.imshow(_stretch(np.asarray(image, dtype=float)), origin="lower", cmap="gray_r")
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
