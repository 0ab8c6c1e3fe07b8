"""The evaluation summary cannot make a broken network look like a result (issue 16), nor a sigma
that covers everything look calibrated (issue 28)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from casnet.core.scores import degenerate_reason
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.run import DEGENERATE, MISCALIBRATED, summary_markdown


def test_a_constant_or_uncorrelated_network_is_degenerate():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0.0, 0.5, 300)
    good = labels + rng.normal(0, 0.05, 300)
    assert degenerate_reason(labels, good) is None
    # the demo's asymmetry network: ~0.020 for every galaxy (r 0.22, spread 4%)
    constant = 0.02 + 0.2 * (labels - labels.mean()) * 0.05 + rng.normal(0, 0.002, 300)
    assert "spread" in degenerate_reason(labels, constant) or "Pearson" in degenerate_reason(
        labels, constant
    )
    assert "Pearson r" in degenerate_reason(labels, np.full(300, 0.02))  # r undefined
    assert "< 0.3 with the labels" in degenerate_reason(labels, rng.permutation(good))
    # correlated but squeezed: r fine, spread 10% of the labels'
    squeezed = labels.mean() + 0.1 * (good - good.mean())
    assert "spread 10%" in degenerate_reason(labels, squeezed)
    assert degenerate_reason([0.1, 0.2], [0.1, 0.2]) == "2 test galaxies"


def _results():
    test = SuiteResult("test", degenerate={"asymmetry": "Pearson r 0.22 < 0.3 with the labels"})
    test.summary = [
        {"quantity": "C RMSE vs label (test)", "network": 0.21, "conventional": np.nan,
         "target": "concentration", "n": 120},
        {"quantity": "A RMSE vs label (test)", "network": 0.075, "conventional": np.nan,
         "target": "asymmetry", "n": 120},
    ]  # fmt: skip
    noise = SuiteResult("noise")
    noise.summary = [
        {"quantity": "A scatter (SNR_p >= 5) (noise)", "network": 0.0, "conventional": 0.0168,
         "paper": "0.025 / 0.037", "target": "asymmetry", "n": 60},
        {"quantity": "C scatter (SNR_p >= 5) (noise)", "network": 0.03, "conventional": 0.05,
         "paper": "0.04 / 0.07", "target": "concentration", "n": 60},
    ]  # fmt: skip
    return [test, noise]


def test_a_degenerate_network_is_not_compared_with_the_paper():
    text = summary_markdown(_results())
    lines = text.splitlines()
    assert lines[0].startswith("**The asymmetry network is degenerate (not a result)**")
    a_scatter = next(line for line in lines if line.startswith("| A scatter"))
    assert DEGENERATE in a_scatter
    assert "0.025" not in a_scatter  # the paper's number is not set beside it
    assert "0.0168" in a_scatter  # the conventional measurement's stands
    assert "| 0.0000 |" not in a_scatter  # the 'zero scatter' that beat the paper is gone
    c_scatter = next(line for line in lines if line.startswith("| C scatter"))
    assert "0.0300" in c_scatter and "0.04 / 0.07" in c_scatter
    header = next(line for line in lines if line.startswith("| quantity"))
    assert [c.strip() for c in header.strip("|").split("|")][:2] == ["quantity", "n"]
    assert "| 120 |" in next(line for line in lines if line.startswith("| C RMSE"))


def test_without_a_degenerate_network_the_summary_is_a_plain_table():
    results = _results()
    results[0].degenerate = {}
    text = summary_markdown(results)
    assert text.startswith("| quantity")
    assert DEGENERATE not in text
    assert "0.025 / 0.037" in text


def test_blank_rows_and_counts_print_as_written():
    # a suite that found nothing gives a row without numbers; counts are integers; the paper's
    # figures are quoted as written (the fresh-clone demo of 2026-12-01 printed "nan" and
    # "42.0000" here)
    test = SuiteResult("test")
    test.summary = [{"quantity": "C RMSE vs label (test)", "network": 0.25, "conventional": np.nan,
                     "target": "concentration", "n": 42, "paper": "0.21"}]  # fmt: skip
    noise = SuiteResult("noise")
    noise.summary = [{"quantity": "noise suite: no galaxy passes the selection",
                      "network": np.nan, "conventional": np.nan}]  # fmt: skip
    text = summary_markdown([test, noise])
    assert "nan" not in text.lower()
    assert re.search(r"\|\s+42\s+\|", text) and "42.0" not in text
    assert "0.21 " in text and "0.2100" not in text


def _test_table(sigma_scale: float) -> pd.DataFrame:
    """300 test galaxies whose network residuals are N(0, 0.1) against the labels (no truth:
    real data), with the network's sigma ``sigma_scale * 0.1``."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"galaxy_id": [f"g{i}" for i in range(300)],
                          "snr_p": rng.uniform(3, 50, 300)})  # fmt: skip
    for t, scale in (("concentration", 1.0), ("asymmetry", 0.1)):
        table[f"label_{t}"] = rng.uniform(2.0, 4.0, 300) * scale
        table[f"net_{t}"] = table[f"label_{t}"] + rng.normal(0, 0.1 * scale, 300)
        table[f"net_{t}_err"] = sigma_scale * 0.1 * scale
        table[f"conventional_{t}"] = table[f"label_{t}"]  # our labels are that measurement
        table[f"conventional_{t}_err"] = np.nan
    return table


