"""Training a network, registering it, aliases and the combined model (casnet.networks.train,
casnet.networks.registry, `casnet train`)."""

from __future__ import annotations

import base64
import io
import json
import os
import warnings

import mlflow
import numpy as np
import pytest
from astropy.io import fits
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import CasnetInputError, CasnetStoreError
from casnet.data.io.store import StoreWriter
from casnet.data.preprocess import crop_normalise
from casnet.networks import registry
from casnet.networks.settings import ArchitectureConfig, SearchConfig
from casnet.networks.train import EXPERIMENT, train

TARGETS = ("concentration", "asymmetry")
#: a network that trains in a second
TINY = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip
BUDGET = SearchConfig(max_epochs=2, patience=5, seed=0)
EPOCH_METRICS = ("loss", "rmse", "mae", "pearson_r")
ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CASNET_ROOT")


def _store(path, n, seed, size=60):
    """A store of ``n`` random ``size`` x ``size`` stamps; returns (images, {target: labels})."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size)).astype(np.float32)
    base = images.mean(axis=(1, 2)) * 3
    labels = {"asymmetry": base.astype(np.float64), "concentration": 0.5 + base.astype(np.float64)}
    rows = [{"galaxy_id": f"g{seed}-{i}", "label_asymmetry": float(labels["asymmetry"][i]),
             "label_concentration": float(labels["concentration"][i])}
            for i in range(n)]  # fmt: skip
    with StoreWriter(path, stamp_shape=(size, size), chunk_size=64) as w:
        w.append(rows, {"image": images})
    # what the store holds, as the catalogue holds it (float64 labels)
    labels = {t: np.array([r[f"label_{t}"] for r in rows]) for t in TARGETS}
    return images, labels


def _uri(root):
    return f"sqlite:///{root}/mlflow.db"


def _clean_env(mp, root=None):
    """No MLflow URI in the environment (MLflow's set_tracking_uri writes one) and CASNET_ROOT at
    ``root`` (or unset); whatever is set while the test runs is undone afterwards."""
    for name in ENV:
        mp.setenv(name, "x")  # records the original value, so teardown restores it
        mp.delenv(name)
    if root is not None:
        mp.setenv("CASNET_ROOT", str(root))


def _rmse(y, p):
    return float(np.sqrt(np.mean((np.asarray(p, np.float64) - y) ** 2)))


def _pearson(y, p):
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    dy, dp = y - y.mean(), p - p.mean()
    return float(np.sum(dy * dp) / np.sqrt(np.sum(dy * dy) * np.sum(dp * dp)))


def _predict(net, images):
    return net.predict(np.asarray(images, np.float32)[..., None], verbose=0).reshape(-1)


@pytest.fixture(scope="module", autouse=True)
def _restore_mlflow_globals():
    """casnet and these tests point MLflow's process-wide URIs at temporary stores: undo it."""
    saved = {name: os.environ.get(name) for name in ENV}
    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def project(tmp_path_factory, commit_project):
    """A project root with git, a dvc.lock naming the stores, and train/val/test stores."""
    root = tmp_path_factory.mktemp("project")
    stores = {"train": root / "data" / "augmented", "val": root / "data" / "split" / "val",
              "test": root / "data" / "split" / "test"}  # fmt: skip
    data = {role: _store(path, n, seed)
            for (role, path), n, seed in zip(stores.items(), (48, 16, 16), (0, 1, 2),
                                             strict=True)}  # fmt: skip
    sha = commit_project(root)
    return {"root": root, "stores": stores, "data": data, "sha": sha}


@pytest.fixture(scope="module")
def trained(project):
    """Both networks trained (TINY, 2 epochs), registered, and the combined model registered."""
    root = project["root"]
    results, promotions = {}, {}
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, root)
        for target in TARGETS:
            result = train(target, TINY, **project["stores"], budget=BUDGET, root=root, verbose=0)
            results[target] = result
            promotions[target] = registry.register_network(
                result.run_id, result.model_uri, target, val_store=project["stores"]["val"],
                val_rmse=result.metrics["final_val_rmse"], root=root,
            )  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every warning the registration gives is kept
            combined = registry.register_combined(root=root)
    client = MlflowClient(_uri(root), registry_uri=_uri(root))
    return {
        "results": results,
        "promotions": promotions,
        "combined": combined,
        "client": client,
        "combined_warnings": [str(w.message) for w in caught],
    }


