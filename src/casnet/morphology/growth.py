"""Curve of growth on elliptical apertures, resolved below the pixel scale.

Each pixel is split into ``subsample x subsample`` sub-pixels carrying an equal share of its flux;
the light and the area enclosed by ellipses of semi-major axis ``r`` are accumulated on a fine grid
of ``r``. Everything radial (Petrosian radius, r20, r80, SNR_p) is read from this one curve by
interpolation, so radii are not rounded to whole pixels (Tohill et al. 2021 Sec. 2.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["GrowthCurve", "fill_masked", "growth_curve"]


@dataclass(frozen=True)
class GrowthCurve:
    """Enclosed light and area as functions of the semi-major axis.

    Attributes
    ----------
    r : 1-D ndarray
        Semi-major axes (px), ``r[0] = 0``, uniformly spaced.
    flux : 1-D ndarray
        Light inside the ellipse of semi-major axis ``r``.
    area : 1-D ndarray
        Area (px^2) of the stamp inside that ellipse (smaller than ``pi q r^2`` once the ellipse
        leaves the stamp).
    r_inside : float
        Largest semi-major axis whose ellipse lies entirely inside the stamp.
    """

    r: np.ndarray
    flux: np.ndarray
    area: np.ndarray
    r_inside: float

    @property
    def r_max(self) -> float:
        """Largest radius the curve covers."""
        return float(self.r[-1])

    def flux_at(self, r: float | np.ndarray) -> np.ndarray:
        """Enclosed light at ``r`` (linear interpolation)."""
        return np.interp(r, self.r, self.flux)

    def area_at(self, r: float | np.ndarray) -> np.ndarray:
        """Enclosed stamp area at ``r`` (linear interpolation)."""
        return np.interp(r, self.r, self.area)

    def radius_at_flux(self, level: float) -> float:
        """Smallest ``r`` where the enclosed light reaches ``level`` (NaN if never).

        Noise can make the curve non-monotonic; the first crossing is the conventional choice.
        """
        above = np.flatnonzero(self.flux >= level)
        if above.size == 0:
            return float("nan")
        k = int(above[0])
        if k == 0:
            return 0.0
        f0, f1 = self.flux[k - 1], self.flux[k]
        t = (level - f0) / (f1 - f0) if f1 > f0 else 1.0
        return float(self.r[k - 1] + t * (self.r[k] - self.r[k - 1]))


def fill_masked(image: np.ndarray, mask: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Replace masked pixels by the mean of the unmasked pixels at the same elliptical radius.

    Dropping masked pixels would bias the enclosed light low; an azimuthal fill keeps the curve of
    growth of a smooth galaxy unbiased whatever a neighbour covered.

    Parameters
    ----------
    image : 2-D ndarray
    mask : 2-D bool ndarray
        True where a pixel is to be replaced.
    radius : 2-D ndarray
        Elliptical radius of every pixel (:func:`casnet.morphology.shape.elliptical_radius`).
    """
    if not mask.any():
        return image
    ring = radius.astype(np.intp)
    good = ~mask
    n = int(ring.max()) + 1
    total = np.bincount(ring[good], weights=image[good], minlength=n)
    count = np.bincount(ring[good], minlength=n)
    mean = np.divide(total, count, out=np.zeros(n), where=count > 0)
    if (count == 0).any() and (count > 0).any():
        # rings with no unmasked pixel (a masked core): interpolate the profile, not zeros
        rings = np.arange(n)
        mean = np.interp(rings, rings[count > 0], mean[count > 0])
    out = image.copy()
    out[mask] = mean[ring[mask]]
    return out


