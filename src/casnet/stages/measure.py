"""Stage ``measure``: the conventional CAS of every stamp of a store (and of its truth images).

Writes a Parquet table keyed by ``galaxy_id``: the :class:`~casnet.morphology.Measurement`
columns for the observed (cleaned) stamp and, when the store holds the simulator's ``truth``
array, the same columns with a ``_true`` suffix measured on the noiseless image of the target
alone (with the observed stamp's noise level as reference for thresholds and SNR_p).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.config import MorphologyConfig
from casnet.morphology import measure
from casnet.stages._common import progress_bar
from casnet.store import StampStore

__all__ = ["measure_chunk", "run"]


def measure_chunk(
    images: np.ndarray,
    galaxy_ids: list[str],
    cfg: MorphologyConfig,
    truth: np.ndarray | None = None,
    truth_sigma: np.ndarray | None = None,
) -> pd.DataFrame:
    """Measure a stack of stamps (and their truth images); one row per galaxy."""
    rows = []
    for k, gid in enumerate(galaxy_ids):
        m = measure(images[k], config=cfg)
        row = {"galaxy_id": gid, **m.to_dict()}
        if truth is not None:
            sigma = truth_sigma[k] if truth_sigma is not None else m.sky_sigma
            if not (np.isfinite(sigma) and sigma > 0):
                sigma = float(np.nanstd(images[k]))  # the observed stamp's noise, roughly
            t = measure(truth[k], config=cfg, noiseless_sigma=float(sigma))
            row.update({f"{key}_true": value for key, value in t.to_dict().items()})
        rows.append(row)
    return pd.DataFrame(rows)


def run(
    cfg: MorphologyConfig,
    store: str | Path,
    out: str | Path,
    *,
    with_truth: bool = True,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Measure every galaxy of ``store`` and write the table to ``out`` (Parquet, atomic)."""
    src = StampStore(store)
    names = ["image"] + (["truth"] if with_truth and "truth" in src.array_names else [])
    parts = []
    with progress_bar(len(src), desc="measure", enabled=show_progress) as bar:
        for chunk in src.iter_chunks(names):
            sigma = chunk.catalog["sky_sigma"].to_numpy() if "sky_sigma" in chunk.catalog else None
            parts.append(
                measure_chunk(
                    chunk.arrays["image"],
                    chunk.catalog["galaxy_id"].astype(str).tolist(),
                    cfg,
                    truth=chunk.arrays.get("truth"),
                    truth_sigma=sigma,
                )
            )
            bar.update(len(chunk))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"galaxy_id": []})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return table
