"""Coverage and the reliability diagram (casnet.core.calibration), against hand-made examples and
the Gaussian's own probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from casnet.core.calibration import coverage, reliability


def test_coverage_of_a_hand_made_example():
    values = [0.0, 0.0, 0.0, 0.0, 1.0]
    preds = [0.5, 1.5, -0.9, 3.0, 1.0]
    sigma = [1.0, 1.0, 1.0, 1.0, 0.1]
    assert coverage(values, preds, sigma) == pytest.approx(3 / 5)  # 0.5, 0.9 and 0 are within
    assert coverage(values, preds, sigma, k=2.0) == pytest.approx(4 / 5)  # 1.5 joins them


def test_missing_or_non_positive_sigma_is_left_out_not_counted_as_covering():
    values, preds = [0.0, 0.0, 0.0, 0.0], [0.1, 0.1, 5.0, 0.1]
    sigma = [1.0, np.nan, 1.0, 0.0]
    assert coverage(values, preds, sigma) == pytest.approx(1 / 2)
    assert np.isnan(coverage([1.0], [1.0], [np.nan]))
    with pytest.raises(ValueError, match="differ in length"):
        coverage([1.0, 2.0], [1.0], [1.0])


def test_a_calibrated_gaussian_lies_on_the_diagonal_and_an_inflated_one_above_it():
    rng = np.random.default_rng(0)
    n = 200_000
    sigma = rng.uniform(0.01, 0.3, n)
    truth = rng.normal(0, 1, n)
    pred = truth + rng.normal(0, sigma)
    table = reliability(truth, pred, sigma)
    # binomial error of a fraction from 200k draws: < 0.0012; 4 of it
    np.testing.assert_allclose(table["observed"], table["nominal"], atol=0.005)
    assert table.loc[table["nominal"] == 0.683, "k"].item() == pytest.approx(1.0, abs=2e-3)
    inflated = reliability(truth, pred, 2 * sigma)
    expected = 2 * norm.cdf(2 * inflated["k"]) - 1  # |z| <= 2k for the true z
    np.testing.assert_allclose(inflated["observed"], expected, atol=0.005)
    assert (inflated["observed"] > inflated["nominal"]).all()
    with pytest.raises(ValueError, match="nominal levels"):
        reliability(truth, pred, sigma, levels=(0.5, 1.0))


def test_the_scale_fitted_on_held_out_data_calibrates_a_doubled_sigma():
    """sigma twice too large (the Gaussian head's dropout inflation): the fitted factor is ~0.5
    and calibrates fresh draws from the same process."""
    from casnet.core.calibration import fit_sigma_scale

    rng = np.random.default_rng(5)
    truth_sigma = rng.uniform(0.05, 0.3, 40_000)
    y = rng.normal(0.0, truth_sigma)
    c = fit_sigma_scale(y[:20_000], np.zeros(20_000), 2 * truth_sigma[:20_000])
    assert c == pytest.approx(0.5, rel=0.03)
    scaled = c * 2 * truth_sigma[20_000:]
    assert coverage(y[20_000:], np.zeros(20_000), scaled) == pytest.approx(0.683, abs=0.015)
    assert coverage(y[20_000:], np.zeros(20_000), scaled, k=2.0) == pytest.approx(0.954, abs=0.01)
    assert fit_sigma_scale([np.nan], [0.0], [1.0]) == 1.0
