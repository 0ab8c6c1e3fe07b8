"""The stamp store: round trip, chunked reads, atomic and resumable writes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from casnet.core.errors import CasnetInputError
from casnet.data.io.store import StampStore, StoreWriter


def _items(n: int):
    for i in range(n):
        yield {"galaxy_id": f"g{i:03d}", "value": float(i)}, np.full((6, 5), i, np.float32)


def _write(path: Path, n: int, *, chunk: int = 4, crash_at: int | None = None) -> StampStore:
    writer = StoreWriter(path, stamp_shape=(6, 5), arrays=("image", "truth"), chunk_size=chunk,
                         meta={"stage": "test"})  # fmt: skip
    with writer:
        rows, images = [], []
        for k, (row, image) in enumerate(_items(n)):
            if k < writer.inputs_done:
                continue
            if k == crash_at:
                raise RuntimeError("interrupted")
            rows.append(row)
            images.append(image)
            if len(rows) == chunk or k == n - 1:
                stack = np.stack(images)
                writer.append(rows, {"image": stack, "truth": -stack})
                rows, images = [], []
    return StampStore(path)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def test_round_trip(tmp_path):
    store = _write(tmp_path / "s", 10)
    assert len(store) == 10
    assert store.stamp_shape == (6, 5)
    assert store.array_names == ["image", "truth"]
    assert store.catalog["galaxy_id"].tolist() == [f"g{i:03d}" for i in range(10)]
    np.testing.assert_array_equal(store.array("truth")[7], np.full((6, 5), -7))
    assert store.rejects.empty


def test_reads_in_chunks_bounded_by_chunk_size(tmp_path):
    store = _write(tmp_path / "s", 10)
    chunks = list(store.iter_chunks(("image", "truth")))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert all(c.arrays["image"].shape[0] <= store.chunk_size for c in chunks)
    for c in chunks:  # rows and arrays stay aligned
        np.testing.assert_array_equal(c.arrays["image"][:, 0, 0], c.catalog["value"])
    assert [len(c) for c in store.iter_chunks(chunk_size=3)] == [3, 3, 3, 1]


def test_interrupted_write_leaves_no_store_and_rerun_gives_identical_bytes(tmp_path):
    reference = _write(tmp_path / "ref", 10)
    target = tmp_path / "s"
    with pytest.raises(RuntimeError):
        _write(target, 10, crash_at=9)
    assert not target.exists()  # nothing half-written in place
    assert Path(f"{target}.partial").exists()
    _write(target, 10)  # resumes after the two committed chunks
    assert _digest(target) == _digest(reference.path)
    assert not Path(f"{target}.partial").exists()


def test_rerun_replaces_an_existing_store(tmp_path):
    _write(tmp_path / "s", 10)
    store = _write(tmp_path / "s", 5)
    assert len(store) == 5


def test_rejects_are_kept(tmp_path):
    with StoreWriter(tmp_path / "s", stamp_shape=(2, 2), chunk_size=2) as w:
        bad = {"source": "x.fits", "galaxy_id": "x", "reason": "truncated"}
        w.append([{"galaxy_id": "a"}], {"image": np.zeros((1, 2, 2))}, rejects=[bad])
    assert StampStore(tmp_path / "s").rejects.to_dict("records") == [bad]


@pytest.mark.parametrize(
    ("rows", "arrays", "message"),
    [
        ([{"galaxy_id": "a"}] * 3, {"image": np.zeros((3, 2, 2))}, "at most 2"),
        ([{"galaxy_id": "a"}], {"image": np.zeros((1, 3, 2))}, "expected"),
        ([{"name": "a"}], {"image": np.zeros((1, 2, 2))}, "galaxy_id"),
    ],
    ids=["too-many", "wrong-shape", "no-id"],
)
def test_bad_appends(tmp_path, rows, arrays, message):
    w = StoreWriter(tmp_path / "s", stamp_shape=(2, 2), chunk_size=2)
    with pytest.raises(ValueError, match=message):
        w.append(rows, arrays)


def test_duplicate_ids_refused(tmp_path):
    w = StoreWriter(tmp_path / "s", stamp_shape=(2, 2), chunk_size=1)
    w.append([{"galaxy_id": "a"}], {"image": np.zeros((1, 2, 2))})
    w.append([{"galaxy_id": "a"}], {"image": np.zeros((1, 2, 2))})
    with pytest.raises(ValueError, match="duplicate galaxy_id"):
        w.close()


def test_short_chunk_must_be_last(tmp_path):
    w = StoreWriter(tmp_path / "s", stamp_shape=(2, 2), chunk_size=2)
    w.append([{"galaxy_id": "a"}], {"image": np.zeros((1, 2, 2))})
    with pytest.raises(ValueError, match="must be last"):
        w.append([{"galaxy_id": "b"}], {"image": np.zeros((1, 2, 2))})


def test_not_a_store(tmp_path):
    with pytest.raises(CasnetInputError, match="no such store"):
        StampStore(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CasnetInputError, match="not a casnet store"):
        StampStore(tmp_path / "empty")


def test_catalog_is_parquet_keyed_by_string_id(tmp_path):
    store = _write(tmp_path / "s", 3)
    cat = pd.read_parquet(store.path / "catalog.parquet")
    assert pd.api.types.is_string_dtype(cat["galaxy_id"])


def test_workers_write_chunks_in_place_and_driver_commits_rows(tmp_path):
    from casnet.data.io.store import write_arrays

    w = StoreWriter(tmp_path / "s", stamp_shape=(6, 5), chunk_size=4)
    w.reserve(10)  # as a parallel stage does before dispatching chunks
    for start in (0, 4, 8):  # a "worker" writes each chunk, the driver commits its rows
        n = min(4, 10 - start)
        write_arrays(w.images_path, start, {"image": np.full((n, 6, 5), start, np.float32)})
        w.append([{"galaxy_id": f"g{start + k}"} for k in range(n)], None)
    store = w.close()
    assert len(store) == 10
    np.testing.assert_array_equal(store.array("image")[9], np.full((6, 5), 8))


def test_reserved_space_beyond_the_commits_is_dropped(tmp_path):
    w = StoreWriter(tmp_path / "s", stamp_shape=(6, 5), chunk_size=4)
    w.reserve(12)
    w.append([{"galaxy_id": "a"}], {"image": np.zeros((1, 6, 5))})
    assert len(w.close()) == 1  # the array shape follows the committed rows, not the reservation


@pytest.mark.parametrize("start,stop", [(0, 4), (2, 9), (4, 8), (9, 10), (0, 10), (10, 10)])
def test_catalog_rows_reads_the_chunk_row_groups(tmp_path, start, stop):
    import pyarrow.parquet as pq

    _write(tmp_path / "s", 10, chunk=4)
    # one row group per committed chunk: a worker reads its chunk's rows, not the catalogue
    assert pq.ParquetFile(tmp_path / "s" / "catalog.parquet").num_row_groups == 3
    fresh = StampStore(tmp_path / "s")
    got = fresh.catalog_rows(start, stop)
    want = fresh.catalog.iloc[start:stop].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    # the cached catalogue gives the same, and unknown columns are skipped
    cols = fresh.catalog_rows(start, stop, columns=["value", "no_such_column"])
    pd.testing.assert_frame_equal(cols, want[["value"]])


def test_catalog_parts_with_different_column_types_are_reconciled(tmp_path):
    writer = StoreWriter(tmp_path / "s", stamp_shape=(6, 5), chunk_size=2)
    with writer:
        image = np.zeros((2, 6, 5), np.float32)
        writer.append([{"galaxy_id": "a", "note": None}, {"galaxy_id": "b", "note": None}],
                      {"image": image})  # fmt: skip
        writer.append([{"galaxy_id": "c", "note": "x"}, {"galaxy_id": "d", "note": None}],
                      {"image": image})  # fmt: skip
    cat = StampStore(tmp_path / "s").catalog
    assert cat["galaxy_id"].tolist() == ["a", "b", "c", "d"]
    assert cat["note"].tolist()[2] == "x"


def test_a_second_writer_fails_at_once_and_the_first_store_stays_whole(tmp_path):
    """One writer per store: while a run writes ``s`` (two chunks committed), a second writer of
    ``s`` fails with a message naming it and touches nothing; the first run then completes with
    exactly its own rows, and once it is done the store can be written again."""
    path = tmp_path / "s"
    first = StoreWriter(path, stamp_shape=(6, 5), arrays=("image", "truth"), chunk_size=4,
                        meta={"stage": "test"})  # fmt: skip
    items = list(_items(8))
    for lo in (0, 4):
        rows = [r for r, _ in items[lo : lo + 4]]
        stack = np.stack([im for _, im in items[lo : lo + 4]])
        first.append(rows, {"image": stack, "truth": -stack})
    staged = _digest(Path(f"{path}.partial"))
    with pytest.raises(CasnetInputError, match="another casnet run is writing it"):
        StoreWriter(path, stamp_shape=(6, 5), arrays=("image", "truth"), chunk_size=4,
                    meta={"stage": "other"}, resume=False)  # fmt: skip
    assert _digest(Path(f"{path}.partial")) == staged  # the second writer removed nothing
    store = first.close()
    assert store.catalog["galaxy_id"].tolist() == [f"g{i:03d}" for i in range(8)]
    assert len(_write(path, 3)) == 3  # the lock is released with the first writer


def test_a_failed_writer_releases_its_lock(tmp_path):
    with pytest.raises(RuntimeError):
        _write(tmp_path / "s", 10, crash_at=5)
    assert len(_write(tmp_path / "s", 10)) == 10  # resumes: no stale lock in the way


def test_an_interrupted_close_is_finished_by_the_next_writer(tmp_path, monkeypatch):
    """Issue 19: killed between 'STORE -> STORE.old' and 'STORE.partial -> STORE', the store was
    missing and STORE.old stayed for good."""
    import os

    from casnet.data.io import store as store_module

    path = tmp_path / "s"
    _write(path, 10)
    real = os.replace
    staging = Path(f"{path}.partial")

    def dies_on_the_second_rename(src, dst):  # (zarr's own renames pass through)
        if Path(src) == staging and Path(dst) == path:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(store_module.os, "replace", dies_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        _write(path, 5)
    monkeypatch.setattr(store_module.os, "replace", real)
    assert not path.exists() and Path(f"{path}.old").exists()
    with pytest.raises(CasnetInputError, match=r"left it as \.old and \.partial: rerun"):
        StampStore(path)
    # the next writer finishes the move before it starts: the interrupted (new) store is in place
    writer = StoreWriter(path, stamp_shape=(6, 5), arrays=("image", "truth"), chunk_size=4,
                         meta={"stage": "other"})  # fmt: skip
    assert len(StampStore(path)) == 5 and not Path(f"{path}.old").exists()
    writer._lock.release()


def test_a_leftover_old_store_beside_a_whole_one_is_removed(tmp_path):
    path = tmp_path / "s"
    _write(path, 3)
    old = Path(f"{path}.old")
    old.mkdir()
    (old / "store.json").write_text("{}")  # what a StoreWriter's close leaves there
    (old / "catalog.parquet").write_text("x")
    _write(path, 4)
    assert not old.exists() and len(StampStore(path)) == 4


def test_a_folder_named_like_a_leftover_that_is_not_a_store_is_never_removed(tmp_path):
    """Issue 28: nothing that is not a casnet store is replaced or removed."""
    path = tmp_path / "s"
    _write(path, 3)
    old = Path(f"{path}.old")
    old.mkdir()
    (old / "notes.txt").write_text("mine")
    with pytest.raises(CasnetInputError, match="not a casnet store's staging folder"):
        _write(path, 4)
    assert (old / "notes.txt").read_text() == "mine" and len(StampStore(path)) == 3


def test_a_chunk_that_cannot_be_decoded_is_a_damaged_store_not_a_traceback(tmp_path):
    """Issue 28: a truncated Zarr chunk file was a Zstd traceback (exit 1) in data measure and
    predict."""
    import glob
    import os

    path = tmp_path / "s"
    _write(path, 8)
    chunks = sorted(f for f in glob.glob(f"{path}/**/image/c/**/*", recursive=True)
                    if os.path.isfile(f))  # fmt: skip
    data = Path(chunks[1]).read_bytes()
    Path(chunks[1]).write_bytes(data[: len(data) // 2])
    store = StampStore(path)
    assert store.array("image")[:4].shape == (4, 6, 5)  # the whole chunk still reads
    with pytest.raises(CasnetInputError, match=r"damaged store: a chunk of 'image' cannot be"):
        store.array("image")[4:8]
    proc = subprocess.run(
        [sys.executable, "-c", "from casnet.cli import main; main()", "data", "measure", "--in",
         str(path), "--out", str(tmp_path / "m.parquet"), "--workers", "0", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 3 and "damaged store" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_image_chunk_is_reported_as_a_damaged_store(tmp_path):
    """Zarr reads a missing chunk file as its fill value (NaN): every galaxy of it would become a
    BAD_INPUT row and the command exit 0 (issue 19). Missing chunks of another array (no truth
    for real data: all fill, so Zarr never writes them) are not damage."""
    import glob
    import os

    path = tmp_path / "s"
    rng = np.random.default_rng(0)
    with StoreWriter(path, stamp_shape=(8, 8), chunk_size=4, arrays=("image", "truth")) as w:
        for lo in range(0, 10, 4):
            n = min(4, 10 - lo)
            w.append([{"galaxy_id": f"g{lo + i}"} for i in range(n)],
                     {"image": rng.random((n, 8, 8), dtype=np.float32),
                      "truth": np.full((n, 8, 8), np.nan, np.float32)})  # fmt: skip
    assert StampStore(path).array("truth")[:].shape == (10, 8, 8)  # all fill: fine
    chunks = sorted(f for f in glob.glob(f"{path}/**/image/c/**/*", recursive=True)
                    if os.path.isfile(f))  # fmt: skip
    assert len(chunks) == 3
    os.remove(chunks[1])
    with pytest.raises(CasnetInputError, match="damaged store: 1 of 3 chunk files of 'image'"):
        StampStore(path).array("image")
