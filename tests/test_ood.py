"""The out-of-distribution score (issue 29 item 3): the fit on synthetic features with known
answers, the file, the pretrained model on hand-made stamps no galaxy looks like, ``casnet
predict``'s column and flag, a model without a fit, the fit at registration, and the real
suite's hit-rate table.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import CasnetInputError
from casnet.core.flags import PredictFlag
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.evaluation.real import ood_by_group
from casnet.networks import ood
from casnet.networks.predict import predict
from casnet.networks.settings import ArchitectureConfig

TINY = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip
TARGETS = ("concentration", "asymmetry")
runner = CliRunner()


def _gaussian(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` draws of a correlated d-dimensional Gaussian (mean 3, fixed covariance)."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(d, d)) / math.sqrt(d) + np.eye(d)
    return 3.0 + rng.normal(size=(n, d)) @ mix.T


# --- the fit, by hand ------------------------------------------------------------------------


def test_the_mean_scores_zero_and_distance_is_mahalanobis():
    x = _gaussian(4000, 5, 0)
    mean, whiten = ood.fit_density(x)
    assert ood.mahalanobis(mean, mean, whiten)[0] == pytest.approx(0.0, abs=1e-12)
    # |W (f - mu)|^2 is (f - mu)^T Sigma^-1 (f - mu) for the Ledoit-Wolf covariance
    from sklearn.covariance import LedoitWolf

    cov = LedoitWolf().fit(x).covariance_
    f = x[:7]
    direct = np.sqrt(np.einsum("ij,jk,ik->i", f - mean, np.linalg.inv(cov), f - mean))
    # float64 Cholesky vs a direct inverse of a well-conditioned 5x5 matrix
    np.testing.assert_allclose(ood.mahalanobis(f, mean, whiten), direct, rtol=1e-8)
    # a non-finite feature is as far as it gets, never NaN
    assert ood.mahalanobis(np.full(5, np.nan), mean, whiten)[0] == np.inf


def test_the_threshold_lets_through_the_quantile_of_the_held_out_galaxies():
    feats = {t: _gaussian(2000, 6, s) for s, t in enumerate(TARGETS)}
    first, second = ood.split(2000)
    fit = ood.fit_ood({t: f[first] for t, f in feats.items()},
                      {t: f[second] for t, f in feats.items()}, quantile=0.99)  # fmt: skip
    held = fit.score({t: f[second] for t, f in feats.items()})
    # "higher" quantile of 1000: at most 1% above, and at most one galaxy fewer
    assert 0.009 <= np.mean(held > 1) <= 0.01
    # new galaxies of the same population: ~1%; 4000 draws give a binomial sd of 0.16%, and
    # the threshold itself is a quantile of 1000 (sd ~0.3%): 0.4-2% is > 3 sd either side
    fresh = fit.score({t: _gaussian(4000, 6, 10 + s) for s, t in enumerate(TARGETS)})
    assert 0.004 <= np.mean(fresh > 1) <= 0.02
    # scores are exactly 0 at both means
    assert fit.score({t: d.mean[None] for t, d in fit.densities.items()})[0] == pytest.approx(0)


def test_the_fit_refuses_what_it_cannot_use():
    a = {"concentration": _gaussian(50, 3, 0)}
    with pytest.raises(ValueError, match="quantile"):
        ood.fit_ood(a, a, quantile=1.0)
    with pytest.raises(ValueError, match="networks"):
        ood.fit_ood(a, {"asymmetry": _gaussian(50, 3, 1)})
    with pytest.raises(ValueError, match=">= 10"):
        ood.fit_ood(a, {"concentration": _gaussian(5, 3, 1)})


def _fit(d: int = 4) -> ood.OodFit:
    feats = {t: _gaussian(200, d, s) for s, t in enumerate(TARGETS)}
    return ood.fit_ood(feats, {t: _gaussian(100, d, 5 + s) for s, t in enumerate(TARGETS)},
                       meta={"note": "synthetic"})  # fmt: skip


def test_the_file_round_trips_as_data(tmp_path):
    fit = _fit()
    path = ood.save_fit(fit, tmp_path)
    assert path.name == ood.OOD_FILE
    back = ood.read_fit(path)
    assert back.threshold == fit.threshold and back.quantile == fit.quantile
    assert back.meta == {"note": "synthetic"}
    x = {t: _gaussian(20, 4, 7) for t in TARGETS}
    # the file keeps float32 arrays: scores to ~1e-5 relative
    np.testing.assert_allclose(back.score(x), fit.score(x), rtol=1e-4)


def test_a_damaged_or_pickled_fit_is_not_used(tmp_path):
    (tmp_path / ood.OOD_FILE).write_bytes(b"not a zip")
    fit, why = ood.load_fit(tmp_path)
    assert fit is None and "not casnet's out-of-distribution fit" in why
    # an object array would need a pickle to read: refused, nothing unpickled
    np.savez(tmp_path / ood.OOD_FILE, format=np.array(1), targets=np.array([{"x": 1}], object))
    with pytest.raises(CasnetInputError, match="out-of-distribution fit"):
        ood.read_fit(tmp_path / ood.OOD_FILE)
    assert ood.load_fit(tmp_path / "nowhere")[0] is None


# --- the pretrained model on stamps no galaxy looks like ---------------------------------------


def _hand_made() -> dict[str, np.ndarray]:
    """101x101 stamps of things that are not galaxies (a checkerboard, a thin ring, a field of
    bright point sources), each with a little noise."""
    rng = np.random.default_rng(1)
    yy, xx = np.indices((101, 101))
    noise = lambda s: rng.normal(0, s, (101, 101))  # noqa: E731
    points = noise(0.02)
    for y, x in rng.integers(25, 76, (25, 2)):
        points += 5 * np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / 1.2**2)
    return {
        "checkerboard": ((yy // 4 + xx // 4) % 2) + noise(0.05),
        "ring": np.exp(-0.5 * ((np.hypot(yy - 50, xx - 50) - 18) / 1.5) ** 2) + noise(0.02),
        "point_sources": points,
    }


@pytest.fixture(scope="module")
def pretrained_model():
    from casnet.networks import pretrained
    from casnet.networks.registry import load

    if not (pretrained.model_path() / ood.OOD_FILE).is_file():
        pytest.fail("the packaged model ships no out-of-distribution fit")
    return load(str(pretrained.model_path()))


def test_the_pretrained_model_flags_stamps_no_galaxy_looks_like(pretrained_model):
    made = _hand_made()
    table = pretrained_model.predict({"stamp": [v.astype(np.float32) for v in made.values()],
                                      "galaxy_id": list(made)})  # fmt: skip
    assert (table["ood_score"] > 1).all(), table[["galaxy_id", "ood_score"]]
    # simulated galaxies (the simulator's defaults, flagged or not by the selection): the
    # threshold lets 99% of the selected ones through; of 20 at most 2 are above it
    sims = [simulate_galaxy(i, SimulateConfig()).image.astype(np.float32) for i in range(20)]
    scores = pretrained_model.predict(np.stack(sims))["ood_score"]
    assert (scores > 1).sum() <= 2, scores.round(2).tolist()
    fit = pretrained_model.unwrap_python_model().ood_fit
    assert fit.quantile == 0.99 and fit.meta["n_threshold"] > 500  # its provenance


# --- casnet predict with a tiny model --------------------------------------------------------


@pytest.fixture
def model_dir(tiny_combined_model, tmp_path):
    """A copy of the tiny combined model of the test's own (tests write fits into it)."""
    import shutil

    return Path(shutil.copytree(tiny_combined_model, tmp_path / "casnet"))


