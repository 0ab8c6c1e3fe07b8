"""``casnet evaluate``: the three suites on a tiny model and sample, logged to one MLflow run;
a served model evaluates like the in-process one; the command line's checks.

The model is a local combined pyfunc around two small untrained (seeded) Keras networks; the
stores are written here. Reference values (predictions, RMSEs) are computed with the Keras
networks and numpy directly, not through ``casnet.evaluation``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from casnet.cli import app, main
from casnet.core.flags import Flag
from casnet.data.io.store import StoreWriter
from casnet.data.preprocess import crop_normalise
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.evaluation.predictor import Predictor
from casnet.evaluation.run import EXPERIMENT, evaluate
from casnet.evaluation.settings import EvaluateConfig, NoiseSuiteConfig, RedshiftSuiteConfig
from casnet.morphology import measure
from casnet.networks.architecture import build_model
from casnet.networks.settings import ArchitectureConfig
from casnet.params import Params

TINY = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip
TARGETS = ("concentration", "asymmetry")
#: simulated galaxies (SimulateConfig defaults) that measure with SNR_p > 20 and no flag
BRIGHT = (4, 5, 22)
SUITES = ["test", "noise", "redshift"]
PARAMS = Params().model_copy(update={"evaluate": EvaluateConfig(
    noise=NoiseSuiteConfig(snr_grid=(10, 5, 3), max_galaxies=3),
    redshift=RedshiftSuiteConfig(n_galaxies=3, z_grid=(0.2, 1.0, 2.0), native_size=96),
)})  # fmt: skip
LOCK = """schema: '2.0'
stages:
  split:
    outs:
    - path: data/split
      hash: md5
      md5: 11aa.dir
  clean:
    outs:
    - path: data/cleaned
      hash: md5
      md5: 33cc.dir
