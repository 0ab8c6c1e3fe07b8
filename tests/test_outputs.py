"""Outputs that cannot destroy inputs (issue 28): every writer checks where it writes before any
work; killed runs' leftovers are removed by the next run."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from casnet.core.errors import CasnetInputError
from casnet.core.locking import scratch_dir
from casnet.data.io.fits import write_image
from casnet.data.io.outputs import check_output, is_store, remove_stale_temporaries
from casnet.data.io.store import StoreWriter


def _console(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The real console script (its exit statuses and messages)."""
    return subprocess.run([sys.executable, "-c", "from casnet.cli import main; main()", *args],
                          capture_output=True, text=True, check=False, cwd=cwd)  # fmt: skip


def _digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) by content: what 'nothing touched' means."""
    files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _store(path: Path, n: int = 3, *, labels: bool = True) -> Path:
    rng = np.random.default_rng(1)
    rows = [{"galaxy_id": f"g{i}", "label_concentration": 2.5, "label_asymmetry": 0.1}
            for i in range(n)]  # fmt: skip
    with StoreWriter(path, stamp_shape=(60, 60), chunk_size=n) as w:
        w.append(rows, {"image": rng.random((n, 60, 60)).astype(np.float32)})
    return path


@pytest.fixture
def notes(tmp_path) -> Path:
    """A user's own folder: notes and a FITS stamp."""
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "notes.txt").write_text("three nights of observing\n")
    write_image(folder / "mine.fits", np.ones((64, 64)))
    return folder


def _refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 3, proc.stderr
    # one error line (TensorFlow's own start-up lines may come before it)
    assert "Traceback" not in proc.stderr and proc.stderr.count("casnet: error:") == 1
    for word in words:
        assert word in proc.stderr, proc.stderr


# -- the check itself -------------------------------------------------------------------------


def test_a_store_is_written_only_where_nothing_an_empty_folder_or_a_store_is(tmp_path, notes):
    assert check_output(tmp_path / "new", kind="store") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", kind="store")
    store = _store(tmp_path / "s")
    assert is_store(store) and not is_store(notes)
    check_output(store, kind="store")
    with pytest.raises(CasnetInputError, match="not a casnet store"):
        check_output(notes, kind="store")
    with pytest.raises(CasnetInputError, match="not a folder"):
        check_output(notes / "notes.txt", kind="store")
    with pytest.raises(CasnetInputError, match="is a folder"):
        check_output(notes, kind="file")


@pytest.mark.parametrize(
    ("out", "inp", "words"),
    [("a", "a", "is the input"), ("a/x.csv", "a", "is inside the input"),
     ("a", "a/b/c.fits", "holds the input"), ("a/b", "a/*.fits", "is inside the input")],
)  # fmt: skip
def test_an_output_is_never_an_input_inside_one_or_holding_one(tmp_path, out, inp, words):
    with pytest.raises(CasnetInputError, match=words):
        check_output(tmp_path / out, kind="file", inputs=[tmp_path / inp])
    check_output(tmp_path / "elsewhere.csv", kind="file", inputs=[tmp_path / inp])


def test_a_link_to_an_input_is_the_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "in")
    with pytest.raises(CasnetInputError, match="is the input"):
        check_output(tmp_path / "link", kind="store", inputs=[tmp_path / "in"])


def test_a_user_folder_named_like_the_staging_folder_is_not_removed(tmp_path):
    mine = tmp_path / "s.partial"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(CasnetInputError, match="staging folder"):
        StoreWriter(tmp_path / "s", stamp_shape=(4, 4), chunk_size=2)
    assert (mine / "keep.txt").read_text() == "mine"


def test_a_store_written_over_a_store_replaces_it(tmp_path):
    from casnet.data.io.store import StampStore

    _store(tmp_path / "s", 3)
    _store(tmp_path / "s", 5)
    assert len(StampStore(tmp_path / "s")) == 5


# -- the commands -----------------------------------------------------------------------------


def test_simulate_over_a_users_folder_is_refused_and_nothing_touched(notes):
    before = _digest(notes)
    proc = _console("data", "simulate", "--out", str(notes), "--n", "2", "--workers", "0",
                    "--quiet")  # fmt: skip
    _refused(proc, "not a casnet store")
    assert _digest(notes) == before
    assert not Path(f"{notes}.partial").exists()


