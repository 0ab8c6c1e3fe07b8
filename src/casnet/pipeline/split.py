"""Stage ``split``: train / validation / test by a hash of ``galaxy_id`` (Sec. 3.2: 80/10/10).

Each galaxy's split is decided by its own id alone (SHA-256 of ``seed:galaxy_id`` as a number in
[0, 1)), so adding galaxies never moves existing ones between splits and a test galaxy can never
leak into training when the data set grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from casnet.core.errors import CasnetInputError
from casnet.core.progress import progress_bar
from casnet.data.io.store import Rechunker, StampStore, StoreWriter
from casnet.data.settings import SplitConfig, StoreConfig

__all__ = ["SPLITS", "assign", "hash_unit", "run"]

SPLITS = ("train", "val", "test")


def hash_unit(galaxy_id: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by ``(seed, galaxy_id)`` (SHA-256; stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{galaxy_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(galaxy_ids: Iterable[str], cfg: SplitConfig) -> np.ndarray:
    """The split name of each id."""
    u = np.array([hash_unit(str(g), cfg.seed) for g in galaxy_ids])
    edges = np.array([cfg.train, cfg.train + cfg.val])
    return np.array(SPLITS)[np.searchsorted(edges, u, side="right")]


def run(
    cfg: SplitConfig,
    store: StoreConfig,
    source: str | Path,
    out: str | Path,
    *,
    show_progress: bool = True,
) -> tuple[dict[str, StampStore], dict[str, Any]]:
    """Split ``source`` into the stores ``out/train``, ``out/val`` and ``out/test``."""
    src = StampStore(source)
    if len(src) == 0:
        raise CasnetInputError(f"split: the input store {source} is empty")
    out = Path(out)
    names = src.array_names
    buffers = {
        s: Rechunker(StoreWriter(
            out / s, stamp_shape=src.stamp_shape, arrays=names, chunk_size=store.chunk_size,
            meta={"stage": "split", "split": s, "source": str(source),
                  "params": cfg.model_dump(mode="json")},
            resume=False, inputs=[source],
        ))
        for s in SPLITS
    }  # fmt: skip
    with progress_bar(len(src), desc="split", enabled=show_progress) as bar:
        for chunk in src.iter_chunks(names):
            which = assign(chunk.catalog["galaxy_id"], cfg)
            for s in SPLITS:
                sel = which == s
                rows = chunk.catalog[sel].assign(split=s)
                buffers[s].add(rows, {n: a[sel] for n, a in chunk.arrays.items()})
            bar.update(len(chunk))
    stores = {s: b.close() for s, b in buffers.items()}
    counts = {s: len(st) for s, st in stores.items()}
    metrics = {"n": len(src), **counts, **{f"{s}_fraction": counts[s] / len(src) for s in SPLITS}}
    return stores, metrics
