"""Stage ``clean``: galclean every stamp of a store (Tohill et al. 2021 Sec. 3.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from casnet.clean import galaxy_rng, galclean
from casnet.config import CleanConfig, StoreConfig
from casnet.stages._common import progress_bar
from casnet.store import StampStore, StoreWriter

__all__ = ["run"]


def run(
    cfg: CleanConfig,
    store: StoreConfig,
    source: str | Path,
    out: str | Path,
    *,
    show_progress: bool = True,
) -> StampStore:
    """Clean the ``image`` array of ``source`` into ``out``; side arrays (``truth``) pass through.

    Adds the catalogue columns ``clean_replaced_fraction``, ``clean_flag``, ``clean_reasons``,
    ``clean_sky_mean``, ``clean_sky_sigma``. Each galaxy's replacement draws come from a stream
    seeded by ``(clean.seed, galaxy_id)``, so the result does not depend on chunking or workers.
    """
    src = StampStore(source)
    names = src.array_names
    writer = StoreWriter(
        out,
        stamp_shape=src.stamp_shape,
        arrays=names,
        chunk_size=store.chunk_size,
        meta={"stage": "clean", "source": str(source), "params": cfg.model_dump(mode="json")},
    )
    with writer, progress_bar(len(src), desc="clean", initial=writer.inputs_done,
                              enabled=show_progress) as bar:  # fmt: skip
        for chunk in src.iter_chunks(names, chunk_size=store.chunk_size):
            if chunk.start + len(chunk) <= writer.inputs_done:
                continue  # committed by an interrupted run
            cleaned = np.empty_like(chunk.arrays["image"])
            extra = {k: [] for k in ("replaced_fraction", "flag", "reasons", "sky_mean",
                                     "sky_sigma")}  # fmt: skip
            for k, gid in enumerate(chunk.catalog["galaxy_id"].astype(str)):
                res = galclean(chunk.arrays["image"][k], config=cfg,
                               rng=galaxy_rng(cfg.seed, gid))  # fmt: skip
                cleaned[k] = res.image
                extra["replaced_fraction"].append(res.replaced_fraction)
                extra["flag"].append(res.flag)
                extra["reasons"].append(res.flag_reasons)
                extra["sky_mean"].append(res.sky_mean)
                extra["sky_sigma"].append(res.sky_sigma)
                bar.update()
            rows = chunk.catalog.assign(**{f"clean_{k}": v for k, v in extra.items()})
            writer.append(rows, {**chunk.arrays, "image": cleaned})
    return StampStore(out)
