"""Bayesian search with every trial tracked in MLflow (casnet.networks.tune, `casnet tune`)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from casnet.cli import app
from casnet.networks.settings import SearchConfig
from casnet.networks.tune import EXPERIMENT, tune

HPS = {"blocks", "conv_per_block", "filters", "dense_layers", "dense_units", "dropout",
       "optimizer", "learning_rate", "batch_size", "head", "sigma_gradient",
       "clipnorm"}  # fmt: skip
#: the paper's space shrunk to what trains in a second (the ranges are what the search explores)
TINY = SearchConfig(blocks=(1, 2), conv_per_block=(1, 1), filters=(4, 8), dense_layers=(1, 1),
                    dense_units=(8, 16), batch_sizes=(8, 16), max_trials=2,
                    num_initial_points=1, max_epochs=2, patience=5)  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory, label_store, commit_project):
    """A project root with git, a dvc.lock naming the two stores, and the stores."""
    root = tmp_path_factory.mktemp("project")
    train = label_store(root / "data" / "augmented", 48, 0)
    val = label_store(root / "data" / "split" / "val", 16, 1)
    sha = commit_project(root)
    return {"root": root, "train": train, "val": val, "sha": sha}


@pytest.fixture(scope="module")
def searched(project):
    """One tiny search (2 trials x 2 epochs) in the project's own MLflow store."""
    root = project["root"]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("CASNET_ROOT", str(root))
        result = tune("asymmetry", TINY, train=root / "data/augmented",
                      val=root / "data/split/val", root=root, verbose=0)  # fmt: skip
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT)
    return result, client, exp.experiment_id


def _children(client, exp_id, parent):
    return client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def _parents(client, exp_id):
    return client.search_runs([exp_id], filter_string="tags.`casnet.run_kind` = 'search'")


def test_one_parent_and_one_child_per_trial(searched):
    result, client, exp = searched
    parents = _parents(client, exp)
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["casnet.target"] == "asymmetry"
    children = _children(client, exp, result.parent_run_id)
    assert sorted(c.data.tags["casnet.trial_id"] for c in children) == ["0", "1"]
    assert {c.info.run_name for c in children} == {"trial-0", "trial-1"}


def test_children_log_every_hyperparameter_and_per_epoch_metrics(searched):
    result, client, exp = searched
    for child in _children(client, exp, result.parent_run_id):
        assert set(child.data.params) == HPS
        assert child.data.tags["casnet.trial_status"] == "COMPLETED"
        assert child.info.status == "FINISHED"
        for key in ("train_rmse", "train_mae", "train_pearson_r", "val_rmse", "val_mae",
                    "val_pearson_r"):  # fmt: skip
            history = client.get_metric_history(child.info.run_id, key)
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2], key
        val = [m.value for m in sorted(client.get_metric_history(child.info.run_id, "val_rmse"),
                                       key=lambda m: m.step)]  # fmt: skip
        assert child.data.metrics["best_epoch"] == 1 + int(np.argmin(val))
        assert child.data.metrics["best_val_rmse"] == pytest.approx(min(val))


def test_every_run_carries_lineage(searched, project):
    result, client, exp = searched
    runs = [*_parents(client, exp), *_children(client, exp, result.parent_run_id)]
    assert len(runs) == 3
    for run in runs:
        tags = run.data.tags
        assert tags["casnet.git_commit"] == project["sha"]
        # the val store lies inside the `split` output: its hash is that output's
        assert tags["casnet.data.val.dvc_md5"] == "11aa.dir"
        assert tags["casnet.data.train.dvc_md5"] == "22bb.dir"
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert inputs["train"].digest == "22bb.dir"
        assert inputs["val"].digest == "11aa.dir"
        assert inputs["val"].source.endswith('data/split/val"}')


