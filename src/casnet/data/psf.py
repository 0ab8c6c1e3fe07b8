"""Point-spread function of the simulated instrument (HST/WFC3-IR F160W-like)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import galsim

from casnet.core.errors import CasnetInputError
from casnet.data.io.fits import read_image
from casnet.data.settings import SimulateConfig

__all__ = ["airy_psf", "psf_model"]


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


@lru_cache(maxsize=4)
def _tabulated(path: str, scale: float | None, default_scale: float) -> galsim.GSObject:
    image, header = read_image(Path(path))
    pixscale = scale or header.get("PIXSCALE") or default_scale
    if not image.sum() > 0:
        raise CasnetInputError(f"{path}: the PSF image has no positive flux")
    return galsim.InterpolatedImage(galsim.Image(image / image.sum(), scale=float(pixscale)))


def psf_model(cfg: SimulateConfig) -> galsim.GSObject:
    """The PSF of the simulation: ``psf_file`` (a tabulated PSF, flux-normalised) when given,
    else :func:`airy_psf`."""
    if cfg.psf_file:
        return _tabulated(cfg.psf_file, cfg.psf_file_scale, cfg.pixel_scale)
    return airy_psf(cfg)
