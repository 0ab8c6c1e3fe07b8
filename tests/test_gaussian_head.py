"""A network with a Gaussian head end to end (issue 18): built, trained and logged with its
calibration metrics, and its sigma in the combined model's output and in casnet predict's
catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    assert model.loss.__name__ == "gaussian_loss"
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
        assert r.metrics["sigma_scale"] > 0  # the validation-set recalibration factor
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
    # every catalogue format keeps them
    from astropy.table import Table

    from casnet.data.io.catalog import write_catalog

    for suffix in (".parquet", ".csv", ".fits", ".ecsv"):
        out = write_catalog(table, tmp_path / f"cat{suffix}")
        back = pd.read_parquet(out) if suffix == ".parquet" else Table.read(out).to_pandas()
        for col in ("concentration_err", "asymmetry_err"):
            np.testing.assert_allclose(back[col].to_numpy(float), table[col], rtol=1e-6)


def test_the_test_suite_scores_the_sigmas(project, tmp_path, monkeypatch):
    """The evaluation tables carry each galaxy's sigma and its coverage (issue 18)."""
    from casnet.evaluation.predictor import Predictor
    from casnet.evaluation.test_set import test_set

    root, data, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = test_set(Predictor("models:/casnet@champion", root=root), data["test"], tmp_path)
    table = result.tables["test_galaxies"]
    for target in TARGETS:
        assert (table[f"net_{target}_err"] > 0).all()
        got = result.metrics[f"{target}_net_coverage_1sigma_vs_label"]
        want = np.mean(np.abs(table[f"net_{target}"] - table[f"label_{target}"])
                       <= table[f"net_{target}_err"])  # fmt: skip
        assert got == pytest.approx(want)
    frame = result.tables["test_calibration"]
    assert set(frame["reference"]) == {"label"}  # no truth in these stores
    assert (tmp_path / "test_reliability_label.png").exists()
    assert any("coverage at 2 sigma" in row["quantity"] for row in result.summary)


def test_the_uncertainty_benchmark_compares_the_methods(project, tmp_path, monkeypatch):
    """casnet benchmark uncertainty: the Gaussian head, MC dropout and both, scored on the
    test store (issue 18)."""
    from typer.testing import CliRunner

    from casnet.bench.uncertainty import METHODS, compare_uncertainties, method_table
    from casnet.cli import app
    from casnet.networks.inference import predict_store

    root, data, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(root))
    networks = registry.load("models:/casnet@champion", root=root).unwrap_python_model().networks
    table = method_table(networks, data["test"], passes=3)
    for target in TARGETS:
        _, mu, sigma = predict_store(networks[target], data["test"], target, with_sigma=True)
        np.testing.assert_allclose(table[f"gaussian_{target}"], mu)
        np.testing.assert_allclose(table[f"gaussian_{target}_err"], sigma)
        assert (table[f"mc_dropout_{target}_err"] >= 0).all()  # 0: no active unit dropped
        # the combination adds the head's sigma to the spread
        assert (table[f"combined_{target}_err"] >= table[f"mc_dropout_{target}_err"]).all()
    frame, score = compare_uncertainties(table)
    assert set(frame["reference"]) == {"label"}
    assert set(score.index) == {METHODS[m] for m in ("gaussian", "mc_dropout", "combined")}
    assert (score >= 0).all()
    out = tmp_path / "u.md"
    result = CliRunner().invoke(app, ["benchmark", "uncertainty", "--passes", "3", "--out",
                                      str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Better calibrated" in out.read_text()


def test_the_science_reports_calibration_section(project, tmp_path, monkeypatch):
    from casnet.science.report import calibration_section

    root, data, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    lines, metrics, frame = calibration_section(root, data["test"], {}, tmp_path, passes=3)
    text = "\n".join(lines)
    assert "Networks trained on the labels" in text and "Better calibrated" in text
    assert {"calibration_score_labels_gaussian", "calibration_score_labels_mc_dropout",
            "calibration_score_labels_combined"} <= set(metrics)  # fmt: skip
    assert set(frame["networks trained on"]) == {"labels"}
    assert (tmp_path / "reliability_labelsnet_vs_label.png").exists()


def test_the_registered_signature_names_the_sigmas(project, monkeypatch):
    import mlflow

    from casnet.core.tracking import use_store

    root, data, _ = project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with use_store(root):
        info = mlflow.models.get_model_info("models:/casnet@champion")
    want = ["galaxy_id", "concentration", "concentration_err", "asymmetry", "asymmetry_err"]
    assert info.signature.outputs.input_names() == want
    point = registry.combined_signature({"concentration": False, "asymmetry": False})
    assert point.outputs.input_names() == ["galaxy_id", "concentration", "asymmetry"]
    # the signature declares batch_size, so MLflow hands it to the model (it drops undeclared
    # params with a warning): a bad value is refused instead of ignored
    from casnet.data.io.store import StampStore

    model = registry.load("models:/casnet@champion", root=root)
    stamps = np.asarray(StampStore(data["test"]).array("image")[:3])
    assert len(model.predict(stamps, params={"batch_size": 2})) == 3
    with pytest.raises(Exception, match="batch_size"):
        model.predict(stamps, params={"batch_size": 0})


def test_a_fresh_process_that_loads_the_model_knows_the_gaussian_layers():
    """The served model loads its networks in a process that never built one (mlflow models
    serve, casnet predict's workers): importing the registry must register SigmaScale and the
    Gaussian loss with Keras, or loading fails."""
    import subprocess
    import sys

    code = ("import casnet.networks.registry, keras; "
            "from keras.saving import get_registered_object as g; "
            "assert g('casnet>SigmaScale') and g('casnet>gaussian_loss')")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
