"""Running stage chunks in parallel on Dask (a LocalCluster by default, any scheduler by address).

Stages split their work into chunks (the store's chunks) and hand a top-level function plus
small arguments (paths, index ranges, config objects) to :func:`map_ordered`; workers read their
own inputs, so only results travel back. Results come back in chunk order and are written by the
driver through :class:`casnet.data.io.store.StoreWriter`, so the output does not depend on the
number of
workers, and a worker that dies mid-chunk only makes Dask run that chunk again (nothing was
written for it). At most ``max_in_flight`` chunks are pending, so the driver's memory is bounded
by a few chunks whatever N.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["default_workers", "executor", "map_ordered"]


def default_workers() -> int:
    """Cores available to this process (the LocalCluster size by default)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Serial:
    """In-process stand-in for a Dask client (``workers=0``): same interface, no cluster."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return _Done(fn(*args, **kwargs))

    def close(self) -> None:
        pass


class _Done:
    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


@contextmanager
def executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client for a stage.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``); default: start a LocalCluster.
    workers : int, optional
        LocalCluster worker processes (one thread each); default: the machine's cores; ``0`` runs
        in this process without Dask (tests, tiny runs, debugging).
    """
    if scheduler is None and workers == 0:
        yield _Serial()
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers or default_workers(),
        threads_per_worker=1,  # the kernels are single-threaded: one chunk per core
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def map_ordered(
    client: Any,
    fn: Callable[..., Any],
    items: Iterable[tuple[Any, ...]],
    *,
    max_in_flight: int | None = None,
) -> Iterator[Any]:
    """``fn(*item)`` for every item, computed on ``client``, yielded in item order.

    At most ``max_in_flight`` results (default: twice the cluster's threads, so no worker waits)
    are pending or held at once; Dask retries a chunk whose worker died.
    """
    if max_in_flight is None:
        # in-process: nothing to overlap, compute one chunk at a time
        serial = isinstance(client, _Serial)
        max_in_flight = 1 if serial else max(2 * sum(client.nthreads().values()), 1)
    pending: deque[Any] = deque()
    for item in items:
        pending.append(client.submit(fn, *item, pure=False) if not isinstance(client, _Serial)
                       else client.submit(fn, *item))  # fmt: skip
        if len(pending) >= max_in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