"""

runner = CliRunner()


def _write_store(path: Path, rows: list[dict], images: np.ndarray, chunk: int = 5) -> None:
    """A store of ``images`` (N, H, W) with catalogue ``rows``, several chunks."""
    with StoreWriter(path, stamp_shape=images.shape[1:], chunk_size=chunk) as w:
        for lo in range(0, len(rows), chunk):
            w.append(rows[lo : lo + chunk], {"image": images[lo : lo + chunk]})


def _expected(nets, stamps: np.ndarray) -> dict[str, np.ndarray]:
    """What the combined model must answer: each Keras network on crop_normalise'd stamps."""
    x = crop_normalise(np.asarray(stamps, np.float32))[0][..., None]
    return {t: net.predict(x, verbose=0).reshape(-1).astype(np.float64) for t, net in nets.items()}


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A combined model saved locally around two small (untrained, seeded) networks."""
    import keras
    import mlflow

    from casnet.networks.mlmodel import network_signature
    from casnet.networks.registry import CasnetModel

    root = tmp_path_factory.mktemp("model")
    nets, artifacts = {}, {}
    for i, target in enumerate(TARGETS):
        keras.utils.set_random_seed(i)
        nets[target] = build_model(TINY)
        artifacts[target] = str(root / target)
        mlflow.keras.save_model(nets[target], artifacts[target], signature=network_signature())
    mlflow.pyfunc.save_model(str(root / "casnet"), python_model=CasnetModel(),
                             artifacts=artifacts, pip_requirements=["mlflow"])  # fmt: skip
    return root / "casnet", nets


@pytest.fixture(scope="module")
def raw_stamps():
    """101x101 simulated stamps by index: the bright ones and a faint one."""
    cfg = SimulateConfig()
    return {i: simulate_galaxy(i, cfg).image.astype(np.float32) for i in (*BRIGHT, 3, 0, 1)}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The project root of this module's runs (its own MLflow store)."""
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module", autouse=True)
def _own_store(root):
    """Every MLflow access of this module goes to ``root``: no MLFLOW_* variables, CASNET_ROOT."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            mp.delenv(key)
        mp.setenv("CASNET_ROOT", str(root))
        yield


@pytest.fixture(scope="module")
def project(root, model_dir, raw_stamps):
    """A project root with a dvc.lock and the test, val and raw stores.

    Validation galaxies: three bright ones on which the network and the 'conventional' C and A
    agree (the catalogue's C and A are set to the network's own predictions) -- the noise sample;
    a bright one on which they disagree; one with a fatal flag; a faint one; one missing from the
    raw store.
    """
    (root / "dvc.lock").write_text(LOCK)
    rng = np.random.default_rng(0)

    # test store: 12 centre crops (60x60) of simulated galaxies, random labels and truths
    crops = np.stack([simulate_galaxy(i, SimulateConfig()).image[20:80, 20:80]
                      for i in range(12)]).astype(np.float32)  # fmt: skip
    truth_c, truth_a = rng.uniform(2, 5, 12), rng.uniform(0, 0.5, 12)
    test_rows = [{"galaxy_id": f"t{i}", "snr_p": float(rng.uniform(2, 60)),
                  "label_concentration": truth_c[i] + rng.normal(0, 0.1),
                  "label_asymmetry": truth_a[i] + rng.normal(0, 0.03),
                  "concentration": truth_c[i] + rng.normal(0, 0.2),
                  "asymmetry": truth_a[i] + rng.normal(0, 0.05),
                  "concentration_true": truth_c[i], "asymmetry_true": truth_a[i]}
                 for i in range(12)]  # fmt: skip
    test_rows[4]["asymmetry"] = float("nan")  # a failed conventional measurement
    test = root / "data" / "split" / "test"
    _write_store(test, test_rows, crops)

    # raw store: the 101x101 stamps; ids as in the validation catalogue
    ids = list(raw_stamps)
    raw_images = np.stack([raw_stamps[i] for i in ids])
    raw = root / "data" / "cleaned"
    _write_store(raw, [{"galaxy_id": f"v{i}"} for i in ids], raw_images)

    net = Predictor(str(model_dir[0])).predict(raw_images)
    net_c, net_a = net["concentration"].to_numpy(), net["asymmetry"].to_numpy()
    val_rows = []
    for k, i in enumerate(ids):
        m = measure(raw_stamps[i].astype(np.float64))
        val_rows.append({"galaxy_id": f"v{i}", "snr_p": m.snr_p, "flag": int(m.flag),
                         "concentration": float(net_c[k]), "asymmetry": float(net_a[k]),
                         "label_concentration": m.concentration, "label_asymmetry": m.asymmetry,
                         "concentration_true": m.concentration,
                         "asymmetry_true": m.asymmetry})  # fmt: skip
    by_id = {r["galaxy_id"]: r for r in val_rows}
    for i in BRIGHT:
        assert by_id[f"v{i}"]["snr_p"] > 20 and by_id[f"v{i}"]["flag"] == 0, i
    assert by_id["v3"]["snr_p"] > 20
    by_id["v3"]["asymmetry"] += 0.5  # the two methods disagree: not in the sample
    by_id["v0"]["flag"] = int(Flag.NO_PETROSIAN)  # fatal: not in the sample
    by_id["v0"]["snr_p"] = 50.0
    by_id["v1"]["snr_p"] = 4.0  # too faint
    val_rows.append({**by_id["v4"], "galaxy_id": "v999"})  # no raw stamp
    val = root / "data" / "split" / "val"
    val_images = np.stack(
        [raw_stamps[i][20:80, 20:80] for i in ids] + [raw_stamps[4][20:80, 20:80]]
    )
    _write_store(val, val_rows, val_images)
    return {"root": root, "test": test, "val": val, "raw": raw, "crops": crops,
            "test_rows": test_rows}  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(project, model_dir):
    """All three suites in one evaluation, logged to the project's own MLflow store."""
    root = project["root"]
    ev = evaluate(str(model_dir[0]), SUITES, PARAMS.evaluate, simulate=PARAMS.simulate,
                  morphology=PARAMS.morphology, test=project["test"], val=project["val"],
                  raw=project["raw"], root=root)  # fmt: skip
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    return ev, client, client.get_run(ev.run_id)