def _stamps_dir(tmp_path, label_store):
    """FITS stamps: 4 simulated galaxies and 4 network-ready random stamps (the tiny model's
    "training set" below: uniform noise), as ``g*`` and ``r*``."""
    from astropy.io import fits

    d = tmp_path / "stamps"
    d.mkdir()
    for i in range(4):
        fits.writeto(d / f"g{i}.fits", simulate_galaxy(i, SimulateConfig()).image)
    rng = np.random.default_rng(123)
    for i in range(4):
        fits.writeto(d / f"r{i}.fits", rng.random((60, 60)).astype(np.float32))
    return d


def test_predict_writes_the_score_and_flags_what_is_out_of_distribution(
    model_dir, tmp_path, label_store, capsys
):
    # the "simulated galaxies" of this model: random 60x60 stamps; galaxies are unlike them
    label_store(tmp_path / "train_like", 200, 5)
    fit = ood.fit_model(model_dir, [tmp_path / "train_like"])
    assert (model_dir / ood.OOD_FILE).is_file() and fit.meta["n_fit"] == 100
    d = _stamps_dir(tmp_path, label_store)
    table = predict([d], str(model_dir), progress=False).set_index("galaxy_id")
    assert "no out-of-distribution fit" not in capsys.readouterr().err
    bit = int(PredictFlag.OUT_OF_DISTRIBUTION)
    galaxies = table.loc[[f"g{i}" for i in range(4)]]
    randoms = table.loc[[f"r{i}" for i in range(4)]]
    assert (galaxies["ood_score"] > 1).all() and (galaxies["predict_flag"] & bit).all()
    assert galaxies["predict_flag_reasons"].str.contains("OUT_OF_DISTRIBUTION: ood_score").all()
    assert (randoms["ood_score"] < 1).sum() >= 3  # 1% of such stamps may be above
    # the flag warns, the values stay: the same as without a fit
    (model_dir / ood.OOD_FILE).rename(tmp_path / "kept.npz")
    plain = predict([d], str(model_dir), progress=False).set_index("galaxy_id")
    for t in TARGETS:
        np.testing.assert_array_equal(plain[t], table.loc[plain.index, t])


