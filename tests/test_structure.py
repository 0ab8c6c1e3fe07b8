"""Resolved structure of the simulator (issue 15): clumps in the disk, arms that carry their flux,
mergers whose companion is part of the target, and stamps the galaxies fit."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from casnet.data import structure
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.morphology.extent import noiseless_fit
from casnet.morphology.measurement import measure_truth
from casnet.morphology.shape import elliptical_radius


@pytest.mark.parametrize("q, beta", [(1.0, 0.0), (0.4, 30.0), (0.25, 120.0)])
def test_clumps_lie_inside_the_disk(q, beta):
    """Every clump centre is within CLUMP_MAX_RADIUS r_half of the centre on the disk's own
    ellipse (the projected disk-plane radius, recomputed here from the sky offsets)."""
    r_half = 0.4
    for seed in range(30):
        _, info = structure.clumps(np.random.default_rng(seed), 10.0, r_half, q, beta)
        x, y = info["clump_x"], info["clump_y"]
        # GalSim's area-preserving shear: semi-major axis r / sqrt(q), semi-minor r sqrt(q)
        ell = elliptical_radius(x, y, q, np.radians(beta)) * np.sqrt(q)
        assert np.all(ell <= structure.CLUMP_MAX_RADIUS * r_half * (1 + 1e-9))
        np.testing.assert_allclose(ell / r_half, info["clump_r_disk"], rtol=1e-9)
        assert 2 <= info["n_clumps"] <= 8


def test_clumps_hold_the_flux_and_a_few_dominate():
    rng = np.random.default_rng(3)
    shares = []
    for _ in range(200):
        prof, _ = structure.clumps(rng, 5.0, 0.3, 0.8, 10.0)
        assert prof.flux == pytest.approx(5.0, rel=1e-9)
        parts = sorted((p.flux for p in prof.obj_list), reverse=True)
        shares.append(parts[0] / 5.0)
    # Dirichlet(0.6): the brightest clump holds on average well over its equal share
    assert np.mean(shares) > 0.4


def test_spiral_arms_carry_their_flux_in_an_m_armed_pattern():
    arms, info = structure.spiral_arms(
        np.random.default_rng(1), 100.0, 0.5, 0.8, 40.0, pixel_scale=0.06, max_extent=3.0
    )
    psf = galsim.Gaussian(fwhm=0.18)
    img = galsim.Convolve(arms, psf).drawImage(nx=101, ny=101, scale=0.06).array
    assert img.sum() == pytest.approx(100.0, rel=0.02)  # the light left off the stamp
    # the arms are the light's m-th Fourier mode (a smooth disk has none). A 2-armed log spiral
    # is symmetric under 180 deg rotation, as grand-design spirals are (their A is low)
    y, x = np.indices(img.shape) - 50
    theta = np.arctan2(y, x)
    m = info["n_arms"]
    mode = abs(np.sum(img * np.exp(1j * m * theta))) / img.sum()
    assert mode > 0.05
    assert info["n_arms"] in (2, 3) and 12 <= info["arm_pitch_deg"] <= 30


def test_a_merger_companion_is_part_of_the_truth():
    cfg = SimulateConfig(merger_fraction=1.0, clumpy_fraction=0.0, spheroid_fraction=0.0,
                         neighbour_fraction=0.0, mag_range=(20.0, 21.0))  # fmt: skip
    gal = simulate_galaxy(0, cfg)
    p = gal.params
    assert p["kind"] == "merger" and 0.25 <= p["companion_ratio"] <= 1.0
    # no neighbours: all the scene's light is the target's
    np.testing.assert_allclose(gal.scene, gal.truth, atol=1e-12)
    size = cfg.stamp_size
    centre = ((size - 1) / 2 + p["x_offset_px"], (size - 1) / 2 + p["y_offset_px"])
    truth = measure_truth(gal.truth, centre=centre, sky_sigma=gal.sky_sigma)
    assert truth.asymmetry > 0.1  # the companion and the debris are the merger's asymmetry


def test_no_stamp_overflows():
    """Every galaxy drawn leaves room for its apertures and sky (the simulator redraws the
    ones that do not), also when the sizes are drawn far too large for the stamp."""
    cfg = SimulateConfig(rhalf_px_at_23=25.0, rhalf_range_px=(1.0, 40.0), mag_range=(20.0, 23.0))
    for i in range(12):
        gal = simulate_galaxy(i, cfg)
        p = gal.params
        assert p["stamp_fits"], p
        assert p["r_half_px"] <= p["r_half_px_drawn"]
        size = cfg.stamp_size
        centre = ((size - 1) / 2 + p["x_offset_px"], (size - 1) / 2 + p["y_offset_px"])
        assert noiseless_fit(gal.truth, centre, gal.sky_sigma).fits


def test_a_galaxy_that_overflows_is_seen_to():
    """The fit check itself: a 101 px stamp holds a r_half = 6 px exponential, not a 25 px one."""

    def fit(r_half):
        img = (
            galsim.Exponential(half_light_radius=r_half * 0.06, flux=100.0)
            .drawImage(nx=101, ny=101, scale=0.06)
            .array
        )
        return noiseless_fit(img, (50.0, 50.0), 0.003)

    small, big = fit(6.0), fit(25.0)
    assert small.fits and not big.fits
    assert small.r_petro == pytest.approx(2.16 * 6.0, rel=0.05)  # eta = 0.2 of an exponential


def test_edge_on_disks_are_drawn():
    cfg = SimulateConfig(clumpy_fraction=0.0, merger_fraction=0.0, spheroid_fraction=0.0)
    qs = np.array([simulate_galaxy(i, cfg).params["q"] for i in range(60)])
    assert qs.min() >= cfg.disk_thickness - 1e-9
    assert np.mean(qs < 0.35) > 0.05  # ~13% for a random inclination and q0 = 0.2
