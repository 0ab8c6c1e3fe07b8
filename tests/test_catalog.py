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
