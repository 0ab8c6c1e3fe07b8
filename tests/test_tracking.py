"""MLflow store location: project root by default, MLFLOW_TRACKING_URI when set."""

from __future__ import annotations

from casnet import tracking
from casnet.paths import project_root


def test_default_uri_is_sqlite_at_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.artifact_root() == (tmp_path / "mlartifacts").resolve().as_uri()


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert tracking.tracking_uri() == "http://example.invalid:5000"


def test_project_root_found_from_a_subfolder(monkeypatch, tmp_path):
    monkeypatch.delenv("CASNET_ROOT", raising=False)
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert project_root(sub) == tmp_path.resolve()


def test_configure_creates_experiment_in_project_store(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp_id = tracking.configure("casnet-test", root=tmp_path)
    try:
        assert (tmp_path / "mlflow.db").exists()
        exp = mlflow.get_experiment(exp_id)
        assert exp.name == "casnet-test"
        assert exp.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()
        assert tracking.configure("casnet-test", root=tmp_path) == exp_id  # idempotent
    finally:
        mlflow.set_tracking_uri(None)
