"""``casnet benchmark realgap``: the residual statistics on analytic galaxies, the matching, the
percentiles and the command on a tiny sample."""

from __future__ import annotations

import json

import galsim
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from casnet.bench.realgap import (
    CLUMPINESS,
    MAG_SCALE,
    MIN_BOXCAR_PX,
    QUANTITIES,
    SIZE_SCALE_DEX,
    RealGap,
    _agreement_table,
    boxcar_size,
    headline_agreement,
    match,
    noise_smoothness,
    orthant_depth,
    percentile_of,
    realgap,
    realgap_report,
    smoothness,
)
from casnet.cli import app
from casnet.data.psf import psf_model
from casnet.data.settings import RealSuiteConfig, SimulateConfig

SIM = SimulateConfig()
SIZE = 101
CENTRE = ((SIZE - 1) / 2, (SIZE - 1) / 2)
#: an exponential disk of r_half 8 px (R_p ~ 21 px): resolved, its light well inside the stamp
R_HALF_PX = 8.0
R_P = 2.16 * R_HALF_PX  # Petrosian radius (eta 0.2) of an exponential, ~2.16 r_half


def _draw(profile: galsim.GSObject) -> np.ndarray:
    """``profile`` (arcsec) through the F160W PSF on the 0.06"/px grid."""
    image = galsim.Convolve(profile, psf_model(SIM)).drawImage(nx=SIZE, ny=SIZE, scale=0.06)
    return np.asarray(image.array, dtype=np.float64)


def _disk(flux: float = 100.0) -> galsim.GSObject:
    return galsim.Exponential(half_light_radius=R_HALF_PX * 0.06, flux=flux)


def _clumps(positions_px, flux_each: float) -> galsim.GSObject:
    """Point-like clumps (Gaussians of FWHM 1 px before the PSF) at ``positions_px`` (x, y
    offsets from the centre)."""
    return galsim.Add([galsim.Gaussian(fwhm=0.06, flux=flux_each).shift(x * 0.06, y * 0.06)
                       for x, y in positions_px])  # fmt: skip


def test_boxcar_is_odd_and_at_least_the_minimum():
    assert boxcar_size(4.0) == MIN_BOXCAR_PX  # 0.25 x 4 = 1 px smooths nothing: the minimum
    assert boxcar_size(20.0) == 5  # 0.25 x 20 = 5
    assert boxcar_size(24.0) == 7  # 6 px: the odd integer above (an even box shifts the image)
    assert boxcar_size(24.0, min_px=9) == 9
    for r in np.linspace(1.0, 80.0, 50):
        assert boxcar_size(r) % 2 == 1
    with pytest.raises(ValueError, match="r_petro"):
        boxcar_size(0.0)
    with pytest.raises(ValueError, match="r_petro"):
        boxcar_size(float("nan"))


def test_smooth_sersic_has_no_clumpiness():
    # A smooth, PSF-convolved exponential disk: the boxcar residual of a convex profile is
    # negative off the centre, so S counts almost nothing (statmorph's S and the PSF-filtered
    # one). 0.01: the residual of the PSF-rounded core just outside 0.25 R_p
    image = _draw(_disk())
    for kw in ({}, CLUMPINESS):
        s = smoothness(image, centre=CENTRE, r_petro=R_P, **kw)
        assert 0.0 <= s.smoothness < 0.01, kw
        assert s.peak_fraction < 0.005
        assert s.n_peaks == 0


def test_compact_spheroid_core_stays_out_of_the_clumpiness():
    # A compact n = 4 Sersic (r_half 2 px, R_p ~ 7 px): the 5 px boxcar of the PSF-filtered
    # residual leaves a core residual, kept out by the 3.5 px inner edge (0.011 at most on n =
    # 1-4 of r_half 1-8 px: CLUMPINESS's comment)
    image = _draw(galsim.Sersic(n=4, half_light_radius=0.12, flux=100.0))
    s = smoothness(image, centre=CENTRE, r_petro=7.4, **CLUMPINESS)
    assert s.smoothness < 0.012