def test_parent_holds_the_best_trial_the_table_and_the_baseline(searched, project, tmp_path):
    result, client, exp = searched
    parent = client.get_run(result.parent_run_id)
    children = {c.data.tags["casnet.trial_id"]: c
                for c in _children(client, exp, result.parent_run_id)}  # fmt: skip
    scores = {t: c.data.metrics["best_val_rmse"] for t, c in children.items()}
    best = min(scores, key=scores.get)
    assert parent.data.tags["casnet.best_trial_id"] == best == result.best_trial_id
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(scores[best], rel=1e-6)
    assert {k[5:]: v for k, v in parent.data.params.items() if k.startswith("best.")} == (
        children[best].data.params
    )
    path = client.download_artifacts(result.parent_run_id, "best_hyperparameters.json", tmp_path)
    saved = json.loads(open(path).read())
    assert saved["trial_id"] == best
    assert {k: str(v) for k, v in saved["hyperparameters"].items()} == children[best].data.params
    table = pd.read_csv(client.download_artifacts(result.parent_run_id, "trials.csv", tmp_path))
    assert sorted(table["trial_id"].astype(str)) == ["0", "1"]
    assert set(table["run_id"]) == {c.info.run_id for c in children.values()}
    # the trivial baseline: the training mean predicted for every validation galaxy
    mean = project["train"].astype(np.float64).mean()
    want = np.sqrt(np.mean((project["val"].astype(np.float64) - mean) ** 2))
    assert parent.data.metrics["baseline_val_rmse"] == pytest.approx(want, rel=1e-5)
    assert "search.max_trials" in parent.data.params and parent.data.params["target"] == "asymmetry"


def test_rerun_resumes_and_a_new_target_or_space_starts_anew(searched, project):
    result, client, exp = searched
    root = project["root"]
    kwargs = {"train": root / "data/augmented", "val": root / "data/split/val", "root": root,
              "verbose": 0}  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        again = tune("asymmetry", TINY, **kwargs)
        assert again.parent_run_id == result.parent_run_id
        assert again.best_trial_id == result.best_trial_id
        assert len(_children(client, exp, result.parent_run_id)) == 2  # nothing re-run
        other = tune("concentration", TINY.model_copy(update={"max_trials": 1}), **kwargs)
        wider = tune("asymmetry", TINY.model_copy(update={"max_trials": 1, "filters": (4, 16)}),
                     **kwargs)  # fmt: skip
    ids = {result.parent_run_id, other.parent_run_id, wider.parent_run_id}
    assert len(ids) == 3 and len(_parents(client, exp)) == 3
    assert client.get_run(other.parent_run_id).data.tags["casnet.target"] == "concentration"
    assert len(_children(client, exp, other.parent_run_id)) == 1
    assert other.directory != result.directory != wider.directory


def _one_trial(project, store, monkeypatch, fit, *, seed: int, verbose: int = 0):
    """A one-trial search of the project's stores whose training is ``fit`` (in place of
    ``CasnetHyperModel.fit``), logged to ``store``'s own MLflow store: (result, client, child
    run of the trial)."""
    from casnet.networks.hypermodel import CasnetHyperModel

    monkeypatch.setattr(CasnetHyperModel, "fit", fit)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = project["root"]
    result = tune("asymmetry", TINY.model_copy(update={"max_trials": 1, "seed": seed}),
                  train=root / "data/augmented", val=root / "data/split/val", root=store,
                  verbose=verbose)  # fmt: skip
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (child,) = _children(client, exp, result.parent_run_id)
    return result, client, child


