"""Fine-tuning from an existing model (``train(init=...)``, ``casnet train --init``), the
evaluation-only override, and the worked example's split (``casnet benchmark finetune``; issue
29, "Transfer to a user's survey")."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from casnet.bench.finetune import split_by_galaxy
from casnet.cli import app
from casnet.core.errors import EXIT_BAD_INPUT, EXIT_USAGE, CasnetInputError, exit_status
from casnet.core.layout import EVALUATION_ONLY
from casnet.data.io.store import StoreWriter
from casnet.networks.dataset import OVERRIDE_TAG
from casnet.networks.registry import check_promotable
from casnet.networks.settings import ArchitectureConfig, SearchConfig
from casnet.networks.train import (
    EXPERIMENT,
    FINETUNE_LR_FACTOR,
    INIT_TAG,
    init_network,
    start_network,
    train,
)
from casnet.networks.uncertainty import SigmaScale

ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CASNET_ROOT")
#: the training recipe: only its optimizer, learning rate and batch size matter with an init
ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          optimizer="adam", learning_rate=0.01, batch_size=16)  # fmt: skip
ONE_EPOCH = SearchConfig(max_epochs=1, patience=5, seed=0)


def _store(path, n, seed, *, size=60, evaluation_only=False):
    """A store of ``n`` random stamps with learnable labels (A = 3 x the mean, C = 2.5 + A)."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size)).astype(np.float32)
    a = images.mean(axis=(1, 2)) * 3
    rows = pd.DataFrame({"galaxy_id": [f"g{seed}-{i}" for i in range(n)],
                         "label_asymmetry": a.astype(float),
                         "label_concentration": 2.5 + a.astype(float)})  # fmt: skip
    if evaluation_only:
        rows[EVALUATION_ONLY] = True
    with StoreWriter(path, stamp_shape=(size, size), chunk_size=64) as w:
        w.append(rows, {"image": images})
    return path


@pytest.fixture(autouse=True)
def _own_store(tmp_path, monkeypatch):
    """Each test its own MLflow store under tmp_path; MLflow's process-wide URIs undone."""
    for name in ENV:
        monkeypatch.setenv(name, "x")  # records the original value, so teardown restores it
        monkeypatch.delenv(name)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name in ENV:
        os.environ.pop(name, None)


@pytest.fixture
def stores(tmp_path):
    return {"train": _store(tmp_path / "train", 48, 0), "val": _store(tmp_path / "val", 16, 1),
            "test": _store(tmp_path / "test", 16, 2)}  # fmt: skip