@pytest.fixture(scope="module")
def wrapped(trained, project):
    """The Keras networks the ``casnet`` champion wraps (versions from its tags)."""
    client = trained["client"]
    champ = client.get_model_version_by_alias("casnet", "champion")
    assert str(champ.version) == trained["combined"]
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, project["root"])
        mlflow.set_tracking_uri(_uri(project["root"]))
        mlflow.set_registry_uri(_uri(project["root"]))
        return {
            t: mlflow.keras.load_model(f"models:/casnet-{t}/{champ.tags[f'casnet.{t}_version']}",
                                       load_model_kwargs={"compile": False})
            for t in TARGETS
        }  # fmt: skip


def _expected(networks, crops):
    """Predictions of both networks on network-ready (N, 60, 60) crops."""
    return {t: _predict(networks[t], crops) for t in TARGETS}


def _stamps(n, size, seed):
    """Raw stamps: a positive Gaussian galaxy on noise, centred (max well inside any crop)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    out = []
    for _ in range(n):
        sigma = rng.uniform(2, 8)
        image = 10 * rng.uniform(0.5, 2) * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        out.append((image + rng.normal(0, 0.1, (size, size))).astype(np.float32))
    return np.stack(out)


def _crop(stamp, size=60):
    """Centre crop over its maximum, written out independently of crop_normalise."""
    h, w = stamp.shape
    y0, x0 = (h - size) // 2, (w - size) // 2
    crop = stamp[y0 : y0 + size, x0 : x0 + size]
    return (crop / crop.max()).astype(np.float32)


# --- 1. the training run ----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_train_logs_params_epochs_scores_lineage_and_model(trained, project, target, tmp_path,
                                                            monkeypatch):  # fmt: skip
    _clean_env(monkeypatch, project["root"])
    result = trained["results"][target]
    client = trained["client"]
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert run.info.run_name == f"train-{target}"
    params = run.data.params
    arch = TINY.model_dump(mode="json")
    assert len(arch) == 12  # ArchitectureConfig: head, sigma_gradient and clipnorm included
    assert {k: params[k] for k in arch} == {k: str(v) for k, v in arch.items()}
    assert (params["target"], params["max_epochs"], params["patience"], params["seed"]) == (
        target, "2", "5", "0"
    )  # fmt: skip

    # per-epoch metrics, step = epoch number from 1
    assert result.epochs == 2 and run.data.metrics["epochs"] == 2
    for key in EPOCH_METRICS:
        for name in (f"train_{key}", f"val_{key}"):
            history = sorted(client.get_metric_history(result.run_id, name), key=lambda m: m.step)
            assert [m.step for m in history] == [1, 2], name
    val_loss = [m.value for m in sorted(client.get_metric_history(result.run_id, "val_loss"),
                                        key=lambda m: m.step)]  # fmt: skip
    assert run.data.metrics["best_epoch"] == 1 + int(np.argmin(val_loss))

    # final scores over the whole sets, recomputed from the logged model
    mlflow.set_tracking_uri(_uri(project["root"]))
    net = mlflow.keras.load_model(result.model_uri, load_model_kwargs={"compile": False})
    for split, prefix in (("val", "final_val"), ("test", "test")):
        images, labels = project["data"][split]
        y, p = labels[target], _predict(net, images)
        want = {"rmse": _rmse(y, p), "mae": float(np.mean(np.abs(p - y))),
                "pearson_r": _pearson(y, p), "n": 16}  # fmt: skip
        for key, value in want.items():
            assert run.data.metrics[f"{prefix}_{key}"] == pytest.approx(value, rel=1e-5), key
            assert result.metrics[f"{prefix}_{key}"] == pytest.approx(value, rel=1e-5), key
    # early stopping restored the best epoch: the logged model's val RMSE is that epoch's
    assert run.data.metrics["final_val_rmse"] == pytest.approx(
        [m.value for m in sorted(client.get_metric_history(result.run_id, "val_rmse"),
                                 key=lambda m: m.step)][int(run.data.metrics["best_epoch"]) - 1],
        rel=1e-3,
    )  # fmt: skip

    # lineage
    tags = run.data.tags
    assert tags["casnet.git_commit"] == project["sha"]
    assert tags["casnet.data.train.dvc_md5"] == "22bb.dir"
    assert tags["casnet.data.val.dvc_md5"] == "11aa.dir"
    assert tags["casnet.data.test.dvc_md5"] == "11aa.dir"
    assert tags["casnet.target"] == target and tags["casnet.hyperparameters_from"] == "params.yaml"
    inputs = {i.tags[0].value: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert inputs == {"train": "22bb.dir", "val": "11aa.dir", "test": "11aa.dir"}

    # artifacts: the figure and a serving payload (the first two validation stamps)
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {f"predicted_vs_{target}.png", "serving_example.json"} <= names
    png = client.download_artifacts(result.run_id, f"predicted_vs_{target}.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    payload = client.download_artifacts(result.run_id, "serving_example.json", str(tmp_path))
    example = np.asarray(json.loads(open(payload).read())["inputs"], dtype=np.float32)
    np.testing.assert_array_equal(example, project["data"]["val"][0][:2, :, :, None])

    # the model: keras flavour with the network signature; the payload is servable
    info = mlflow.models.get_model_info(result.model_uri)
    assert "keras" in info.flavors
    (spec,) = info.signature.inputs.inputs
    assert tuple(spec.shape) == (-1, 60, 60, 1) and spec.type == np.dtype(np.float32)
    served = mlflow.pyfunc.load_model(result.model_uri).predict(example)
    np.testing.assert_allclose(np.asarray(served).reshape(-1), _predict(net, example[..., 0]),
                               atol=1e-6)  # fmt: skip


# --- 2. aliases -------------------------------------------------------------------------------


def test_registrations_say_what_the_models_take_and_how_they_scored(trained):
    """Issue 31: descriptions on the registered models and versions in the MLflow UI; a
    registration on a tiny validation set says it is demo scale."""
    client = trained["client"]
    for target in TARGETS:
        name = registry.NETWORKS[target]
        assert "network-ready crops" in client.get_registered_model(name).description
        version = client.get_model_version(name, trained["promotions"][target].version)
        assert "val RMSE" in version.description and "test r" in version.description
        assert "Demo scale (16 validation galaxies)" in version.description
    combined = client.get_registered_model("casnet").description
    assert "raw stamps" in combined and "0.06" in combined
    latest = client.get_model_version("casnet", trained["combined"])
    assert "casnet-concentration version" in latest.description


def test_registering_the_combined_model_prints_no_input_example_notice(trained):
    """Issue 31: MLflow's 'An input example was not provided' notice (raw ANSI escapes) reached
    the demo's console at every registration of the combined model."""
    assert trained["combined_warnings"] is not None
    assert not [m for m in trained["combined_warnings"] if "input example" in m]


