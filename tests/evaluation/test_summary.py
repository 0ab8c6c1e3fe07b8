"""The evaluation summary cannot make a broken network look like a result (issue 16)."""

from __future__ import annotations

import re

import numpy as np

from casnet.core.scores import degenerate_reason
from casnet.evaluation.result import SuiteResult
from casnet.evaluation.run import DEGENERATE, summary_markdown


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
