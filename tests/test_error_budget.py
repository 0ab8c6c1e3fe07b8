"""The error-budget benchmark's table (casnet benchmark errors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casnet.bench.error_budget import budget_table, error_budget, format_budget
from casnet.data.settings import SimulateConfig


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": ["disk", "disk", "clumpy", "clumpy", "disk"],
            "snr_p": [2.5, 12.0, 4.0, 30.0, 1.0],
            "flag": [0, 0, 0, 0, 0],
            "clean_flag": [0, 0, 0, 2, 0],
            "c": [3.0, 3.2, 2.9, 3.0, 9.0],
            "c_true": [3.1, 3.1, 3.0, 3.0, 0.0],
            "a": [0.0, 0.02, 0.2, 0.3, 9.0],
            "a_true": [0.01, 0.0, 0.3, 0.3, 0.0],
            "c_err": [0.1] * 5,
            "a_err": [0.01] * 5,
            "sm_c": [np.nan] * 5,
            "sm_a": [np.nan] * 5,
            "sm_c_true": [np.nan] * 5,
            "sm_a_true": [np.nan] * 5,
        }
    )


def test_budget_table_by_hand():
    """Bias and scatter of a hand-made set: the BLENDED row and the SNR_p < 2 row do not count."""
    table = budget_table(_rows()).set_index("group")
    assert table.loc["all", "n"] == 3
    assert table.loc["all", "c_bias"] == pytest.approx(np.mean([-0.1, 0.1, -0.1]))
    assert table.loc["kind clumpy", "a_bias"] == pytest.approx(-0.1)
    assert table.loc["SNR_p > 10", "c_bias"] == pytest.approx(0.1)
    assert table.loc["all", "a_scatter"] == pytest.approx(np.std([-0.01, 0.02, -0.1], ddof=1))
    assert "| kind disk | 2 |" in format_budget(budget_table(_rows()))


def test_error_budget_rows_compare_with_the_truth():
    sim = SimulateConfig(mag_range=(20.0, 21.0), neighbour_fraction=0.0)
    rows = error_budget(10, sim=sim, use_statmorph=False)
    assert len(rows) == 10  # every galaxy has a row, flagged or not
    good = rows[np.isfinite(rows["c"])]  # large bright galaxies are flagged STAMP_FILLED
    assert len(good) >= 8
    # bright galaxies: measured close to the idealised truth (observed medians 0.04 and 0.025)
    assert np.nanmedian(np.abs(good["c"] - good["c_true"])) < 0.2
    assert np.nanmedian(np.abs(good["a"] - good["a_true"])) < 0.06