def test_first_version_becomes_champion_without_a_comparison(trained):
    client = trained["client"]
    for target in TARGETS:
        promo = trained["promotions"][target]
        # (str(): the version is an int with a local store, a str from a server)
        assert (promo.name, str(promo.version), promo.promoted) == (f"casnet-{target}", "1", True)
        assert promo.champion_version is None and promo.champion_val_rmse is None
        assert promo.val_rmse == trained["results"][target].metrics["final_val_rmse"]
        run = client.get_run(trained["results"][target].run_id)
        assert run.data.tags["casnet.promoted"] == "true"
        assert run.data.tags["casnet.registered"] == f"casnet-{target}/1"
        assert "casnet.compared_with" not in run.data.tags
        assert "champion_val_rmse" not in run.data.metrics
        version = client.get_model_version(f"casnet-{target}", "1")
        assert version.tags["run_id"] == trained["results"][target].run_id
        assert set(version.aliases) >= {"challenger"}


def test_a_new_version_takes_champion_only_when_it_wins_or_is_forced(trained, project,
                                                                      monkeypatch):  # fmt: skip
    root = project["root"]
    _clean_env(monkeypatch, root)
    client = trained["client"]
    name = "casnet-concentration"
    champion = str(client.get_model_version_by_alias(name, "champion").version)
    val_images, val_labels = project["data"]["val"]
    mlflow.set_tracking_uri(_uri(root))
    mlflow.set_registry_uri(_uri(root))
    champ_net = mlflow.keras.load_model(f"models:/{name}/{champion}",
                                        load_model_kwargs={"compile": False})  # fmt: skip
    champ_rmse = _rmse(val_labels["concentration"], _predict(champ_net, val_images))

    # a barely trained network, registered with its true validation RMSE: the rule decides
    weak = train("concentration", TINY.model_copy(update={"learning_rate": 1e-6}),
                 **project["stores"], budget=BUDGET.model_copy(update={"max_epochs": 1,
                                                                       "seed": 1}),
                 root=root, verbose=0)  # fmt: skip
    register = {"run_id": weak.run_id, "model_uri": weak.model_uri, "target": "concentration",
                "val_store": project["stores"]["val"], "root": root}  # fmt: skip

    def aliases():
        return {a: str(client.get_model_version_by_alias(name, a).version)
                for a in ("champion", "challenger")}  # fmt: skip

    def logged():
        run = client.get_run(weak.run_id)
        return run.data.tags, run.data.metrics

    promo = registry.register_network(**register, val_rmse=weak.metrics["final_val_rmse"])
    assert str(promo.champion_version) == champion
    assert promo.champion_val_rmse == pytest.approx(champ_rmse, rel=1e-5)
    assert promo.promoted == (promo.val_rmse < promo.champion_val_rmse)
    assert aliases() == {"champion": str(promo.version) if promo.promoted else champion,
                         "challenger": str(promo.version)}  # fmt: skip
    tags, metrics = logged()
    assert tags["casnet.promoted"] == str(promo.promoted).lower()
    assert tags["casnet.compared_with"] == f"{name}/{champion}"
    assert metrics["champion_val_rmse"] == pytest.approx(champ_rmse, rel=1e-5)
    champion = aliases()["champion"]

    # certainly worse: challenger only
    worse = registry.register_network(**register, val_rmse=1e9)
    assert not worse.promoted and str(worse.champion_version) == champion
    assert int(worse.version) == int(promo.version) + 1
    assert aliases() == {"champion": champion, "challenger": str(worse.version)}
    tags, _ = logged()
    assert tags["casnet.promoted"] == "false" and ">=" in tags["casnet.promotion_reason"]
    assert tags["casnet.registered"] == f"{name}/{worse.version}"
    assert client.get_model_version(name, worse.version).tags["val_rmse"] == "1e+09"

    # forced
    forced = registry.register_network(**register, val_rmse=1e9, promote=True)
    assert forced.promoted and forced.reason == "promotion forced"
    assert aliases() == {"champion": str(forced.version), "challenger": str(forced.version)}
    tags, _ = logged()
    assert tags["casnet.promoted"] == "true"
    assert tags["casnet.compared_with"] == f"{name}/{champion}"

    # certainly better (a perfect score): champion, compared with the forced one re-scored
    best = registry.register_network(**register, val_rmse=0.0)
    weak_net = mlflow.keras.load_model(weak.model_uri, load_model_kwargs={"compile": False})
    weak_rmse = _rmse(val_labels["concentration"], _predict(weak_net, val_images))
    assert best.promoted and str(best.champion_version) == str(forced.version)
    assert best.champion_val_rmse == pytest.approx(weak_rmse, rel=1e-5)
    assert aliases() == {"champion": str(best.version), "challenger": str(best.version)}
    tags, metrics = logged()
    assert tags["casnet.compared_with"] == f"{name}/{forced.version}"
    assert metrics["champion_val_rmse"] == pytest.approx(weak_rmse, rel=1e-5)
    # the other network was left alone
    assert str(client.get_model_version_by_alias("casnet-asymmetry", "champion").version) == "1"


