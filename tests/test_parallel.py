"""Stages on Dask: in-process mode, ordered results, worker-count independence, killed workers.

The LocalCluster tests start real worker processes (a few seconds each): marked slow. Functions
sent to the workers are module-level (workers import this module by name: pytest puts tests/ on
``sys.path`` and spawned workers inherit it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import time
from pathlib import Path

import dask
import distributed  # noqa: F401  (its config defaults must exist before dask.config.set)
import numpy as np
import pandas as pd
import pytest

from casnet.core.parallel import executor, map_ordered
from casnet.data.settings import CleanConfig, SimulateConfig, StoreConfig
from casnet.pipeline import clean as clean_stage
from casnet.pipeline import simulate as simulate_stage
from casnet.pipeline.settings import DaskConfig

SERIAL = DaskConfig(workers=0)
N, STORE = 12, StoreConfig(chunk_size=4)  # three chunks
#: small stamps: the stages' arithmetic is the same, the simulation 4x cheaper
# neighbours in every stamp: cleaning has pixels to replace (merger companions are the target's)
SIM = SimulateConfig(stamp_size=51, neighbour_fraction=1.0)


def _images_digest(store_path: Path) -> dict[str, str]:
    root = Path(store_path) / "images.zarr"
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def _assert_same_store(a, b) -> None:
    digest = _images_digest(a.path)
    assert len(digest) > 3  # metadata and chunk files were compared, not an empty folder
    assert digest == _images_digest(b.path)
    pd.testing.assert_frame_equal(a.catalog, b.catalog)


# -- functions run on the workers ---------------------------------------------------------------


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def _late_for_early_items(i: int, n: int, step: float) -> tuple[int, float]:
    """i squared, after a sleep that is longest for the first items; and the finish time."""
    time.sleep(step * (n - i))
    return i * i, time.time()


def _exit_once(marker: str, log: str, target: str, *args):
    """``target(*args)``, except that the first call of all kills its worker process.

    ``marker`` is created atomically (O_EXCL) by the one call that dies, so exactly one worker
    dies whatever the scheduling; ``log`` gets ``pid start`` for every call.
    """
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()} {args[1]}\n")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        module, name = target.split(":")
        return getattr(importlib.import_module(module), name)(*args)
    os.write(fd, f"{os.getpid()} {args[1]}".encode())
    os.close(fd)
    os._exit(1)  # a worker killed mid-chunk: nothing returned, nothing written


# -- in-process ---------------------------------------------------------------------------------


def test_workers_0_runs_in_this_process():
    with executor(workers=0) as client:
        assert type(client).__module__ == "casnet.core.parallel"  # no Dask client at all
        pid, value = client.submit(_pid_and, 5).result()
    assert (pid, value) == (os.getpid(), 5)


def test_workers_0_map_ordered_computes_one_item_at_a_time():
    calls = []

    def record(i):
        calls.append(i)
        return -i

    with executor(workers=0) as client:
        results = map_ordered(client, record, [(i,) for i in range(5)])
        assert next(results) == 0
        assert calls == [0]  # lazy: the next item is computed when asked for
        assert list(results) == [-1, -2, -3, -4]


# -- LocalCluster -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel") / "sim"
    return simulate_stage.run(SIM, N, STORE, out, dask=SERIAL, show_progress=False)


@pytest.mark.slow
def test_simulate_store_bytes_do_not_depend_on_workers(tmp_path, simulated_serial):
    one = simulate_stage.run(SIM, N, STORE, tmp_path / "w1",
                             dask=DaskConfig(workers=1), show_progress=False)  # fmt: skip
    two = simulate_stage.run(SIM, N, STORE, tmp_path / "w2",
                             dask=DaskConfig(workers=2), show_progress=False)  # fmt: skip
    _assert_same_store(one, two)
    _assert_same_store(one, simulated_serial)


@pytest.mark.slow
def test_clean_store_bytes_do_not_depend_on_workers(tmp_path, simulated_serial):
    src = simulated_serial.path
    one = clean_stage.run(CleanConfig(), STORE, src, tmp_path / "w1",
                          dask=DaskConfig(workers=1), show_progress=False)  # fmt: skip
    two = clean_stage.run(CleanConfig(), STORE, src, tmp_path / "w2",
                          dask=DaskConfig(workers=2), show_progress=False)  # fmt: skip
    _assert_same_store(one, two)
    # cleaning did change pixels (the comparison is not between two copies of the input)
    assert not np.array_equal(one.array("image")[:], simulated_serial.array("image")[:])


@pytest.mark.slow
def test_stage_survives_a_killed_worker(tmp_path, simulated_serial, monkeypatch):
    marker, log = tmp_path / "killed", tmp_path / "calls.log"
    chunk_fn = functools.partial(
        _exit_once, str(marker), str(log), "casnet.pipeline.simulate:simulate_chunk"
    )
    # the stage submits whatever its module-level simulate_chunk is at call time
    monkeypatch.setattr(simulate_stage, "simulate_chunk", chunk_fn)
    # Dask reruns a task whose worker died up to allowed-failures times (the default, 3, made
    # explicit): one death must be retried, not turned into KilledWorker
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        store = simulate_stage.run(SIM, N, STORE, tmp_path / "s",
                                   dask=DaskConfig(workers=2), show_progress=False)  # fmt: skip
    assert marker.exists()  # a worker did die
    dead_pid, dead_start = marker.read_text().split()
    calls = [line.split() for line in log.read_text().splitlines()]
    # the chunk that died ran again, in another process; every chunk was computed
    reruns = [pid for pid, start in calls if start == dead_start and pid != dead_pid]
    assert reruns
    assert {int(start) for _, start in calls} == {0, 4, 8}
    _assert_same_store(store, simulated_serial)


# the shared cluster last: it is held until the module ends
@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster shared by the map_ordered tests (starting one takes seconds)."""
    with executor(workers=2) as client:
        yield client


@pytest.mark.slow
def test_local_cluster_runs_in_worker_processes(cluster):
    assert len(cluster.nthreads()) == 2
    assert set(cluster.nthreads().values()) == {1}  # one thread per worker
    pids = {pid for pid, _ in map_ordered(cluster, _pid_and, [(i,) for i in range(4)])}
    assert os.getpid() not in pids


@pytest.mark.slow
def test_map_ordered_yields_in_item_order_when_later_items_finish_first(cluster):
    n = 6
    items = [(i, n, 0.15) for i in range(n)]  # item 0 sleeps 0.9 s, item 5 0.15 s
    results = list(map_ordered(cluster, _late_for_early_items, items))
    assert [r for r, _ in results] == [i * i for i in range(n)]
    finished = [t for _, t in results]
    # the test means something only if some later item did finish before an earlier one
    assert any(finished[j] < finished[i] for i in range(n) for j in range(i + 1, n))