def _artifacts(client, run_id, path) -> list[str]:
    return sorted(Path(a.path).name for a in client.list_artifacts(run_id, path))


def _table(client, run_id, path, dest) -> pd.DataFrame:
    return pd.read_parquet(client.download_artifacts(run_id, path, str(dest)))


def test_one_finished_run_tagged_with_model_and_lineage(evaluated, project, model_dir):
    ev, client, run = evaluated
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == EXPERIMENT == "casnet-evaluate"
    tags = run.data.tags
    assert tags["casnet.model_uri"] == str(model_dir[0])
    assert tags["casnet.suites"] == "test,noise,redshift"
    assert tags["casnet.git_commit"]  # 'unknown' outside a git checkout, else the sha
    for role, md5 in (("test", "11aa.dir"), ("val", "11aa.dir"), ("raw", "33cc.dir")):
        assert tags[f"casnet.data.{role}.path"] == str(project[role])
        assert tags[f"casnet.data.{role}.dvc_md5"] == md5
    assert set(ev.results) == set(SUITES)


def test_test_suite_metrics_equal_numpy(evaluated, project, model_dir, tmp_path):
    _, client, run = evaluated
    metrics = run.data.metrics
    rows = pd.DataFrame(project["test_rows"])
    pred = _expected(model_dir[1], project["crops"])
    # float32 networks, batch composition may differ: rtol 1e-5 on the RMSE
    for t in TARGETS:
        label = rows[f"label_{t}"].to_numpy()
        assert metrics[f"test_{t}_rmse"] == pytest.approx(_rmse(pred[t], label), rel=1e-5)
        assert metrics[f"test_{t}_mae"] == pytest.approx(
            float(np.mean(np.abs(pred[t] - label))), rel=1e-5)  # fmt: skip
        # against the truth, over the galaxies the conventional measurement did not fail on
        ok = np.isfinite(rows[t].to_numpy())
        truth = rows[f"{t}_true"].to_numpy()
        assert metrics[f"test_{t}_conventional_vs_truth_rmse"] == pytest.approx(
            _rmse(rows[t][ok], truth[ok]), rel=1e-12)  # fmt: skip
        assert metrics[f"test_{t}_net_vs_truth_rmse"] == pytest.approx(
            _rmse(pred[t][ok], truth[ok]), rel=1e-5)  # fmt: skip
    assert metrics["test_n"] == 12
    table = _table(client, run.info.run_id, "tables/test/test_galaxies.parquet", tmp_path)
    assert list(table["galaxy_id"]) == list(rows["galaxy_id"])
    for t in TARGETS:
        np.testing.assert_allclose(table[f"net_{t}"], pred[t], rtol=1e-5, atol=1e-6)
    assert _artifacts(client, run.info.run_id, "figures/test") == [
        "test_asymmetry.png", "test_concentration.png", "test_residuals_vs_snr.png",
        "test_residuals_vs_truth.png"]  # fmt: skip


