"""A network with a Gaussian head end to end (issue 18): built, trained and logged with its
calibration metrics, and its sigma in the combined model's output and in casnet predict's
catalogue."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from casnet.networks import registry
from casnet.networks.architecture import build_model
from casnet.networks.dataset import TARGETS
from casnet.networks.predict import predict
from casnet.networks.settings import ArchitectureConfig

pytestmark = pytest.mark.slow

GAUSSIAN = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1,
                              dense_units=8, dropout=0.25, optimizer="adam", learning_rate=0.01,
                              batch_size=16, head="gaussian")  # fmt: skip


def test_a_gaussian_head_outputs_a_mean_and_a_scale():
    model = build_model(GAUSSIAN)
    assert model.output_shape == (None, 2)
    assert model.loss.__name__ == "gaussian_nll"
    point = build_model(GAUSSIAN.model_copy(update={"head": "point"}))
    assert point.output_shape == (None, 1)


@pytest.fixture(scope="module")
def project(tmp_path_factory, registered_project):
    root = tmp_path_factory.mktemp("gaussian")
    data, results = registered_project(root, GAUSSIAN, sizes=(64, 32, 32), epochs=3)
    return root, data, results


def test_training_logs_coverage_per_epoch_and_at_the_end(project):
    root, _, results = project
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for r in results.values():
        for key in ("test_coverage_1sigma", "test_coverage_2sigma", "final_val_coverage_1sigma"):
            assert 0.0 <= r.metrics[key] <= 1.0, key
        assert r.metrics["test_coverage_2sigma"] >= r.metrics["test_coverage_1sigma"]
        history = client.get_metric_history(r.run_id, "val_coverage_1sigma")
        assert len(history) == r.epochs  # one point per epoch, comparable across trials
        assert np.isfinite(r.metrics["test_rmse"])  # the point metrics are of the mean


def test_the_combined_model_returns_the_sigmas(project, monkeypatch):
    root, data, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from casnet.data.io.store import StampStore

    stamps = np.asarray(StampStore(data["test"]).array("image")[:5])
    out = registry.load("models:/casnet@champion", root=root).predict(stamps)
    for target in TARGETS:
        assert (out[f"{target}_err"] > 0).all() and np.isfinite(out[f"{target}_err"]).all()


def test_casnet_predict_writes_the_sigmas(project, tmp_path, monkeypatch):
    root, data, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = registry.pull("models:/casnet@champion", tmp_path / "m", root=root)
    table = predict([data["test"]], str(path), progress=False)
    assert {"concentration_err", "asymmetry_err"} <= set(table.columns)
    assert (table["asymmetry_err"] > 0).all()
