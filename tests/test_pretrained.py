"""The pretrained default (issue 17 item 5): exported from a store, scored with no store at all,
registered into a user's store without replacing their champion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from casnet.cli import app
from casnet.data.settings import CleanConfig, SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.networks import pretrained, registry
from casnet.networks.dataset import TARGETS
from casnet.networks.settings import ArchitectureConfig

pytestmark = pytest.mark.slow

ARCH = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip
INFO = {"trained_on": "test stores", "git_commit": "0123456789abcdef", "created": "2026-12-01"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, registered_project):
    """A store with two tiny networks and ``casnet@champion`` (cleaning raw stamps), exported as
    a pretrained folder; and five simulated raw stamps written as FITS files."""
    root = tmp_path_factory.mktemp("science")
    registered_project(root, ARCH)
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            mp.delenv(key)
        folder = tmp_path_factory.mktemp("pretrained")
        model = pretrained.export("models:/casnet@champion", INFO, root=root, folder=folder)
    stamps_dir = tmp_path_factory.mktemp("cutouts")
    cfg = SimulateConfig()
    stamps = {}
    for i in range(5):
        gal = simulate_galaxy(i, cfg)
        fits.writeto(stamps_dir / f"{gal.galaxy_id}.fits", gal.image.astype(np.float32))
        stamps[gal.galaxy_id] = gal.image.astype(np.float32)
    return {"root": root, "folder": folder, "model": model, "dir": stamps_dir, "stamps": stamps}


@pytest.fixture
def no_store(tmp_path, monkeypatch, exported):
    """No MLflow store anywhere: a tracking URI naming a file that does not exist, and the
    package's pretrained folder pointed at the exported one."""
    db = tmp_path / "nowhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setattr(pretrained, "PACKAGE_DIR", exported["folder"])
    return db


def _expected(exported) -> pd.DataFrame:
    """What the exported model answers for the stamps (ids given: cleaning seeded by them)."""
    model = mlflow.pyfunc.load_model(str(exported["model"]))
    ids = sorted(exported["stamps"])
    out = model.predict({"stamp": [exported["stamps"][g] for g in ids], "galaxy_id": ids})
    return out.set_index("galaxy_id")


def test_export_holds_the_model_its_cleaning_and_provenance(exported):
    folder = exported["folder"]
    assert pretrained.available(folder)
    assert pretrained.provenance(folder) == INFO
    assert pretrained.describe(folder).startswith("the packaged pretrained model (test stores")
    # the served model cleans raw stamps as the networks' training data were cleaned
    assert pretrained._model_config(exported["model"])["clean"] == CleanConfig().model_dump(
        mode="json"
    )
    # a model records its own quantities, in its outputs' order (issue 32)
    assert pretrained._model_config(exported["model"])["targets"] == list(TARGETS)
    assert not list(exported["model"].rglob("registered_model_meta"))
    # the exported folder scores as the registered champion it came from
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        champion = registry.load("models:/casnet@champion", root=exported["root"])
    stamps = np.stack(list(exported["stamps"].values()))
    local = mlflow.pyfunc.load_model(str(exported["model"]))
    pd.testing.assert_frame_equal(local.predict(stamps), champion.predict(stamps))


def test_an_export_replaces_the_old_one_whole(exported, tmp_path):
    folder = tmp_path / "p"
    pretrained.export("models:/casnet@champion", {"n": 1}, root=exported["root"], folder=folder)
    pretrained.export("models:/casnet@champion", {"n": 2}, root=exported["root"], folder=folder)
    assert pretrained.provenance(folder) == {"n": 2}
    assert sorted(p.name for p in folder.iterdir()) == ["model", "provenance.json"]


def test_no_pretrained_model_is_a_clear_error(tmp_path):
    assert not pretrained.available(tmp_path)
    with pytest.raises(Exception, match="ships none"):
        pretrained.model_path(tmp_path)


def test_resolve_falls_back_only_for_the_default_and_never_creates_a_store(no_store, exported):
    path, notice = pretrained.resolve(None)
    assert Path(path) == exported["model"]
    assert "no models:/casnet@champion" in notice and "casnet pull --pretrained" in notice
    assert not no_store.exists() and not no_store.parent.exists()
    assert pretrained.resolve("pretrained")[0] == str(exported["model"])
    assert pretrained.resolve("models:/casnet/3") == ("models:/casnet/3", None)
    # a model named explicitly is never replaced (issue 28): it resolves, or the command fails
    assert pretrained.resolve(pretrained.DEFAULT_URI) == (pretrained.DEFAULT_URI, None)