def test_noise_suite_selects_and_degrades(evaluated, tmp_path):
    _, client, run = evaluated
    metrics = run.data.metrics
    # only the three bright, unflagged galaxies with a raw stamp on which the methods agree
    assert metrics["noise_n_galaxies"] == 3
    # v3, v4, v5, v22 are bright, unflagged and have a raw stamp; v3's A disagrees
    assert (metrics["noise_n_bright"], metrics["noise_n_agree"]) == (4, 3)
    table = _table(client, run.info.run_id, "tables/noise/noise_galaxies.parquet", tmp_path)
    assert set(table["galaxy_id"]) == {f"v{i}" for i in BRIGHT}
    assert len(table) == 3 * 3  # every galaxy reaches every SNR_p of the grid
    assert sorted(set(table["snr_target"])) == [3.0, 5.0, 10.0]
    for col in ("net_concentration", "net_asymmetry", "snr_measured"):
        assert np.isfinite(table[col]).all(), col
    summary = _table(client, run.info.run_id, "tables/noise/noise_summary.parquet", tmp_path)
    assert set(summary["method"]) == {"network", "conventional"}
    assert (summary.loc[summary["snr_target"] == 10.0, "mean"] == 0).all()  # the reference
    for key in ("noise_network_asymmetry_scatter_snr_ge5", "noise_conventional_asymmetry_bias_snr3",
                "noise_network_asymmetry_catastrophic",
                "noise_conventional_concentration_catastrophic",
                "noise_network_asymmetry_truth_bias_snr3",
                "noise_conventional_concentration_truth_scatter_snr_ge5"):  # fmt: skip
        assert np.isfinite(metrics[key]), key
    # the pooled scatter is over the SNR_p = 5 rows alone (the reference is left out)
    for method, prefix in (("network", "net"), ("conventional", "conv")):
        wide = table.pivot(index="galaxy_id", columns="snr_target", values=f"{prefix}_asymmetry")
        expected = float(np.std(wide[5.0] - wide[10.0]))
        got = metrics[f"noise_{method}_asymmetry_scatter_snr_ge5"]
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), method
    assert _artifacts(client, run.info.run_id, "figures/noise") == [
        "noise_deviation.png", "noise_examples.png", "noise_histograms.png",
        "noise_vs_truth.png"]  # fmt: skip


def test_redshift_suite_keeps_galaxies_and_logs_figures(evaluated, tmp_path):
    _, client, run = evaluated
    metrics = run.data.metrics
    assert metrics["redshift_n_galaxies"] == 3
    kept = int(metrics["redshift_n_kept"])
    table = _table(client, run.info.run_id, "tables/redshift/redshift_galaxies.parquet", tmp_path)
    # seeded: these parameters keep all 3 galaxies (SNR_p > 25 at z = 2); >= 1 is what the
    # rest of this test needs
    assert kept >= 1
    assert len(table) == kept * 3 and sorted(set(table["z"])) == [0.2, 1.0, 2.0]
    assert (table["snr_p"] > 2).all()
    assert np.isfinite(table[["net_concentration", "net_asymmetry"]]).all(axis=None)
    assert _artifacts(client, run.info.run_id, "figures/redshift") == [
        "redshift_deviation.png", "redshift_examples.png", "redshift_tracks.png",
        "redshift_vs_truth.png"]  # fmt: skip
    # every galaxy is accounted for: kept, or left out for a reason
    parts = ("n_kept", "n_reference_flagged", "n_reference_too_large", "n_faint")
    assert sum(metrics[f"redshift_{k}"] for k in parts) == metrics["redshift_n_galaxies"]
    books = _table(client, run.info.run_id, "tables/redshift/redshift_bookkeeping.parquet",
                   tmp_path)  # fmt: skip
    assert list(books["z"]) == [0.2, 1.0, 2.0]
    assert (books["dimming_mag"].diff().dropna() > 0).all()
    for key in ("redshift_network_concentration_mean_dev_zmax",
                "redshift_conventional_asymmetry_std_dev_zmax"):  # fmt: skip
        assert np.isfinite(metrics[key]), key


def test_summary_markdown_logged_and_returned(evaluated, tmp_path):
    ev, client, run = evaluated
    header = next(line for line in ev.summary.splitlines() if line.startswith("| quantity"))
    for col in ("quantity", "network", "conventional"):
        assert col in header
    assert "RMSE vs label (test)" in ev.summary
    assert "(noise)" in ev.summary and "(redshift)" in ev.summary
    assert "net SB change" in ev.summary  # the redshift suite's bookkeeping, below the table
    assert "nan" not in ev.summary.lower()  # blanks, not 'nan'
    logged = Path(client.download_artifacts(run.info.run_id, "summary.md", str(tmp_path)))
    assert logged.read_text() == ev.summary + "\n"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"figures", "tables", "summary.md"} <= names
    assert _artifacts(client, run.info.run_id, "tables/test") == [
        "test_by_snr.parquet", "test_galaxies.parquet"]  # fmt: skip


