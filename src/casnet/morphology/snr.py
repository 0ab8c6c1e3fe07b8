"""Petrosian signal-to-noise ratio (Tohill et al. 2021 Eq. 3)."""

from __future__ import annotations

import math

__all__ = ["snr_petrosian"]


def snr_petrosian(flux: float, r_petro: float, q: float, sky_sigma: float) -> float:
    """SNR_p = L_tot / (q pi R_p^2 sigma_sky).

    ``flux`` is the light inside the Petrosian ellipse (semi-major axis R_p, area q pi R_p^2), so
    SNR_p is the mean surface brightness inside R_p in units of the per-pixel sky noise: the
    quantity the paper cuts at SNR_p > 2 (Sec. 3.1).

    Returns NaN when any input is not positive and finite.
    """
    if not (r_petro > 0 and q > 0 and sky_sigma > 0 and math.isfinite(flux)):
        return float("nan")
    return float(flux / (q * math.pi * r_petro**2 * sky_sigma))
