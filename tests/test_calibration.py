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


def _gaussian_draws(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Residuals drawn from N(0, sigma) with sigma uniform in 0.05-0.3: the true sigmas."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.05, 0.3, n)
    return rng.normal(0.0, sigma), sigma


@pytest.mark.parametrize("wrong_by", [40.0, 1 / 40, 7.4, 1 / 7.4])
def test_the_scale_is_found_whatever_the_size_of_the_error(wrong_by):
    """Issue 28: the demo's C sigma, ~40 for C ~ 2-3, fell outside the old 0.05-20 search and
    tied back to 1; sigmas 40 times too wide and too narrow are both recovered now."""
    from casnet.core.calibration import fit_sigma_scale

    y, sigma = _gaussian_draws(20_000, 11)
    c = fit_sigma_scale(y, np.zeros_like(y), wrong_by * sigma)
    # the 68.27% quantile of |z| from 20k draws has a relative standard error ~0.8%; 3% is
    # ~4 of it (the 10% the issue asks for, with room)
    assert c * wrong_by == pytest.approx(1.0, rel=0.03)
    scaled = c * wrong_by * sigma
    assert coverage(y, np.zeros_like(y), scaled) == pytest.approx(0.6827, abs=0.005)
    assert coverage(y, np.zeros_like(y), scaled, k=2.0) == pytest.approx(0.9545, abs=0.005)


def test_the_scale_follows_the_sigma_exactly():
    """No grid to outgrow: the factor for k * sigma is the factor for sigma over k, to rounding."""
    from casnet.core.calibration import fit_sigma_scale

    y, sigma = _gaussian_draws(2_000, 3)
    base = fit_sigma_scale(y, np.zeros_like(y), sigma)
    for k in (1e-4, 0.02, 55.0, 3e5):
        assert fit_sigma_scale(y, np.zeros_like(y), k * sigma) * k == pytest.approx(base, rel=1e-9)


def test_an_over_covering_grid_no_longer_ties_back_to_one():
    """Every factor of a caller's grid over-covers: the answer is the grid's factor nearest the
    closed form (the 68.27% quantile of z), its smallest here, not 1.0."""
    from casnet.core.calibration import fit_sigma_scale

    y, sigma = _gaussian_draws(5_000, 4)
    c = fit_sigma_scale(y, np.zeros_like(y), 400 * sigma, grid=[0.5, 1.0, 2.0])
    assert c == 0.5
    with pytest.raises(ValueError, match="positive finite"):
        fit_sigma_scale(y, np.zeros_like(y), sigma, grid=[0.0, 1.0])


def test_few_points_and_zero_residuals():
    from casnet.core.calibration import fit_sigma_scale

    # one galaxy: just above its z, so it lies within 1 sigma (and 2)
    c = fit_sigma_scale([0.0], [0.3], [0.1])
    assert c == pytest.approx(3.0, rel=1e-5)
    assert coverage([0.0], [0.3], [c * 0.1]) == 1.0
    # two: z = 1 and 3; within [1.5, 3) one of two is within 1 sigma and both within 2 (the best
    # the steps of 1/2 allow); the middle of that step in log
    assert fit_sigma_scale([0.0, 0.0], [1.0, 3.0], [1.0, 1.0]) == pytest.approx(np.sqrt(4.5))
    # every residual zero: any factor covers everything, so there is no scale to fit
    with pytest.warns(RuntimeWarning, match="every residual is zero"):
        assert fit_sigma_scale([1.0, 2.0], [1.0, 2.0], [0.5, 0.5]) == 1.0
    assert fit_sigma_scale([], [], []) == 1.0


def test_miscalibration_reason_is_empty_only_inside_issue_18s_ranges():
    from casnet.core.calibration import miscalibration_reason

    assert miscalibration_reason(0.683, 0.954) == ""
    assert miscalibration_reason(0.60, 0.98) == ""  # the bounds are accepted
    over = miscalibration_reason(1.0, 1.0)
    assert "1.000 at 1 sigma (accepted 0.60-0.76)" in over and "1.000 at 2 sigma" in over
    assert "2 sigma" in miscalibration_reason(0.70, 0.85)
    assert "1 sigma" not in miscalibration_reason(0.70, 0.85)
    assert "undefined" in miscalibration_reason(np.nan, 0.95)


def test_a_small_sample_is_no_verdict_on_the_sigma():
    """Issue 28 follow-up: the demo's C network (42 test galaxies, 30 within 1 sigma and all 42
    within 2) was marked "sigma miscalibrated"; a calibrated sigma does that 14% of the time.
    The ranges widen by two binomial errors of the sample; a large sample keeps them."""
    from casnet.core.calibration import miscalibration_reason

    assert miscalibration_reason(30 / 42, 1.0, n=42) == ""
    assert miscalibration_reason(30 / 42, 1.0, n=2000) != ""
    assert miscalibration_reason(1.0, 1.0, n=42) != ""  # 42 of 42 within 1 sigma: too wide
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(400):  # calibrated Gaussian sigmas on 42 galaxies: rarely judged wrong
        z = np.abs(rng.normal(size=42))
        misses += bool(miscalibration_reason(np.mean(z <= 1), np.mean(z <= 2), n=42))
    assert misses / 400 < 0.1
