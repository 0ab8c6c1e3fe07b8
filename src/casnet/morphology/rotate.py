"""Sub-pixel translation and 180-degree rotation of images and stacks of cells.

The rotation of Eq. 2 (Tohill et al. 2021) about a sub-pixel centre is a flip plus a sub-pixel
shift. One interpolator serves both the galaxy and the sky cells of the background term, so that
the noise it smooths is the same on both sides of the subtraction; it is separable and works on the
last two axes of a stack, so all sky cells are rotated in one call. ``order=3`` is cubic
convolution (Keys 1981, a = -0.5; interpolating, exact for quadratics), ``order=1`` bilinear.
Invalid pixels are NaN and make every output pixel whose stencil touches them NaN.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Rotator", "rotate180", "shift"]

_KEYS_A = -0.5


def _keys_weights(t: float) -> tuple[float, float, float, float]:
    """Weights of samples at offsets -1, 0, 1, 2 for a point at fractional offset ``t``."""
    a = _KEYS_A

    def near(x: float) -> float:  # |x| <= 1
        return (a + 2) * x**3 - (a + 3) * x**2 + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a

    return far(1 + t), near(t), near(1 - t), far(2 - t)


def _taps(d: float, order: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Integer offsets and weights such that ``out[j] = sum_k w_k a[j + tap_k]`` = ``a(j - d)``."""
    base = math.floor(-d)
    t = -d - base
    if t < 1e-12 or t > 1 - 1e-12:
        return (round(-d),), (1.0,)
    if order == 1:
        return (base, base + 1), (1 - t, t)
    return (base - 1, base, base + 1, base + 2), _keys_weights(t)


def shift(a: np.ndarray, dy: float, dx: float, *, order: int = 3) -> np.ndarray:
    """Translate the last two axes: ``out[..., j, i] = a(j - dy, i - dx)``.

    Parameters
    ----------
    a : ndarray, at least 2-D
        Float image or stack of images; NaN marks invalid pixels.
    dy, dx : float
        Shift in pixels.
    order : {1, 3}
        Bilinear or cubic convolution.

    Returns
    -------
    ndarray
        Same shape; NaN where the stencil left the array or touched NaN.
    """
    reach = math.ceil(max(abs(dy), abs(dx))) + 2
    return _Shifter(a, order=order, reach=reach)(dy, dx)


class _Shifter:
    """Shifts of one array by many amounts, sharing one NaN-padded copy."""

    def __init__(self, a: np.ndarray, *, order: int, reach: int) -> None:
        if order not in (1, 3):
            raise ValueError(f"order must be 1 or 3, got {order!r}")
        a = np.asarray(a, dtype=float)
        self.order = order
        self.ny, self.nx = a.shape[-2:]
        self.pad = p = reach
        self.padded = np.full((*a.shape[:-2], self.ny + 2 * p, self.nx + 2 * p), np.nan)
        self.padded[..., p : p + self.ny, p : p + self.nx] = a

    def __call__(self, dy: float, dx: float) -> np.ndarray:
        ty, wy = _taps(dy, self.order)
        tx, wx = _taps(dx, self.order)
        p, ny, nx = self.pad, self.ny, self.nx
        if max(abs(ty[0]), abs(ty[-1]), abs(tx[0]), abs(tx[-1])) > p:
            return shift(self.padded[..., p : p + ny, p : p + nx], dy, dx, order=self.order)
        rows = sum(w * self.padded[..., p + t : p + t + ny, :] for t, w in zip(ty, wy, strict=True))
        return sum(w * rows[..., p + t : p + t + nx] for t, w in zip(tx, wx, strict=True))


class Rotator:
    """180-degree rotations of one image (or stack) about many centres.

    ``Rotator(a)((x, y))`` equals ``a(2 y - j, 2 x - i)`` at pixel ``(j, i)``: a flip followed by a
    sub-pixel shift. The flipped, NaN-padded copy is made once, so the minimisation over the
    rotation centre (~60 calls per galaxy) costs only the interpolation.

    Parameters
    ----------
    a : ndarray, at least 2-D
        Image or stack of images (rotated over the last two axes); NaN marks invalid pixels.
    order : {1, 3}
        Bilinear or cubic convolution.
    reach : int
        How far (px) the counterpart may move from the flip about the array centre before a
        slower re-padding path is taken.
    """

    def __init__(self, a: np.ndarray, *, order: int = 3, reach: int = 4) -> None:
        a = np.asarray(a, dtype=float)
        self.ny, self.nx = a.shape[-2:]
        self._shifter = _Shifter(a[..., ::-1, ::-1], order=order, reach=reach + 2)

    def __call__(self, centre: tuple[float, float]) -> np.ndarray:
        xc, yc = centre
        return self._shifter(2 * yc - (self.ny - 1), 2 * xc - (self.nx - 1))


def rotate180(a: np.ndarray, centre: tuple[float, float], *, order: int = 3) -> np.ndarray:
    """Rotate the last two axes by 180 degrees about ``centre = (x, y)``.

    ``out[..., y, x] = a(2 y_c - y, 2 x_c - x)``, i.e. a flip followed by a sub-pixel shift.
    """
    ny, nx = np.shape(a)[-2:]
    reach = math.ceil(max(abs(2 * centre[1] - (ny - 1)), abs(2 * centre[0] - (nx - 1))))
    return Rotator(a, order=order, reach=reach)(centre)