def test_an_over_covering_sigma_is_marked_miscalibrated(tmp_path):
    """The demo's C network served sigma ~40 for C ~ 2-3: coverage 1.0000 at 1 and 2 sigma,
    printed as if it were a result. The summary says "sigma miscalibrated" on its coverage lines,
    a note above the table says why, the metric says 1; its RMSE line stands."""
    from casnet.evaluation.test_set import _calibration

    table = _test_table(1.0)
    table["net_concentration_err"] = 40.0  # the demo's sigma; A's stays calibrated
    result = SuiteResult("test")
    rmse = {"quantity": "C RMSE vs label (test)", "network": 0.1, "target": "concentration",
            "n": 300}  # fmt: skip
    result.summary.append(rmse)
    _calibration(table, result, tmp_path, has_truth=False, external=False)
    assert list(result.miscalibrated) == ["concentration"]
    assert result.metrics["concentration_sigma_miscalibrated"] == 1.0
    assert result.metrics["asymmetry_sigma_miscalibrated"] == 0.0
    frame = result.tables["test_calibration"]
    net = frame[(frame["method"] == "network") & (frame["snr"] == "all")].set_index("target")
    assert not net.loc["concentration", "calibrated"] and net.loc["asymmetry", "calibrated"]

    lines = summary_markdown([result]).splitlines()
    assert lines[0].startswith("**The concentration network's sigma is miscalibrated**")
    assert "1.000 at 1 sigma (accepted " in lines[0] and "against the labels" in lines[0]
    for k in (1, 2):
        c_cov = next(line for line in lines if line.startswith(f"| C coverage at {k} sigma"))
        assert f"{MISCALIBRATED} (1.0000)" in c_cov
        a_cov = next(line for line in lines if line.startswith(f"| A coverage at {k} sigma"))
        assert MISCALIBRATED not in a_cov
    c_rmse = next(line for line in lines if line.startswith("| C RMSE"))
    assert "0.1000" in c_rmse and MISCALIBRATED not in c_rmse


@pytest.mark.parametrize("sigma_scale", [1 / 40, 1.0])
def test_too_narrow_is_miscalibrated_and_a_calibrated_sigma_is_not(tmp_path, sigma_scale):
    from casnet.evaluation.test_set import _calibration

    result = SuiteResult("test")
    _calibration(_test_table(sigma_scale), result, tmp_path, has_truth=False, external=False)
    text = summary_markdown([result])
    if sigma_scale == 1.0:
        assert result.miscalibrated == {} and MISCALIBRATED not in text
    else:
        assert set(result.miscalibrated) == {"concentration", "asymmetry"}
        assert text.count(f"{MISCALIBRATED} (") == 4  # 2 targets x 1 and 2 sigma


def test_a_degenerate_network_is_not_also_called_miscalibrated():
    results = _results()
    results[0].miscalibrated = {"asymmetry": "coverage 1.000 at 1 sigma (accepted 0.60-0.76)"}
    results[0].summary.append({"quantity": "A coverage at 1 sigma vs label (test)",
                               "network": 1.0, "target": "asymmetry", "n": 120,
                               "sigma": True})  # fmt: skip
    text = summary_markdown(results)
    assert MISCALIBRATED not in text
    a_cov = next(line for line in text.splitlines() if line.startswith("| A coverage"))
    assert DEGENERATE in a_cov
