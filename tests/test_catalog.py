"""casnet.data.io.catalog: the one catalogue writer (formats by suffix, atomic, clear errors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from casnet.core.errors import CasnetInputError
from casnet.data.io.catalog import SUFFIXES, write_catalog, write_rows

TABLE = pd.DataFrame({"galaxy_id": ["a", "b"], "concentration": [3.1, np.nan],
                      "flag": [0, 4]})  # fmt: skip


@pytest.mark.parametrize("suffix", sorted(SUFFIXES))
def test_every_suffix_round_trips(tmp_path, suffix):
    out = write_catalog(TABLE, tmp_path / f"cat{suffix}")
    back = pd.read_parquet(out) if suffix == ".parquet" else Table.read(out).to_pandas()
    assert back["galaxy_id"].astype(str).tolist() == ["a", "b"]
    assert back["concentration"].iloc[0] == pytest.approx(3.1) and np.isnan(
        back["concentration"].iloc[1]
    )
    assert [p.name for p in tmp_path.iterdir()] == [f"cat{suffix}"]  # no temporary file left


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    """Atomic: an error while writing (here a value Parquet cannot hold) keeps the old file."""
    out = write_catalog(TABLE, tmp_path / "cat.parquet")
    before = out.read_bytes()
    bad = TABLE.assign(concentration=[object(), object()])
    with pytest.raises(Exception):  # noqa: B017 (pyarrow's own error type)
        write_catalog(bad, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cat.parquet"]


def test_missing_folder_and_unknown_suffix_are_clear_errors(tmp_path):
    with pytest.raises(CasnetInputError, match="does not exist"):
        write_catalog(TABLE, tmp_path / "nowhere" / "cat.csv")
    with pytest.raises(CasnetInputError, match="must end in one of"):
        write_catalog(TABLE, tmp_path / "cat.xlsx")
    with pytest.raises(CasnetInputError, match="does not exist"):
        write_rows(TABLE.to_dict("records"), "csv", tmp_path / "nowhere" / "rows.csv")


def test_csv_prints_floats_with_seven_significant_digits_and_parquet_keeps_them(tmp_path):
    """Issue 31: a CSV of C and A is read by people: 2.302460, not 2.302459766867357."""
    table = pd.DataFrame({"galaxy_id": ["a", "b"], "concentration": [2.302459766867357, 3.0],
                          "asymmetry": np.array([0.123456789, -0.5], dtype=np.float32),
                          "flag": [0, 3]})  # fmt: skip
    text = write_catalog(table, tmp_path / "c.csv").read_text()
    assert "2.30246," in text and "2.302459766" not in text
    assert "0.1234568," in text and ",3\n" in text  # float32 too; integers untouched
    rows = write_rows(table.to_dict("records"), "csv", None)
    assert "2.30246," in rows and "2.302459766" not in rows
    back = pd.read_parquet(write_catalog(table, tmp_path / "c.parquet"))
    assert back["concentration"].iloc[0] == 2.302459766867357  # every bit kept