def test_a_model_without_a_fit_scores_nan_and_says_so_once(model_dir, tmp_path, label_store,
                                                           capsys):  # fmt: skip
    d = _stamps_dir(tmp_path, label_store)
    table = predict([d], str(model_dir), chunk_size=3, progress=False)
    assert table["ood_score"].isna().all()
    assert not (table["predict_flag"] & int(PredictFlag.OUT_OF_DISTRIBUTION)).any()
    err = capsys.readouterr().err
    assert err.count("no out-of-distribution fit") == 1 and "ood_score is NaN" in err


def test_a_fit_of_other_networks_is_not_applied(model_dir, tmp_path, label_store):
    label_store(tmp_path / "s", 60, 1)
    fit = ood.fit_model(model_dir, [tmp_path / "s"], write=False)
    digests = dict(fit.meta["digests"], asymmetry="0" * 64)
    ood.save_fit(ood.OodFit(fit.densities, fit.threshold, fit.quantile,
                            dict(fit.meta, digests=digests)), model_dir)  # fmt: skip
    from casnet.networks.registry import load

    model = load(str(model_dir)).unwrap_python_model()
    assert model.ood_fit is None and "another asymmetry network" in model.ood_reason


def test_cli_fits_a_folder_and_predict_writes_the_column(model_dir, tmp_path, label_store):
    label_store(tmp_path / "val", 60, 2)
    result = runner.invoke(app, ["ood-fit", str(model_dir), "--store", str(tmp_path / "val")])
    assert result.exit_code == 0, result.output
    assert "fitted on 30 galaxies" in result.output
    assert (model_dir / ood.OOD_FILE).is_file()
    few = runner.invoke(app, ["ood-fit", str(model_dir), "--store", str(tmp_path / "val"),
                              "--quantile", "1.5"])  # fmt: skip
    assert few.exit_code == 2 and "--quantile" in few.output
    d = _stamps_dir(tmp_path, label_store)
    out = tmp_path / "cat.csv"
    result = runner.invoke(app, ["predict", str(d), "--model", str(model_dir), "--out", str(out),
                                 "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cat = pd.read_csv(out)
    assert cat["ood_score"].notna().all()


def test_a_fit_needs_enough_galaxies(model_dir, tmp_path, label_store):
    label_store(tmp_path / "small", 10, 3)
    with pytest.raises(CasnetInputError, match="at least"):
        ood.fit_model(model_dir, [tmp_path / "small"])


# --- registration --------------------------------------------------------------------------


def test_registration_fits_the_score_on_the_validation_store(tmp_path, registered_project,
                                                              monkeypatch):  # fmt: skip
    from mlflow import MlflowClient

    from casnet.core.tracking import tracking_uri
    from casnet.networks import registry

    stores, _ = registered_project(tmp_path, TINY, sizes=(48, 48, 16), clean=False)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    version = registry.register_combined(root=tmp_path, ood_store=stores["val"])
    client = MlflowClient(tracking_uri(tmp_path), registry_uri=tracking_uri(tmp_path))
    tag = client.get_model_version("casnet", version).tags["casnet.ood"]
    assert tag.startswith("fitted on") and "24 + 24 galaxies" in tag
    model = registry.load(f"models:/casnet/{version}", root=tmp_path)
    assert model.unwrap_python_model().ood_fit is not None
    assert "ood_score" in model.predict(np.random.default_rng(0).random((3, 60, 60)))
    # too few galaxies: registered without a fit, the tag says why
    version = registry.register_combined(root=tmp_path, ood_store=stores["test"])
    tag = client.get_model_version("casnet", version).tags["casnet.ood"]
    assert tag.startswith("not fitted") and "at least" in tag


# --- the real suite's table ------------------------------------------------------------------


def test_ood_by_group_counts_flags_and_splits_the_errors():
    # four views: two flagged with network errors of 1, two unflagged with errors of 0.1
    table = pd.DataFrame({
        "ood_score": [3.0, 2.0, 0.5, np.nan], "sn_per_pixel": [3.0, 3.0, 3.0, 3.0],
        "snr_p": [20.0] * 4, "kind": ["irregular", "irregular", "smooth disk", "smooth disk"],
        **{f"{m}_{t}": [0.0] * 4 for m in ("conv", "ref") for t in TARGETS},
        **{f"net_{t}": [1.0, -1.0, 0.1, 0.1] for t in TARGETS},
    })  # fmt: skip
    by = ood_by_group(table).set_index("bin")
    row = by.loc["all"]
    assert (row["n"], row["n_flagged"]) == (3, 2)  # the NaN score is not counted
    assert row["flagged_share"] == pytest.approx(2 / 3)
    assert row["asymmetry_net_rmse_flagged"] == pytest.approx(1.0)
    assert row["asymmetry_net_rmse_unflagged"] == pytest.approx(0.1)
    assert row["concentration_conv_rmse_flagged"] == pytest.approx(0.0)
    assert by.loc["irregular", "flagged_share"] == 1.0
    assert by.loc["smooth disk", "flagged_share"] == 0.0
