"""Redshift physics of the redshift suite (Tohill et al. 2021 Sec. 4.3).

Every reference is computed here from ``astropy.cosmology.FlatLambdaCDM`` directly (angular
diameter distances only; luminosity distances as D_L = (1+z)^2 D_A) and from our own curve of
growth, not from ``casnet.evaluation.redshift``'s helpers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM

from casnet.data.psf import psf_model
from casnet.data.settings import SimulateConfig
from casnet.evaluation.nearby import KINDS
from casnet.evaluation.redshift import (
    angular_scale,
    apparent_flux,
    bookkeeping,
    half_light_radius,
    nearby_sample,
    rebin,
)
from casnet.evaluation.settings import RedshiftSuiteConfig

CFG = RedshiftSuiteConfig()
ZS = (0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
ZP = 25.946  # F160W AB zero point (SimulateConfig default)


def _cosmo(cfg: RedshiftSuiteConfig = CFG) -> FlatLambdaCDM:
    return FlatLambdaCDM(H0=cfg.h0, Om0=cfg.om0)


def _da(z: float, cfg: RedshiftSuiteConfig = CFG) -> float:
    """Angular-diameter distance in Mpc."""
    return float(_cosmo(cfg).angular_diameter_distance(z).to_value(u.Mpc))


def _gaussian(n: int, sigma: float) -> np.ndarray:
    c = (n - 1) / 2
    yy, xx = np.indices((n, n))
    g = np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * sigma**2))
    return g / g.sum()


# --- angular size ---------------------------------------------------------------------------


@pytest.mark.parametrize("z", ZS)
def test_angular_scale_equals_astropy(z):
    z0, beta = CFG.native_redshift, CFG.size_evolution
    expected = _da(z0) / _da(z) * ((1 + z) / (1 + z0)) ** beta
    # both sides come from astropy's quadrature: agreement to float precision
    assert angular_scale(z, CFG) == pytest.approx(expected, rel=1e-10)


def test_angular_scale_without_size_evolution_is_geometric():
    cfg = CFG.model_copy(update={"size_evolution": 0.0})
    z0 = cfg.native_redshift
    assert angular_scale(z0, cfg) == pytest.approx(1.0, rel=1e-12)
    geo = np.array([angular_scale(z, cfg) for z in ZS])
    np.testing.assert_allclose(geo, [_da(z0) / _da(z) for z in ZS], rtol=1e-10)
    # the angular-diameter distance peaks near z = 1.6 in this cosmology: galaxies look smallest
    # there and grow again beyond (a property of D_A, independent of the implementation)
    assert geo[ZS.index(1.5)] < geo[ZS.index(1.0)] and geo[ZS.index(3.0)] > geo[ZS.index(2.0)]
    # size evolution multiplies by ((1+z)/(1+z0))^beta on top of geometry
    for z in ZS:
        ratio = angular_scale(z, CFG) / angular_scale(z, cfg)
        assert ratio == pytest.approx(((1 + z) / (1 + z0)) ** CFG.size_evolution, rel=1e-12)


# --- rebinning: flux and sizes ----------------------------------------------------------------


@pytest.mark.parametrize("scale_in", [0.1, 0.06, 0.03, 0.014, 0.0099, 0.005, 0.002])
def test_rebin_conserves_flux(scale_in):
    # 0.014, 0.0099, 0.005 and 0.002 arcsec/px are finer than a quarter of the 0.06" output
    # pixel: they take the block-sum path (factors 2, 3, 5, 14); the others go straight to GalSim.
    # rtol 1e-3: GalSim's FFT drawing of an InterpolatedImage is accurate to ~1e-4 of the flux
    # for these compact images (its folding / maxk thresholds are 5e-3 / 1e-3 of the profile).
    image = _gaussian(128, 4.0)  # sum 1, well inside the output stamp at every scale
    out = rebin(image, scale_in=scale_in, scale_out=0.06, size=101, psf=None)
    assert out.shape == (101, 101)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("scale_in", [0.03, 0.0099])
def test_rebin_with_psf_conserves_the_flux_the_stamp_can_hold(scale_in):
    # with the PSF, the light outside a 101 px stamp is what the PSF's own wings put there: the
    # sum equals that of the PSF alone drawn on the same stamp (~0.988 for the F160W Airy)
    psf = psf_model(SimulateConfig())
    held = psf.drawImage(nx=101, ny=101, scale=0.06).array.sum()
    out = rebin(_gaussian(128, 4.0), scale_in=scale_in, scale_out=0.06, size=101, psf=psf)
    assert out.sum() == pytest.approx(held, rel=1e-3)


@pytest.mark.parametrize(
    "scale_in",
    # GalSim directly, a block factor (2) that divides 128, and factors 3, 5, 14 that do not
    [0.1, 0.06, 0.03, 0.014, 0.0099, 0.005, 0.002],
)  # fmt: skip
def test_rebin_keeps_the_light_centred(scale_in):
    # a galaxy centred in its native image stays centred on the output stamp, whatever path
    # rebin takes, so that its position does not drift with z (the direct path is centred to
    # < 1e-4 px; 0.01 px is far below the 0.08 px that padding at one end caused)
    out = rebin(_gaussian(128, 4.0), scale_in=scale_in, scale_out=0.06, size=101, psf=None)
    yy, xx = np.indices(out.shape)
    total = out.sum()
    assert (out * yy).sum() / total == pytest.approx(50.0, abs=0.01)
    assert (out * xx).sum() / total == pytest.approx(50.0, abs=0.01)


@pytest.mark.parametrize("z", [0.2, 0.5, 1.0, 2.0])
def test_sizes_scale_by_the_angular_factor(z):
    # a native image (p0 = 1"/px) drawn at p0 a(z) onto 0.06"/px: its half-light radius in
    # arcsec is a(z) times the native one. The output half-light radii are 12, 5.4, 3.1 and 2.0
    # px: the 0.06" pixel response (adding px^2/12 to the variance) and the interpolant widen
    # the smallest by ~3%, hence rtol 5%.
    p0 = CFG.native_pixel_scale
    native = _gaussian(256, 12.0)
    r_native = half_light_radius(native) * p0
    assert r_native == pytest.approx(12.0 * math.sqrt(2 * math.log(2)), rel=0.01)  # the CoG
    a = angular_scale(z, CFG)
    out = rebin(native, scale_in=p0 * a, scale_out=0.06, size=101, psf=None)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)  # the galaxy fits: flux conserved
    assert half_light_radius(out) * 0.06 == pytest.approx(a * r_native, rel=0.05)


# --- flux: (1+z)^-4 dimming, area and surface-brightness evolution ----------------------------


def _expected_flux(abs_mag, mu0, z, cfg):
    """F = 10^(-0.4 (M + 5 log10(D_L / 10 pc) + dmu - ZP)) with D_L = (1+z)^2 D_A."""
    d_l_pc = (1 + z) ** 2 * _da(z, cfg) * 1e6
    dmu = mu0 * ((1 + z) ** cfg.sb_evolution - (1 + cfg.native_redshift) ** cfg.sb_evolution)
    return 10 ** (-0.4 * (abs_mag + 5 * math.log10(d_l_pc / 10) + dmu - ZP))


@pytest.mark.parametrize("z", ZS)
def test_apparent_flux_is_dimming_times_sb_evolution(z):
    abs_mag, mu0 = -21.3, 20.7
    z0, alpha = CFG.native_redshift, CFG.sb_evolution
    # absolute value, from D_A alone (astropy's distmod uses D_L; both are exact in double)
    assert apparent_flux(abs_mag, mu0, z, CFG, ZP) == pytest.approx(
        _expected_flux(abs_mag, mu0, z, CFG), rel=1e-10
    )
    # relative to the native redshift: area x (1+z)^-4 x SB evolution, exactly
    ratio = apparent_flux(abs_mag, mu0, z, CFG, ZP) / apparent_flux(abs_mag, mu0, z0, CFG, ZP)
    expected = ((_da(z0) / _da(z)) ** 2 * ((1 + z0) / (1 + z)) ** 4
                * 10 ** (-0.4 * mu0 * ((1 + z) ** alpha - (1 + z0) ** alpha)))  # fmt: skip
    assert ratio == pytest.approx(expected, rel=1e-10)


def test_without_sb_evolution_two_redshifts_differ_by_dimming_and_area_only():
    cfg = CFG.model_copy(update={"sb_evolution": 0.0})
    for z1, z2 in [(0.2, 1.0), (1.0, 3.0), (0.5, 7.0)]:
        ratio = apparent_flux(-22.0, 21.0, z2, cfg, ZP) / apparent_flux(-22.0, 21.0, z1, cfg, ZP)
        expected = ((1 + z1) / (1 + z2)) ** 4 * (_da(z1) / _da(z2)) ** 2
        assert ratio == pytest.approx(expected, rel=1e-10)
        # and mu0 plays no part then
        assert apparent_flux(-22.0, 18.0, z2, cfg, ZP) == pytest.approx(
            apparent_flux(-22.0, 23.0, z2, cfg, ZP), rel=1e-14
        )
    # with evolution, a brighter rest-frame mu0 changes the flux by exactly 10^(-0.4 dmu)
    z = 2.0
    f1, f2 = (apparent_flux(-22.0, mu0, z, CFG, ZP) for mu0 in (20.0, 22.0))
    shift = (1 + z) ** CFG.sb_evolution - (1 + CFG.native_redshift) ** CFG.sb_evolution
    assert f2 / f1 == pytest.approx(10 ** (-0.4 * 2.0 * shift), rel=1e-10)


# --- the nearby sample ------------------------------------------------------------------------


def test_nearby_sample():
    cfg = RedshiftSuiteConfig(n_galaxies=6, native_size=128)
    sample = nearby_sample(cfg)
    assert len(sample) == 6
    assert len({g.galaxy_id for g in sample}) == 6
    for g in sample:
        assert g.image.shape == (128, 128)
        assert np.isfinite(g.image).all()
        # float32 images (GalSim's default): the sum is 1 to float32 rounding
        assert float(g.image.astype(np.float64).sum()) == pytest.approx(1.0, rel=1e-5)
        assert -23.0 <= g.abs_mag <= -20.5
        assert g.kind in KINDS
        # sizes are set at the reference z: 3-8 px of 0.06" there, i.e. 3.4-9.1" (px) at the
        # native 1"/px; a circular radius of an inclined disk or a 2" seeing moves it a little
        r = half_light_radius(g.image)
        assert 2.0 < r < 14.0, (g.kind, r)
    assert len({g.kind for g in sample}) >= 3
    again = nearby_sample(cfg)  # seeded: the same sample again
    for a, b in zip(sample, again, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_nearby_sample_at_the_reference_has_the_asked_sizes():
    cfg = RedshiftSuiteConfig(n_galaxies=12, native_size=128, reference_rhalf_px=(4.0, 6.0))
    a = angular_scale(cfg.z_grid[0], cfg)
    for g in nearby_sample(cfg):
        moved = rebin(g.image, scale_in=cfg.native_pixel_scale * a, scale_out=0.06, size=101,
                      psf=None)  # fmt: skip
        # the seeing of the nearby survey (2" there, 1.8 px here) widens every galaxy a little;
        # a dust lane removes central light and widens an edge-on disk more (7.8 px seen)
        hi = 9.0 if g.kind == "dusty" else 7.0
        assert 3.5 < half_light_radius(moved) < hi, g.kind


def test_bookkeeping_terms():
    cfg = RedshiftSuiteConfig(n_galaxies=2, native_size=96)
    books = bookkeeping(nearby_sample(cfg), [0.2, 3.0], cfg, 25.946)
    ratio = 4.0 / (1 + cfg.native_redshift)
    at3 = books[books["z"] == 3.0].iloc[0]
    assert at3["dimming_mag"] == pytest.approx(10 * np.log10(ratio))
    assert at3["size_evolution_mag"] == pytest.approx(5 * -0.97 * np.log10(ratio))
    assert at3["sb_evolution_mag"] < 0  # brighter in the past
    total = at3["dimming_mag"] + at3["size_evolution_mag"] + at3["sb_evolution_mag"]
    assert at3["surface_brightness_change_mag"] == pytest.approx(total)
    expected = _da(cfg.native_redshift, cfg) / _da(3.0, cfg) * ratio**cfg.size_evolution
    assert at3["angular_factor"] == pytest.approx(expected, rel=1e-10)


def test_sky_cutouts_come_from_clean_regions_of_the_real_sky():
    from casnet.evaluation.redshift import sky_cutout

    rng = np.random.default_rng(0)
    sky = rng.normal(0, 0.01, (300, 300))
    sky[:150, :] = np.nan  # a masked half: cuts must avoid it
    cuts = [sky_cutout(sky, (101, 101), rng) for _ in range(5)]
    for cut in cuts:
        assert cut.shape == (101, 101) and np.isfinite(cut).all()
        assert any(np.array_equal(cut, sky[y : y + 101, x : x + 101])
                   for y in range(150, 200) for x in range(200))  # fmt: skip
    with pytest.raises(ValueError, match="without masked pixels"):
        sky_cutout(np.full((120, 120), np.nan), (101, 101), rng, tries=5)
