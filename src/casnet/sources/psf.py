"""Point-spread function of the simulated instrument (HST/WFC3-IR F160W-like)."""

from __future__ import annotations

import galsim

from casnet.config import SimulateConfig

__all__ = ["airy_psf"]


def airy_psf(cfg: SimulateConfig) -> galsim.GSObject:
    """Obscured Airy pattern of a ``psf_diameter_m`` telescope at ``psf_wavelength_nm``.

    F160W defaults: 1.545 um on the 2.4 m HST aperture with a 0.33 linear central obscuration
    (FWHM ~ 0.14 arcsec, ~2.3 px at 0.06 arcsec/px before pixel convolution).
    """
    return galsim.Airy(
        lam=cfg.psf_wavelength_nm,
        diam=cfg.psf_diameter_m,
        obscuration=cfg.psf_obscuration,
        scale_unit=galsim.arcsec,
    )
