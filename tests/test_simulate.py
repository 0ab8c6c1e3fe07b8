"""The first GalSim stamp generator: deterministic per galaxy, physically sensible."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.data.settings import SimulateConfig
from casnet.data.simulate import flux_from_mag, simulate, simulate_galaxy, sky_sigma_per_pixel


def test_stamp_depends_only_on_seed_and_index(sim_config):
    # galaxy 5 drawn alone equals galaxy 5 drawn in a sequence: parallel == serial
    alone = simulate_galaxy(5, sim_config)
    in_sequence = list(simulate(sim_config, n=3, start=4))[1]
    np.testing.assert_array_equal(alone.image, in_sequence.image)
    np.testing.assert_array_equal(alone.truth, in_sequence.truth)
    other_seed = simulate_galaxy(5, sim_config.model_copy(update={"seed": 1}))
    assert not np.array_equal(alone.image, other_seed.image)


def test_truth_is_noiseless_and_carries_the_flux(sim_config):
    g = simulate_galaxy(3, sim_config)
    assert g.image.shape == g.truth.shape == (101, 101)
    assert g.image.dtype == np.float32
    expected = flux_from_mag(g.params["mag"], sim_config.zero_point)
    # truth holds the target (plus its companion when there is one) convolved with the PSF;
    # a few % of an extended profile falls outside 101 px
    assert 0.85 * expected < g.truth.sum() < 1.6 * expected
    resid = (g.image - g.truth)[:10, :10]  # corner: noise (and rarely a neighbour)
    assert abs(np.std(resid) / g.sky_sigma - 1) < 0.3


def test_depth_means_a_5_sigma_point_source_in_the_aperture():
    """A point source of magnitude depth_5sigma is a 5-sigma detection in the 0.2" aperture, with
    the simulator's own noise (correlated share included): the light of a drawn star inside the
    aperture over the standard deviation of 3000 noise sums in it, independent of the formula.
    Observed 5.0; tolerance 4% (Monte Carlo error ~1.3%)."""
    from casnet.data.noise import circle_weights, sky_noise
    from casnet.data.psf import psf_model

    cfg = SimulateConfig()
    sigma = sky_sigma_per_pixel(cfg)
    radius, size = 0.2 / cfg.pixel_scale, 41
    weights = circle_weights(radius, size)
    star = psf_model(cfg).drawImage(nx=size, ny=size, scale=cfg.pixel_scale).array
    star *= flux_from_mag(cfg.depth_5sigma, cfg.zero_point) / star.sum()
    rng = np.random.default_rng(0)
    sums = [np.sum(weights * sky_noise(rng, (size, size), sigma=sigma,
                                       correlated_fraction=cfg.correlated_noise_fraction))
            for _ in range(3000)]  # fmt: skip
    assert np.sum(star * weights) / np.std(sums) == pytest.approx(5.0, rel=0.04)


def test_default_psf_is_drizzled_f160w_like():
    """FWHM 0.17-0.19" (CANDELS F160W ~0.18", 3 px): the PSF seen by 0.06" pixels (convolved with
    one, sampled 10x finer, so the figure does not depend on where a star falls on a pixel:
    measured on the coarse grid, a star on a pixel corner reads 0.170" about the stamp centre
    and 0.199" about its own, a sampling artefact of the estimate), 0.177"; and a star centred on
    a pixel of the 0.06" grid, 0.180"."""
    import galsim

    from casnet.data.psf import psf_model

    cfg = SimulateConfig()
    psf = psf_model(cfg)
    seen = galsim.Convolve(psf, galsim.Pixel(cfg.pixel_scale))
    fine = seen.drawImage(nx=301, ny=301, scale=cfg.pixel_scale / 10, method="no_pixel")
    assert 0.17 <= fine.calculateFWHM() <= 0.19
    star = psf.drawImage(nx=101, ny=101, scale=cfg.pixel_scale)
    assert 0.17 <= galsim.Image(star.array, scale=cfg.pixel_scale).calculateFWHM() <= 0.19


def test_tabulated_psf_file_is_used(tmp_path):
    import galsim
    from astropy.io import fits

    from casnet.data.psf import psf_model

    # a wide Gaussian PSF written to FITS: stars drawn with it must come out that wide
    psf_img = galsim.Gaussian(fwhm=0.5).drawImage(nx=41, ny=41, scale=0.06).array
    path = tmp_path / "psf.fits"
    fits.PrimaryHDU(psf_img).writeto(path)
    cfg = SimulateConfig(psf_file=str(path))
    psf = psf_model(cfg)
    star = psf.drawImage(nx=41, ny=41, scale=0.06, method="no_pixel").array
    # second-moment FWHM of the redrawn PSF ~ 0.5" within 5% (interpolation + pixel sampling)
    assert galsim.Image(star, scale=0.06).calculateFWHM() == pytest.approx(0.5, rel=0.05)
    g = simulate_galaxy(0, cfg)
    assert np.isfinite(g.image).all()


def test_source_poisson_noise_conserves_flux_and_has_the_shot_variance():
    """On a noiseless scene: the mean over draws is the image (flux conserved, to 0.1%), and the
    variance per pixel is image / t (Poisson electrons back in e-/s), to 5%."""
    from casnet.data.noise import source_noise

    g = simulate_galaxy(3, SimulateConfig())
    scene, t = g.scene.astype(np.float64), 10_000.0
    rng = np.random.default_rng(1)
    draws = np.stack([scene + source_noise(rng, scene, t) for _ in range(400)])
    assert draws.sum(axis=(1, 2)).mean() == pytest.approx(scene.sum(), rel=1e-3)
    bright = scene > 20 * scene.max() / 100  # pixels with enough electrons for a clean ratio
    ratio = draws.var(axis=0)[bright] / (scene[bright] / t)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)


def test_exposure_adds_shot_noise_on_the_galaxy_only():
    """Off (exposure_time_s null): image - scene is the sky noise alone; on: the extra noise sits
    where the light is, and the sky realisation is the same draw."""
    off = simulate_galaxy(3, SimulateConfig(exposure_time_s=None))
    on = simulate_galaxy(3, SimulateConfig(exposure_time_s=1_000.0))
    np.testing.assert_array_equal(on.scene, off.scene)
    extra = (on.image - on.scene) - (off.image - off.scene)
    light = on.scene > 0.2 * on.scene.max()
    dark = on.scene <= np.percentile(on.scene, 10)  # the stamp's faintest tenth
    assert np.std(extra[light]) > 5 * np.std(extra[dark])
    assert np.std(extra[dark]) < 0.1 * off.sky_sigma