# --- 3. loading and pulling from anywhere ------------------------------------------------------


def test_load_by_alias_from_another_directory(trained, wrapped, project, tmp_path, monkeypatch):
    root = project["root"]
    _clean_env(monkeypatch)  # no CASNET_ROOT: the root argument alone finds the store
    monkeypatch.chdir(tmp_path)
    stamps = _stamps(3, 101, seed=5)
    want = _expected(wrapped, np.stack([_crop(s) for s in stamps]))

    model = registry.load("models:/casnet@champion", root=root)
    got = model.predict(stamps)
    assert list(got.columns) == ["concentration", "asymmetry"]
    for t in TARGETS:
        np.testing.assert_allclose(got[t].to_numpy(), want[t], atol=1e-6)

    mlflow.set_tracking_uri(_uri(root))
    mlflow.set_registry_uri(_uri(root))
    plain = mlflow.pyfunc.load_model("models:/casnet@champion")
    for t in TARGETS:
        np.testing.assert_allclose(plain.predict(stamps)[t].to_numpy(), want[t], atol=1e-6)

    # CASNET_ROOT instead of the argument
    monkeypatch.setenv("CASNET_ROOT", str(root))
    np.testing.assert_allclose(registry.load().predict(stamps)["asymmetry"].to_numpy(),
                               want["asymmetry"], atol=1e-6)  # fmt: skip
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_pull_downloads_the_model_folder(trained, project, tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    root = project["root"]
    path = registry.pull("models:/casnet@champion", tmp_path / "combined", root=root)
    assert (path / "MLmodel").is_file()
    assert "python_function" in (path / "MLmodel").read_text()
    assert path.resolve().is_relative_to((tmp_path / "combined").resolve())
    net = registry.pull("models:/casnet-asymmetry/1", tmp_path / "net", root=root)
    assert "keras" in (net / "MLmodel").read_text()
    with pytest.raises(CasnetInputError, match="cannot pull"):
        registry.pull("models:/casnet@nobody", tmp_path / "none", root=root)


def test_cli_pull(trained, project, tmp_path, monkeypatch):
    _clean_env(monkeypatch, project["root"])
    result = CliRunner().invoke(app, ["pull", "models:/casnet@champion", "--dest",
                                      str(tmp_path / "m")])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert list((tmp_path / "m").rglob("MLmodel"))


def test_a_call_with_one_root_does_not_redirect_the_next(trained, project, tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    mlflow.set_tracking_uri(None)  # as in a fresh process
    registry.load("models:/casnet@champion", root=project["root"])
    # a project without any store: loading from it must fail, not find the previous project's
    with pytest.raises(CasnetStoreError, match="no MLflow store"):
        registry.load("models:/casnet@champion", root=tmp_path)


# --- 4. the combined model ----------------------------------------------------------------------


def test_combined_model_wraps_the_champions(trained):
    client = trained["client"]
    version = client.get_model_version("casnet", trained["combined"])
    assert {"champion", "challenger"} <= set(version.aliases)
    for t in TARGETS:
        assert version.tags[f"casnet.{t}_version"] == str(trained["promotions"][t].version)


def test_combined_equals_the_networks_on_crop_normalise(trained, wrapped, project, monkeypatch):
    _clean_env(monkeypatch, project["root"])
    model = registry.load("models:/casnet@champion", root=project["root"])

    stamps = _stamps(4, 101, seed=1)
    crops, ok = crop_normalise(stamps)
    assert ok.all()
    np.testing.assert_allclose(crops, np.stack([_crop(s) for s in stamps]), rtol=1e-6)
    want = _expected(wrapped, crops)
    got = model.predict(stamps)
    assert list(got.columns) == ["concentration", "asymmetry"] and len(got) == 4
    for t in TARGETS:
        np.testing.assert_allclose(got[t].to_numpy(), want[t], atol=1e-6)
        assert np.ptp(want[t]) > 0  # the stamps give different answers

    # a list of different sizes; each is cropped about its own centre
    mixed = [_stamps(1, 64, seed=2)[0], _stamps(1, 80, seed=3)[0]]
    want = _expected(wrapped, np.stack([crop_normalise(s)[0] for s in mixed]))
    np.testing.assert_allclose(np.stack([crop_normalise(s)[0] for s in mixed]),
                               np.stack([_crop(s) for s in mixed]), rtol=1e-6)  # fmt: skip
    got = model.predict(mixed)
    for t in TARGETS:
        np.testing.assert_allclose(got[t].to_numpy(), want[t], atol=1e-6)

    # galaxy ids come back in front
    got = model.predict({"stamp": list(stamps[:2]), "galaxy_id": [17, "b"]})
    assert list(got.columns) == ["galaxy_id", "concentration", "asymmetry"]
    assert got["galaxy_id"].tolist() == ["17", "b"]
    want = _expected(wrapped, crops[:2])
    for t in TARGETS:
        np.testing.assert_allclose(got[t].to_numpy(), want[t], atol=1e-6)

    # FITS files, as bytes and as base64 text (what JSON carries)
    blobs = []
    for s in stamps:
        buf = io.BytesIO()
        fits.PrimaryHDU(s).writeto(buf)
        blobs.append(buf.getvalue())
    want = _expected(wrapped, crops)
    for payload in (blobs, [base64.b64encode(b).decode() for b in blobs]):
        got = model.predict({"fits": payload})
        for t in TARGETS:
            np.testing.assert_allclose(got[t].to_numpy(), want[t], atol=1e-6)


# --- 5. bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        ([], "empty batch"),
        (np.zeros((0, 64, 64), np.float32), "empty batch"),
        (np.zeros(100, np.float32), "2-D images"),
        (np.zeros((2, 64, 64, 3), np.float32), "2-D images"),
        ([np.zeros((64, 64, 3), np.float32)], "expected a 2-D image"),
        (np.ones((50, 50), np.float32), "smaller than"),
        ([np.ones((64, 64)), np.ones((64, 50))], "stamp 1: 64x50"),
        (np.full((1, 64, 64), "abc"), "non-numeric"),
        ([[["x"] * 64] * 64], "non-numeric"),
        ({"stamp": [np.ones((64, 64))] * 2, "galaxy_id": ["a"]}, "1 galaxy ids for 2 stamps"),
        ({"fits": [b"not a fits file"]}, "unreadable FITS"),
        ({"image": [np.ones((64, 64))], "other": [1]}, "'stamp' or 'fits'"),
    ],
)
def test_parse_stamps_refuses_bad_input(model_input, message):
    with pytest.raises(MlflowException, match=message) as info:
        registry.parse_stamps(model_input)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert info.value.get_http_status_code() == 400