# --- served == in-process -------------------------------------------------------------------


@pytest.mark.slow
def test_served_model_evaluates_like_the_in_process_one(model_dir, project, raw_stamps, tmp_path):
    from casnet.evaluation.test_set import test_set
    from casnet.networks.serve import scoring_server

    stamps = np.stack(list(raw_stamps.values()))
    local = Predictor(str(model_dir[0]), batch_size=4)
    expected = _expected(model_dir[1], stamps)
    with scoring_server(str(model_dir[0])) as url:
        served = Predictor(url, batch_size=4)  # two requests for 6 stamps
        got = served.predict(stamps)
        mine = local.predict(stamps)
        # each value and its sigma (NaN: these point networks have none, issue 18)
        want = [c for t in TARGETS for c in (t, f"{t}_err")]
        assert list(got.columns) == list(mine.columns) == want
        assert got[[f"{t}_err" for t in TARGETS]].isna().all().all()
        # float32 networks; JSON carries the float64 answers: atol 1e-5
        np.testing.assert_allclose(got.to_numpy(), mine.to_numpy(), atol=1e-5, rtol=0)
        for t in TARGETS:
            np.testing.assert_allclose(mine[t], expected[t], atol=1e-5, rtol=0)
        by_server = test_set(served, project["test"], tmp_path / "served")
    by_local = test_set(local, project["test"], tmp_path / "local")
    assert served.describe() == {"casnet.model_uri": url}
    assert by_server.metrics.keys() == by_local.metrics.keys()
    for key, value in by_local.metrics.items():
        assert by_server.metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


# --- the command line -----------------------------------------------------------------------


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``casnet ARGS`` as the console script does: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["casnet", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.fixture
def cli_env(monkeypatch, project):
    """Commands run from the project root (the default store paths are its stores)."""
    monkeypatch.chdir(project["root"])
    return project["root"]


def test_cli_rejects_an_unknown_suite(cli_env, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, "evaluate", "--suite", "bogus")
    assert code == 2
    assert "--suite must be test, noise, redshift, real or all" in err and "bogus" in err
    result = runner.invoke(app, ["evaluate", "--suite", "test,bogus"])
    assert result.exit_code == 2


def test_cli_set_names_unknown_keys_and_bad_values(cli_env, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, "evaluate", "--set", "noise.nonexistent=1")
    assert code == 3  # bad configuration (casnet.core.errors.EXIT_BAD_INPUT)
    assert "noise.nonexistent = 1: unknown key" in err
    assert "snr_grid" in err and "max_galaxies" in err  # the allowed keys are listed
    code, err = _main(monkeypatch, capsys, "evaluate", "--set", "noise.max_galaxies=0")
    assert code == 3 and "noise.max_galaxies = 0" in err
    code, err = _main(monkeypatch, capsys, "evaluate", "--set", "bogus.key=1")
    assert code == 3 and "'bogus.key' is not a key of evaluate" in err
    code, err = _main(monkeypatch, capsys, "evaluate", "--set", "redshift.z_grid")
    assert code == 3 and "KEY=VALUE" in err


def test_cli_set_overrides_reach_the_suite(cli_env, model_dir):
    result = runner.invoke(app, [
        "evaluate", "--model", str(model_dir[0]), "--suite", "redshift",
        "--set", "redshift.z_grid=[0.2,1]",
        "--set", "redshift.n_galaxies=1;redshift.native_size=64",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[-1].split()[2]
    assert "(experiment casnet-evaluate)" in result.stdout
    client = MlflowClient(f"sqlite:///{cli_env}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["redshift_n_galaxies"] == 1
    assert run.data.tags["casnet.suites"] == "redshift"
    if run.data.metrics["redshift_n_kept"]:
        table = pd.read_parquet(client.download_artifacts(
            run_id, "tables/redshift/redshift_galaxies.parquet", str(cli_env)))  # fmt: skip
        assert sorted(set(table["z"])) == [0.2, 1.0]
