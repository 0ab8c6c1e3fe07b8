"""Concentration C = 5 log10(r80 / r20) (Tohill et al. 2021 Eq. 1, Bershady et al. 2000)."""

from __future__ import annotations

import numpy as np

from casnet.morphology.growth import GrowthCurve

__all__ = ["concentration", "light_radii"]


def light_radii(curve: GrowthCurve, total: float, fractions=(0.2, 0.8)) -> tuple[float, ...]:
    """Semi-major axes enclosing the given fractions of ``total`` (interpolated)."""
    return tuple(curve.radius_at_flux(f * total) for f in fractions)


def concentration(r20: float, r80: float) -> float:
    """C = 5 log10(r80 / r20); NaN unless both radii are positive.

    The paper re-applies the factor 5 to MORFOMETRYKA's log10(r80/r20), so C has the usual
    Bershady et al. (2000) scale (C ~ 2-5).
    """
    if not (r20 > 0 and r80 > 0):
        return float("nan")
    return float(5.0 * np.log10(r80 / r20))
