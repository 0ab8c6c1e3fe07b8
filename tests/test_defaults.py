"""The two pretrained defaults of the science run (issue 30 item 4): their scores, the choice of
the default and the model cards, on hand-made tables (the run itself: ``make science``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casnet.science.defaults import (
    KINDS,
    choose_default,
    model_card,
    provenance_info,
    sim_scores,
)


def _table() -> pd.DataFrame:
    """Four galaxies: the label-trained network is off its labels by 0.1 with sigma 0.15 (all
    within 1 sigma); the truth-trained one is off the truth by 0.2, 0, 0, 0 with sigma 0.1
    (three of four within 1 sigma; all within 2, 0.2 being exactly 2 sigma). A: C / 10."""
    t = {"label_concentration": [2.0, 2.5, 3.0, 3.5], "true_concentration": [2.1, 2.5, 3.0, 3.4],
         "pred_concentration": [2.1, 2.6, 3.1, 3.6], "pred_concentration_err": [0.15] * 4,
         "pred_truthnet_concentration": [2.3, 2.5, 3.0, 3.4],
         "pred_truthnet_concentration_err": [0.1] * 4}  # fmt: skip
    for k in list(t):
        t[k.replace("concentration", "asymmetry")] = [v / 10 for v in t[k]]
    return pd.DataFrame(t)


def test_sim_scores_are_against_what_each_network_learnt():
    table = _table()
    label = sim_scores(table, "label")
    assert label["concentration_vs_own_mae"] == pytest.approx(0.1)
    assert label["concentration_coverage_1sigma"] == 1.0
    # against the truth: |2.1-2.1|, |2.6-2.5|, |3.1-3.0|, |3.6-3.4| -> RMSE sqrt(0.06/4)
    assert label["concentration_vs_truth_rmse"] == pytest.approx(np.sqrt(0.06 / 4))
    truth = sim_scores(table, "truth")
    assert truth["concentration_vs_own_mae"] == pytest.approx(0.05)
    assert truth["concentration_coverage_1sigma"] == 0.75
    assert truth["concentration_coverage_2sigma"] == 1.0
    # what it learnt is the truth: both sets of scores are the same
    assert truth["concentration_vs_truth_mae"] == truth["concentration_vs_own_mae"]
    assert truth["n"] == 4


def test_the_default_is_the_one_closer_to_the_noise_free_reference_on_real_galaxies():
    real = {
        "pretrained": {"concentration_rmse_ratio": 1.8, "asymmetry_rmse_ratio": 1.7},
        "pretrained-truth": {"concentration_rmse_ratio": 1.2, "asymmetry_rmse_ratio": 2.1},
    }
    name, why = choose_default(real)
    assert name == "pretrained-truth"  # mean 1.65 against 1.75
    assert "pretrained 1.750" in why and "pretrained-truth 1.650" in why
    real["pretrained-truth"]["asymmetry_rmse_ratio"] = np.nan  # not scored: never the default
    assert choose_default(real)[0] == "pretrained"


def test_the_model_card_says_what_the_model_learnt_and_what_its_sigma_means(tmp_path):
    record = {"git_commit": "0123456789abcdef", "params": {"data": {"n_galaxies": 20000}},
              "metrics": {"test_concentration_mae": 0.1,
                          "test_concentration_truthnet_vs_truth_mae": 0.08}}  # fmt: skip
    info = provenance_info(record, "truth", tmp_path / "reports" / "science", tmp_path)
    assert info["name"] == "pretrained-truth" and info["report"] == "reports/science"
    assert info["test_scores"] == {"test_concentration_truthnet_vs_truth_mae": 0.08}
    assert provenance_info(record, "label", tmp_path, tmp_path)["test_scores"] == {
        "test_concentration_mae": 0.1}  # fmt: skip
    sim = sim_scores(_table(), "truth")
    real = {"n_headline": 47, "concentration_net_conv_r": 0.9, "concentration_rmse_ratio": 1.1,
            "asymmetry_coverage_1sigma": 0.7}  # fmt: skip
    card = model_card("pretrained-truth", info, sim, real, "pretrained-truth", "it is closer")
    assert card.startswith("# Model card: `pretrained-truth`")
    assert "noise-free C and A" in card and "never any real galaxy" in card
    assert "**Default**: yes" in card and "it is closer" in card
    assert "| C | 0.050 |" in card  # MAE against the truth it learnt
    assert "47 views" in card and "| A | - | - | - | - | - | 0.700 | - |" in card
    label = provenance_info(record, "label", tmp_path, tmp_path)
    other = model_card("pretrained", label, sim_scores(_table(), "label"), real,
                       "pretrained-truth", "it is closer")  # fmt: skip
    assert "**Default**: no" in other and "conventional measurement of the same stamp" in other
    assert set(KINDS) == {"pretrained", "pretrained-truth"}