def test_predict_refuses_bad_input(wrapped):
    model = registry.CasnetModel(networks=wrapped)
    good = np.ones((64, 64), np.float32)
    nan = np.full((64, 64), np.nan, np.float32)
    cases = [
        ([], "empty batch"),
        (np.zeros((2, 64, 64, 3), np.float32), "2-D images"),
        (np.ones((1, 50, 50), np.float32), "smaller than"),
        (np.full((1, 64, 64), "abc"), "non-numeric"),
        (np.stack([good, nan]), r"NaN-only or empty\): 1$"),
        ([nan[2:, 2:]], r"NaN-only or empty\): 0$"),
        ({"stamp": [good, good], "galaxy_id": [1, 2, 3]}, "3 galaxy ids for 2 stamps"),
    ]
    for model_input, message in cases:
        with pytest.raises(MlflowException, match=message) as info:
            model.predict(None, model_input)
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    for batch in (0, "many"):
        with pytest.raises(MlflowException, match="batch_size must be an integer") as info:
            model.predict(None, [good], params={"batch_size": batch})
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    # a NaN pixel in an otherwise good stamp is fine (it becomes 0)
    holed = good.copy()
    holed[30, 30] = np.nan
    got = model.predict(None, [holed, good])
    assert np.isfinite(got.to_numpy()).all() and len(got) == 2


