"""Point-spread function of the simulated instrument: drizzled HST/WFC3-IR F160W (CANDELS).

The default model is the obscured Airy pattern of the 2.4 m HST aperture at 1.545 um, convolved
with the native 0.128" WFC3/IR pixel (drizzling combines dithered native pixels: the output is the
sky convolved with the detector pixel, then resampled) and a Gaussian for what the Airy pattern
lacks: the detector's inter-pixel capacitance, the telescope's residual and mid-frequency
wavefront error, and the drizzle kernel. Its width, ``psf_kernel_sigma_arcsec`` = 0.034", is set
so that the PSF drawn on the 0.06" CANDELS grid has FWHM 0.18" (3 px: the F160W mosaics of
Koekemoer et al. 2011, the PSF van der Wel et al. 2012 fit with); before pixelation it is then
0.146", close to the 0.151" of the WFC3 Instrument Handbook's model PSF at 1.6 um (Table 7.5,
which includes the IPC and the mid-frequency error). The pure Airy pattern used before had FWHM
0.136" on the grid, sharper than any drizzled F160W image. A tabulated PSF (e.g. TinyTim, or a
stack of stars from the mosaic) replaces the model when ``psf_file`` is given.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import galsim

from casnet.core.errors import CasnetInputError
from casnet.data.io.fits import read_image
from casnet.data.settings import SimulateConfig

__all__ = ["airy_psf", "f160w_psf", "psf_model"]


def airy_psf(cfg: SimulateConfig) -> galsim.GSObject:
    """Obscured Airy pattern of a ``psf_diameter_m`` telescope at ``psf_wavelength_nm``.

    F160W defaults: 1.545 um on the 2.4 m HST aperture with a 0.33 linear central obscuration
    (FWHM 0.129" before pixelation).
    """
    return galsim.Airy(
        lam=cfg.psf_wavelength_nm,
        diam=cfg.psf_diameter_m,
        obscuration=cfg.psf_obscuration,
        scale_unit=galsim.arcsec,
    )


def f160w_psf(cfg: SimulateConfig) -> galsim.GSObject:
    """The drizzled F160W-like PSF (module docstring): :func:`airy_psf` convolved with the native
    pixel and the Gaussian kernel (each left out when its width is 0); the output pixel is
    GalSim's own when the stamp is drawn."""
    parts = [airy_psf(cfg)]
    if cfg.psf_native_pixel_arcsec > 0:
        # a Box, not galsim.Pixel: GalSim warns when a profile holding a Pixel is drawn with its
        # own pixel (here that is right: the native pixel, then the 0.06" output pixel)
        w = cfg.psf_native_pixel_arcsec
        parts.append(galsim.Box(w, w))
    if cfg.psf_kernel_sigma_arcsec > 0:
        parts.append(galsim.Gaussian(sigma=cfg.psf_kernel_sigma_arcsec))
    return parts[0] if len(parts) == 1 else galsim.Convolve(parts)


@lru_cache(maxsize=4)
def _tabulated(path: str, scale: float | None, default_scale: float) -> galsim.GSObject:
    image, header = read_image(Path(path))
    pixscale = scale or header.get("PIXSCALE") or default_scale
    if not image.sum() > 0:
        raise CasnetInputError(f"{path}: the PSF image has no positive flux")
    return galsim.InterpolatedImage(galsim.Image(image / image.sum(), scale=float(pixscale)))


def psf_model(cfg: SimulateConfig) -> galsim.GSObject:
    """The PSF of the simulation: ``psf_file`` (a tabulated PSF, flux-normalised) when given,
    else :func:`f160w_psf`."""
    if cfg.psf_file:
        return _tabulated(cfg.psf_file, cfg.psf_file_scale, cfg.pixel_scale)
    return f160w_psf(cfg)