def test_a_failing_trial_is_logged_as_failed(project, tmp_path, monkeypatch):
    def broken(self, hp, model, *args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    result, _, child = _one_trial(project, tmp_path, monkeypatch, broken, seed=7)
    assert result.best_trial_id is None
    assert child.info.status == "FAILED"
    assert child.data.tags["casnet.trial_status"] == "FAILED"
    assert "out of memory (simulated)" in child.data.tags["casnet.error"]


def test_a_diverged_trial_is_invalid_everywhere_and_logs_no_metric_of_1e308(
    project, tmp_path, monkeypatch, capsys
):
    """Issue 31: a trial whose validation RMSE went infinite was COMPLETED in trials.csv with the
    score inf, INVALID on the console, and its metrics read 1.8e308 in MLflow."""
    import math

    import keras

    from casnet.networks.callbacks import EpochLogger

    def diverged(self, hp, model, *args, callbacks=None, **kwargs):
        logs = [{"loss": 1.0, "val_rmse": math.inf}, {"loss": math.inf, "val_rmse": math.inf}]
        for epoch, values in enumerate(logs):
            for callback in callbacks or []:
                if isinstance(callback, EpochLogger):
                    callback.on_epoch_end(epoch, values)
        history = keras.callbacks.History()
        history.history = {k: [v[k] for v in logs] for k in logs[0]}
        return history

    result, client, child = _one_trial(project, tmp_path, monkeypatch, diverged, seed=8,
                                       verbose=1)  # fmt: skip
    assert result.best_trial_id is None and result.best_val_rmse is None
    (row,) = result.trials.to_dict("records")
    assert row["status"] == "INVALID" and not math.isfinite(row["val_rmse"] or math.nan)
    assert "trial 0 (1/1): INVALID" in capsys.readouterr().out
    assert child.data.tags["casnet.trial_status"] == "INVALID"
    history = client.get_metric_history(child.info.run_id, "train_loss")
    assert [m.value for m in history] == [1.0]  # the infinite epoch left out, not 1.8e308
    assert client.get_metric_history(child.info.run_id, "val_rmse") == []
    for run in (child, client.get_run(result.parent_run_id)):
        assert all(abs(v) < 1e300 for v in run.data.metrics.values()), run.data.metrics


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "colour"], "--target must be one of concentration, asymmetry"),
        (["--target", "asymmetry", "--max-trials", "0"], "max_trials = 0"),
        (["--target", "asymmetry", "--epochs", "ten"], "max_epochs"),
        (["--target", "asymmetry", "--search", "kernel=5"], "allowed keys here: batch_sizes"),
        (["--target", "asymmetry", "--role", "boss"], "--role must be"),
    ],
)
def test_bad_parameters_fail_before_training(args, message):
    result = runner.invoke(app, ["tune", *args])
    assert result.exit_code != 0
    assert message in result.output + str(result.exception)


def test_missing_data_names_the_fix(tmp_path):
    result = runner.invoke(app, ["tune", "--target", "asymmetry", "--train",
                                 str(tmp_path / "nowhere"), "--val", str(tmp_path)])  # fmt: skip
    assert result.exit_code != 0
    assert "dvc repro" in str(result.exception)


