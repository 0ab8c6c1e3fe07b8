"""Statistical errors of C and A from the noise (Tohill et al. 2021 Sec. 2.3).

Both are first-order propagations of pixel noise: sky noise ``sigma`` per pixel plus, when a gain
is known, the Poisson noise of the source (``I / gain``).
"""

from __future__ import annotations

import math

import numpy as np

from casnet.morphology.growth import GrowthCurve

__all__ = ["asymmetry_error", "concentration_error"]

_LN10 = math.log(10.0)


def _radius_error(curve: GrowthCurve, r: float, sky_sigma: float, gain: float | None) -> float:
    """Error on a light radius: the Poisson/sky error of the enclosed light over the slope dL/dr."""
    if not r > 0:
        return float("nan")
    # hypot, not sums of squares: images in any unit (1e-200 or 1e200) must not over/underflow
    noise = math.sqrt(float(curve.area_at(r))) * sky_sigma
    if gain:
        noise = math.hypot(noise, math.sqrt(max(float(curve.flux_at(r)), 0.0) / gain))
    h = 0.5  # px: slope over one pixel, smooth against sub-pixel steps of the curve
    slope = (curve.flux_at(r + h) - curve.flux_at(max(r - h, 0.0))) / (r + h - max(r - h, 0.0))
    if not slope > 0:
        return float("nan")
    return float(noise / slope)


def concentration_error(
    curve: GrowthCurve, r20: float, r80: float, sky_sigma: float, gain: float | None = None
) -> float:
    """sigma_C from the errors on r20 and r80.

    sigma_r = sigma_L(r) / (dL/dr) with sigma_L(r)^2 = N(<r) sigma^2 (+ L(<r) / gain), and
    sigma_C = 5 / ln 10 * sqrt((sigma_r20 / r20)^2 + (sigma_r80 / r80)^2).
    """
    e20 = _radius_error(curve, r20, sky_sigma, gain)
    e80 = _radius_error(curve, r80, sky_sigma, gain)
    return float(5.0 / _LN10 * math.hypot(e20 / r20, e80 / r80))


def asymmetry_error(
    asym_raw: float,
    n_pixels: int,
    abs_flux: float,
    sky_sigma: float,
    *,
    cell_values: np.ndarray | None = None,
    flux_for_poisson: float = 0.0,
    gain: float | None = None,
) -> float:
    """sigma_A by propagating noise through A = D / S (Conselice et al. 2000 Sec. 4).

    With per-pixel variance v, D = sum |I - I_180| (each pair counted twice) has variance 4 N v
    and S = sum |I| has N v; their covariance vanishes (the signs of the pair differences cancel),
    so sigma_A^2 = N v (4 + A^2) / S^2. The background term adds the error of the median over the
    sky cells, sqrt(pi/2) * std / sqrt(n_cells), scaled by N / S.
    """
    if not (n_pixels > 0 and abs_flux > 0 and sky_sigma >= 0):
        return float("nan")
    # everything relative to S = abs_flux before combining (hypot): no squares of raw fluxes,
    # which over/underflow for images in extreme units
    noise = math.sqrt(n_pixels) * (sky_sigma / abs_flux)
    if gain and flux_for_poisson > 0:
        noise = math.hypot(noise, math.sqrt(flux_for_poisson / gain) / abs_flux)
    err = noise * math.sqrt(4.0 + asym_raw**2)
    if cell_values is not None and cell_values.size > 1:
        scale = float(np.max(np.abs(cell_values))) or 1.0
        spread = float(np.std(cell_values / scale)) * scale
        bkg_err = math.sqrt(math.pi / 2) * spread / math.sqrt(cell_values.size)
        err = math.hypot(err, n_pixels * (bkg_err / abs_flux))
    return float(err)
