"""Sky noise of HST-like mosaics: white plus correlated (COSMOS correlation function).

Drizzled HST mosaics have pixel-to-pixel correlated noise. GalSim ships the correlation function
measured in COSMOS (``galsim.getCOSMOSNoise``); adding it with ``Image.addNoise`` recomputes its
power spectrum for every stamp (~25 ms). Here the power spectrum is computed once per stamp size
and each stamp costs two FFTs of white noise drawn from its own NumPy stream, which
also keeps the noise in the per-galaxy random stream (reproducible, worker-independent).
"""

from __future__ import annotations

from functools import lru_cache

import galsim
import numpy as np

__all__ = ["correlated_noise", "sky_noise"]


#: pixel scale (arcsec) of the COSMOS mosaic the correlation function was measured on
_COSMOS_SCALE = 0.03


@lru_cache(maxsize=8)
def _cosmos_filter(size: int) -> np.ndarray:
    """Amplitude filter on a (2 size)^2 grid turning unit white noise into unit-variance COSMOS
    noise (the padding keeps the periodic FFT from wrapping correlations across the stamp).

    The correlation is applied in pixel units: COSMOS (ACS 0.05" drizzled to 0.03") and CANDELS
    F160W (WFC3/IR 0.128" drizzled to 0.06") are both drizzled to about half the native pixel, so
    the neighbour-pixel correlation (~0.3 at lag 1) is what carries over, not the angular scale.
    """
    m = 2 * size
    cf = galsim.getCOSMOSNoise().drawImage(galsim.ImageD(m, m, scale=_COSMOS_SCALE)).array
    # the correlation function drawn centred -> its FFT is the power spectrum
    ps = np.fft.fft2(np.fft.ifftshift(cf)).real
    amp = np.sqrt(np.clip(ps, 0.0, None))
    return amp / np.sqrt(np.mean(amp**2))


def correlated_noise(
    rng: np.random.Generator, shape: tuple[int, int], *, sigma: float
) -> np.ndarray:
    """Gaussian noise with the COSMOS correlation function (pixel units) and per-pixel std
    ``sigma``."""
    ny, nx = shape
    amp = _cosmos_filter(max(ny, nx))
    white = rng.standard_normal(amp.shape)
    field = np.fft.ifft2(np.fft.fft2(white) * amp).real
    return sigma * field[:ny, :nx]


def sky_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    sigma: float,
    correlated_fraction: float,
) -> np.ndarray:
    """White + correlated noise of total per-pixel variance ``sigma**2``; a share
    ``correlated_fraction`` of the variance is correlated."""
    out = rng.normal(0.0, sigma * np.sqrt(1.0 - correlated_fraction), size=shape)
    if correlated_fraction > 0:
        out += correlated_noise(rng, shape, sigma=sigma * np.sqrt(correlated_fraction))
    return out
