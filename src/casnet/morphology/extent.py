"""Does a galaxy fit its stamp? Room for the apertures and for the sky beyond them.

The measurement needs the 1.5 R_p apertures (Tohill et al. 2021 Sec. 2.3) inside the stamp
(else APERTURE_CLIPPED) and, beyond ``sky_exclude_rp`` R_p, at least as many sky pixels as the
aperture holds (else STAMP_FILLED: the sky would hold the galaxy's wings and C comes out 0.2-0.45
low). The two rules live here, so the measurement that flags a stamp and the simulator that must
never draw one that overflows (issue 15) agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from casnet.morphology.growth import growth_curve
from casnet.morphology.petrosian import petrosian_radius
from casnet.morphology.segmentation import smooth
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.shape import elliptical_radius, second_moments
from casnet.morphology.sky import MIN_SKY_PIXELS

__all__ = ["StampFit", "noiseless_fit", "sky_pixels_needed"]


def sky_pixels_needed(r_petro: float, q: float, cfg: MorphologyConfig) -> int:
    """Sky pixels a measurement needs beyond ``sky_exclude_rp`` R_p: as many as its aperture
    holds (fewer, and the sky's error dominates the total flux's), at least MIN_SKY_PIXELS."""
    return max(MIN_SKY_PIXELS, int(np.pi * q * (cfg.aperture_rp * r_petro) ** 2))


@dataclass(frozen=True)
class StampFit:
    """How a noiseless galaxy sits in its stamp.

    Attributes
    ----------
    r_petro : float
        Petrosian semi-major axis (px) of the noiseless image (NaN: none inside the stamp).
    aperture : float
        The largest measurement aperture (px): max(aperture_rp, asymmetry_aperture_rp) R_p.
    r_inside : float
        Largest ellipse (px) inside the stamp.
    sky_pixels, sky_needed : int
        Pixels beyond ``sky_exclude_rp`` R_p, and the number the measurement needs there.
    """

    r_petro: float
    aperture: float
    r_inside: float
    sky_pixels: int
    sky_needed: int

    @property
    def fits(self) -> bool:
        """True when the apertures and the sky both have room."""
        return (
            bool(np.isfinite(self.r_petro))
            and self.aperture <= self.r_inside
            and self.sky_pixels >= self.sky_needed
        )


def noiseless_fit(
    image: np.ndarray,
    centre: tuple[float, float],
    sky_sigma: float,
    config: MorphologyConfig | None = None,
) -> StampFit:
    """Room in the stamp for a noiseless galaxy image (no sky), centred at ``centre`` (x, y).

    The shape (q, pa) comes from the pixels above the detection threshold of a stamp with noise
    ``sky_sigma``, as :func:`casnet.morphology.measurement.measure_truth` takes it.
    """
    cfg = config or MorphologyConfig()
    arr = np.asarray(image, dtype=np.float64)
    where = smooth(arr, cfg.smooth_fwhm) > cfg.detect_nsigma * sky_sigma
    if not where.any():
        where.flat[int(np.argmax(arr))] = True
    shape = second_moments(arr, where)
    q, pa = (1.0, 0.0) if shape is None or cfg.aperture_shape == "circle" else (shape.q, shape.pa)
    x0, y0 = centre
    curve = growth_curve(arr, x0=x0, y0=y0, q=q, pa=pa, subsample=2, subsample_radius=0.0)
    r_p = petrosian_radius(curve, eta=cfg.eta, inner=cfg.annulus_inner, outer=cfg.annulus_outer)
    if not np.isfinite(r_p):
        return StampFit(float("nan"), float("inf"), curve.r_inside, 0, MIN_SKY_PIXELS)
    yy, xx = np.indices(arr.shape)
    radius = elliptical_radius(xx - x0, yy - y0, q, pa)
    return StampFit(
        r_petro=float(r_p),
        aperture=max(cfg.aperture_rp, cfg.asymmetry_aperture_rp) * float(r_p),
        r_inside=float(curve.r_inside),
        sky_pixels=int(np.count_nonzero(radius > cfg.sky_exclude_rp * r_p)),
        sky_needed=sky_pixels_needed(float(r_p), q, cfg),
    )
