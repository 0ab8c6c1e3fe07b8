"""MLflow store location: project root by default, MLFLOW_TRACKING_URI when set."""

from __future__ import annotations

from casnet.core import tracking
from casnet.core.layout import project_root


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


def test_dvc_hash_finds_the_most_specific_output(tmp_path):
    (tmp_path / "dvc.lock").write_text(
        "stages:\n"
        "  a:\n    outs:\n    - {path: data/split, md5: aaa.dir}\n"
        "  b:\n    deps:\n    - {path: data/split/val, md5: not-an-output}\n"
        "    outs:\n    - {path: data/split/train, md5: bbb.dir}\n    - {path: m.json, md5: ccc}\n"
    )
    assert tracking.dvc_hash("data/split/val", tmp_path) == ("data/split", "aaa.dir")
    assert tracking.dvc_hash("data/split/train", tmp_path) == ("data/split/train", "bbb.dir")
    assert tracking.dvc_hash(tmp_path / "data/split/train/x", tmp_path)[1] == "bbb.dir"
    assert tracking.dvc_hash("data/other", tmp_path) is None
    assert tracking.dvc_hash("/elsewhere/data", tmp_path) is None
    assert tracking.dvc_hash("data/split", tmp_path / "no-lock-here") is None


def test_git_commit_reports_dirty_trees_and_non_repositories(tmp_path):
    import subprocess

    assert tracking.git_commit(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "f").write_text("1")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "f"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "f"], cwd=tmp_path, check=True)
    sha = tracking.git_commit(tmp_path)
    assert len(sha) == 40
    (tmp_path / "untracked").write_text("ignored")  # untracked files do not make it dirty
    assert tracking.git_commit(tmp_path) == sha
    (tmp_path / "f").write_text("2")
    assert tracking.git_commit(tmp_path) == f"{sha}-dirty"
    # a run's own tracked outputs (the science report, the shipped models) can be excluded
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r.md").write_text("1")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "r"], cwd=tmp_path, check=True)
    sha = tracking.git_commit(tmp_path)
    (tmp_path / "out" / "r.md").write_text("2")
    assert tracking.git_commit(tmp_path) == f"{sha}-dirty"
    assert tracking.git_commit(tmp_path, exclude=("out",)) == sha
    assert tracking.git_commit(tmp_path, exclude=(tmp_path / "out", "/elsewhere")) == sha
    (tmp_path / "f").write_text("3")  # anything else still counts
    assert tracking.git_commit(tmp_path, exclude=("out",)) == f"{sha}-dirty"


def test_lineage_tags_mark_untracked_data(tmp_path):
    tags = tracking.lineage_tags({"train": "data/x"}, tmp_path)
    assert tags["casnet.data.train.dvc_md5"] == "untracked"
    assert tags["casnet.git_commit"] == "unknown"


def test_configure_survives_a_concurrent_creation(monkeypatch, tmp_path):
    """Chief and workers start together: another process creates the experiment between this
    one's lookup and its create call (seen with a real mlflow server)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        first = tracking.configure("casnet-race", root=tmp_path)
        real = MlflowClient.get_experiment_by_name
        calls = []

        def stale_once(self, name):
            calls.append(name)
            return None if len(calls) == 1 else real(self, name)

        monkeypatch.setattr(MlflowClient, "get_experiment_by_name", stale_once)
        assert tracking.ensure_experiment("casnet-race", root=tmp_path) == first
        assert len(calls) == 2
    finally:
        mlflow.set_tracking_uri(None)


def test_ensure_experiment_leaves_global_state_alone(monkeypatch, tmp_path):
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    exp_id = tracking.ensure_experiment("casnet-quiet", root=tmp_path)
    assert exp_id and "MLFLOW_EXPERIMENT_ID" not in os.environ
    assert tracking.ensure_experiment("casnet-quiet", root=tmp_path) == exp_id


def test_links_go_to_each_experiments_runs_table_and_never_create_a_store(monkeypatch, tmp_path):
    import pytest
    from typer.testing import CliRunner

    from casnet.cli import app
    from casnet.core.errors import CasnetStoreError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    with pytest.raises(CasnetStoreError, match="no MLflow store"):
        tracking.experiment_links()
    assert not (tmp_path / "mlflow.db").exists()
    tune = tracking.ensure_experiment("casnet-tune", tmp_path)
    evaluate = tracking.ensure_experiment("casnet-evaluate", tmp_path)
    links = tracking.experiment_links("http://host:5000/")
    assert links == [
        ("casnet-tune", f"http://host:5000/#/experiments/{tune}/runs?workflowType=machine_learning"),
        ("casnet-evaluate",
         f"http://host:5000/#/experiments/{evaluate}/runs?workflowType=machine_learning"),
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["links"])
    assert result.exit_code == 0, result.output
    assert f"#/experiments/{tune}/runs?workflowType=machine_learning" in result.output


def test_casnets_experiments_are_created_with_a_description(monkeypatch, tmp_path):
    """Issue 31: the MLflow UI says what each experiment holds."""
    from mlflow import MlflowClient

    from casnet.core.layout import EXPERIMENT_DESCRIPTIONS, EXPERIMENTS

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp_id = tracking.ensure_experiment(EXPERIMENTS["train"], root=tmp_path)
    exp = MlflowClient(tracking.tracking_uri(tmp_path)).get_experiment(exp_id)
    assert exp.tags["mlflow.note.content"] == EXPERIMENT_DESCRIPTIONS["casnet-train"]
    assert set(EXPERIMENTS.values()) <= set(EXPERIMENT_DESCRIPTIONS)
    other = tracking.ensure_experiment("casnet-other", root=tmp_path)
    assert (
        "mlflow.note.content"
        not in MlflowClient(tracking.tracking_uri(tmp_path)).get_experiment(other).tags
    )


def test_ensure_experiments_makes_casnets_own_before_a_launcher_would(monkeypatch, tmp_path):
    """Issue 31: ``make demo``'s ``mlflow run --experiment-name`` launchers find casnet's
    experiments (artifacts under mlartifacts/, a description); one another client made bare
    gets the description."""
    from mlflow import MlflowClient

    from casnet.core.layout import EXPERIMENT_DESCRIPTIONS, EXPERIMENTS

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(tracking.tracking_uri(tmp_path))
    bare = client.create_experiment(EXPERIMENTS["evaluate"])  # as mlflow run would
    ids = tracking.ensure_experiments(root=tmp_path)
    assert set(ids) == set(EXPERIMENTS.values()) and ids[EXPERIMENTS["evaluate"]] == bare
    for name, exp_id in ids.items():
        exp = client.get_experiment(exp_id)
        assert exp.tags["mlflow.note.content"] == EXPERIMENT_DESCRIPTIONS[name]
        if exp_id != bare:
            assert exp.artifact_location == tracking.artifact_root(tmp_path)


def test_datasets_are_named_relative_to_the_project(tmp_path):
    """Issue 31: the UI showed this machine's absolute paths as the datasets' names."""
    (tmp_path / "data" / "split" / "val").mkdir(parents=True)
    outside = tmp_path.parent / "elsewhere-store"
    inputs = tracking.data_inputs({"val": tmp_path / "data" / "split" / "val",
                                   "train": "data/augmented", "other": outside},
                                  root=tmp_path)  # fmt: skip
    names = [i.dataset.name for i in inputs]
    assert names == ["data/split/val", "data/augmented", str(outside)]
    assert "data/split/val" in inputs[0].dataset.source  # the source keeps the location