def test_resolve_keeps_the_store_champion_when_there_is_one(exported, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{exported['root'] / 'mlflow.db'}")
    monkeypatch.setattr(pretrained, "PACKAGE_DIR", exported["folder"])
    assert pretrained.resolve(None) == (pretrained.DEFAULT_URI, None)


def test_casnet_predict_works_on_fits_files_with_no_mlflow_store(no_store, exported, tmp_path):
    out = tmp_path / "catalog.csv"
    result = CliRunner().invoke(app, ["predict", str(exported["dir"]), "--out", str(out),
                                      "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scored with pretrained" in result.output
    table = pd.read_csv(out).set_index("galaxy_id")
    expected = _expected(exported)
    for target in TARGETS:
        np.testing.assert_allclose(table.loc[expected.index, target], expected[target],
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    assert not no_store.exists()


def test_pull_pretrained_registers_it_without_replacing_a_champion(exported, tmp_path,
                                                                    monkeypatch):  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(pretrained, "PACKAGE_DIR", exported["folder"])
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("CASNET_ROOT", str(user))
    runner = CliRunner()
    first = runner.invoke(app, ["pull", "--pretrained"])
    assert first.exit_code == 0, first.output
    assert "casnet-concentration version 1" in first.output
    assert "casnet version 1" in first.output
    stamps = np.stack(list(exported["stamps"].values()))
    served = registry.load("models:/casnet@champion", root=user).predict(stamps)
    local = mlflow.pyfunc.load_model(str(exported["model"])).predict(stamps)
    pd.testing.assert_frame_equal(served, local)
    for name in ("casnet-asymmetry", "casnet"):
        version = registry._client(user).get_model_version_by_alias(name, "champion")
        assert version.tags["casnet.pretrained"] == "true"
    # a second registration is a challenger only; --promote makes it the champion
    runner.invoke(app, ["pull", "--pretrained"])
    client = registry._client(user)
    assert client.get_model_version_by_alias("casnet", "champion").version == 1
    assert client.get_model_version_by_alias("casnet", "challenger").version == 2
    third = runner.invoke(app, ["pull", "--pretrained", "--promote"])
    assert third.exit_code == 0, third.output
    assert client.get_model_version_by_alias("casnet", "champion").version == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [(["pull"], "give a model URI"), (["pull", "models:/casnet/1", "--pretrained"], "not both"),
     (["pull", "models:/casnet/1", "--promote"], "--promote goes with --pretrained")],
)  # fmt: skip
def test_pull_usage_errors(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output


def test_the_science_run_ships_its_champion_with_provenance(exported, tmp_path, monkeypatch):
    from casnet.science.run import export_pretrained

    report = tmp_path / "reports" / "science"
    report.mkdir(parents=True)
    record = {"git_commit": "abc123", "params_hash": "ph", "data_md5": {"data/split": "d1.dir"},
              "params": {"data": {"n_galaxies": 20000}}, "degenerate": {},
              "metrics": {"test_concentration_mae": 0.1, "test_asymmetry_pearson_r": 0.8,
                          "noise_network_asymmetry_bias_snr3": 0.01}}  # fmt: skip
    (report / "metrics.json").write_text(json.dumps(record))
    monkeypatch.setattr(pretrained, "PACKAGE_DIR", tmp_path / "package" / "pretrained")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/other.db")  # not used
    monkeypatch.setenv("CASNET_ROOT", str(exported["root"]))
    model = export_pretrained(None, tmp_path, exported["root"], report)
    assert model == tmp_path / "package" / "pretrained" / "model"
    info = pretrained.provenance()
    assert info["git_commit"] == "abc123" and info["data_md5"] == {"data/split": "d1.dir"}
    assert info["test_scores"] == {"test_asymmetry_pearson_r": 0.8, "test_concentration_mae": 0.1}
    assert "20000 drawn by casnet.data.simulate" in info["trained_on"]
    assert info["report"] == "reports/science"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////nonexistent/other.db"  # restored


def test_exported_networks_carry_no_optimizer_state(exported):
    import keras

    for network in exported["model"].rglob("model.keras"):
        assert not keras.saving.load_model(network).compiled


# --- the model this package ships (exported by the science run, committed) -----------------


def test_the_package_ships_a_pretrained_model_with_its_provenance():
    assert pretrained.available(), (
        "src/casnet/pretrained/ lost its model: casnet science exports it"
    )
    info = pretrained.provenance()
    for key in ("trained_on", "git_commit", "params_hash", "data_md5", "test_scores"):
        assert info.get(key), key
    assert "CANDELS F160W-like" in info["trained_on"]
    size = sum(p.stat().st_size for p in pretrained.PACKAGE_DIR.rglob("*") if p.is_file())
    assert size < 10e6  # a few MB (issue 17)


@pytest.mark.slow
def test_the_shipped_model_measures_galaxies_it_never_saw():
    """40 simulated galaxies beyond the science run's 20,000 ids: predictions follow the
    simulator's noiseless truth (the science report's test set: r = 0.85 for C, 0.81 for A)."""
    cfg = SimulateConfig()
    galaxies = [simulate_galaxy(50_000 + i, cfg) for i in range(40)]
    model = mlflow.pyfunc.load_model(str(pretrained.model_path()))
    out = model.predict({"stamp": [g.image.astype(np.float32) for g in galaxies],
                         "galaxy_id": [g.galaxy_id for g in galaxies]})  # fmt: skip
    assert out[list(TARGETS)].notna().all().all()
    from casnet.morphology.measurement import measure_truth
    from casnet.morphology.settings import MorphologyConfig

    truths = [measure_truth(g.truth.astype(np.float64), centre=None, sky_sigma=g.sky_sigma,
                            config=MorphologyConfig()) for g in galaxies]  # fmt: skip
    for target in TARGETS:
        truth = np.array([getattr(t, target) for t in truths], dtype=float)
        ok = np.isfinite(truth)
        assert ok.sum() >= 30
        r = np.corrcoef(truth[ok], out[target].to_numpy()[ok])[0, 1]
        assert r > 0.5, (target, r)


def _console(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    """The real console script (its exit statuses and messages)."""
    return subprocess.run([sys.executable, "-c", "from casnet.cli import main; main()", *args],
                          capture_output=True, text=True, check=False, cwd=cwd,
                          env=env)  # fmt: skip


def test_an_explicit_model_that_does_not_resolve_is_an_error_not_a_fallback(no_store, exported,
                                                                            tmp_path):  # fmt: skip
    """Issue 28: ``--model models:/casnet@champion`` with no such model scored with the
    pretrained model, exit status 0."""
    out = tmp_path / "c.parquet"
    result = CliRunner().invoke(app, ["predict", str(exported["dir"]), "--out", str(out),
                                      "--model", "models:/casnet@champion", "--quiet"])  # fmt: skip
    from casnet.core.errors import exit_status

    assert exit_status(result.exception) in (3, 4), result.output
    assert not out.exists() and not no_store.exists()


def test_the_notice_of_the_pretrained_fallback_is_not_hidden_by_quiet(no_store, exported,
                                                                      tmp_path):  # fmt: skip
    result = CliRunner().invoke(app, ["predict", str(exported["dir"]), "--out",
                                      str(tmp_path / "c.csv"), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "casnet: no models:/casnet@champion in" in result.output


@pytest.mark.parametrize("suffix", [".parquet", ".fits", ".ecsv"])
def test_every_catalogue_records_the_model_and_casnets_version(no_store, exported, tmp_path,
                                                               suffix):  # fmt: skip
    """Issue 28: no output file recorded which model made it."""
    import pyarrow.parquet as pq
    from astropy.table import Table

    from casnet import __version__

    out = tmp_path / f"c{suffix}"
    result = CliRunner().invoke(app, ["predict", str(exported["dir"]), "--out", str(out),
                                      "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    if suffix == ".parquet":
        meta = {k.decode(): v.decode() for k, v in pq.read_schema(out).metadata.items()}
    else:
        meta = {k.lower(): v for k, v in Table.read(out).meta.items()}
    assert meta["casnet_version"] == __version__
    assert meta["model"] == "pretrained"
    assert meta["model_commit"] == INFO["git_commit"]


def test_a_registered_model_is_recorded_with_its_version(exported, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{exported['root'] / 'mlflow.db'}")
    out = tmp_path / "c.parquet"
    result = CliRunner().invoke(app, ["predict", str(exported["dir"]), "--out", str(out),
                                      "--model", "models:/casnet@champion", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(out).metadata.items()}
    assert meta["model"] == "models:/casnet@champion"
    assert int(meta["model_version"]) >= 1 and meta["model_run_id"]
    assert "casnet-model-" not in result.output


def test_outside_a_project_predict_looks_for_no_checkouts_store(tmp_path):
    """Issue 28: with an editable install, ``casnet predict`` in any folder used the checkout's
    demo champion. Outside a project the store looked up is the working folder's (none: the
    shipped pretrained model scores, and no store is created)."""
    from casnet.data.io.fits import write_image

    work = tmp_path / "elsewhere"
    work.mkdir()
    gal = simulate_galaxy(0, SimulateConfig())
    write_image(work / "g.fits", gal.image)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MLFLOW_") and k != "CASNET_ROOT"}  # fmt: skip
    proc = _console("predict", "g.fits", "--out", "c.csv", "--quiet", cwd=work, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"no models:/casnet@champion in sqlite:///{work.resolve()}/mlflow.db" in proc.stderr
    assert "scored with pretrained" in proc.stdout
    assert not (work / "mlflow.db").exists()


# --- the two shipped models (issue 30 item 4) --------------------------------------------------


@pytest.fixture
def two_shipped(exported, tmp_path, monkeypatch):
    """A package folder with both shipped models (the same test networks exported twice: the
    label-trained one at the top, the truth-trained one in truth/), each with its card, the
    truth one the default; no MLflow store anywhere."""
    base = tmp_path / "package" / "pretrained"
    root = exported["root"]
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            mp.delenv(key)
        pretrained.export(
            "models:/casnet@champion",
            {**INFO, "name": "pretrained"},
            root=root,
            folder=pretrained.folder_of("pretrained", base),
            card="# label\n",
        )
        truth_info = {**INFO, "name": "pretrained-truth", "git_commit": "fedcba9876543210"}
        pretrained.export("models:/casnet@champion", truth_info, root=root,
                          folder=pretrained.folder_of("pretrained-truth", base),
                          card="# truth\n")  # fmt: skip
    pretrained.set_default("pretrained-truth", "closer to the noise-free reference", base)
    monkeypatch.setattr(pretrained, "PACKAGE_DIR", base)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'nowhere' / 'm.db'}")
    return base


def test_both_shipped_models_load_and_score_by_name(two_shipped, exported):
    import casnet

    expected = _expected(exported)  # cleaning seeded by the ids, as below
    ids = list(expected.index)
    stamps = [exported["stamps"][g] for g in ids]
    for name in ("pretrained", "pretrained-truth"):
        folder = pretrained.folder_of(name)
        assert pretrained.available(folder) and (folder / pretrained.CARD).is_file()
        path, notice = pretrained.resolve(name)
        assert Path(path) == folder / "model" and name in notice
        assert pretrained.shipped_name(path) == name
        table = casnet.load_model(name).predict(stamps, ids=ids)
        for target in TARGETS:
            np.testing.assert_allclose(table[target], expected[target], rtol=1e-5, atol=1e-6)
    assert (two_shipped / "truth" / pretrained.CARD).read_text() == "# truth\n"
    # the truth folder sits inside the label one's: exporting one never touches the other
    assert sorted(p.name for p in two_shipped.iterdir()) == [
        "MODEL_CARD.md", "default.json", "model", "provenance.json", "truth"]  # fmt: skip


def test_the_default_is_the_one_default_json_names(two_shipped, tmp_path):
    assert pretrained.default_name() == "pretrained-truth"
    path, notice = pretrained.resolve(None)  # no store: the shipped default
    assert Path(path) == two_shipped / "truth" / "model"
    assert "pretrained-truth" in notice and "casnet pull --pretrained" not in notice
    import casnet

    assert casnet.load_model().name == "pretrained-truth"
    # a catalogue says which of the two scored it
    from casnet.networks.predict import provenance

    meta = provenance(path, path)
    assert meta["model"] == "pretrained-truth" and meta["model_commit"] == "fedcba9876543210"
    # default.json naming a model that is not shipped falls back to the label-trained one
    (two_shipped / "default.json").write_text('{"default": "pretrained-bogus"}')
    assert pretrained.default_name() == "pretrained"
    with pytest.raises(Exception, match="no shipped model 'x'"):
        pretrained.folder_of("x")


def test_casnet_predict_scores_with_the_truth_model_by_name(two_shipped, exported, tmp_path):
    out = tmp_path / "c.parquet"
    result = CliRunner().invoke(app, ["predict", str(exported["dir"]), "--out", str(out),
                                      "--model", "pretrained-truth", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scored with pretrained-truth" in result.output
    assert len(pd.read_parquet(out)) == len(exported["stamps"])


def test_the_truth_networks_are_registered_as_casnet_truth(exported, monkeypatch):
    """The science run registers its best truth-trained run per target and wraps them as
    ``casnet-truth`` (here the test's label runs stand in for them); a second call with the
    same runs registers nothing new."""
    from mlflow import MlflowClient

    from casnet.core.tracking import tracking_uri
    from casnet.science.defaults import TRUTH_COMBINED, TRUTH_NETWORKS, register_truth

    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    root = exported["root"]
    client = MlflowClient(tracking_uri(root), registry_uri=tracking_uri(root))
    done = {}
    for t in TARGETS:
        version = client.get_model_version_by_alias(f"casnet-{t}", "champion")
        done[f"train-{t}-truth-seed1"] = {"run_id": version.run_id}
    version = register_truth(root, done, CleanConfig())
    champion = client.get_model_version_by_alias(TRUTH_COMBINED, "champion")
    assert str(champion.version) == version
    for t in TARGETS:
        net = client.get_model_version_by_alias(TRUTH_NETWORKS[t], "champion")
        assert net.run_id == done[f"train-{t}-truth-seed1"]["run_id"]
    stamps = np.stack(list(exported["stamps"].values()))
    truth = registry.load(f"models:/{TRUTH_COMBINED}@champion", root=root).predict(stamps)
    label = registry.load("models:/casnet@champion", root=root).predict(stamps)
    pd.testing.assert_frame_equal(truth[list(TARGETS)], label[list(TARGETS)])
    assert register_truth(root, done, CleanConfig()) == version


def test_the_package_ships_both_models_with_their_cards_and_a_default():
    """Issue 30 item 4: ``pretrained`` and ``pretrained-truth``, each with its provenance and
    model card, and ``default.json`` naming one of them with the reason."""
    for name in pretrained.NAMES:
        folder = pretrained.folder_of(name)
        assert pretrained.available(folder), name
        info = pretrained.provenance(folder)
        assert info["name"] == name and info["learnt"] in ("label", "truth")
        assert info["real_scores"]["n_headline"] > 0 and info["sim_scores"]["n"] > 0
        card = (folder / pretrained.CARD).read_text()
        assert card.startswith(f"# Model card: `{name}`") and "Sigma" in card
    default = json.loads((pretrained.PACKAGE_DIR / "default.json").read_text())
    assert default["default"] in pretrained.NAMES and default["why"]
    assert pretrained.default_name() == default["default"]


@pytest.mark.slow
def test_both_shipped_models_score_galaxies_they_never_saw():
    """Both load by name through the Python API and give values and sigmas for 40 galaxies
    beyond the science run's ids; the label-trained one follows the simulator's noiseless
    truth (r > 0.5; the truth-trained one's A does not on these 40, r ~0.14 against this
    centroid-centred truth: an open finding of issue 30, recorded in its stop note)."""
    import casnet
    from casnet.morphology.measurement import measure_truth
    from casnet.morphology.settings import MorphologyConfig

    cfg = SimulateConfig()
    galaxies = [simulate_galaxy(60_000 + i, cfg) for i in range(40)]
    truths = [measure_truth(g.truth.astype(np.float64), centre=None, sky_sigma=g.sky_sigma,
                            config=MorphologyConfig()) for g in galaxies]  # fmt: skip
    for name in pretrained.NAMES:
        out = casnet.load_model(name).predict([g.image for g in galaxies],
                                              ids=[g.galaxy_id for g in galaxies])  # fmt: skip
        for target in TARGETS:
            truth = np.array([getattr(t, target) for t in truths], dtype=float)
            ok = np.isfinite(truth) & np.isfinite(out[target].to_numpy())
            assert ok.sum() >= 30, (name, target)
            assert (out[f"{target}_err"][ok] > 0).all()
            r = np.corrcoef(truth[ok], out[target].to_numpy()[ok])[0, 1]
            if name == "pretrained" or target == "concentration":
                assert r > 0.5, (name, target, r)
