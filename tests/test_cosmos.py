"""The optional COSMOS source (issue 15): a GalSim COSMOS catalogue the test builds itself."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from astropy.io import fits

from casnet.core.errors import CasnetInputError
from casnet.data.cosmos import cosmos_catalog
from casnet.data.settings import SimulateConfig
from casnet.data.simulate import simulate_galaxy
from casnet.morphology.measurement import measure_truth

#: COSMOS ACS images: 0.03"/px, PSF FWHM ~0.1"
_SCALE = 0.03
_ACS_PSF = galsim.Gaussian(fwhm=0.1)


def _write_catalogue(folder, profiles):
    """A COSMOS-format catalogue of ``profiles`` (GalSim objects in arcsec): galaxy images and
    PSF images in FITS files, the real-galaxy table and its ``_fits`` parameter table."""
    gal_hdus = [fits.PrimaryHDU()]
    for prof in profiles:
        img = galsim.Convolve(prof, _ACS_PSF).drawImage(nx=96, ny=96, scale=_SCALE).array
        noise = np.random.default_rng(len(gal_hdus)).normal(0, 1e-4, img.shape)
        gal_hdus.append(fits.ImageHDU((img + noise).astype(np.float32)))
    fits.HDUList(gal_hdus).writeto(folder / "tiny_gal.fits")
    psf = _ACS_PSF.drawImage(nx=41, ny=41, scale=_SCALE).array.astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(psf)]).writeto(folder / "tiny_psf.fits")
    n = len(profiles)
    table = fits.BinTableHDU.from_columns([
        fits.Column("ident", "J", array=np.arange(100, 100 + n)),
        fits.Column("gal_filename", "20A", array=["tiny_gal.fits"] * n),
        fits.Column("PSF_filename", "20A", array=["tiny_psf.fits"] * n),
        fits.Column("gal_hdu", "J", array=np.arange(1, n + 1)),
        fits.Column("PSF_hdu", "J", array=np.ones(n, dtype=int)),
        fits.Column("pixel_scale", "D", array=np.full(n, _SCALE)),
        fits.Column("noise_mean", "D", array=np.zeros(n)),
        fits.Column("noise_variance", "D", array=np.full(n, 1e-8)),
        fits.Column("mag", "D", array=np.full(n, 22.0)),
        fits.Column("band", "5A", array=["F814W"] * n),
        fits.Column("weight", "D", array=np.ones(n)),
    ])  # fmt: skip
    table.writeto(folder / "tiny.fits")
    params = fits.BinTableHDU.from_columns([
        fits.Column("fit_status", "5J", array=np.ones((n, 5), dtype=int)),
        fits.Column("hlr", "5D", array=np.full((n, 5), 0.3)),
        fits.Column("flux", "5D", array=np.ones((n, 5))),
    ])  # fmt: skip
    params.writeto(folder / "tiny_fits.fits")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cosmos")
    # a lopsided pair: clearly asymmetric, so a real morphology is seen to survive the drawing
    pair = galsim.Exponential(half_light_radius=0.25, flux=1.0) + galsim.Exponential(
        half_light_radius=0.12, flux=0.4
    ).shift(0.35, 0.1)
    _write_catalogue(folder, [pair, galsim.Sersic(n=4, half_light_radius=0.2)])
    return folder


def test_cosmos_galaxies_are_drawn_through_the_f160w_psf(catalogue):
    cfg = SimulateConfig(cosmos_dir=str(catalogue), cosmos_file="tiny.fits",
                         neighbour_fraction=0.0, mag_range=(21.0, 21.5))  # fmt: skip
    gals = [simulate_galaxy(i, cfg) for i in range(6)]
    assert {g.params["kind"] for g in gals} == {"cosmos"}
    assert {g.params["cosmos_index"] for g in gals} <= {0, 1}
    for g in gals:
        expected = 10 ** (-0.4 * (g.params["mag"] - cfg.zero_point))
        assert g.truth.sum() == pytest.approx(expected, rel=0.03)  # flux set to the drawn mag
        assert g.params["stamp_fits"]
        # the F160W-like PSF (0.18") is broader than the ACS one: the peak is wider than 3 px
        peak = g.truth.max()
        assert np.count_nonzero(g.truth > peak / 2) >= 7
    # the real morphology survives: the lopsided pair (row 0) is asymmetric, the Sersic (row 1)
    # is not (truth A at the known centre)
    truth_a = {}
    for g in gals:
        c = ((cfg.stamp_size - 1) / 2 + g.params["x_offset_px"],
             (cfg.stamp_size - 1) / 2 + g.params["y_offset_px"])  # fmt: skip
        truth_a.setdefault(g.params["cosmos_index"], measure_truth(
            g.truth, centre=c, sky_sigma=g.sky_sigma).asymmetry)  # fmt: skip
    assert set(truth_a) == {0, 1}
    assert truth_a[0] > 0.1 > truth_a[1]
    # deterministic per galaxy id
    again = simulate_galaxy(3, cfg)
    assert np.array_equal(again.image, gals[3].image)


def test_cosmos_fraction_mixes_in_the_analytic_kinds(catalogue):
    cfg = SimulateConfig(cosmos_dir=str(catalogue), cosmos_file="tiny.fits", cosmos_fraction=0.5)
    kinds = [simulate_galaxy(i, cfg).params for i in range(20)]
    assert 0 < sum(p["kind"] == "cosmos" for p in kinds) < 20
    assert all(p["cosmos_index"] == -1 for p in kinds if p["kind"] != "cosmos")


def test_a_missing_catalogue_is_a_clear_error(tmp_path):
    with pytest.raises(CasnetInputError, match="no COSMOS catalogue"):
        cosmos_catalog(str(tmp_path), "real_galaxy_catalog_25.2.fits")