def test_ingest_into_its_own_input_folder_is_refused(notes):
    before = _digest(notes)
    proc = _console("data", "ingest", "--input", str(notes), "--out", str(notes), "--quiet")
    _refused(proc, "is the input")
    assert _digest(notes) == before


@pytest.mark.parametrize("stage", ["clean", "select", "augment", "split"])
def test_a_stage_never_rewrites_its_input_store(tmp_path, stage):
    store = _store(tmp_path / "S")
    before = _digest(store)
    args = ["data", stage, "--in", str(store), "--out", str(store)]
    if stage == "select":
        table = tmp_path / "m.parquet"
        made = _console("data", "measure", "--in", str(store), "--out", str(table), "--workers",
                        "0", "--no-truth", "--quiet")  # fmt: skip
        assert made.returncode == 0, made.stderr
        args += ["--measurements", str(table)]
    proc = _console(*args, "--quiet")
    _refused(proc, str(store))
    assert _digest(store) == before


def test_measure_stage_into_a_store_folder_is_one_line_and_leaves_nothing(tmp_path):
    store = _store(tmp_path / "S")
    other = _store(tmp_path / "T")
    before = _digest(other)
    proc = _console("data", "measure", "--in", str(store), "--out", str(other), "--workers",
                    "0", "--quiet")  # fmt: skip
    _refused(proc, "is a folder")
    assert _digest(other) == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_never_writes_over_an_input(tmp_path):
    stamps = tmp_path / "in"
    stamps.mkdir()
    write_image(stamps / "stamp_00000.fits", np.ones((64, 64)))
    store = _store(tmp_path / "S")
    before = {**_digest(stamps), **_digest(store)}
    for inp, out in ((stamps, stamps / "stamp_00000.fits"), (store, store / "catalog.parquet")):
        proc = _console("predict", str(inp), "--out", str(out), "--quiet")
        _refused(proc, "inside the input")
    assert {**_digest(stamps), **_digest(store)} == before


def test_measure_refuses_an_output_inside_its_inputs(tmp_path):
    stamps = tmp_path / "in"
    stamps.mkdir()
    write_image(stamps / "a.fits", np.ones((64, 64)))
    proc = _console("measure", str(stamps), "--format", "csv", "--out", str(stamps / "a.fits"))
    _refused(proc, "inside the input")


# -- leftovers of killed runs -----------------------------------------------------------------


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(tmp_path):
    stamps = tmp_path / "in"
    stamps.mkdir()
    write_image(stamps / "a.fits", np.ones((64, 64)))
    out = tmp_path / "table.csv"
    stale = tmp_path / ".table.csv.k1ll3d.tmp"
    stale.write_text("half a table")
    other = tmp_path / ".other.csv.k1ll3d.tmp"  # another output's: not ours to remove
    other.write_text("x")
    proc = _console("measure", str(stamps), "--format", "csv", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and not stale.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / "nowhere" / "x") == []


def _hold_scratch(prefix: str) -> subprocess.Popen:
    """Another process holding a scratch folder (an OS lock is per process)."""
    code = (
        "import time\nfrom casnet.core.locking import scratch_dir\n"
        f"with scratch_dir({prefix!r}) as d:\n"
        "    print(d, flush=True)\n"
        "    time.sleep(60)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_scratch_folders_of_dead_runs_are_removed_and_live_ones_kept(monkeypatch):
    prefix = f"casnet-test-{os.getpid()}-"
    tmp = Path(tempfile.gettempdir())
    dead = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp))
    (dead / "model.keras").write_bytes(b"x" * 100)
    holder = _hold_scratch(prefix)
    try:
        live = Path(holder.stdout.readline().strip())
        old = time.time() - 3600  # both older than the grace period
        os.utime(dead, (old, old))
        os.utime(live, (old, old))
        with scratch_dir(prefix) as mine:
            assert mine.is_dir()
            assert not dead.exists()
            assert live.is_dir()
        assert not mine.exists()
    finally:
        holder.kill()
        holder.wait()
    with scratch_dir(prefix):  # the killed holder's folder goes now
        assert not live.exists()
