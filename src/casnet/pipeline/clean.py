"""Stage ``clean``: galclean every stamp of a store (Tohill et al. 2021 Sec. 3.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.data.clean import clean_stamp
from casnet.data.io.store import REPLACED, StampStore, StoreWriter
from casnet.data.settings import CleanConfig, StoreConfig
from casnet.pipeline.common import hand_back, write_chunks
from casnet.pipeline.settings import DaskConfig

__all__ = ["clean_chunk", "run"]


def clean_chunk(
    cfg: CleanConfig, source: str, start: int, stop: int, images_path: str | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray] | None]:
    """Clean galaxies ``start .. stop - 1`` of the store ``source`` (read here, on the worker).

    With ``images_path`` (the output's staging Zarr group) the worker writes the arrays in place
    and returns None for them.
    """
    src = StampStore(source)
    cat = src.catalog_rows(start, stop)
    arrays = {n: np.asarray(src.array(n)[start:stop]) for n in src.array_names}
    cleaned = np.empty_like(arrays["image"])
    replaced = np.zeros_like(arrays["image"])
    columns = ("replaced_fraction", "flag", "flag_reasons", "sky_mean", "sky_sigma")
    extra: dict[str, list] = {k: [] for k in columns}
    for k, gid in enumerate(cat["galaxy_id"].astype(str)):
        res = clean_stamp(arrays["image"][k], cfg, gid)
        cleaned[k] = res.image
        replaced[k] = res.replaced
        extra["replaced_fraction"].append(res.replaced_fraction)
        extra["flag"].append(res.flag)
        extra["flag_reasons"].append(res.flag_reasons)
        extra["sky_mean"].append(res.sky_mean)
        extra["sky_sigma"].append(res.sky_sigma)
    rows = cat.assign(**{f"clean_{k}": v for k, v in extra.items()})
    return hand_back(rows, {**arrays, "image": cleaned, REPLACED: replaced}, images_path, start)


def run(
    cfg: CleanConfig,
    store: StoreConfig,
    source: str | Path,
    out: str | Path,
    *,
    dask: DaskConfig | None = None,
    show_progress: bool = True,
) -> StampStore:
    """Clean the ``image`` array of ``source`` into ``out``; side arrays (``truth``) pass through.

    Adds the array ``replaced`` (1 where a pixel was replaced: the measure stage leaves those
    pixels out, see :func:`casnet.morphology.measure`) and the catalogue columns
    ``clean_replaced_fraction``, ``clean_flag``, ``clean_flag_reasons``, ``clean_sky_mean``,
    ``clean_sky_sigma``. Each galaxy's replacement draws come from a stream seeded by
    ``(clean.seed, galaxy_id)``, so the result does not depend on chunking or workers.
    """
    dask = dask or DaskConfig()
    src = StampStore(source)
    n, step = len(src), store.chunk_size
    if n == 0:
        raise CasnetInputError(f"clean: the input store {source} is empty")
    writer = StoreWriter(
        out,
        stamp_shape=src.stamp_shape,
        arrays=[*(n for n in src.array_names if n != REPLACED), REPLACED],
        chunk_size=step,
        meta={"stage": "clean", "source": str(source), "params": cfg.model_dump(mode="json")},
        inputs=[source],
    )
    writer.reserve(n)
    items = [
        (cfg, str(Path(source).resolve()), lo, min(lo + step, n), writer.images_path)
        for lo in range(writer.inputs_done, n, step)
    ]
    return write_chunks(writer, clean_chunk, items, total=n, desc="clean", dask=dask,
                        show_progress=show_progress)  # fmt: skip
