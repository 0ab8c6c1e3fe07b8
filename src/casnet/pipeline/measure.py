"""Stage ``measure``: the conventional CAS of every stamp of a store (and of its truth images).

Writes a Parquet table keyed by ``galaxy_id``: the :class:`~casnet.morphology.Measurement`
columns for the observed (cleaned) stamp and, when the store holds the simulator's ``truth``
array, the same columns with a ``_true`` suffix: the *idealised truth*
(:func:`casnet.morphology.measurement.measure_truth`), C and A of the noiseless, PSF-convolved image
of the target alone at its known centre (the simulator's ``x_offset_px``/``y_offset_px`` from the
stamp centre), with no segmentation and no masks; thresholds, SNR_p and errors refer to the
observed stamp's noise level. The difference measured - true is then the whole error of the
pipeline (noise, sky, cleaning, masks), not only the noise.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from casnet.core.errors import CasnetInputError
from casnet.core.locking import output_lock
from casnet.core.parallel import executor, map_ordered
from casnet.core.progress import progress_bar
from casnet.data.io.outputs import check_output, remove_stale_temporaries
from casnet.data.io.store import REPLACED, StampStore
from casnet.morphology import Measurement, measure
from casnet.morphology.measurement import measure_truth
from casnet.morphology.settings import MorphologyConfig
from casnet.pipeline.settings import DaskConfig

__all__ = ["MeasureSummary", "measure_chunk", "measure_files", "measure_store_chunk", "run"]


def measure_chunk(
    images: np.ndarray,
    galaxy_ids: list[str],
    cfg: MorphologyConfig,
    replaced: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    truth_sigma: np.ndarray | None = None,
    truth_offsets: np.ndarray | None = None,
) -> pd.DataFrame:
    """Measure a stack of stamps (and their truth images); one row per galaxy.

    ``replaced`` (n, H, W) bool: the pixels cleaning replaced (left out of the measurement).
    ``truth_offsets`` (n, 2): the known (x, y) offsets (px) of each target from the stamp centre;
    without them the truth's apertures are centred on its centroid.
    """
    rows = []
    ny, nx = images.shape[1:]
    for k, gid in enumerate(galaxy_ids):
        m = measure(images[k], config=cfg, replaced=None if replaced is None else replaced[k])
        row = {"galaxy_id": gid, **m.to_dict()}
        if truth is not None:
            sigma = truth_sigma[k] if truth_sigma is not None else m.sky_sigma
            if not (np.isfinite(sigma) and sigma > 0):
                sigma = float(np.nanstd(images[k]))  # the observed stamp's noise, roughly
            centre = None
            if truth_offsets is not None and np.isfinite(truth_offsets[k]).all():
                centre = (
                    (nx - 1) / 2.0 + truth_offsets[k][0],
                    (ny - 1) / 2.0 + truth_offsets[k][1],
                )
            t = measure_truth(truth[k], centre=centre, sky_sigma=float(sigma), config=cfg)
            row.update({f"{key}_true": value for key, value in t.to_dict().items()})
        rows.append(row)
    return pd.DataFrame(rows)


def measure_store_chunk(
    cfg: MorphologyConfig, store: str, start: int, stop: int, with_truth: bool
) -> pd.DataFrame:
    """Measure galaxies ``start .. stop - 1`` of ``store`` (read here, on the worker)."""
    src = StampStore(store)
    cat = src.catalog_rows(start, stop, columns=["galaxy_id", "sky_sigma", "x_offset_px",
                                                 "y_offset_px"])  # fmt: skip
    truth = None
    if with_truth and "truth" in src.array_names:
        truth = np.asarray(src.array("truth")[start:stop])
    offsets = None
    if {"x_offset_px", "y_offset_px"} <= set(cat.columns):
        offsets = cat[["x_offset_px", "y_offset_px"]].to_numpy(dtype=float)
    replaced = None
    if REPLACED in src.array_names:
        replaced = np.asarray(src.array(REPLACED)[start:stop]) > 0.5
    return measure_chunk(
        np.asarray(src.array("image")[start:stop]),
        cat["galaxy_id"].astype(str).tolist(),
        cfg,
        replaced=replaced,
        truth=truth,
        truth_sigma=cat["sky_sigma"].to_numpy() if "sky_sigma" in cat else None,
        truth_offsets=offsets,
    )


#: Arrow type of each Measurement field (the annotations are strings: postponed evaluation)
_ARROW = {"float": pa.float64(), "int": pa.int64(), "str": pa.string()}
_FIELD_TYPES = {f.name: _ARROW[str(f.type)] for f in fields(Measurement)}


def _schema(columns) -> pa.Schema:
    """The table's schema from the Measurement field types (not from one chunk's values, where a
    column could happen to be all-null)."""
    types = [pa.string() if c == "galaxy_id" else _FIELD_TYPES[c.removesuffix("_true")]
             for c in columns]  # fmt: skip
    return pa.schema(list(zip(columns, types, strict=True)))


@dataclass
class MeasureSummary:
    """What :func:`run` wrote: the table's path, its row count, how many rows have no flag, and
    the first rows (the table itself is on disk: ``pd.read_parquet(summary.path)``)."""

    path: Path
    n: int = 0
    n_ok: int = 0
    head: pd.DataFrame = field(default_factory=pd.DataFrame)

    def add(self, part: pd.DataFrame, keep: int = 20) -> None:
        self.n += len(part)
        self.n_ok += int((part["flag"] == 0).sum())
        if len(self.head) < keep:
            self.head = pd.concat([self.head, part.head(keep - len(self.head))], ignore_index=True)


def run(
    cfg: MorphologyConfig,
    store: str | Path,
    out: str | Path,
    *,
    with_truth: bool = True,
    dask: DaskConfig | None = None,
    show_progress: bool = True,
) -> MeasureSummary:
    """Measure every galaxy of ``store`` and write the table to ``out`` (Parquet, atomic).

    Chunks (the store's) run on Dask (``dask``; default a LocalCluster).
    """
    dask = dask or DaskConfig()
    src = StampStore(store)
    n, step = len(src), src.chunk_size
    if n == 0:
        raise CasnetInputError(f"measure: the input store {store} is empty")
    # absolute paths: on a remote cluster the workers do not share our working directory
    where = str(Path(store).resolve())
    items = [(cfg, where, lo, min(lo + step, n), with_truth) for lo in range(0, n, step)]
    # a table, never written over a folder or over the store it measures (issue 28)
    out = check_output(out, kind="file", inputs=[store])
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):  # one writer per output: a second run fails here
        remove_stale_temporaries(out)  # what a killed run left (we hold the lock: none is live)
        return _write_measurements(out, items, n, dask, show_progress)


def _write_measurements(out: Path, items: list, n: int, dask: DaskConfig,
                        show_progress: bool) -> MeasureSummary:  # fmt: skip
    """Stream the chunks' rows into a uniquely named temporary file beside ``out``, then rename
    it into place (a failed run leaves the previous ``out`` whole)."""
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    summary = MeasureSummary(out)
    writer = None
    # Streamed to Parquet, a row group per chunk, as the chunks come back: the driver holds one
    # chunk's rows, not the table (peak memory flat in N: the performance goal).
    try:
        with (
            progress_bar(n, desc="measure", enabled=show_progress) as bar,
            executor(dask.scheduler, dask.workers if items else 0) as client,
        ):
            for part in map_ordered(client, measure_store_chunk, items):
                table = pa.Table.from_pandas(part, schema=_schema(part.columns),
                                             preserve_index=False)  # fmt: skip
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                summary.add(part)
                bar.update(len(part))
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
    os.replace(tmp, out)
    return summary


def measure_files(
    files: list[Path],
    config: MorphologyConfig,
    *,
    hdu: int | str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Conventional C and A of FITS stamps (``casnet measure``): one row per file, ``source``
    first.

    A file that cannot be read gets a ``BAD_INPUT`` row with the reason (NaN values), never a
    missing row; with ``strict`` (a single file asked for) it raises instead.

    Raises
    ------
    CasnetInputError
        With ``strict``, for a file that cannot be read.
    """
    from casnet.core.errors import CasnetError
    from casnet.core.flags import Flag
    from casnet.data.io.fits import path_text, read_image
    from casnet.morphology import COLUMNS

    rows = []
    bar = progress_bar(len(files), desc="measure", enabled=progress and len(files) >= 20)
    with bar:
        for f in files:
            row: dict = {"source": path_text(f)}
            try:
                image, _ = read_image(f, hdu)
            except CasnetError as exc:
                if strict:
                    raise
                row.update(dict.fromkeys(COLUMNS, float("nan")))
                row.update(n_sky_cells=0, flag=int(Flag.BAD_INPUT),
                           flag_reasons=f"BAD_INPUT: {exc}")  # fmt: skip
            else:
                row.update(measure(image, config=config).to_dict())
            rows.append(row)
            bar.update(1)
    return rows