def test_sky_term_removes_the_noise_of_a_smooth_disk():
    # White noise at S/N ~ 50 per pixel near the centre; its mean positive residual per pixel
    # (statmorph's sky smoothness, measured on a pure-noise image) taken off: S back to ~0.
    # 0.01: the scatter of S from one noise realisation plus the disk's own 0.00x
    rng = np.random.default_rng(1)
    disk = _draw(_disk(flux=1000.0))
    sigma = 0.02 * disk.max()
    noisy = disk + rng.normal(0.0, sigma, disk.shape)
    raw = smoothness(noisy, centre=CENTRE, r_petro=R_P)
    b = noise_smoothness(rng.normal(0.0, sigma, disk.shape), R_P)
    corrected = smoothness(noisy, centre=CENTRE, r_petro=R_P, sky=b)
    assert raw.smoothness > 0.02  # the noise alone reads as clumps
    assert abs(corrected.smoothness) < 0.01
    # the sky term is what sets it: the raw and corrected values differ by N b / flux
    assert raw.smoothness - corrected.smoothness == pytest.approx(
        b * corrected.n_pixels / corrected.flux, rel=1e-9
    )


def test_clumps_raise_the_smoothness_and_are_counted():
    disk = _disk()
    positions = [(10, 3), (-9, 8), (-4, -12), (12, -9)]
    clumpy = _draw(disk + _clumps(positions, flux_each=5.0))  # 4 clumps, 17% of the light
    smooth = _draw(disk)
    for kw in ({}, CLUMPINESS):
        s0 = smoothness(smooth, centre=CENTRE, r_petro=R_P, **kw)
        s1 = smoothness(clumpy, centre=CENTRE, r_petro=R_P, **kw)
        assert s1.smoothness > s0.smoothness + 0.02, kw
        assert s1.peak_fraction > s0.peak_fraction + 0.02, kw
    s1 = smoothness(clumpy, centre=CENTRE, r_petro=R_P, **CLUMPINESS)
    assert s1.n_peaks == len(positions)
    # brighter clumps: more of the light in the residual
    brighter = smoothness(_draw(disk + _clumps(positions, flux_each=10.0)), centre=CENTRE,
                          r_petro=R_P, **CLUMPINESS)  # fmt: skip
    assert brighter.smoothness > s1.smoothness


def test_peak_dipole_tells_one_sided_from_balanced_clumps():
    disk = _disk()
    balanced = _draw(disk + _clumps([(10, 0), (-10, 0), (0, 10), (0, -10)], flux_each=5.0))
    one_side = _draw(disk + _clumps([(10, 0), (9, 5), (9, -5), (12, 3)], flux_each=5.0))
    b = smoothness(balanced, centre=CENTRE, r_petro=R_P, **CLUMPINESS)
    o = smoothness(one_side, centre=CENTRE, r_petro=R_P, **CLUMPINESS)
    assert b.peak_dipole < 0.1  # four clumps 90 degrees apart cancel
    assert o.peak_dipole > 0.8  # all within ~30 degrees of one direction
    # too little peak light for a direction: NaN, not a spurious 1
    assert np.isnan(smoothness(_draw(disk), centre=CENTRE, r_petro=R_P).peak_dipole)


def test_smoothness_rejects_bad_input_and_handles_empty_light():
    with pytest.raises(ValueError, match="2-D"):
        smoothness(np.zeros(5), centre=(0, 0), r_petro=3.0)
    with pytest.raises(ValueError, match="q must be"):
        smoothness(np.zeros((9, 9)), centre=(4, 4), r_petro=3.0, q=0.0)
    s = smoothness(np.zeros((31, 31)), centre=(15, 15), r_petro=5.0)
    assert np.isnan(s.smoothness) and s.n_peaks == 0


