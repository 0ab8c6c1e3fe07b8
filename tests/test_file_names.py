"""Any file name the OS gives gets its row: names that are not UTF-8 (``caf\\xe9.fits`` in Latin-1)
through ``casnet measure``, ingest and predict, written in the documented reversible form
(:func:`casnet.data.io.fits.path_text`). Such a name used to end the run in a UnicodeEncodeError
and lose every result."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from casnet.data.io.fits import path_bytes, path_text
from casnet.data.settings import IngestConfig, SimulateConfig, StoreConfig
from casnet.data.simulate import simulate_galaxy

LATIN1 = b"caf\xe9"  # not UTF-8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two stamps: one with a UTF-8 name, one whose name is Latin-1 bytes."""
    root = tmp_path_factory.mktemp("names")
    image = simulate_galaxy(0, SimulateConfig()).image
    fits.PrimaryHDU(image).writeto(root / "good.fits")
    raw = os.path.join(os.fsencode(root), LATIN1 + b".fits")
    fits.PrimaryHDU(image).writeto(os.fsdecode(raw))
    return root


def test_path_text_is_reversible():
    name = os.fsdecode(b"/data/" + LATIN1 + b".fits")
    assert path_text(name) == "/data/caf\\xe9.fits"
    assert path_bytes(path_text(name)) == b"/data/" + LATIN1 + b".fits"
    assert path_text("/data/ok_\u00e9.fits") == "/data/ok_\u00e9.fits"  # UTF-8 stays as it is


def _measure_csv(folder, out) -> pd.DataFrame:
    """``casnet measure FOLDER --format csv --out OUT`` in a process of its own; its rows."""
    proc = subprocess.run([sys.executable, "-m", "casnet.cli", "measure", str(folder), "--format",
                           "csv", "--out", str(out)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return pd.read_csv(out)


def test_measure_writes_a_row_for_the_odd_name(folder, tmp_path):
    rows = _measure_csv(folder, tmp_path / "m.csv")
    assert sorted(rows["source"].map(os.path.basename)) == ["caf\\xe9.fits", "good.fits"]
    assert rows["concentration"].notna().all()  # the odd name is measured like any other


def test_ingest_stores_the_odd_name(folder, tmp_path):
    from casnet.pipeline import ingest

    store = ingest.run(IngestConfig(), StoreConfig(chunk_size=4), [str(folder)], tmp_path / "s",
                       show_progress=False)  # fmt: skip
    ids = sorted(store.catalog["galaxy_id"])
    assert ids == ["caf\\xe9", "good"]
    assert np.isfinite(store.array("image")[:]).any(axis=(1, 2)).all()


def test_ingest_rejects_an_unreadable_odd_name_with_its_row(folder, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    fits.PrimaryHDU(np.ones((101, 101), np.float32)).writeto(bad / "ok.fits")
    with open(os.path.join(os.fsencode(bad), LATIN1 + b"-broken.fits"), "wb") as fh:
        fh.write(b"not a FITS file")
    from casnet.pipeline import ingest

    store = ingest.run(IngestConfig(), StoreConfig(chunk_size=4), [str(bad)], tmp_path / "s",
                       show_progress=False)  # fmt: skip
    assert store.catalog["galaxy_id"].tolist() == ["ok"]
    assert store.rejects["galaxy_id"].tolist() == ["caf\\xe9-broken"]


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """A good stamp beside a broken symbolic link and one that points at itself."""
    root = tmp_path_factory.mktemp("links")
    fits.PrimaryHDU(simulate_galaxy(0, SimulateConfig()).image).writeto(root / "good.fits")
    os.symlink("nowhere.fits", root / "broken.fits")
    os.symlink("loop.fits", root / "loop.fits")
    return root


REASONS = {"broken": "broken symbolic link", "loop": "symbolic link loop"}


def test_measure_gives_broken_and_looping_links_their_rows(linked, tmp_path):
    rows = _measure_csv(linked, tmp_path / "m.csv")
    rows = rows.set_index(rows["source"].map(os.path.basename))
    assert sorted(rows.index) == ["broken.fits", "good.fits", "loop.fits"]
    for name, reason in REASONS.items():
        assert reason in rows.loc[f"{name}.fits", "flag_reasons"]
    assert np.isfinite(rows.loc["good.fits", "concentration"])


def test_ingest_rejects_broken_and_looping_links_saying_why(linked, tmp_path):
    from casnet.pipeline import ingest

    store = ingest.run(IngestConfig(), StoreConfig(chunk_size=4), [str(linked)], tmp_path / "s",
                       show_progress=False)  # fmt: skip
    assert store.catalog["galaxy_id"].tolist() == ["good"]
    rejects = store.rejects.set_index("galaxy_id")
    for name, reason in REASONS.items():
        assert reason in rejects.loc[name, "reason"]


def test_predict_gives_broken_and_looping_links_their_rows(linked):
    from casnet.networks import pretrained
    from casnet.networks.predict import predict

    table = predict([linked], str(pretrained.model_path()), progress=False).set_index("galaxy_id")
    assert sorted(table.index) == ["broken", "good", "loop"]
    assert table.loc["good", "predict_flag"] == 0
    for name, reason in REASONS.items():
        assert table.loc[name, "predict_flag"] != 0
        assert reason in table.loc[name, "predict_flag_reasons"]
