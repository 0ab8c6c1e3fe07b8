"""Stage ``augment``: selective augmentation of rare C/A bins of the training set (Sec. 3.2).

The C and the A label distributions of the training split are binned. A galaxy in a bin holding
about half the median bin count (<= ``half_fraction`` x median) gets one 90-degree rotation of its
image added; in a bin holding relatively fewer (<= ``rare_fraction`` x median), three rotations and
two mirrors. A galaxy takes the larger augmentation of its C bin and its A bin. Rotations and
mirrors do not change C or A, so copies keep the labels. Validation and test sets are never
augmented. The paper grew 75,353 training galaxies to 141,453 this way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.progress import progress_bar
from casnet.core.quantities import SCHEMA
from casnet.data.io.store import Rechunker, StampStore, StoreWriter
from casnet.data.settings import AugmentConfig, StoreConfig

__all__ = ["TRANSFORMS", "augment_counts", "run", "write_figures"]

#: transforms applied to the last two axes, by name
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rot90": lambda a: np.rot90(a, 1, axes=(-2, -1)),
    "rot180": lambda a: np.rot90(a, 2, axes=(-2, -1)),
    "rot270": lambda a: np.rot90(a, 3, axes=(-2, -1)),
    "flipud": lambda a: np.flip(a, axis=-2),
    "fliplr": lambda a: np.flip(a, axis=-1),
}
#: copies added per rule: one rotation; three rotations and two mirrors
_HALF = ("rot90",)
_RARE = ("rot90", "rot180", "rot270", "flipud", "fliplr")
#: the labels whose rare bins are augmented: every quantity's (the schema's)
_LABELS = tuple(t.column("label") for t in SCHEMA)


def _bin_counts(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each value and the count of its bin (equal-width bins over the range)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    return idx, counts


def augment_counts(labels: pd.DataFrame, cfg: AugmentConfig) -> np.ndarray:
    """Copies to add per galaxy (0, 1 or 5) from its bin of each label (C, A: the larger
    wins)."""
    extra = np.zeros(len(labels), dtype=int)
    for col in _LABELS:
        idx, counts = _bin_counts(labels[col].to_numpy(dtype=float), cfg.bins)
        median = float(np.median(counts[counts > 0]))
        ratio = counts[idx] / median
        n = np.where(ratio <= cfg.rare_fraction, len(_RARE),
                     np.where(ratio <= cfg.half_fraction, len(_HALF), 0))  # fmt: skip
        extra = np.maximum(extra, n)
    return extra


def run(
    cfg: AugmentConfig,
    store: StoreConfig,
    source: str | Path,
    out: str | Path,
    *,
    show_progress: bool = True,
) -> tuple[StampStore, dict[str, Any]]:
    """Write the training set ``source`` plus its augmented copies to ``out``.

    Columns added: ``source_id`` (the original galaxy) and ``transform`` (``identity`` for the
    originals); copies get the id ``<galaxy_id>~<transform>``.
    """
    src = StampStore(source)
    if len(src) == 0:
        raise CasnetInputError(f"augment: the training store {source} is empty")
    missing = set(_LABELS) - set(src.catalog.columns)
    if missing:
        raise CasnetInputError(
            f"augment: {source} has no {', '.join(sorted(missing))} column (run 'select' first)"
        )
    labels = src.catalog[list(_LABELS)]
    if labels.isna().any().any():
        symbols = "/".join(t.symbol for t in SCHEMA)
        raise CasnetInputError(f"augment: {source} has galaxies without {symbols} labels")
    extra = augment_counts(labels, cfg)
    names = src.array_names
    writer = StoreWriter(
        out, stamp_shape=src.stamp_shape, arrays=names, chunk_size=store.chunk_size,
        meta={"stage": "augment", "source": str(source), "params": cfg.model_dump(mode="json")},
        resume=False, inputs=[source],
    )  # fmt: skip
    buffer = Rechunker(writer)
    with progress_bar(len(src), desc="augment", enabled=show_progress) as bar:
        for chunk in src.iter_chunks(names):
            cat = chunk.catalog
            n_extra = extra[chunk.start : chunk.start + len(chunk)]
            buffer.add(cat.assign(source_id=cat["galaxy_id"], transform="identity"), chunk.arrays)
            for name in _RARE:
                # a galaxy gets rot90 when it has any copy, the other four only when rare
                sel = n_extra >= (1 if name in _HALF else len(_RARE))
                if not sel.any():
                    continue
                rows = cat[sel].assign(
                    source_id=cat.loc[sel, "galaxy_id"],
                    galaxy_id=[f"{g}~{name}" for g in cat.loc[sel, "galaxy_id"]],
                    transform=name,
                )
                arrays = {n: TRANSFORMS[name](a[sel]) for n, a in chunk.arrays.items()}
                buffer.add(rows, arrays)
            bar.update(len(chunk))
    result = buffer.close()
    metrics = {
        "n_before": len(src),
        "n_after": len(result),
        "galaxies_with_one_copy": int((extra == len(_HALF)).sum()),
        "galaxies_with_five_copies": int((extra == len(_RARE)).sum()),
    }
    return result, metrics


def write_figures(source: str | Path, augmented: StampStore, bins: int, plots: str | Path) -> Path:
    """The C and A distributions of the training set before and after augmentation
    (``augment_distributions.png`` in ``plots``, a DVC plot; the paper's Fig. 4)."""
    from casnet.core.figures import label_histograms

    before, after = StampStore(source).catalog, augmented.catalog
    return label_histograms({k: before[k].to_numpy() for k in _LABELS},
                            {k: after[k].to_numpy() for k in _LABELS}, bins,
                            Path(plots) / "augment_distributions.png")  # fmt: skip