def test_match_finds_the_nearest_in_scaled_magnitude_and_size():
    sims = pd.DataFrame({"mag": [24.0, 24.1, 26.0, 24.0, 27.0, np.nan],
                         "r_petro_px": [8.0, 8.0, 8.0, 16.0, 5.0, 8.0]})  # fmt: skip
    real = pd.DataFrame({"mag": [24.05, 26.9, np.nan], "r_petro_px": [8.1, 5.2, 8.0]})
    idx, dist = match(real, sims, k=2)
    assert set(idx[0]) == {0, 1}  # 0.05-0.1 mag away at the same size
    assert idx[1][0] == 4
    # 0.1 mag and log10(5.2/5) dex away, in units of the scales
    expected = np.hypot(0.1 / MAG_SCALE, np.log10(5.2 / 5.0) / SIZE_SCALE_DEX)
    assert dist[1][0] == pytest.approx(expected, rel=1e-9)
    # a factor 2 in size (0.3 dex = 3 units) is further than 1 mag (2 units)
    assert 3 not in idx[0]
    assert (idx[2] == -1).all() and np.isinf(dist[2]).all()  # no magnitude: no match
    assert (np.diff(dist[:2], axis=1) >= 0).all()  # nearest first
    with pytest.raises(ValueError, match="fewer than k"):
        match(real, sims, k=6)  # 5 usable (one has no magnitude)


def test_percentile_of_counts_ties_half():
    sample = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    assert percentile_of(5.0, sample) == 1.0
    assert percentile_of(0.0, sample) == 0.0
    assert percentile_of(3.0, sample) == pytest.approx(2.5 / 4)
    assert np.isnan(percentile_of(np.nan, sample))
    assert np.isnan(percentile_of(1.0, np.array([np.nan])))


def test_orthant_depth_is_calibrated_on_the_sample():
    rng = np.random.default_rng(3)
    sample = rng.normal(size=(400, 2))
    depth, share = orthant_depth((5.0, 5.0), sample)  # beyond every member in both
    assert depth == 0.0 and share == 0.0  # none more extreme: outside the 99% region
    depth, share = orthant_depth((-5.0, -5.0), sample)  # below all: everything above it
    assert depth == 1.0 and share > 0.99
    # beyond every member in one coordinate is outside too (no member is as large in both)
    assert orthant_depth((5.0, 0.0), sample) == (0.0, 0.0)
    # a typical point is inside
    assert orthant_depth((0.0, 0.0), sample)[1] > 0.3
    # a member of the sample is outside the 95% region in at most ~5% of cases (ties at the
    # shallowest depth put fewer outside); 0.1: 100 members drawn
    shares = np.array([orthant_depth(tuple(p), sample)[1] for p in sample[:100]])
    assert 0.0 < np.mean(shares < 0.05) <= 0.1
    assert np.isnan(orthant_depth((np.nan, 0.0), sample)[0])


@pytest.fixture(scope="module")
def tiny_gap():
    """Two real galaxies (8 views) against 40 simulated, no network."""
    return realgap(40, real_cfg=RealSuiteConfig(max_galaxies=2), k=8, twins=1, progress=False)


def test_realgap_compares_every_view_with_its_noise_matched_matches(tiny_gap):
    gap = tiny_gap
    assert len(gap.real) == 8 and len(gap.sims) == 40
    assert gap.matches.shape == (8, 8)
    # each view measured against each of its k matches, with its own noise added
    assert len(gap.pairs) == 8 * 8
    assert set(gap.pairs["real_row"]) == set(range(8))
    # the simulated galaxies were drawn at the real views' magnitudes
    lo, hi = gap.settings["mag_range"]
    assert lo < gap.real["mag"].min() and gap.real["mag"].max() < hi
    assert gap.sims["mag"].between(lo, hi).all()
    assert (gap.sims["n_neighbours"] == 0).all()
    for q in QUANTITIES:
        pct = gap.real[f"{q}_pct"].dropna()
        assert pct.between(0.0, 1.0).all(), q
    # the noise-matched simulated values carry the view's own noise: a noise-free simulated
    # galaxy is smoother than the same galaxy with it
    merged = gap.pairs.merge(gap.sims[["clumpiness"]], left_on="sim_row", right_index=True,
                             suffixes=("", "_noise_free"))  # fmt: skip
    assert (merged["clumpiness"] >= merged["clumpiness_noise_free"] - 1e-3).mean() > 0.8
    report = realgap_report(gap)
    json.dumps(report, default=float)
    assert report["by_kind"]["all"]["n_views"] == 8
    e = report["by_kind"]["all"]["ref_asymmetry"]
    assert 0.0 <= e["above_p99"] <= e["above_p95"] <= 1.0


