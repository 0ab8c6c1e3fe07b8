"""Per-SNR_p scores of the test suite (Sec. 4.1, issue 16) against hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casnet.evaluation.test_set import PAPER, SNR_EDGES, scores_by_snr


def _table() -> pd.DataFrame:
    """Two galaxies per SNR_p bin; the network is off by +0.1 (C) / +0.02 (A) at SNR_p <= 5 and
    exact above; the conventional measurement is off by -0.3 (C) everywhere."""
    rows = []
    for snr in (2.5, 2.8, 4.0, 4.5, 7.0, 8.0, 15.0, 16.0, 40.0, 50.0):
        c, a = 3.0 + snr / 100, 0.1
        low = snr <= 5
        rows.append({"galaxy_id": f"g{snr}", "snr_p": snr, "true_concentration": c,
                     "true_asymmetry": a, "net_concentration": c + (0.1 if low else 0.0),
                     "net_asymmetry": a + (0.02 if low else 0.0),
                     "conventional_concentration": c - 0.3,
                     "conventional_asymmetry": a})  # fmt: skip
    return pd.DataFrame(rows)


def test_scores_by_snr_bin_by_hand():
    got = scores_by_snr(_table(), "true")
    assert len(got) == (len(SNR_EDGES) - 1) * 2 * 2  # bins x targets x methods
    assert (got["n"] == 2).all()

    def row(lo, target, method):
        return got[(got["snr_lo"] == lo) & (got["target"] == target)
                   & (got["method"] == method)].iloc[0]  # fmt: skip

    assert row(2.0, "concentration", "network")["bias"] == pytest.approx(0.1)
    assert row(2.0, "concentration", "network")["mae"] == pytest.approx(0.1)
    assert row(3.0, "asymmetry", "network")["rmse"] == pytest.approx(0.02)
    assert row(10.0, "asymmetry", "network")["rmse"] == pytest.approx(0.0, abs=1e-12)
    conv = row(20.0, "concentration", "conventional")
    assert conv["bias"] == pytest.approx(-0.3)
    c = np.array([3.40, 3.50])
    assert conv["fractional_rmse"] == pytest.approx(np.sqrt(np.mean((0.3 / c) ** 2)))
    assert np.isnan(row(20.0, "asymmetry", "conventional")["fractional_rmse"])


def test_paper_test_set_figures_are_the_published_ones():
    # Tohill et al. 2021 Sec. 4.1 (issue 17 quotes them)
    assert PAPER[("concentration", "rmse")] == 0.21 and PAPER[("asymmetry", "mae")] == 0.045
    assert PAPER[("concentration", "pearson_r")] == 0.75
