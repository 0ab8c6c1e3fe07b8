"""Helpers shared by the stages."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from casnet.core.parallel import executor, map_ordered
from casnet.core.progress import progress_bar
from casnet.data.io.store import StampStore, StoreWriter, write_arrays
from casnet.pipeline.settings import DaskConfig

__all__ = ["hand_back", "write_chunks", "write_metrics"]


def write_metrics(path: str | Path, metrics: dict) -> Path:
    """Write stage metrics as JSON (DVC metrics file), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def hand_back(rows: Any, arrays: dict, images_path: str | None, start: int) -> tuple[Any, Any]:
    """A chunk function's result: with ``images_path`` (the output's staging Zarr group) the
    worker writes ``arrays`` in place and only the rows travel back to the driver."""
    if images_path is None:
        return rows, arrays
    write_arrays(images_path, start, arrays)
    return rows, None


def write_chunks(
    writer: StoreWriter,
    fn: Callable[..., tuple[Any, Any]],
    items: list[tuple[Any, ...]],
    *,
    total: int,
    desc: str,
    dask: DaskConfig,
    show_progress: bool,
) -> StampStore:
    """Run ``fn(*item)`` for every chunk on Dask and commit the results in order.

    ``fn`` returns ``(rows, arrays)`` (``arrays`` None when the worker wrote them in place); the
    writer closes (moves the store into place) only when every chunk is committed.
    """
    with (
        writer,
        progress_bar(total, desc=desc, initial=writer.inputs_done, enabled=show_progress) as bar,
        executor(dask.scheduler, dask.workers if items else 0) as client,
    ):
        for rows, arrays in map_ordered(client, fn, items):
            writer.append(rows, arrays)
            bar.update(len(rows))
    return StampStore(writer.path)
