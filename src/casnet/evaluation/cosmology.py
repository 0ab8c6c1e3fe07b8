"""The geometry and photometry of moving a galaxy to redshift z (Tohill et al. 2021 Sec. 4.3,
Eqs. 6-7): angular size and apparent flux in a flat LambdaCDM cosmology (astropy)."""

from __future__ import annotations

from casnet.data.simulate import flux_from_mag
from casnet.evaluation.settings import RedshiftSuiteConfig

__all__ = ["angular_scale", "apparent_flux", "cosmology", "sb_evolution_mag"]


def cosmology(cfg: RedshiftSuiteConfig):
    """Flat LambdaCDM of the suite's params."""
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=cfg.h0, Om0=cfg.om0)


def angular_scale(z: float, cfg: RedshiftSuiteConfig) -> float:
    """``a(z)``: angular size at z over angular size at the native redshift (step 1)."""
    cosmo = cosmology(cfg)
    z0 = cfg.native_redshift
    geometric = float(cosmo.angular_diameter_distance(z0) / cosmo.angular_diameter_distance(z))
    return geometric * ((1 + z) / (1 + z0)) ** cfg.size_evolution


def apparent_flux(abs_mag: float, mu0: float, z: float, cfg: RedshiftSuiteConfig,
                  zero_point: float) -> float:  # fmt: skip
    """Counts/s of the galaxy at z (step 3), K-correction ignored."""
    cosmo = cosmology(cfg)
    m = abs_mag + float(cosmo.distmod(z).value)
    return flux_from_mag(m + sb_evolution_mag(mu0, z, cfg), zero_point)


def sb_evolution_mag(mu0: float, z: float, cfg: RedshiftSuiteConfig) -> float:
    """The surface-brightness evolution term (mag; negative: brighter): ``mu(z) = mu(0)
    (1 + z)^alpha`` applied to a galaxy of rest-frame mean surface brightness ``mu0``
    (mag/arcsec^2), relative to the native redshift."""
    z0 = cfg.native_redshift
    return mu0 * ((1 + z) ** cfg.sb_evolution - (1 + z0) ** cfg.sb_evolution)
