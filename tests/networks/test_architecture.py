"""The CASNET architecture space and metrics (Tohill et al. 2021 Sec. 3.3-3.4, Table 1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from casnet.networks.architecture import TABLE1, Architecture, build_model
from casnet.networks.metrics import PearsonR, rmse


@pytest.mark.parametrize("target", ["asymmetry", "concentration"])
def test_table1_networks_are_expressible(target, expected_params):
    arch = TABLE1[target]
    model = build_model(arch)
    assert model.output_shape == (None, 1)
    assert model.count_params() == expected_params(arch)
    convs = [layer for layer in model.layers if layer.name.startswith("conv")]
    assert [c.filters for c in convs] == [
        arch.filters * 2**b for b in range(arch.blocks) for _ in range(arch.conv_per_block)
    ]
    assert all(c.padding == "valid" and c.kernel_size == (3, 3) for c in convs)
    assert model.get_layer("dropout").rate == pytest.approx(arch.dropout)


def test_table1_matches_the_paper():
    a, c = TABLE1["asymmetry"], TABLE1["concentration"]
    assert (a.blocks, a.conv_per_block, a.filters, a.dense_layers, a.dense_units) == (
        3,
        2,
        32,
        2,
        1024,
    )
    assert (a.optimizer, a.learning_rate, a.dropout, a.batch_size) == ("adamax", 0.001, 0.5, 512)
    assert (c.blocks, c.conv_per_block, c.filters, c.dense_layers, c.dense_units) == (
        3,
        2,
        64,
        2,
        512,
    )
    assert (c.optimizer, c.learning_rate, c.dropout, c.batch_size) == ("adam", 0.001, 0.55, 512)


def test_too_deep_for_the_input_is_refused():
    with pytest.raises(ValueError, match="below 1 px"):
        build_model(Architecture(blocks=5, conv_per_block=2))  # 60 -> 28 -> 12 -> 4 -> 0


@pytest.mark.parametrize(
    "bad", [{"dropout": 1.0}, {"optimizer": "lion"}, {"learning_rate": 0.0}, {"blocks": 0}]
)
def test_invalid_architecture_names_the_field(bad):
    from casnet.core.errors import CasnetConfigError
    from casnet.params import parse_params

    key = next(iter(bad))
    with pytest.raises(CasnetConfigError, match=f"model.asymmetry.{key}"):
        parse_params({"model": {"asymmetry": bad}})


def test_rmse_matches_numpy():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=50), rng.normal(size=50)
    want = np.sqrt(np.mean((p - y) ** 2))
    got = float(rmse(y.astype("float32"), p.astype("float32")))
    assert got == pytest.approx(want, rel=1e-6)  # float32 arithmetic


def test_pearson_is_streaming_over_the_whole_set():
    rng = np.random.default_rng(1)
    y = rng.normal(size=1000)
    p = 0.7 * y + rng.normal(scale=0.5, size=1000)
    metric = PearsonR()
    for lo in range(0, 1000, 64):  # batches of 64 (the last one shorter)
        metric.update_state(y[lo : lo + 64], p[lo : lo + 64])
    want = stats.pearsonr(y, p).statistic
    assert float(metric.result()) == pytest.approx(want, abs=1e-6)
    # the average of per-batch correlations is a different (biased) number
    per_batch = np.mean([stats.pearsonr(y[i : i + 8], p[i : i + 8]).statistic
                         for i in range(0, 1000, 8)])  # fmt: skip
    assert abs(per_batch - want) > 1e-3
    metric.reset_state()
    metric.update_state(y[:10], p[:10])
    assert float(metric.result()) == pytest.approx(
        stats.pearsonr(y[:10], p[:10]).statistic, abs=1e-6
    )


def test_a_small_network_trains_and_reports_the_metrics():
    rng = np.random.default_rng(2)
    x = rng.random((64, 60, 60, 1)).astype("float32")
    y = x.mean(axis=(1, 2, 3)) * 4  # a learnable target
    arch = Architecture(
        blocks=1,
        conv_per_block=1,
        filters=4,
        dense_layers=1,
        dense_units=8,
        dropout=0.25,
        optimizer="adam",
        learning_rate=0.01,
        batch_size=16,
    )
    model = build_model(arch)
    hist = model.fit(x, y, epochs=2, batch_size=arch.batch_size, validation_split=0.25, verbose=0)
    for key in ("loss", "mae", "rmse", "pearson_r", "val_loss", "val_pearson_r"):
        assert key in hist.history and np.isfinite(hist.history[key]).all()
