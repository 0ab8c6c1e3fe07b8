"""Sky background: robust mean and sigma with sources masked (Tohill et al. 2021 Sec. 2.3)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["MIN_SKY_PIXELS", "Sky", "first_guess_sky", "masked_sky", "rough_sky", "sky_background"]

#: fewest pixels left around the masked sources for their sigma-clipped statistics to be the sky
#: (below it the first guess stays): one value for the measurement and for galclean
MIN_SKY_PIXELS = 50

#: sigma of a Gaussian per unit median absolute deviation, 1 / Phi^-1(3/4) (astropy's mad_std)
_MAD_TO_SIGMA = 1.482602218505602


@dataclass(frozen=True)
class Sky:
    """Background level and noise of a stamp.

    Attributes
    ----------
    mean : float
        Sigma-clipped mean of the sky pixels.
    sigma : float
        Sigma-clipped standard deviation of the sky pixels (per-pixel noise).
    n_pixels : int
        Number of pixels the statistics were computed from (before clipping).
    """

    mean: float
    sigma: float
    n_pixels: int


def sky_background(
    image: np.ndarray, *, mask: np.ndarray | None = None, clip_sigma: float = 3.0, maxiters: int = 5
) -> Sky:
    """Sigma-clipped sky statistics of the unmasked pixels.

    Parameters
    ----------
    image : 2-D ndarray
        The stamp; non-finite pixels are ignored.
    mask : 2-D bool ndarray, optional
        True where a pixel must not count as sky (sources, bad pixels).
    clip_sigma, maxiters : float, int
        Clipping threshold (in sigma) and the maximum number of iterations.

    Returns
    -------
    Sky
        NaN mean and sigma when no pixel is left.
    """
    bad = ~np.isfinite(image)
    if mask is not None:
        bad |= mask
    n = int(bad.size - np.count_nonzero(bad))
    if n == 0:
        return Sky(float("nan"), float("nan"), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, _, std = sigma_clipped_stats(image, mask=bad, sigma=clip_sigma, maxiters=maxiters)
    return Sky(float(mean), float(std), n)


def rough_sky(image: np.ndarray, *, mask: np.ndarray | None = None) -> Sky:
    """Median and MAD-based sigma of the unmasked pixels, sources included.

    Robust to a galaxy covering a good part of the stamp (breakdown point 50%), and cheap: used
    only to set the detection threshold before the sources are known; the sky reported is the
    sigma-clipped :func:`sky_background` with the detected sources masked.
    """
    good = np.isfinite(image)
    if mask is not None:
        good &= ~mask
    values = image[good]
    if values.size == 0:
        return Sky(float("nan"), float("nan"), 0)
    # mad_std would compute the median a second time
    centre = float(np.median(values))
    return Sky(centre, float(_MAD_TO_SIGMA * np.median(np.abs(values - centre))), int(values.size))


def first_guess_sky(
    image: np.ndarray, *, mask: np.ndarray | None, clip_sigma: float, maxiters: int
) -> Sky:
    """The first pass of the two-pass sky, before the sources are known: :func:`rough_sky`, or
    the sigma-clipped statistics when the MAD is 0 (more than half the pixels share one value;
    the clipped std may not be 0)."""
    sky = rough_sky(image, mask=mask)
    if not sky.sigma > 0:
        sky = sky_background(image, mask=mask, clip_sigma=clip_sigma, maxiters=maxiters)
    return sky


def masked_sky(
    image: np.ndarray,
    first: Sky,
    *,
    mask: np.ndarray,
    clip_sigma: float,
    maxiters: int,
    min_pixels: int = MIN_SKY_PIXELS,
) -> Sky:
    """The second pass: sigma-clipped statistics with ``mask`` (the detected sources and invalid
    pixels) left out, or ``first`` when fewer than ``min_pixels`` are left or their sigma is 0."""
    masked = sky_background(image, mask=mask, clip_sigma=clip_sigma, maxiters=maxiters)
    if masked.n_pixels >= min_pixels and masked.sigma > 0:
        return masked
    return first