def growth_curve(
    image: np.ndarray,
    *,
    x0: float,
    y0: float,
    q: float,
    pa: float,
    subsample: int = 4,
    subsample_radius: float = 15.0,
    dr: float = 0.1,
) -> GrowthCurve:
    """Curve of growth of ``image`` on ellipses centred at ``(x0, y0)``.

    Parameters
    ----------
    image : 2-D ndarray
        Sky-subtracted, finite (masked pixels already filled).
    x0, y0 : float
        Centre (pixel coordinates).
    q, pa : float
        Axis ratio and position angle (radians, counter-clockwise from +x).
    subsample : int
        Sub-pixels per pixel side; the flux of a pixel is shared equally among them.
    subsample_radius : float
        Pixels farther than this (px, elliptical radius) are split 2x2 only: out there a pixel is
        a thin slice of a wide ring, and the finer split changes the enclosed area by < 0.3% for
        ~2.5x the cost. Border pixels are always fully split (for the inscribed radius).
    dr : float
        Radial step (px) of the returned curve.

    Returns
    -------
    GrowthCurve
        Covering every pixel of the stamp.
    """
    flux, area, r_inside = _accumulate(
        np.ascontiguousarray(image, dtype=np.float64),
        x0,
        y0,
        q,
        pa,
        subsample,
        dr,
        subsample_radius,
    )
    n = int(np.flatnonzero(area)[-1]) + 1  # up to the stamp's outermost sub-pixel
    radii = np.arange(n) * dr
    return GrowthCurve(radii, np.cumsum(flux[:n]), np.cumsum(area[:n]), r_inside)


@numba.njit(cache=True)
def _accumulate(
    image, x0: float, y0: float, q: float, pa: float, subsample: int, dr: float, r_sub: float
):
    """Flux and area per radial bin ``(k - 1) dr < r <= k dr`` of the sub-pixels (2x2 only for
    pixels beyond ``r_sub`` and off the border), and the largest radius whose ellipse stays
    inside the stamp (the smallest radius on the border)."""
    ny, nx = image.shape
    c = math.cos(pa)
    s = math.sin(pa)
    # the largest radius of the stamp: at one of the corners' outer sub-pixel edges
    r_max = 0.0
    for yy in (-0.5 - y0, ny - 0.5 - y0):
        for xx in (-0.5 - x0, nx - 0.5 - x0):
            u = xx * c + yy * s
            v = (-xx * s + yy * c) / q
            r_max = max(r_max, math.sqrt(u * u + v * v))
    nbin = math.ceil(r_max / dr) + 2
    flux = np.zeros(nbin)
    area = np.zeros(nbin)
    r_inside = np.inf
    # a pixel's corners lie within 0.71 / q of its centre in elliptical radius: pixels that may
    # straddle r_sub are split, so the curve inside r_sub is exactly the sub-sampled one
    reach = 0.71 / q
    for j in range(ny):
        for i in range(nx):
            border = j == 0 or j == ny - 1 or i == 0 or i == nx - 1
            dx0 = i - x0
            dy0 = j - y0
            u0 = dx0 * c + dy0 * s
            v0 = (-dx0 * s + dy0 * c) / q
            r0 = math.sqrt(u0 * u0 + v0 * v0)
            # far out a pixel is a thin slice of a wide ring: 2x2 samples are enough there
            sub = subsample if (r0 <= r_sub + reach or border) else min(subsample, 2)
            ws = 1.0 / (sub * sub)
            f = image[j, i] * ws
            for a in range(sub):
                dy = dy0 + (a + 0.5) / sub - 0.5
                for b in range(sub):
                    dx = dx0 + (b + 0.5) / sub - 0.5
                    u = dx * c + dy * s
                    v = (-dx * s + dy * c) / q
                    r = math.sqrt(u * u + v * v)
                    k = math.ceil(r / dr)
                    flux[k] += f
                    area[k] += ws
                    if border and (
                        (j == 0 and a == 0)
                        or (j == ny - 1 and a == sub - 1)
                        or (i == 0 and b == 0)
                        or (i == nx - 1 and b == sub - 1)
                    ):
                        r_inside = min(r_inside, r)
    return flux, area, r_inside
