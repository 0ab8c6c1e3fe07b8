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

__all__ = [
    "aperture_noise_std",
    "circle_weights",
    "correlated_noise",
    "sky_noise",
    "source_noise",
]


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


def circle_weights(radius: float, size: int, supersample: int = 8) -> np.ndarray:
    """Fraction of each pixel of a ``size`` x ``size`` grid inside a circle of ``radius`` px
    about the grid centre (``supersample``^2 points per pixel)."""
    n = size * supersample
    c = (np.arange(n) + 0.5) / supersample - size / 2
    inside = (c[:, None] ** 2 + c[None, :] ** 2) <= radius**2
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


@lru_cache(maxsize=16)
def aperture_noise_std(radius: float, correlated_fraction: float) -> float:
    """Standard deviation of the sum over a circular aperture of ``radius`` px of
    :func:`sky_noise` with per-pixel sigma 1.

    White noise gives sqrt(sum of the squared pixel weights) (~ sqrt(pi r^2)); the correlated
    share adds the covariance of the pixels (Parseval on the filter's grid: Var = sum_k |A(k)|^2
    amp(k)^2 / m^2), which is what makes a drizzled mosaic shallower than its per-pixel noise
    suggests.
    """
    size = int(np.ceil(2 * radius)) + 4
    weights = circle_weights(radius, size)
    white = float(np.sum(weights**2))
    amp = _cosmos_filter(size)
    m = amp.shape[0]
    grid = np.zeros((m, m))
    grid[:size, :size] = weights
    correlated = float(np.sum(np.abs(np.fft.fft2(grid)) ** 2 * amp**2) / m**2)
    return float(np.sqrt((1 - correlated_fraction) * white + correlated_fraction * correlated))


def source_noise(rng: np.random.Generator, image: np.ndarray, exposure_s: float) -> np.ndarray:
    """The shot noise of the sources in ``image`` (e-/s) over an exposure of ``exposure_s``:
    Poisson counts of the electrons collected, back in e-/s, minus the image (mean 0: the flux
    is conserved on average). Negative pixels (none in a noiseless scene) collect nothing."""
    electrons = np.clip(image, 0.0, None) * exposure_s
    return rng.poisson(electrons) / exposure_s - electrons / exposure_s
