"""Stage ``simulate``: GalSim stamps (+ noiseless truth) into a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from casnet.config import SimulateConfig, StoreConfig
from casnet.sources.simulate import simulate_galaxy
from casnet.stages._common import progress_bar
from casnet.store import StampStore, StoreWriter

__all__ = ["run"]


def run(
    sim: SimulateConfig, store: StoreConfig, out: str | Path, *, show_progress: bool = True
) -> StampStore:
    """Simulate ``sim.n`` galaxies into the store ``out`` (arrays ``image`` and ``truth``).

    Catalogue columns: ``galaxy_id``, ``index``, ``seed``, ``sky_sigma`` and every drawn
    parameter (``kind``, ``mag``, ``r_half_px``, ``z``, ``bt``, ``n_bulge``, ...).
    A rerun after an interruption resumes after the last committed chunk.
    """
    size = sim.stamp_size
    writer = StoreWriter(
        out,
        stamp_shape=(size, size),
        arrays=("image", "truth"),
        chunk_size=store.chunk_size,
        meta={"stage": "simulate", "params": sim.model_dump(mode="json")},
    )
    with writer, progress_bar(sim.n, desc="simulate", initial=writer.inputs_done,
                              enabled=show_progress) as bar:  # fmt: skip
        for lo in range(writer.inputs_done, sim.n, store.chunk_size):
            hi = min(lo + store.chunk_size, sim.n)
            gals = []
            for i in range(lo, hi):
                gals.append(simulate_galaxy(i, sim))
                bar.update()
            rows = [
                {"galaxy_id": g.galaxy_id, "index": g.index, "seed": sim.seed,
                 "sky_sigma": g.sky_sigma, **g.params}
                for g in gals
            ]  # fmt: skip
            arrays = {
                "image": np.stack([g.image for g in gals]),
                "truth": np.stack([g.truth for g in gals]),
            }
            writer.append(rows, arrays)
    return StampStore(out)