# --- 6. the command line ------------------------------------------------------------------------


def _store_args(project):
    s = project["stores"]
    return ["--train", str(s["train"]), "--val", str(s["val"]), "--test", str(s["test"])]


def test_cli_trains_the_params_architecture_and_registers_it(project, tmp_path, monkeypatch):
    _clean_env(monkeypatch, tmp_path)  # a fresh project: no params.yaml, so Table 1
    result = CliRunner().invoke(app, ["train", "--target", "asymmetry", "--epochs", "1",
                                      "--seed", "7", *_store_args(project), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert ("registered casnet-asymmetry version 1: it is now the champion (no champion yet)"
            in result.output)  # fmt: skip
    # the other network has no champion yet
    assert "combined model not registered yet" in result.output
    client = MlflowClient(_uri(tmp_path), registry_uri=_uri(tmp_path))
    exp = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["epochs"] == 1
    table1 = ArchitectureConfig().model_dump(mode="json")
    assert {k: run.data.params[k] for k in table1} == {k: str(v) for k, v in table1.items()}
    assert run.data.tags["casnet.hyperparameters_from"] == "params.yaml"
    assert run.data.params["seed"] == "7"  # --seed (the science run's seeds)
    assert run.info.run_id in result.output
    champ = client.get_model_version_by_alias("casnet-asymmetry", "champion")
    assert str(champ.version) == "1" and champ.tags["run_id"] == run.info.run_id


def test_cli_refuses_a_bad_seed(project, tmp_path, monkeypatch):
    _clean_env(monkeypatch, tmp_path)
    result = CliRunner().invoke(app, ["train", "--target", "asymmetry", "--seed", "-1",
                                      *_store_args(project), "--quiet"])  # fmt: skip
    assert result.exit_code != 0
    assert "seed" in str(result.exception)


def test_cli_refuses_an_unknown_target():
    result = CliRunner().invoke(app, ["train", "--target", "colour"])
    assert result.exit_code == 2
    assert "--target must be one of concentration, asymmetry, got 'colour'" in result.output


@pytest.mark.parametrize(
    ("from_tune", "message"),
    [("nonexistent-run-id", "no run 'nonexistent-run-id'"), ("best", "no finished search")],
)
def test_cli_from_tune_without_a_search_fails_clearly(project, tmp_path, monkeypatch,
                                                       from_tune, message):  # fmt: skip
    _clean_env(monkeypatch, tmp_path)
    result = CliRunner().invoke(app, ["train", "--target", "asymmetry", "--from-tune", from_tune,
                                      *_store_args(project), "--quiet"])  # fmt: skip
    assert result.exit_code != 0
    assert isinstance(result.exception, CasnetInputError)
    assert message in str(result.exception)
    # nothing was trained
    exp = MlflowClient(_uri(tmp_path)).get_experiment_by_name(EXPERIMENT)
    assert exp is None or not MlflowClient(_uri(tmp_path)).search_runs([exp.experiment_id])


# --- the network input travels with the model ------------------------------------------------


def test_a_64_px_model_trains_registers_and_serves_with_64_px_crops(tmp_path, commit_project,
                                                                     monkeypatch):  # fmt: skip
    """select.crop_size = 64 end to end: the networks are built for the stores' 64 px stamps, their
    signature says so, and the combined model reads the size back from its networks, crops raw
    101 px stamps to 64 px and refuses stamps smaller than that."""
    root = tmp_path / "project64"
    stores = {"train": root / "data" / "augmented", "val": root / "data" / "split" / "val",
              "test": root / "data" / "split" / "test"}  # fmt: skip
    for path, n, seed in zip(stores.values(), (32, 16, 16), (3, 4, 5), strict=True):
        _store(path, n, seed, size=64)
    commit_project(root)
    _clean_env(monkeypatch, root)
    mlflow.set_tracking_uri(_uri(root))  # to read the logged models back (undone by the module)
    mlflow.set_registry_uri(_uri(root))
    nets = {}
    for target in TARGETS:
        result = train(target, TINY, **stores, budget=BUDGET, root=root, verbose=0, figure=False)
        registry.register_network(result.run_id, result.model_uri, target,
                                  val_store=stores["val"],
                                  val_rmse=result.metrics["final_val_rmse"], root=root)  # fmt: skip
        info = mlflow.models.get_model_info(result.model_uri)
        assert info.signature.inputs.inputs[0].shape == (-1, 64, 64, 1)
        nets[target] = mlflow.keras.load_model(result.model_uri,
                                               load_model_kwargs={"compile": False})  # fmt: skip
    registry.register_combined(root=root)
    model = registry.load("models:/casnet@champion", root=root)
    assert model.unwrap_python_model().input.size == 64
    stamps = _stamps(3, 101, seed=6)
    got = model.predict(stamps)
    crops = np.stack([_crop(s, 64) for s in stamps])
    for target in TARGETS:
        np.testing.assert_allclose(got[target].to_numpy(), _predict(nets[target], crops),
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(MlflowException, match="62x62 px is smaller than 64x64"):
        model.predict(_stamps(1, 62, seed=7))


def test_training_refuses_stores_of_different_sizes(tmp_path, commit_project, monkeypatch):
    root = tmp_path / "mixed"
    _store(root / "train", 16, 0, size=64)
    _store(root / "val", 8, 1, size=60)
    _store(root / "test", 8, 2, size=64)
    commit_project(root)
    _clean_env(monkeypatch, root)
    with pytest.raises(CasnetInputError, match="different sizes"):
        train("asymmetry", TINY, train=root / "train", val=root / "val", test=root / "test",
              budget=BUDGET, root=root, verbose=0)  # fmt: skip


def test_cli_predict_from_the_registry_leaves_no_model_copy(trained, wrapped, project, tmp_path,
                                                             monkeypatch):  # fmt: skip
    """`casnet predict --model models:/casnet@champion` pulls the model into a temporary folder
    and removes it when scoring ends (every run used to leave a 14 MB casnet-model-* copy); the
    catalogue holds the champion's predictions."""
    import tempfile

    from astropy.table import Table

    _clean_env(monkeypatch, project["root"])
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    stamps = _stamps(3, 101, seed=8)
    fits_dir = tmp_path / "fits"
    fits_dir.mkdir()
    for i, s in enumerate(stamps):
        fits.PrimaryHDU(s).writeto(fits_dir / f"g{i}.fits")
    out = tmp_path / "cat.csv"
    args = ["predict", str(fits_dir), "--model", "models:/casnet@champion", "--out", str(out),
            "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # no casnet-model-* left behind (the output locks' folder, casnet-locks, stays by design)
    assert [p.name for p in scratch.iterdir() if p.name != "casnet-locks"] == []
    table = Table.read(out).to_pandas().sort_values("source")
    want = _expected(wrapped, np.stack([_crop(s) for s in stamps]))
    np.testing.assert_allclose(table["asymmetry"].to_numpy(), want["asymmetry"], atol=1e-5)
