"""The real-morphology suite (issue 29): its scores on hand-made tables with known answers, the
suite end to end with a tiny model (tables, real_-prefixed metrics, figures, exclusions), and
``casnet evaluate --suite real``.

The end-to-end tests render with a stand-in for :func:`casnet.data.real.render_real` (simulated
galaxies, plus one too large for the crop and one with an empty noise-free stamp, so that every
path of the suite is known in advance); one test renders a few real galaxies with the real
renderer.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from casnet.cli import app
from casnet.core.errors import CasnetInputError
from casnet.data.real import cutout_footprint
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.evaluation.real import (
    EXCLUSIONS,
    HEADLINE,
    agreement,
    outliers,
    real_scores,
    real_suite,
    reference,
    scores_by_group,
)
from casnet.evaluation.run import SUITES, evaluate
from casnet.networks.settings import ArchitectureConfig
from casnet.params import Params

TINY = ArchitectureConfig(blocks=1, conv_per_block=1, filters=4, dense_layers=1, dense_units=8,
                          dropout=0.25, optimizer="adam", learning_rate=0.01,
                          batch_size=16)  # fmt: skip
TARGETS = ("concentration", "asymmetry")
#: simulated galaxies (SimulateConfig defaults) with SNR_p > 10, no flag, and a truth whose
#: 1.5 R_p aperture fits the 60x60 crop (11-29 px)
BRIGHT = (22, 9, 17, 27)
runner = CliRunner()


# --- the scores, by hand ---------------------------------------------------------------------


def test_agreement_slopes_and_r_by_hand():
    # x = 1..5, y = (2, 1, 4, 3, 5): cov = 8/5, var x = var y = 2 -> r = slope = reverse = 0.8
    s = agreement([2, 1, 4, 3, 5], [1, 2, 3, 4, 5])
    assert s["n"] == 5
    for k in ("r", "slope", "reverse_slope"):
        assert s[k] == pytest.approx(0.8, rel=1e-12), k  # exact arithmetic up to rounding


def test_agreement_forward_and_reverse_slopes_differ_as_the_spreads_do():
    # y = 2 x + 1: slope 2 (y on x), reverse 1/2 (x on y), r 1
    x = np.array([0.0, 1.0, 2.0, 5.0])
    s = agreement(2 * x + 1, x)
    assert (s["r"], s["slope"], s["reverse_slope"]) == pytest.approx((1.0, 2.0, 0.5), rel=1e-12)
    # a compressed predictor (slope 0.5 on a noiseless reference): reverse 2
    s = agreement(0.5 * x, x)
    assert (s["slope"], s["reverse_slope"]) == pytest.approx((0.5, 2.0), rel=1e-12)


def test_agreement_ignores_nan_pairs_and_is_nan_when_undefined():
    s = agreement([2, 1, np.nan, 4, 3, 5], [1, 2, 7, 3, 4, 5])
    assert s["n"] == 5 and s["slope"] == pytest.approx(0.8, rel=1e-12)
    assert np.isnan(agreement([1, 1, 1], [1, 2, 3])["slope"])  # a constant: no line
    assert agreement([1, 2], [1, 2])["n"] == 2 and np.isnan(agreement([1, 2], [1, 2])["r"])


def _hand_table() -> pd.DataFrame:
    """ref = 1..5; net = (2, 1, 4, 3, 5); conv = ref +- 0.1 (and 0); a sixth row with a NaN."""
    ref = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    net = np.array([2.0, 1.0, 4.0, 3.0, 5.0, 9.0])
    conv = ref + np.array([0.1, -0.1, 0.1, -0.1, 0.0, np.nan])
    return pd.DataFrame({"net_asymmetry": net, "conv_asymmetry": conv, "ref_asymmetry": ref})


def test_real_scores_on_a_hand_made_table():
    s = real_scores(_hand_table(), "asymmetry")
    assert s["n"] == 5  # the row with a NaN conventional value is left out of every score
    # network on reference: as test_agreement_slopes_and_r_by_hand
    assert (s["net_ref_r"], s["net_ref_slope"], s["net_ref_reverse_slope"]) == pytest.approx(
        (0.8, 0.8, 0.8), rel=1e-12)  # fmt: skip
    # residuals net - ref = (1, -1, 1, -1, 0): RMSE sqrt(4/5), bias 0
    assert s["net_rmse"] == pytest.approx(np.sqrt(0.8), rel=1e-12)
    assert s["net_bias"] == pytest.approx(0.0, abs=1e-12)
    # conv - ref = (0.1, -0.1, 0.1, -0.1, 0): RMSE sqrt(0.04/5); the ratio is 10
    assert s["conv_rmse"] == pytest.approx(np.sqrt(0.008), rel=1e-9)
    assert s["rmse_ratio"] == pytest.approx(10.0, rel=1e-9)
    # conventional on reference: slope = 1 + cov(d, x) / var(x) with d the offsets:
    # sum d (x - 3) = -0.2 + 0.1 - 0.1 = -0.2, cov = -0.04, var x = 2 -> 0.98
    assert s["conv_ref_slope"] == pytest.approx(0.98, rel=1e-9)
    # network on conventional, the headline slope: as numpy's least squares
    t = _hand_table().iloc[:5]
    slope = np.polyfit(t["conv_asymmetry"], t["net_asymmetry"], 1)[0]
    assert s["net_conv_slope"] == pytest.approx(slope, rel=1e-9)
    reverse = np.polyfit(t["net_asymmetry"], t["conv_asymmetry"], 1)[0]
    assert s["net_conv_reverse_slope"] == pytest.approx(reverse, rel=1e-9)
    r = np.corrcoef(t["net_asymmetry"], t["conv_asymmetry"])[0, 1]
    assert s["net_conv_r"] == pytest.approx(r, rel=1e-9)


def test_scores_by_group_covers_headline_bins_and_kinds():
    t = _hand_table()
    table = pd.concat([t, t.rename(columns=lambda c: c.replace("asymmetry", "concentration"))],
                      axis=1)  # fmt: skip
    table["sn_per_pixel"] = [0.5, 2.0, 3.0, 6.0, 12.0, 30.0]
    table["snr_p"] = [1.0, 2.5, 4.0, 8.0, 15.0, 50.0]
    table["kind"] = ["spheroid", "spheroid", "irregular", "irregular", "irregular", "spheroid"]
    frame = scores_by_group(table)
    assert set(frame["group"]) == {"all", "headline", "sn_per_pixel", "snr_p", "kind"}
    head = frame[(frame["group"] == "headline") & (frame["target"] == "asymmetry")].iloc[0]
    assert head["bin"] == HEADLINE
    assert head["n"] == 3  # sn_per_pixel >= 2.5: rows 2, 3, 4 (row 5 has a NaN)
    kind = frame[(frame["bin"] == "irregular") & (frame["target"] == "asymmetry")].iloc[0]
    assert kind["n"] == 3
    # every stamp of the table falls in one S/N-per-pixel bin and one SNR_p bin
    for group in ("sn_per_pixel", "snr_p"):
        part = frame[(frame["group"] == group) & (frame["target"] == "asymmetry")]
        assert part["n"].sum() == 5, group


def test_outliers_take_one_view_per_galaxy():
    table = pd.DataFrame({"galaxy_id": ["a", "a", "b", "c"], "sn_per_pixel": [5.0] * 4,
                          "net_asymmetry": [0.0, 0.0, 0.0, 0.0],
                          "ref_asymmetry": [0.5, 0.4, 0.1, 0.3]})  # fmt: skip
    picked = outliers(table, "asymmetry", n=3)
    assert list(picked["galaxy_id"]) == ["a", "c", "b"]
    assert list(picked["ref_asymmetry"]) == [0.5, 0.3, 0.1]


# --- the reference: the noise-free stamp's own noise -----------------------------------------


def test_footprint_is_the_rotated_cutout():
    square = cutout_footprint((101, 101), side_px=20)
    assert square.sum() == 21 * 21  # pixel centres within +-10 px of the centre (50, 50)
    turned = cutout_footprint((101, 101), side_px=20, rotation_deg=45)
    assert not turned[60, 60] and turned[50, 64]  # a corner cut off, the tip of the diamond in
    assert turned.sum() == pytest.approx(400, rel=0.08)  # the area, up to the pixel edges (421)
    moved = cutout_footprint((101, 101), side_px=20, offset_px=(3.0, 0.0))
    assert moved[50, 63] and not moved[50, 37]


def test_reference_takes_the_own_noise_off_a():
    """Simulated galaxies (truth known) with PSF-correlated noise of own S/N 10 inside a
    rotated 24 px cutout: the uncorrected A is biased high, the corrected one is not."""
    from scipy import signal

    from casnet.data.psf import psf_model
    from casnet.morphology.measurement import measure_truth
    from casnet.morphology.settings import MorphologyConfig
    from casnet.morphology.shape import elliptical_radius

    sim, morph = SimulateConfig(), MorphologyConfig()
    psf = psf_model(sim).drawImage(nx=31, ny=31, scale=sim.pixel_scale).array
    raw, corrected = [], []
    for i in (9, 27, 4):
        g = simulate_galaxy(i, sim)
        clean = g.truth.astype(np.float64)
        want = measure_truth(clean, centre=None, sky_sigma=g.sky_sigma)
        yy, xx = np.indices(clean.shape)
        inside = elliptical_radius(xx - want.x_centre, yy - want.y_centre, want.q, want.pa)
        own = clean[inside <= want.r_petro].mean() / 10  # own S/N 10 inside R_p
        region = cutout_footprint(clean.shape, side_px=24, rotation_deg=30)
        for seed in range(4):
            noise = signal.fftconvolve(np.random.default_rng(seed).normal(size=clean.shape), psf,
                                       mode="same")  # fmt: skip
            noisy = clean + np.where(region, noise * own / noise.std(), 0.0)
            ref, term = reference(noisy, noise_sigma=g.sky_sigma, own_sigma=own,
                                  own_region=region, morph=morph)  # fmt: skip
            assert term > 0 and ref.asymmetry_raw - ref.asymmetry == pytest.approx(term)
            raw.append(ref.asymmetry_raw - want.asymmetry)
            corrected.append(ref.asymmetry - want.asymmetry)
    # measured: +0.069 uncorrected, +0.004 corrected (seeded; 12 draws, scatter 0.02 each)
    assert np.mean(raw) > 0.04
    assert abs(np.mean(corrected)) < 0.02


def test_reference_without_own_noise_is_measure_truth():
    from casnet.morphology.measurement import measure_truth
    from casnet.morphology.settings import MorphologyConfig

    g = simulate_galaxy(BRIGHT[0], SimulateConfig())
    truth = g.truth.astype(np.float64)
    ref, term = reference(truth, noise_sigma=g.sky_sigma, own_sigma=0.0, own_region=None,
                          morph=MorphologyConfig())  # fmt: skip
    assert term == 0.0
    assert ref == measure_truth(truth, centre=None, sky_sigma=g.sky_sigma)


# --- the suite end to end --------------------------------------------------------------------


@dataclass(frozen=True)
class _Stamps:
    catalog: pd.DataFrame
    image: np.ndarray
    truth: np.ndarray


def _large_galaxy(cfg: SimulateConfig, rng) -> tuple[np.ndarray, np.ndarray, float]:
    """A bright disk whose 1.5 R_p aperture is far beyond the 60x60 crop."""
    gal = galsim.Exponential(half_light_radius=0.7, flux=2000.0)  # 1.5 R_p ~ 37 px
    truth = gal.drawImage(nx=cfg.stamp_size, ny=cfg.stamp_size, scale=cfg.pixel_scale).array
    sigma = 0.01
    return truth + rng.normal(0, sigma, truth.shape), truth, sigma


def fake_render(cfg, sim: SimulateConfig, *, indices=None) -> _Stamps:
    """A stand-in for render_real: the first ``cfg.max_galaxies`` BRIGHT simulated galaxies
    (observed stamp and truth), a galaxy too large for the crop and an empty noise-free stamp
    (no reference), each in ``cfg.views`` views (rotations by 90 degrees; S/N per pixel 1, 4,
    7 ...)."""
    rng = np.random.default_rng(0)
    gals = []
    for i in BRIGHT[: cfg.max_galaxies]:
        g = simulate_galaxy(i, sim)
        gals.append((f"sim{i}", "smooth disk", g.image, g.truth, g.sky_sigma))
    image, truth, sigma = _large_galaxy(sim, rng)
    gals.append(("big", "spheroid", image, truth, sigma))
    empty = rng.normal(0, 0.01, image.shape)
    gals.append(("empty", "irregular", empty, np.zeros_like(empty), 0.01))
    rows, images, truths = [], [], []
    for ident, (gid, kind, img, tru, sig) in enumerate(gals):
        for view in range(cfg.views):
            peak = float(np.max(tru))
            rows.append({"galaxy_id": gid, "cosmos_ident": ident, "kind": kind, "view": view,
                         "rotation_deg": 90.0 * view, "mag": 24.0, "mag_f814w": 24.0,
                         "flux": float(tru.sum()), "noise_sigma": sig, "own_noise_sigma": 0.0,
                         "own_noise_share": 0.0,
                         "sn_per_pixel": 1.0 + 3 * view if peak > 0 else 0.1})  # fmt: skip
            images.append(np.rot90(img, view))
            truths.append(np.rot90(tru, view))
    return _Stamps(pd.DataFrame(rows), np.asarray(images, np.float32),
                   np.asarray(truths, np.float32))  # fmt: skip


@pytest.fixture
def stand_in(monkeypatch):
    """render_real replaced by :func:`fake_render` (a module made for it if the real one is
    missing)."""
    try:
        import casnet.data.real as module
    except ImportError:
        module = types.ModuleType("casnet.data.real")
        monkeypatch.setitem(__import__("sys").modules, "casnet.data.real", module)
    monkeypatch.setattr(module, "render_real", fake_render, raising=False)
    return module


@dataclass
class _Cfg:
    views: int = 3
    max_galaxies: int = 2


@pytest.fixture(scope="module")
def model_dir(tiny_combined_model):
    """A combined model saved locally around two small (untrained, seeded) networks."""
    return tiny_combined_model


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """Every MLflow access goes to ``tmp_path``: no MLFLOW_* variables, CASNET_ROOT set."""
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CASNET_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def suite_result(stand_in, model_dir, tmp_path):
    from casnet.evaluation.predictor import Predictor

    params = Params()
    return real_suite(Predictor(str(model_dir)), _Cfg(), params.simulate, params.morphology,
                      tmp_path / "out")  # fmt: skip


def test_real_suite_scores_counts_and_excludes(suite_result):
    result = suite_result
    table = result.tables["real_galaxies"]
    m = result.metrics
    assert len(table) == m["n_stamps"] == (2 + 2) * 3
    assert m["n_galaxies"] == 4
    # the empty noise-free stamp has no reference; the big galaxy does not fit the crop
    assert set(table.loc[table["galaxy_id"] == "empty", "excluded"]) == {"reference_flagged"}
    assert set(table.loc[table["galaxy_id"] == "big", "excluded"]) == {"too_large"}
    assert (table.loc[table["galaxy_id"].str.startswith("sim"), "excluded"] == "").all()
    assert m["n_excluded_reference_flagged"] == 3 and m["n_excluded_too_large"] == 3
    assert sum(m[f"n_excluded_{k}"] for k in EXCLUSIONS) + m["n_scored"] == m["n_stamps"]
    assert m["n_scored"] == 6 and m["n_headline"] == 4  # views 1, 2: S/N per pixel 4, 7
    for col in ("net_asymmetry", "conv_asymmetry", "ref_asymmetry", "net_concentration",
                "conv_concentration", "ref_concentration"):  # fmt: skip
        assert np.isfinite(table.loc[table["excluded"] == "", col]).all(), col
    # the metrics are the by-bin table's rows, recomputed here from the per-stamp table
    scored = table[table["excluded"] == ""]
    for t in TARGETS:
        want = real_scores(scored[scored["sn_per_pixel"] >= 2.5], t)
        for k in ("n", "net_conv_slope", "net_ref_reverse_slope", "rmse_ratio", "conv_bias"):
            assert np.isfinite(want[k]), k
            assert m[f"{t}_sn2p5_{k}"] == pytest.approx(want[k], rel=1e-12), k
        assert m[f"{t}_all_n"] == 6
    by_bin = result.tables["real_by_bin"]
    groups = {"all", "headline", "sn_per_pixel", "snr_p", "ref_sn_per_pixel", "kind"}
    assert set(by_bin["group"]) == groups
    assert [p.name for p in result.figures] == ["real_scatter.png", "real_outliers.png"]
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    quantities = [r["quantity"] for r in result.summary]
    assert "A slope of network on conventional (real, sn_per_pixel >= 2.5)" in quantities
    assert "C RMSE ratio, network / conventional (real, sn_per_pixel >= 2.5)" in quantities
    assert all(r["n"] == 4 for r in result.summary)
    # the ceiling any network has against the conventional value: the reference's own scores
    rows = {r["quantity"]: r["network"] for r in result.summary}
    for t in TARGETS:
        x = t[0].upper()
        ceiling = f"{x} Pearson r vs conventional of a perfect network (the reference) (real, "
        assert rows[ceiling + "sn_per_pixel >= 2.5)"] == pytest.approx(m[f"{t}_sn2p5_conv_ref_r"])


def test_reference_is_the_measure_stages_truth_measurement(suite_result):
    """The reference is measure_truth of the noise-free stamp at the render's measured noise,
    centred on its centroid (the function of the measure stage's _true columns)."""
    from casnet.morphology.measurement import measure_truth

    table = suite_result.tables["real_galaxies"]
    row = table[table["galaxy_id"] == f"sim{BRIGHT[0]}"].iloc[0]
    g = simulate_galaxy(BRIGHT[0], SimulateConfig())
    want = measure_truth(g.truth.astype(np.float32).astype(np.float64), centre=None,
                         sky_sigma=g.sky_sigma)  # fmt: skip
    assert row["ref_asymmetry"] == pytest.approx(want.asymmetry, rel=1e-12)
    assert row["ref_concentration"] == pytest.approx(want.concentration, rel=1e-12)


def test_evaluate_real_logs_prefixed_metrics_tables_and_figures(stand_in, model_dir, own_store):
    params = Params()
    settings = params.evaluate.model_copy(
        update={"real": params.evaluate.real.model_copy(update={"views": 1, "max_galaxies": 2})}
    )
    ev = evaluate(str(model_dir), ["real"], settings, simulate=params.simulate,
                  morphology=params.morphology, root=own_store)  # fmt: skip
    client = MlflowClient(f"sqlite:///{own_store}/mlflow.db")
    run = client.get_run(ev.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["casnet.suites"] == "real"
    metrics = run.data.metrics
    assert metrics["real_n_stamps"] == 4 and metrics["real_n_galaxies"] == 4
    assert "real_asymmetry_sn2p5_net_conv_slope" in metrics or metrics["real_n_headline"] == 0
    assert "real_concentration_all_rmse_ratio" in metrics
    figures = sorted(Path(a.path).name for a in client.list_artifacts(ev.run_id, "figures/real"))
    assert figures == ["real_outliers.png", "real_scatter.png"]
    tables = sorted(Path(a.path).name for a in client.list_artifacts(ev.run_id, "tables/real"))
    assert tables == ["real_by_bin.parquet", "real_galaxies.parquet"]
    assert "(real, sn_per_pixel >= 2.5)" in ev.summary and "Real suite:" in ev.summary


def test_a_report_folder_gets_the_summary_tables_and_figures(stand_in, model_dir, own_store,
                                                             tmp_path):  # fmt: skip
    """``--report DIR``: the evaluation as files to commit (every number from the run)."""
    from casnet import __version__

    params = Params()
    settings = params.evaluate.model_copy(
        update={"real": params.evaluate.real.model_copy(update={"views": 1, "max_galaxies": 2})}
    )
    report = tmp_path / "reports" / "real"
    ev = evaluate(str(model_dir), ["real"], settings, simulate=params.simulate,
                  morphology=params.morphology, root=own_store, report=report)  # fmt: skip
    text = (report / "summary.md").read_text()
    assert text.startswith("# casnet evaluate: real") and f"casnet {__version__}" in text
    assert ev.run_id in text and "## real_by_bin (tables/real_by_bin.csv)" in text
    tables = sorted(p.name for p in (report / "tables").iterdir())
    assert tables == ["real_by_bin.csv", "real_galaxies.csv"]
    figures = sorted(p.name for p in (report / "figures").iterdir())
    assert figures == ["real_outliers.png", "real_scatter.png"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CasnetInputError, match="not a folder"):
        evaluate(str(model_dir), ["real"], settings, simulate=params.simulate,
                 morphology=params.morphology, root=own_store,
                 report=tmp_path / "afile")  # fmt: skip


def test_real_is_a_suite_of_all():
    assert "real" in SUITES


def test_cli_accepts_the_real_suite_and_its_settings(stand_in, model_dir, own_store):
    result = runner.invoke(app, ["evaluate", "--model", str(model_dir), "--suite", "real",
                                 "--set", "real.views=1;real.max_galaxies=1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[-1].split()[2]
    run = MlflowClient(f"sqlite:///{own_store}/mlflow.db").get_run(run_id)
    assert run.data.tags["casnet.suites"] == "real"
    assert run.data.metrics["real_n_stamps"] == 3  # one simulated galaxy, big and empty


def test_cli_names_real_among_the_suites(own_store):
    result = runner.invoke(app, ["evaluate", "--suite", "bogus"])
    assert result.exit_code == 2
    assert "test, noise, redshift, real or all" in result.output


# --- the real renderer -----------------------------------------------------------------------


@pytest.mark.slow
def test_real_suite_on_real_galaxies(model_dir, tmp_path):
    """Two real galaxies, one view each, through the real renderer."""
    from casnet.evaluation.predictor import Predictor

    params = Params()
    cfg = params.evaluate.real.model_copy(update={"views": 1, "max_galaxies": 2})
    result = real_suite(Predictor(str(model_dir)), cfg, params.simulate, params.morphology,
                        tmp_path)  # fmt: skip
    table = result.tables["real_galaxies"]
    assert result.metrics["n_galaxies"] == 2 and len(table) == result.metrics["n_stamps"]
    assert set(table["kind"]) <= set(__import__("casnet.data.real").data.real.kinds().values())
    ok = table["excluded"] == ""
    assert np.isfinite(table.loc[ok, ["ref_asymmetry", "conv_asymmetry", "net_asymmetry"]]).all(
        axis=None)  # fmt: skip


# --- the science report ----------------------------------------------------------------------


def test_report_section_sets_real_beside_the_simulated_test_set(suite_result):
    from casnet.science.report import real_section

    assert real_section(None, None, pd.DataFrame()) == ([], None)
    t = _hand_table()
    test = pd.DataFrame({"galaxy_id": [f"t{i}" for i in range(6)]})
    for target in TARGETS:
        test[f"net_{target}"] = t["net_asymmetry"]
        test[f"conventional_{target}"] = t["conv_asymmetry"]
        test[f"true_{target}"] = t["ref_asymmetry"]
    real, by_bin = suite_result.tables["real_galaxies"], suite_result.tables["real_by_bin"]
    lines, table = real_section(real, by_bin, test)
    text = "\n".join(lines)
    assert "## Real galaxies" in text and "figures/real_outliers.png" in text
    assert "4 real COSMOS HST galaxies" in text and "the 5 test galaxies" in text
    row = table[table["quantity"] == "A slope on the noise-free reference"].iloc[0]
    assert row["simulated test: network"] == pytest.approx(0.8, rel=1e-12)  # the hand table
    assert row["simulated test: conventional"] == pytest.approx(0.98, rel=1e-9)
    head = by_bin[(by_bin["group"] == "headline") & (by_bin["target"] == "asymmetry")].iloc[0]
    assert np.isfinite(head["net_ref_slope"]) and row["real: network"] == head["net_ref_slope"]