def test_cli_runs_a_search_and_prints_the_table(project, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    root = project["root"]
    result = runner.invoke(app, [
        "tune", "--target", "concentration", "--max-trials", "1", "--epochs", "1",
        "--search", "blocks=[1,1]", "--search", "filters=[4,4]", "--search", "dense_units=[8,8]",
        "--search", "dense_layers=[1,1]", "--search", "batch_sizes=[16]", "--quiet",
        "--train", str(root / "data/augmented"), "--val", str(root / "data/split/val"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "baseline (training mean)" in result.output
    assert "trial_id" in result.output and "best trial 0" in result.output
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = _parents(client, exp)
    assert parent.data.params["search.filters"] == "[4, 4]"


@pytest.mark.slow
def test_mlflow_run_tune_entry_point(project, tmp_path):
    """`mlflow run . -e tune ... --env-manager local`, as the README shows it."""
    import os
    import shutil
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("MLproject", "conda.yaml"):
        shutil.copy(repo / name, proj / name)
    shutil.copytree(project["root"] / "data", proj / "data")
    # a clean MLflow environment, as in a fresh shell (earlier tests in this process may have
    # selected experiments of their own stores)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env = {**base, "CASNET_ROOT": str(proj),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{proj}/mlflow.db"}  # fmt: skip
    space = "blocks=[1,1];filters=[4,4];dense_layers=[1,1];dense_units=[8,8];batch_sizes=[16]"
    # as make demo does (issue 31): casnet's experiments first, then a named launcher in one
    made = subprocess.run([sys.executable, "-c", "from casnet.core.tracking import "
                           "ensure_experiments; ensure_experiments()"], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    cmd = ["mlflow", "run", str(proj), "-e", "tune", "-P", "target=asymmetry",
           "-P", "max_trials=1", "-P", "epochs=1", "-P", f"search={space}",
           "--env-manager", "local"]  # fmt: skip
    named = ["--experiment-name", EXPERIMENT, "--run-name", "mlflow run -e tune (asymmetry)"]
    done = subprocess.run([*cmd, *named], cwd=proj, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{proj}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = _parents(client, exp)
    assert parent.data.params["search.filters"] == "[4, 4]"
    assert parent.data.params["search.max_trials"] == "1"
    assert len(_children(client, exp, parent.info.run_id)) == 1
    # the launcher run of `mlflow run` points at the search
    launcher = client.get_run(parent.data.tags["casnet.launched_by"])
    assert launcher.data.tags["casnet.search_run_id"] == parent.info.run_id
    # ... in casnet's experiment (its artifacts where casnet puts them), under its name
    assert launcher.info.experiment_id == exp and launcher.info.run_name == named[-1]
    assert client.get_experiment(exp).artifact_location.endswith("mlartifacts")
    # a missing target is refused by MLflow before anything runs
    bad = subprocess.run(cmd[:5] + ["--env-manager", "local"], cwd=proj, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode != 0 and "target" in bad.stderr


def test_a_gaussian_head_search_ranks_trials_by_the_means_rmse_and_logs_coverage(project):
    """search.head=gaussian (issue 18): every trial is a Gaussian network; the objective is still
    the validation RMSE (of the mean), and each trial logs its coverage at 1 and 2 sigma per
    epoch, so trials can be compared on calibration in the UI."""
    root = project["root"]
    space = TINY.model_copy(update={"head": "gaussian", "max_trials": 1, "max_epochs": 2})
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = tune("concentration", space, train=root / "data/augmented",
                      val=root / "data/split/val", root=root, verbose=0)  # fmt: skip
    assert result.best_hyperparameters["head"] == "gaussian"
    assert np.isfinite(result.best_val_rmse)
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (child,) = _children(client, exp, result.parent_run_id)
    assert child.data.params["head"] == "gaussian"
    for key in ("val_coverage_1sigma", "val_coverage_2sigma", "val_rmse"):
        history = client.get_metric_history(child.info.run_id, key)
        assert len(history) == 2, key
    assert all(
        0 <= m.value <= 1
        for m in client.get_metric_history(child.info.run_id, "val_coverage_2sigma")
    )


def test_the_default_console_output_is_one_line_per_trial(project, capsys):
    """casnet tune without --quiet (issue 19, the quiet demo): a line per finished trial; the
    per-epoch history is in each trial's MLflow run, not on the console."""
    root = project["root"]
    space = TINY.model_copy(update={"max_trials": 2, "max_epochs": 2, "dense_units": (8, 8)})
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tune("asymmetry", space, train=root / "data/augmented", val=root / "data/split/val",
             root=root, verbose=1)  # fmt: skip
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("trial ")]
    # the trial ids of the table and the MLflow runs (trial-0, trial-1), and the progress
    assert [line.split(":")[0] for line in lines] == ["trial 0 (1/2)", "trial 1 (2/2)"], out
    assert all("val RMSE" in line and "dense" in line for line in lines)
    assert "Epoch 1/" not in out and "Search: Running Trial" not in out