def test_the_fine_tuning_starts_from_the_pretrained_network():
    """Before any step the network is the shipped one: its layers, weights and outputs (less
    the sigma recalibration, fitted again); params.yaml's layers are ignored."""
    shipped, what = init_network("pretrained", "asymmetry")
    assert "pretrained" in what
    assert not isinstance(shipped.layers[-1], SigmaScale)  # dropped: fitted again after
    model, arch, _ = start_network("pretrained", "asymmetry", ARCH, input_size=60)
    # the architecture is the shipped network's (read from its layers: whatever the science
    # run chose), the recipe ARCH's with a tenth of its rate
    import keras

    convs = [layer for layer in shipped.layers if isinstance(layer, keras.layers.Conv2D)]
    assert arch.blocks * arch.conv_per_block == len(convs)
    assert (arch.filters, arch.head) == (convs[0].filters, "gaussian")
    assert (arch.optimizer, arch.batch_size) == ("adam", 16)
    assert arch.learning_rate == pytest.approx(ARCH.learning_rate * FINETUNE_LR_FACTOR)
    for got, want in zip(model.get_weights(), shipped.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    x = np.random.default_rng(0).random((4, 60, 60, 1)).astype(np.float32)
    # the same network: equal outputs up to float32 rounding of one forward pass
    np.testing.assert_allclose(model.predict(x, verbose=0), shipped.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_a_short_fine_tuning_moves_the_weights_and_keeps_the_sigma_head(tmp_path, stores):
    shipped, _ = init_network("pretrained", "asymmetry")
    result = train("asymmetry", ARCH, **stores, budget=ONE_EPOCH, root=tmp_path, figure=False,
                   verbose=0, init="pretrained", learning_rate=1e-3)  # fmt: skip
    assert result.init == "pretrained" and result.model_uri and not result.evaluation_only
    moved = [np.abs(a - b).max() for a, b in zip(result.network.get_weights(),
                                                  shipped.get_weights(), strict=True)]  # fmt: skip
    assert max(moved) > 0
    # the Gaussian head's sigma recalibrated on the validation set, as a training from scratch
    assert isinstance(result.network.layers[-1], SigmaScale)
    assert result.metrics["sigma_scale"] > 0 and "test_coverage_1sigma" in result.metrics
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(result.run_id)
    assert run.data.tags[INIT_TAG] == "pretrained"
    assert run.data.params["blocks"] == str(result.architecture.blocks)
    assert run.data.params["learning_rate"] == "0.001"
    assert run.data.params["init"] == "pretrained"


def test_evaluation_only_galaxies_need_the_override(tmp_path, stores):
    real = {**stores, "train": _store(tmp_path / "real", 32, 3, evaluation_only=True)}
    with pytest.raises(CasnetInputError, match="evaluation only"):
        train("asymmetry", ARCH, **real, budget=ONE_EPOCH, root=tmp_path, verbose=0)
    # refused before any run: nothing of it in the tracking store
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is None or not client.search_runs([exp.experiment_id])
    result = train("asymmetry", ARCH, **real, budget=ONE_EPOCH, root=tmp_path, figure=False,
                   verbose=0, allow_evaluation_only=True)  # fmt: skip
    assert result.evaluation_only and result.model_uri == "" and result.network is not None
    run = client.get_run(result.run_id)
    assert run.data.tags[OVERRIDE_TAG] == "true"
    # no model and no stamp of theirs was logged: nothing to register
    assert not [a.path for a in client.list_artifacts(result.run_id)]
    with pytest.raises(CasnetInputError, match="never registered"):
        check_promotable(run.data.tags, name=result.run_id)
    check_promotable({})  # an ordinary run passes


def test_a_bad_init_is_a_clear_input_error(tmp_path, stores):
    with pytest.raises(CasnetInputError, match="no MLmodel"):
        init_network(str(tmp_path / "nowhere"), "asymmetry")
    with pytest.raises(CasnetInputError, match="has no asymmetry network"):
        init_network("models:/casnet-concentration@champion", "asymmetry")
    small = {r: _store(tmp_path / f"small-{r}", 8, i, size=48) for i, r in
             enumerate(("train", "val", "test"))}  # fmt: skip
    with pytest.raises(CasnetInputError, match="takes 60x60 px stamps"):
        train("asymmetry", ARCH, **small, budget=ONE_EPOCH, root=tmp_path, verbose=0,
              init="pretrained")  # fmt: skip
    # the command line: bad input exits 3 (main()'s map; CliRunner keeps the exception)
    args = ["train", "--target", "asymmetry", "--train", str(stores["train"]), "--val",
            str(stores["val"]), "--test", str(stores["test"]), "--no-register"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--init", str(tmp_path / "nowhere")])
    assert exit_status(result.exception) == EXIT_BAD_INPUT, result.output
    assert "nowhere" in str(result.exception)
    both = CliRunner().invoke(app, [*args, "--init", "pretrained", "--from-tune", "best"])
    assert both.exit_code == EXIT_USAGE and "not both" in both.output


def test_the_split_never_puts_a_galaxys_views_on_both_sides():
    rng = np.random.default_rng(0)
    kinds = rng.choice(["clumpy disk", "spheroid", "irregular", "pair/merger"], 40)
    views = pd.DataFrame({"cosmos_ident": np.repeat(np.arange(40), 6),
                          "kind": np.repeat(kinds, 6),
                          "view": np.tile(np.arange(6), 40)})  # fmt: skip
    for seed in range(5):
        first = split_by_galaxy(views, fraction=2 / 3, seed=seed)
        sides = views.assign(first=first).groupby("cosmos_ident")["first"].nunique()
        assert (sides == 1).all()
        assert views[first]["cosmos_ident"].nunique() == 27  # round(2/3 * 40)
    other = split_by_galaxy(views, fraction=2 / 3, seed=1)
    assert (split_by_galaxy(views, fraction=2 / 3, seed=0) != other).any()  # seeds differ
    # a kind of one galaxy is not always on the first side
    lone = views[views["cosmos_ident"] < 3].assign(kind=lambda d: d["cosmos_ident"].astype(str))
    picks = {tuple(split_by_galaxy(lone, fraction=2 / 3, seed=s)[::6]) for s in range(10)}
    assert len(picks) > 1 and all(sum(p) == 2 for p in picks)


@pytest.mark.slow
def test_the_worked_example_runs_and_holds_galaxies_out(tmp_path):
    """``casnet benchmark finetune`` at toy scale: the report is written, and per split the
    held-out galaxies are neither fine-tuned nor validated on (~30 s)."""
    import json

    result = CliRunner().invoke(app, [
        "benchmark", "finetune", "--max-galaxies", "6", "--splits", "1", "--eval-views", "1",
        "--train-views", "2", "--epochs", "1", "--label-sn", "0", "--out", str(tmp_path),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "finetune.json").read_text())
    assert (tmp_path / "finetune.md").read_text().startswith("# Fine-tuning on real galaxies")
    for split in report["splits"]:
        sides = [set(v) for v in split["galaxies"].values()]
        assert sum(len(s) for s in sides) == 6 and len(set.union(*sides)) == 6
        assert split["stamps"]["held_out"] > 0
    assert {r["selection"] for r in report["summary"]} == {"headline", "all"}
