"""sigma_C and sigma_A against the actual scatter over noise re-draws (issue 13, item 4).

Reference: the scatter of C and A over independent noise realisations of the same simulated
galaxy (the simulator's correlated noise, white + COSMOS), which is what an error bar promises.
"""

from __future__ import annotations

import numpy as np
import pytest

from casnet.data.noise import sky_noise
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.morphology import measure
from casnet.morphology.uncertainty import NoiseCorrelation, noise_correlation, noise_field


def _pulls(n_galaxies: int, n_redraws: int, scales: tuple[float, ...], *, real: bool = False):
    """(snr_p, pull_C, pull_A) per measurement: (x - mean over re-draws) / sigma, with the
    sqrt(n / (n - 1)) of a mean estimated from the same n draws. ``real``: the widened simulator
    (issue 29's real-morphology structure), else the one the error model was calibrated on."""
    cfg = SimulateConfig(neighbour_fraction=0.0, seed=11)
    if not real:
        cfg = cfg.without_real_morphology()
    out = []
    for i in range(n_galaxies):
        g = simulate_galaxy(i, cfg)
        for scale in scales:
            sigma = g.sky_sigma * scale
            rng = np.random.default_rng([i, int(100 * scale)])
            ms = []
            for _ in range(n_redraws):
                noise = sky_noise(rng, g.scene.shape, sigma=sigma, correlated_fraction=0.5)
                m = measure(g.scene + noise)
                if m.flag == 0:
                    ms.append((m.snr_p, m.concentration, m.asymmetry, m.concentration_err,
                               m.asymmetry_err))  # fmt: skip
            if len(ms) < n_redraws - 1:
                continue
            a = np.array(ms)
            k = np.sqrt(len(a) / (len(a) - 1))
            snr = np.full(len(a), np.median(a[:, 0]))
            pc = (a[:, 1] - a[:, 1].mean()) / a[:, 3] * k
            pa = (a[:, 2] - a[:, 2].mean()) / a[:, 4] * k
            out.append(np.column_stack([snr, pc, pa]))
    return np.vstack(out)


@pytest.fixture(scope="module")
def pulls():
    return _pulls(24, 8, (1.0, 0.5, 0.25))


@pytest.mark.parametrize("lo, hi", [(2, 5), (5, 20)])
def test_pull_widths_are_one_in_snr_bins(pulls, lo, hi):
    """The issue's criterion: pull std in [0.8, 1.25] with correlated noise (the old white-noise
    propagation gave 0.36x the C scatter, i.e. C pulls of ~2.5, and A pulls of ~0.65)."""
    sel = pulls[(pulls[:, 0] >= lo) & (pulls[:, 0] < hi)]
    assert len(sel) >= 60, f"only {len(sel)} measurements at SNR_p {lo}-{hi}"
    for col, name in ((1, "C"), (2, "A")):
        width = float(np.std(sel[:, col]))
        assert 0.8 <= width <= 1.25, f"{name} pull width {width:.2f} at SNR_p {lo}-{hi}"


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known defect (issue 29, 2026-12-07): on the widened "
    "simulator clump complexes and irregulars scatter C 1.5-9x its propagated "
    "sigma at SNR_p 5-20 (r20 jumps between clumps); C pull width 1.9",
)
def test_c_pull_width_on_real_morphology_at_moderate_snr():
    """The same criterion on the widened population. The propagated sigma_C assumes a smooth
    curve of growth; a galaxy whose light is in a few bright clumps has r20 jumping from clump to
    clump between noise draws. Strict: when the error model learns this, the test says so."""
    sel = _pulls(24, 8, (1.0, 0.5, 0.25), real=True)
    sel = sel[(sel[:, 0] >= 5) & (sel[:, 0] < 20)]
    assert 0.8 <= float(np.std(sel[:, 1])) <= 1.25


def test_noise_correlation_recovers_the_area_factor():
    """F = sum rho measured on a stamp's sky agrees with the variance of block sums of the same
    noise process (independent estimate) to 10%; white noise gives F ~ 1."""
    rng = np.random.default_rng(3)
    shape = (101, 101)
    sky = np.ones(shape, bool)
    white = noise_correlation(rng.standard_normal(shape), sky)
    assert white.area_factor == pytest.approx(1.0, abs=0.15)
    fields = [sky_noise(rng, shape, sigma=1.0, correlated_fraction=0.5) for _ in range(40)]
    measured = np.mean([noise_correlation(f, sky).area_factor for f in fields])
    # independent: the variance of 8x8 block sums over 64 sigma^2 (blocks >> correlation length)
    blocks = np.concatenate([f[:96, :96].reshape(12, 8, 12, 8).sum(axis=(1, 3)).ravel()
                             for f in fields])  # fmt: skip
    assert measured == pytest.approx(blocks.var() / 64.0, rel=0.1)
    assert measured > 1.4  # the correlated half is really correlated


def test_noise_field_has_the_requested_correlation():
    rho = NoiseCorrelation.white().rho.copy()
    rho[3, 4] = rho[3, 2] = rho[4, 3] = rho[2, 3] = 0.25
    draws = noise_field(NoiseCorrelation(rho), (64, 64), 30, np.random.default_rng(0))
    assert draws.std() == pytest.approx(1.0, rel=0.03)
    lag1 = np.mean(draws[:, :, 1:] * draws[:, :, :-1])
    assert lag1 == pytest.approx(0.25, abs=0.03)
