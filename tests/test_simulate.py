"""The first GalSim stamp generator: deterministic per galaxy, physically sensible."""

from __future__ import annotations

import math

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


def test_depth_gives_5_sigma_in_the_aperture():
    cfg = SimulateConfig()
    sigma = sky_sigma_per_pixel(cfg)
    n_pix = math.pi * (0.2 / cfg.pixel_scale) ** 2
    f_lim = flux_from_mag(cfg.depth_5sigma, cfg.zero_point)
    assert math.isclose(f_lim / (sigma * math.sqrt(n_pix)), 5.0, rel_tol=1e-12)


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
