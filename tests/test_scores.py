"""casnet.core.scores: the one definition of RMSE, MAE and Pearson r, against hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from casnet.core.scores import pearson, scores


def test_scores_of_a_hand_made_example():
    labels, preds = [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 5.0]
    s = scores(labels, preds)
    assert s["n"] == 4
    assert s["mae"] == pytest.approx((0.5 + 0 + 0.5 + 1) / 4)
    assert s["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 0.25 + 1) / 4))
    # r from its definition: covariance over the product of the standard deviations
    y, p = np.array(labels), np.array(preds)
    r = ((y - y.mean()) * (p - p.mean())).sum() / math.sqrt(
        ((y - y.mean()) ** 2).sum() * ((p - p.mean()) ** 2).sum()
    )
    assert s["pearson_r"] == pytest.approx(r)


def test_a_constant_prediction_has_no_correlation():
    """A degenerate network (one value for every galaxy) is NaN, not r = 0 or a warning."""
    assert math.isnan(pearson([1.0, 2.0, 3.0], [0.02, 0.02, 0.02]))
    assert math.isnan(scores([1.0, 2.0, 3.0], [0.02] * 3)["pearson_r"])
    assert math.isnan(pearson([1.0, 2.0], [1.0, 2.0]))  # fewer than 3 values


def test_empty_set():
    s = scores([], [])
    assert s["n"] == 0 and math.isnan(s["rmse"]) and math.isnan(s["pearson_r"])
