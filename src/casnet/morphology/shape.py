"""Centroid, axis ratio and position angle from second moments; elliptical radii."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Shape", "elliptical_radius", "second_moments"]

#: flattest axis ratio allowed: thinner ellipses make the apertures degenerate on a pixel grid
_Q_MIN = 0.05


@dataclass(frozen=True)
class Shape:
    """Light-weighted shape of a source.

    Attributes
    ----------
    x, y : float
        Centroid (pixel coordinates, origin at the centre of pixel [0, 0]).
    q : float
        Axis ratio b/a in (0, 1].
    pa : float
        Position angle of the major axis in radians, counter-clockwise from +x, in [0, pi).
    """

    x: float
    y: float
    q: float
    pa: float


def second_moments(image: np.ndarray, where: np.ndarray) -> Shape | None:
    """Flux-weighted centroid and second moments of ``image`` over ``where``.

    Only positive pixels weigh (noise below the sky would make the moment matrix indefinite).

    Returns
    -------
    Shape or None
        None when the positive flux over ``where`` is zero.
    """
    yy, xx = np.nonzero(where)
    w = image[yy, xx]
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    total = w.sum()
    if not total > 0:
        return None
    x = float(np.dot(w, xx) / total)
    y = float(np.dot(w, yy) / total)
    dx, dy = xx - x, yy - y
    mxx = np.dot(w, dx * dx) / total
    myy = np.dot(w, dy * dy) / total
    mxy = np.dot(w, dx * dy) / total
    # Eigenvalues of the moment matrix: the squared rms lengths along the major/minor axes.
    half_trace = 0.5 * (mxx + myy)
    root = np.sqrt(max(0.25 * (mxx - myy) ** 2 + mxy**2, 0.0))
    lam1, lam2 = half_trace + root, max(half_trace - root, 0.0)
    q = float(np.sqrt(lam2 / lam1)) if lam1 > 0 else 1.0
    pa = float(0.5 * np.arctan2(2.0 * mxy, mxx - myy)) % np.pi
    return Shape(x, y, max(q, _Q_MIN), pa)


def elliptical_radius(
    dx: np.ndarray | float, dy: np.ndarray | float, q: float, pa: float
) -> np.ndarray:
    """Semi-major-axis coordinate of offsets ``(dx, dy)`` for ellipses of axis ratio ``q``.

    A point with radius ``a`` lies on the ellipse of semi-major axis ``a``, semi-minor ``q a``,
    major axis at angle ``pa``; the ellipse encloses the area ``pi q a**2``.
    """
    c, s = np.cos(pa), np.sin(pa)
    u = dx * c + dy * s
    v = (-dx * s + dy * c) / q
    return np.sqrt(u * u + v * v)
