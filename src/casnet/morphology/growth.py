"""Curve of growth on elliptical apertures, resolved below the pixel scale.

Each pixel is split into ``subsample x subsample`` sub-pixels carrying an equal share of its flux;
the light and the area enclosed by ellipses of semi-major axis ``r`` are accumulated on a fine grid
of ``r``. Everything radial (Petrosian radius, r20, r80, SNR_p) is read from this one curve by
interpolation, so radii are not rounded to whole pixels (Tohill et al. 2021 Sec. 2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from casnet.morphology.shape import elliptical_radius

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
    dr : float
        Radial step (px) of the returned curve.

    Returns
    -------
    GrowthCurve
        Covering every pixel of the stamp.
    """
    ny, nx = image.shape
    offsets = (np.arange(subsample) + 0.5) / subsample - 0.5
    # x and y of every sub-pixel relative to the centre; shape (ny*s, nx*s) without materialising
    # the sub-sampled image: the flux of a sub-pixel is its parent's value / s^2.
    xs = (np.arange(nx)[:, None] + offsets[None, :]).ravel() - x0
    ys = (np.arange(ny)[:, None] + offsets[None, :]).ravel() - y0
    r = elliptical_radius(xs[None, :], ys[:, None], q, pa)
    k = np.ceil(r / dr).astype(np.intp)
    nbin = int(k.max()) + 1
    weights = np.repeat(np.repeat(image, subsample, axis=0), subsample, axis=1)
    flux = np.cumsum(np.bincount(k.ravel(), weights=weights.ravel(), minlength=nbin))
    area = np.cumsum(np.bincount(k.ravel(), minlength=nbin)).astype(float)
    flux /= subsample * subsample
    area /= subsample * subsample
    radii = np.arange(nbin) * dr
    # Largest ellipse inside the stamp: the smallest radius among sub-pixels on the stamp border.
    border = np.concatenate([r[0], r[-1], r[:, 0], r[:, -1]])
    return GrowthCurve(radii, flux, area, float(border.min()))
