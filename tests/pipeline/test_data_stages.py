"""Stages clean, measure and ingest on real stores, and the `casnet data` / `casnet show` CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import CasnetInputError
from casnet.data.settings import CleanConfig, IngestConfig, SimulateConfig, StoreConfig
from casnet.morphology import COLUMNS
from casnet.morphology.settings import MorphologyConfig
from casnet.pipeline import clean, ingest, measure
from casnet.pipeline import simulate as simulate_stage
from casnet.pipeline.settings import DaskConfig

runner = CliRunner()

#: stages run in-process here (one test below compares with real Dask workers)
SERIAL = DaskConfig(workers=0)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "store"
    cfg = SimulateConfig(mag_range=(20.0, 23.5), neighbour_fraction=1.0)
    return simulate_stage.run(
        cfg, 6, StoreConfig(chunk_size=4), out, dask=SERIAL, show_progress=False
    )


@pytest.fixture(scope="module")
def cleaned(simulated, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "store"
    return clean.run(CleanConfig(), StoreConfig(chunk_size=4), simulated.path, out,
                     dask=SERIAL, show_progress=False)  # fmt: skip


def test_clean_stage_cleans_images_and_passes_truth_through(simulated, cleaned):
    assert len(cleaned) == len(simulated)
    assert cleaned.array_names == ["image", "replaced", "truth"]
    np.testing.assert_array_equal(cleaned.array("truth")[:], simulated.array("truth")[:])
    cat = cleaned.catalog
    assert {"clean_replaced_fraction", "clean_flag", "clean_flag_reasons"} <= set(cat.columns)
    assert cat["galaxy_id"].tolist() == simulated.catalog["galaxy_id"].tolist()
    # every stamp has neighbours (neighbour_fraction=1): something was replaced in most stamps
    assert (cat["clean_replaced_fraction"] > 0).sum() >= len(cat) // 2
    changed = cleaned.array("image")[:] != simulated.array("image")[:]
    frac = changed.reshape(len(cat), -1).mean(axis=1)
    np.testing.assert_allclose(frac, cat["clean_replaced_fraction"], atol=1e-9)
    # the replaced pixels are recorded for the measurement: exactly the changed ones
    np.testing.assert_array_equal(cleaned.array("replaced")[:] > 0.5, changed)


def test_measure_stage_leaves_the_replaced_pixels_out(cleaned, tmp_path):
    """The stage measures each stamp with its ``replaced`` mask, as measure(replaced=...) does."""
    from casnet.morphology import measure as measure_one

    table = pd.read_parquet(
        measure.run(MorphologyConfig(), cleaned.path, tmp_path / "m.parquet", dask=SERIAL,
                    show_progress=False).path
    ).set_index("galaxy_id")  # fmt: skip
    k = int(np.argmax(cleaned.catalog["clean_replaced_fraction"].to_numpy()))
    gid = cleaned.catalog["galaxy_id"].iloc[k]
    image = cleaned.array("image")[k]
    with_mask = measure_one(image, replaced=cleaned.array("replaced")[k] > 0.5)
    assert table.loc[gid, "asymmetry"] == pytest.approx(with_mask.asymmetry, nan_ok=True)


def test_clean_stage_is_independent_of_chunking(simulated, cleaned, tmp_path):
    other = clean.run(CleanConfig(), StoreConfig(chunk_size=5), simulated.path, tmp_path / "c",
                      dask=SERIAL, show_progress=False)  # fmt: skip
    np.testing.assert_array_equal(other.array("image")[:], cleaned.array("image")[:])


def test_measure_stage_adds_truth_columns(cleaned, tmp_path):
    done = measure.run(MorphologyConfig(), cleaned.path, tmp_path / "m.parquet",
                       dask=SERIAL, show_progress=False)  # fmt: skip
    table = pd.read_parquet(done.path)
    assert len(table) == len(cleaned) == done.n
    assert done.n_ok == int((table.flag == 0).sum())
    pd.testing.assert_frame_equal(done.head, table.head(len(done.head)))
    # written chunk by chunk with the Measurement field types (not types guessed from values)
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(done.path)
    assert meta.num_row_groups == -(-len(cleaned) // cleaned.chunk_size)
    schema = meta.schema_arrow
    assert schema.field("flag").type == schema.field("n_sky_cells_true").type == pa.int64()
    assert schema.field("concentration").type == pa.float64()
    assert schema.field("flag_reasons_true").type == pa.string()
    assert set(COLUMNS) <= set(table.columns)
    assert {f"{c}_true" for c in COLUMNS} <= set(table.columns)
    ok = table[(table.flag == 0) & (table.flag_true == 0)]
    assert len(ok) >= 3
    # bright galaxies: the noisy and the noiseless measurements agree to a few tenths in C
    assert np.median(np.abs(ok.concentration - ok.concentration_true)) < 0.3


def _write_stamp(path, value, size=101):
    rng = np.random.default_rng(int(value))
    data = rng.normal(0, 1, (size, size)).astype(np.float32)
    data[45:56, 45:56] += value
    fits.PrimaryHDU(data).writeto(path)


def test_ingest_stage_stores_good_files_rejects_bad_and_joins_labels(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(3):
        _write_stamp(raw / f"gal{i}.fits", 50 + i)
    (raw / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    labels = tmp_path / "labels.csv"
    labels.write_text("galaxy_id,C,A\ngal0,3.1,0.05\ngal2,2.5,0.3\n")
    store = ingest.run(IngestConfig(), StoreConfig(chunk_size=2), [raw], tmp_path / "s",
                       labels=labels, show_progress=False)  # fmt: skip
    assert store.catalog["galaxy_id"].tolist() == ["gal0", "gal1", "gal2"]
    assert store.catalog["label_concentration"].tolist()[0] == pytest.approx(3.1)
    assert np.isnan(store.catalog["label_concentration"].tolist()[1])
    rej = store.rejects
    assert rej["galaxy_id"].tolist() == ["broken"]
    assert "broken.fits" in rej["source"][0]


def test_ingest_of_nothing_usable_fails_clearly(tmp_path):
    """The message says why the inputs were rejected, and no staging folder is left (issue 19:
    'all rejected' said nothing and left OUT.partial)."""
    (tmp_path / "only.fits").write_bytes(b"junk")
    (tmp_path / "also.fits").write_bytes(b"junk too")
    with pytest.raises(CasnetInputError, match="no usable galaxy") as info:
        ingest.run(IngestConfig(), StoreConfig(), [tmp_path / "only.fits", tmp_path / "also.fits"],
                   tmp_path / "s", show_progress=False)  # fmt: skip
    assert "2 inputs, all rejected: 2 x " in str(info.value)
    assert "FITS" in str(info.value)  # the reason itself
    assert not (tmp_path / "s.partial").exists() and not (tmp_path / "s").exists()


def test_cli_data_chain_and_show(tmp_path):
    s, c, m = tmp_path / "s", tmp_path / "c", tmp_path / "m.parquet"
    assert (
        runner.invoke(
            app, ["data", "simulate", "--n", "5", "--out", str(s), "-q", "--workers", "0"]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["data", "clean", "--in", str(s), "--out", str(c), "-q", "--workers", "0"]
        ).exit_code
        == 0
    )
    res = runner.invoke(app, ["data", "measure", "--in", str(c), "--out", str(m), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "concentration" in res.stdout
    png = tmp_path / "grid.png"
    res = runner.invoke(
        app, ["show", str(c), "--measurements", str(m), "--sort", "asymmetry", "--out", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in res.stdout


def test_cli_bad_store_is_a_clean_error(tmp_path):
    res = runner.invoke(app, ["data", "clean", "--in", str(tmp_path / "nope"), "--out", "x"])
    assert res.exit_code != 0
    assert isinstance(res.exception, CasnetInputError) or "no such store" in res.output


def test_a_second_measure_to_one_output_fails_and_the_first_output_stays(cleaned, tmp_path):
    """One writer per output: while another run holds the table, measure fails at once with a
    message naming it, and the existing table is untouched (no shared OUT.tmp any more)."""
    from casnet.core.locking import output_lock

    out = tmp_path / "m.parquet"
    measure.run(MorphologyConfig(), cleaned.path, out, dask=SERIAL, show_progress=False)
    before = out.read_bytes()
    with output_lock(out), pytest.raises(CasnetInputError, match="another casnet run"):
        measure.run(MorphologyConfig(), cleaned.path, out, dask=SERIAL, show_progress=False)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet"]  # no temporary file left


def test_two_concurrent_simulate_runs_never_mix_one_store(tmp_path):
    """The probe's reproduction: two `casnet data simulate` with different seeds to one --out,
    started together. Whatever the timing, the store holds one run's galaxies only; a run that
    met the other's lock exits 3 with a one-line message."""
    import subprocess
    import sys

    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "casnet.cli", "data", "simulate", "--out", str(out),
           "--n", "120", "--workers", "0", "--quiet"]  # fmt: skip
    procs = [subprocess.Popen([*cmd, "--seed", str(seed)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for seed in (1, 2)]  # fmt: skip
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes in ([0, 0], [0, 3]), results
    for rc, err in results:
        if rc == 3:
            assert "another casnet run is writing it" in err and "Traceback" not in err
    from casnet.data.io.store import StampStore

    store = StampStore(out)
    assert len(store) == 120
    ids = store.catalog["galaxy_id"].tolist()
    assert len(set(ids)) == 120
    prefixes = {gid.rsplit("-", 1)[0] for gid in ids}  # galaxy ids are sim<seed>-<index>
    assert len(prefixes) == 1, prefixes  # one run's galaxies only
