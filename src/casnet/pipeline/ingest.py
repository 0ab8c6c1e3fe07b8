"""Stage ``ingest``: real FITS (cutout files, or a mosaic + catalogue) into a store."""

from __future__ import annotations

import itertools
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from casnet.core.errors import CasnetInputError
from casnet.core.progress import progress_bar
from casnet.data.ingest import Cutout, Reject, iter_cutout_files, iter_mosaic, read_labels
from casnet.data.io.store import StampStore, StoreWriter
from casnet.data.settings import IngestConfig, StoreConfig

__all__ = ["run"]


def _records(
    inputs: Sequence[str | Path], catalog: str | Path | None, cfg: IngestConfig
) -> Iterator[Cutout | Reject]:
    if catalog is not None:
        if len(inputs) != 1:
            raise CasnetInputError(
                f"with --catalog, give exactly one mosaic FITS as input, got {len(inputs)}"
            )
        return iter_mosaic(inputs[0], catalog, config=cfg)
    return iter_cutout_files(list(inputs), config=cfg)


def run(
    cfg: IngestConfig,
    store: StoreConfig,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    catalog: str | Path | None = None,
    labels: str | Path | None = None,
    show_progress: bool = True,
) -> StampStore:
    """Ingest ``inputs`` into the store ``out``.

    Parameters
    ----------
    inputs : sequence of paths or globs
        FITS cutouts (files, folders, glob patterns), or one mosaic when ``catalog`` is given.
    catalog : path, optional
        Positions on the mosaic (CSV, ECSV or FITS table).
    labels : path, optional
        External C/A labels (MORFOMETRYKA, statmorph, ...) joined by ``galaxy_id`` as
        ``label_*`` columns; galaxies without a label get NaN.

    Rejected inputs go to ``rejects.parquet`` with the reason; the run reports the counts.
    """
    label_table = read_labels(labels, id_column=cfg.id_column) if labels is not None else None
    records = _records(list(inputs), catalog, cfg)
    size = cfg.stamp_size
    writer = StoreWriter(
        out,
        stamp_shape=(size, size),
        arrays=("image",),
        chunk_size=store.chunk_size,
        meta={"stage": "ingest", "inputs": [str(i) for i in inputs],
              "catalog": str(catalog) if catalog else None,
              "labels": str(labels) if labels else None,
              "params": cfg.model_dump(mode="json")},
        inputs=[*inputs, catalog, labels],
    )  # fmt: skip
    n_good = n_bad = 0
    why: Counter[str] = Counter()
    first = ""
    with writer, progress_bar(0, desc="ingest", enabled=show_progress) as bar:
        bar.total = None
        records = itertools.islice(records, writer.inputs_done, None)  # resume
        cutouts: list[Cutout] = []
        rejects: list[dict] = []
        consumed = 0
        for rec in records:
            consumed += 1
            bar.update()
            if isinstance(rec, Reject):
                rejects.append({"source": rec.source, "galaxy_id": rec.galaxy_id,
                                "reason": rec.reason})  # fmt: skip
                n_bad += 1
                # grouped by the reason without its file and details, which vary per input
                why[rec.reason.replace(f"{rec.source}: ", "").split(" (")[0]] += 1
                first = first or rec.reason
                continue
            cutouts.append(rec)
            n_good += 1
            if len(cutouts) == store.chunk_size:
                _flush(writer, cutouts, rejects, consumed, label_table)
                cutouts, rejects, consumed = [], [], 0
        if cutouts or rejects:
            _flush(writer, cutouts, rejects, consumed, label_table)
        if writer.galaxies_done == 0:
            # nothing to resume: no staging folder is left behind (issue 19)
            shutil.rmtree(writer.staging, ignore_errors=True)
            reasons = "; ".join(f"{n} x {reason}" for reason, n in why.most_common(3))
            more = f"; {len(why) - 3} other reasons" if len(why) > 3 else ""
            raise CasnetInputError(
                f"no usable galaxy in {', '.join(map(str, inputs))} "
                f"({writer.inputs_done} inputs, all rejected: {reasons}{more}; first: {first})"
            )
    result = StampStore(out)
    print(
        f"ingest: {len(result)} galaxies stored, {len(result.rejects)} rejected "
        f"(see {Path(out) / 'rejects.parquet'})" if len(result.rejects) else
        f"ingest: {len(result)} galaxies stored",
        file=sys.stderr,
    )  # fmt: skip
    return result


def _flush(
    writer: StoreWriter,
    cutouts: list[Cutout],
    rejects: list[dict],
    consumed: int,
    labels: pd.DataFrame | None,
) -> None:
    rows = pd.DataFrame([{"galaxy_id": c.galaxy_id, **c.row} for c in cutouts])
    if labels is not None and len(rows):
        rows = rows.merge(labels, on="galaxy_id", how="left")
    images = (
        np.stack([c.image for c in cutouts])
        if cutouts
        else np.empty((0, *writer.stamp_shape), np.float32)
    )
    writer.append(rows, {"image": images}, inputs=consumed, rejects=rejects)
