"""Stage ``simulate``: GalSim stamps (+ noiseless truth) into a store, chunks in parallel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from casnet.data.io.store import StampStore, StoreWriter
from casnet.data.settings import SimulateConfig, StoreConfig
from casnet.data.simulate import simulate_galaxy
from casnet.morphology.settings import MorphologyConfig
from casnet.pipeline.common import hand_back, write_chunks
from casnet.pipeline.settings import DaskConfig

__all__ = ["run", "simulate_chunk"]


def simulate_chunk(
    sim: SimulateConfig,
    lo: int,
    hi: int,
    images_path: str | None = None,
    morphology: MorphologyConfig | None = None,
) -> tuple[list[dict], dict | None]:
    """Galaxies ``lo .. hi - 1``: catalogue rows and the ``image`` / ``truth`` stacks.

    With ``images_path`` (a staging store's Zarr group) the worker writes the stacks in place and
    returns None for them: only the small catalogue rows travel back to the driver.
    """
    gals = [simulate_galaxy(i, sim, morphology) for i in range(lo, hi)]
    rows = [
        {"galaxy_id": g.galaxy_id, "index": g.index, "seed": sim.seed, "sky_sigma": g.sky_sigma,
         **g.params}
        for g in gals
    ]  # fmt: skip
    arrays = {
        "image": np.stack([g.image for g in gals]),
        "truth": np.stack([g.truth for g in gals]),
    }
    return hand_back(rows, arrays, images_path, lo)


def run(
    sim: SimulateConfig,
    n: int,
    store: StoreConfig,
    out: str | Path,
    *,
    morphology: MorphologyConfig | None = None,
    dask: DaskConfig | None = None,
    show_progress: bool = True,
) -> StampStore:
    """Simulate ``n`` galaxies into the store ``out`` (arrays ``image`` and ``truth``).

    Catalogue columns: ``galaxy_id``, ``index``, ``seed``, ``sky_sigma`` and every drawn
    parameter (``kind``, ``mag``, ``r_half_px``, ``z``, ``bt``, ``n_bulge``, ...). Chunks run on
    Dask (``dask``; default a LocalCluster); a rerun after an interruption resumes after the last
    committed chunk. ``morphology``: the measurement every galaxy must fit its stamp for (the
    1.5 R_p apertures and the sky beyond, :func:`casnet.data.simulate.simulate_galaxy`).
    """
    dask = dask or DaskConfig()
    size, step = sim.stamp_size, store.chunk_size
    writer = StoreWriter(
        out,
        stamp_shape=(size, size),
        arrays=("image", "truth"),
        chunk_size=step,
        meta={"stage": "simulate", "n": n, "params": sim.model_dump(mode="json")},
    )
    writer.reserve(n)
    items = [
        (sim, lo, min(lo + step, n), writer.images_path, morphology)
        for lo in range(writer.inputs_done, n, step)
    ]
    return write_chunks(writer, simulate_chunk, items, total=n, desc="simulate", dask=dask,
                        show_progress=show_progress)  # fmt: skip
