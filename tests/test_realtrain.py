"""``casnet benchmark realtrain`` (issue 29): the pieces that decide what is compared."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.bench.realtrain import (
    SIMULATORS,
    TARGETS_REAL,
    _summary,
    format_realtrain,
    shipped_architectures,
)
from casnet.core.layout import TARGETS
from casnet.data.settings import REAL_MORPHOLOGY_SHARES, SimulateConfig
from casnet.networks.architecture import build_model
from casnet.networks.pretrained import available, model_path


def test_the_old_simulator_has_every_real_morphology_share_at_zero():
    new = SimulateConfig()
    old = new.without_real_morphology()
    assert all(getattr(old, k) == 0 for k in REAL_MORPHOLOGY_SHARES)
    assert any(getattr(new, k) > 0 for k in REAL_MORPHOLOGY_SHARES)
    # everything else is the same simulator
    rest = set(SimulateConfig.model_fields) - set(REAL_MORPHOLOGY_SHARES)
    assert all(getattr(old, k) == getattr(new, k) for k in rest)


@pytest.mark.skipif(not available(), reason="no packaged pretrained model")
def test_the_benchmark_trains_the_shipped_architectures():
    from casnet.networks.trust import load_combined

    shipped = load_combined(model_path(), "pretrained").unwrap_python_model().networks
    for target, arch in shipped_architectures().items():
        built = build_model(arch, input_size=shipped[target].input_shape[1])
        # the same layers with the same shapes: the same number of weights, layer by layer
        # (the shipped network has a sigma-scale layer on top, without weights)
        mine = [w.shape for w in built.weights]
        theirs = [w.shape for w in shipped[target].weights if "sigma_scale" not in w.path]
        assert mine == theirs, target


def _run(sim: str, seed: int, value: float) -> dict:
    real = {t: {key: {k: value for k in ("net_conv_r", "net_conv_slope", "net_ref_r",
                                         "net_ref_slope", "rmse_ratio", "net_rmse", "conv_rmse")}
                for key in ("sn2p5", "all")} for t in TARGETS}  # fmt: skip
    simulated = {ts: {t: {"label_r": value, "label_rmse": 0.1, "truth_r": value,
                          "truth_rmse": 0.1} for t in TARGETS} for ts in SIMULATORS}  # fmt: skip
    return {"simulator": sim, "seed": seed, "epochs": dict.fromkeys(TARGETS, 5), "real": real,
            "sim": simulated, "n_headline": 47}  # fmt: skip


def test_the_summary_is_the_mean_and_spread_over_seeds():
    runs = [_run("old", 1, 0.5), _run("old", 2, 0.7), _run("new", 1, 0.9), _run("new", 2, 0.9)]
    summary = _summary(runs)
    old = summary["old"]["real"]["asymmetry"]["sn2p5"]["net_conv_r"]
    assert old["mean"] == pytest.approx(0.6)
    assert old["sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summary["new"]["real"]["asymmetry"]["sn2p5"]["net_conv_r"]["sd"] == 0.0
    assert summary["new"]["sim"]["old"]["concentration"]["label_r"]["n"] == 2
    # the report prints every target of the issue, met or not, for the new simulator
    targets = {
        name: [{"target": t, "score": k, "wanted": f"{op} {v:g}",
                "mean": summary[name]["real"][t]["sn2p5"][k]["mean"], "met": False}
               for t, checks in TARGETS_REAL.items() for k, op, v in checks]
        for name in SIMULATORS
    }  # fmt: skip
    report = {"runs": runs, "summary": summary, "targets": targets, "timing": {"x": 1.0},
              "settings": {"n": 10, "seeds": [1, 2], "epochs": 3, "patience": 2, "views": 1,
                           "stores": {"old": {"train": 8, "val": 1, "test": 1}}}}  # fmt: skip
    text = format_realtrain(report)
    assert "0.60 ± 0.14" in text
    assert text.count("**no**") == sum(len(c) for c in TARGETS_REAL.values())