def test_benchmark_realgap_command_writes_the_report_and_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench"
    args = ["benchmark", "realgap", "--n", "30", "--k", "6", "--twins", "1", "--max-galaxies",
            "1", "--no-network", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "realgap.json").read_text())
    assert report["n_sim"] == 30 and report["settings"]["k"] == 6
    assert "S_psf (noise-free)" in (out / "realgap.md").read_text()
    for name in ("plane.png", "outside.png", "real_rows.csv", "sim_rows.csv", "pairs.csv.gz"):
        assert (out / "realgap" / name).stat().st_size > 0, name
    assert not (out / "realgap" / "residuals.png").exists()  # no network asked for


def test_benchmark_realgap_refuses_bad_sizes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["benchmark", "realgap", "--n", "5", "--k", "10"])
    assert result.exit_code != 0
    assert "--n" in result.output


def _frame(rng: np.random.Generator, n: int, sn: np.ndarray, net) -> pd.DataFrame:
    """A set of galaxies with a reference, a conventional value (reference + noise) and a
    network value ``net(ref, conv)``, per target."""
    d = {"sn_per_pixel": sn}
    for t in ("concentration", "asymmetry"):
        ref = rng.uniform(0.0, 0.5, n) + (2.0 if t == "concentration" else 0.0)
        conv = ref + rng.normal(0.0, 0.08, n)
        d.update({f"ref_{t}": ref, f"conv_{t}": conv, f"net_{t}": net(ref, conv)})
    return pd.DataFrame(d)


def test_headline_agreement_says_what_a_perfect_network_would_score():
    """A network equal to the noise-free reference scores exactly the 'perfect network' columns
    against the conventional value (r = conv-ref r, slope = the reference's slope on the
    conventional); the matched set is the headline views' matches only."""
    rng = np.random.default_rng(1)
    n = 400
    real = _frame(rng, n, np.where(np.arange(n) < 300, 3.0, 1.0), lambda ref, conv: ref)
    sims = _frame(rng, n, np.full(n, 3.0), lambda ref, conv: 0.5 * ref + 0.05)
    matches = np.tile(np.arange(5), (n, 1))
    matches[300:] = np.arange(100, 105)  # the views below the headline S/N: never counted
    gap = RealGap(real, sims, pd.DataFrame(), matches, np.zeros((0, 2, 2)), np.zeros((0, 2, 2)))
    rows = {(r["set"], r["target"]): r for r in headline_agreement(gap)}
    for t in ("concentration", "asymmetry"):
        r = rows[("real views", t)]
        assert r["n"] == 300
        assert r["net_ref_r"] == pytest.approx(1.0)
        assert r["net_conv_r"] == pytest.approx(r["conv_ref_r"])
        assert r["net_conv_slope"] == pytest.approx(r["conv_ref_reverse_slope"])
        assert r["rmse_ratio"] == pytest.approx(0.0)
        # the noisy conventional value caps what any network reaches against it
        assert r["conv_ref_r"] < 0.95
        s = rows[("simulated, same magnitudes", t)]
        assert s["n"] == n and s["net_ref_slope"] == pytest.approx(0.5)
        assert rows[("simulated, matched to those views", t)]["n"] == 5
    text = "\n".join(_agreement_table({"agreement": list(rows.values())}))
    assert "perfect network" in text
