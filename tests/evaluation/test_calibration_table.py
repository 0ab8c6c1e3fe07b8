"""Coverage tables and the reliability diagram of per-galaxy sigmas (casnet.evaluation.calibration,
issue 18) against hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casnet.evaluation.calibration import (
    calibration_score,
    calibration_table,
    has_sigma,
    reliability_figure,
)


def _table() -> pd.DataFrame:
    """Ten galaxies, five at SNR_p 3 and five at 30. Against the truth the network is off by 0.1
    for seven and 0.3 for three (sigma 0.2: 70% within 1 sigma, 100% within 2); the conventional
    value is off by 0.3 for all (sigma 0.1: none within 2 sigma)."""
    err = np.array([0.1] * 7 + [0.3] * 3)
    sign = np.where(np.arange(10) % 2, 1.0, -1.0)
    truth = np.linspace(2.5, 3.5, 10)
    table = pd.DataFrame({"snr_p": [3.0] * 5 + [30.0] * 5})
    for t, scale in (("concentration", 1.0), ("asymmetry", 0.1)):
        table[f"true_{t}"] = truth * scale
        table[f"label_{t}"] = truth * scale
        table[f"net_{t}"] = (truth + sign * err) * scale
        table[f"net_{t}_err"] = 0.2 * scale
        table[f"conventional_{t}"] = (truth + 0.3) * scale
        table[f"conventional_{t}_err"] = 0.1 * scale
    return table


METHODS = {"net": "network", "conventional": "conventional"}


def test_coverage_by_hand_overall_and_per_bin():
    got = calibration_table(_table(), METHODS, snr_edges=(2.0, 10.0, np.inf),
                            skip=[("conventional", "label")])  # fmt: skip
    # 2 targets x (network: truth + label, conventional: truth) x 3 bins (all + 2)
    assert len(got) == 2 * 3 * 3
    assert not ((got["method"] == "conventional") & (got["reference"] == "label")).any()

    def row(method, target, reference, snr):
        sel = (got["method"] == method) & (got["target"] == target)
        return got[sel & (got["reference"] == reference) & (got["snr"] == snr)].iloc[0]

    net = row("network", "asymmetry", "truth", "all")
    assert net["n"] == 10
    assert net["coverage_1sigma"] == pytest.approx(0.7)
    assert net["coverage_2sigma"] == pytest.approx(1.0)
    assert net["median_sigma"] == pytest.approx(0.02)
    # 7 of 10 within 1 sigma and 10 of 10 within 2: what calibrated sigmas give on 10 galaxies
    # (0.954^10 = 62%); the ranges widen by the binomial error of so small a sample
    assert net["calibrated"]
    assert not row("conventional", "concentration", "truth", "all")["calibrated"]
    assert row("network", "concentration", "truth", "2-10")["coverage_1sigma"] == pytest.approx(1.0)
    assert row("network", "concentration", "truth", "10-inf")["coverage_1sigma"] == pytest.approx(
        0.4
    )
    assert row("conventional", "concentration", "truth", "all")["coverage_2sigma"] == 0.0


def test_the_better_calibrated_method_scores_lower():
    table = _table()
    table["good_concentration"] = table["net_concentration"]
    table["good_concentration_err"] = 0.18  # 0.1 within 1 sigma, 0.3 within 2: 70% and 100%
    table["good_asymmetry"], table["good_asymmetry_err"] = table["net_asymmetry"], 0.018
    frame = calibration_table(table, {**METHODS, "good": "good"}, references=("true",))
    score = calibration_score(frame)
    assert score.index[-1] == "conventional"
    assert score["conventional"] == pytest.approx(0.6827 + 0.9545)
    assert score["network"] == pytest.approx(abs(0.7 - 0.6827) + abs(1.0 - 0.9545))


def test_missing_sigmas_are_left_out_not_counted_as_covered():
    table = _table()
    table.loc[:4, "net_concentration_err"] = np.nan
    got = calibration_table(table, {"net": "network"}, references=("true",))
    c = got[got["target"] == "concentration"].iloc[0]
    assert c["n"] == 5
    assert has_sigma(table, "net")
    table["net_concentration_err"] = np.nan
    table["net_asymmetry_err"] = np.nan
    assert not has_sigma(table, "net")


def test_reliability_figure_is_written(tmp_path):
    out = reliability_figure(_table(), METHODS, tmp_path / "rel.png", reference="true")
    assert out.exists() and out.stat().st_size > 10_000
