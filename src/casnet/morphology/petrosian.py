"""Petrosian radius on elliptical apertures (Tohill et al. 2021 Sec. 2.2-2.3)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from casnet.morphology.growth import GrowthCurve

__all__ = ["petrosian_eta", "petrosian_radius"]

#: smallest radius (px) at which eta is evaluated: below it the annulus is sub-pixel
R_MIN = 0.5


def petrosian_eta(
    curve: GrowthCurve, r: float | np.ndarray, *, inner: float = 0.8, outer: float = 1.25
) -> np.ndarray:
    """Petrosian ratio eta(r) = I(r) / <I(<r)>.

    ``I(r)`` is the mean surface brightness in the elliptical annulus from ``inner*r`` to
    ``outer*r`` (Lotz et al. 2004), ``<I(<r)>`` the mean surface brightness inside ``r``; both use
    the stamp area actually covered.

    NaN where the light inside ``r`` is not positive: the ratio to a mean surface brightness <= 0
    has no meaning (its sign flips), so it cannot say that eta "fell" to a threshold. At low S/N
    per pixel the first sub-pixel ellipses around the centre can hold negative noise: on a faint
    clumpy galaxy (issue 28, ``tests/data/faint_clumpy_unflagged.fits``) the light inside 0.5 px
    was about -0.001 (eta -0.94), which made R_p 0.5 px instead of ~29 px.
    """
    r = np.asarray(r, dtype=float)
    ann_flux = curve.flux_at(outer * r) - curve.flux_at(inner * r)
    ann_area = curve.area_at(outer * r) - curve.area_at(inner * r)
    in_flux = curve.flux_at(r)
    in_area = curve.area_at(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = (ann_flux / ann_area) / (in_flux / in_area)
    return np.where(in_flux > 0, eta, np.nan)


def petrosian_radius(
    curve: GrowthCurve, *, eta: float = 0.2, inner: float = 0.8, outer: float = 1.25
) -> float:
    """Semi-major axis R_p where eta(R_p) falls to ``eta`` (first crossing, found by root finding).

    Returns
    -------
    float
        NaN when eta stays above the threshold out to the largest radius the stamp supports
        (``r * outer`` must stay on the curve).
    """
    r_hi = curve.r_max / outer
    if r_hi <= R_MIN:
        return float("nan")
    grid = np.arange(R_MIN, r_hi, 0.25)
    values = petrosian_eta(curve, grid, inner=inner, outer=outer) - eta
    # eta is undefined (0/0) where an annulus or the inside holds no light, or where the light
    # inside is negative (noise at the centre): such grid points cannot bracket the root, so the
    # first crossing is sought between finite neighbours only.
    finite = np.isfinite(values)
    below = np.flatnonzero(finite & (values <= 0))
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0 or not finite[k - 1]:
        return float(grid[k])

    def f(r: float) -> float:
        return float(petrosian_eta(curve, r, inner=inner, outer=outer)) - eta

    lo, hi = float(grid[k - 1]), float(grid[k])
    if not (np.isfinite(f(lo)) and np.isfinite(f(hi))):
        return hi
    return float(brentq(f, lo, hi, xtol=1e-4))
