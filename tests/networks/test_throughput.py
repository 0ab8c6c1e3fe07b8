"""Network throughput benchmark: the arithmetic count and the figures it prints."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from casnet.bench.throughput import (
    forward_flops,
    matmul_gflops,
    predict_throughput,
    train_throughput,
)
from casnet.cli import app
from casnet.networks.architecture import TABLE1, Architecture, build_model

SMALL = Architecture(blocks=2, conv_per_block=2, filters=4, dense_layers=2, dense_units=16,
                     dropout=0.3, optimizer="adam", learning_rate=0.01, batch_size=8)  # fmt: skip


@pytest.mark.parametrize("arch", [TABLE1["asymmetry"], TABLE1["concentration"], SMALL])
def test_forward_flops_match_the_built_layers(arch):
    """Count again from the shapes Keras gives each layer (independent of the formula's loop)."""
    model = build_model(arch)
    want = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            want += 2 * 3 * 3 * c_in * c_out * h * w
        elif isinstance(layer, keras.layers.Dense):
            want += 2 * layer.input.shape[-1] * layer.units
    assert forward_flops(arch) == want


def test_throughputs_are_positive_and_consistent():
    t = train_throughput(SMALL, 32, repeats=2)
    p = predict_throughput(SMALL, 32, batch_size=16)
    for r in (t, p):
        assert np.isfinite(r["images_per_s"]) and r["images_per_s"] > 0
    assert t["batch_size"] == 8
    assert t["s_per_epoch"] == pytest.approx(32 / t["images_per_s"])
    assert t["gflops"] == pytest.approx(3 * forward_flops(SMALL) * t["images_per_s"] / 1e9)
    assert matmul_gflops(256, repeats=2) > 0


def test_benchmark_train_command_prints_and_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["benchmark", "train", "--n", "16", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert "| asymmetry | 16 |" in result.output and "paper-scale search" in result.output
    saved = json.loads((tmp_path / "benchmarks" / "train.json").read_text())
    assert set(saved["networks"]) == {"asymmetry", "concentration"}
    assert saved["networks"]["asymmetry"]["train"]["images_per_s"] > 0


def test_benchmark_train_rejects_bad_sizes():
    result = CliRunner().invoke(app, ["benchmark", "train", "--n", "0"])
    assert result.exit_code == 2
