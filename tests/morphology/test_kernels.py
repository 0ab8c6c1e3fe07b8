"""The compiled kernels agree with the array-level reference implementation (rotate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.morphology._kernels import asymmetry_sums, block_valid, cell_asymmetry
from casnet.morphology.growth import growth_curve
from casnet.morphology.rotate import rotate180
from casnet.morphology.shape import elliptical_radius


def _reference_sums(image, centre, radius, q, pa, order):
    """sum |I - I_180|, sum |I|, N with NumPy and rotate180 (independent code path)."""
    rot = rotate180(image, centre, order=order)
    yy, xx = np.indices(image.shape)
    inside = elliptical_radius(xx - centre[0], yy - centre[1], q, pa) <= radius
    diff = np.abs(image - rot)
    use = inside & np.isfinite(diff)
    return diff[use].sum(), np.abs(image[use]).sum(), int(use.sum())


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize(
    "centre", [(30.0, 31.0), (30.37, 29.81), (30.5, 30.0), (12.2, 40.9)], ids=str
)
def test_asymmetry_sums_match_numpy_reference(order, centre):
    rng = np.random.default_rng(7)
    image = rng.normal(size=(60, 64))
    image[20:24, 35:37] = np.nan  # a masked patch: pixels and counterparts touching it drop out
    got = asymmetry_sums(image, centre[0], centre[1], 14.0, 0.6, 0.7, order)
    want = _reference_sums(image, centre, 14.0, 0.6, 0.7, order)
    assert got[2] == want[2]
    # float sums in a different order: 1e-12 relative is rounding, not a difference in method
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-12)


def test_block_valid_marks_every_4x4_block_touching_nan():
    image = np.ones((12, 12))
    image[5, 6] = np.nan
    ok = block_valid(image)
    for j in range(12):
        for i in range(12):
            inside = 1 <= j <= 12 - 3 and 1 <= i <= 12 - 3
            clean = inside and np.isfinite(image[j - 1 : j + 3, i - 1 : i + 3]).all()
            assert ok[j, i] == clean, (j, i)


def test_cell_asymmetry_matches_rotating_the_cell():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(40, 40))
    size, fy, fx = 10, 0.25, 0.375
    got = cell_asymmetry(
        image, np.array([10, 20]), np.array([15, 5]), size, fy, fx, 3, block_valid(image)
    )
    for k, (y0, x0) in enumerate([(10, 15), (20, 5)]):
        centre = (x0 + (size - 1) / 2 + fx / 2, y0 + (size - 1) / 2 + fy / 2)
        rot = rotate180(image, centre, order=3)
        cell = (slice(y0, y0 + size), slice(x0, x0 + size))
        assert got[k] == pytest.approx(np.abs(image[cell] - rot[cell]).mean(), rel=1e-12)


def test_growth_curve_of_uniform_image_is_the_ellipse_area():
    # a flat image: enclosed light == enclosed area == pi q r^2 while the ellipse is inside
    image = np.ones((81, 81))
    curve = growth_curve(image, x0=40.2, y0=39.7, q=0.5, pa=0.4, subsample=8)
    r = np.array([3.0, 10.0, 20.0])
    assert curve.r_inside > 20.0
    # sub-pixel sampling at 1/8 px: the boundary error is a fraction of a pixel per unit length
    np.testing.assert_allclose(curve.flux_at(r), np.pi * 0.5 * r**2, rtol=0.01)
    np.testing.assert_allclose(curve.area_at(r), curve.flux_at(r), rtol=1e-12)
    assert curve.flux[-1] == pytest.approx(image.sum())


def _reference_grid(values, fy, fx, step):
    """Bilinear interpolation on the fraction grid, written out in Python."""
    iy = min(int(fy / step), values.shape[0] - 2)
    ix = min(int(fx / step), values.shape[1] - 2)
    ty, tx = fy / step - iy, fx / step - ix
    top = (1 - tx) * values[iy, ix] + tx * values[iy, ix + 1]
    bottom = (1 - tx) * values[iy + 1, ix] + tx * values[iy + 1, ix + 1]
    return (1 - ty) * top + ty * bottom


def _fold_reference(shift):
    f = shift % 1.0
    return min(f, 1.0 - f)


@pytest.mark.parametrize("case", range(9))
def test_compiled_nelder_mead_follows_scipy_step_by_step(case):
    """minimise_centre ends at SciPy's centre after as many evaluations (same algorithm)."""
    from scipy.optimize import minimize

    from casnet.morphology._kernels import minimise_centre

    rng = np.random.default_rng(case)
    yy, xx = np.indices((61, 61))
    x0, y0 = 30.0 + rng.uniform(-1, 1), 30.0 + rng.uniform(-1, 1)
    image = 20 * np.exp(-((xx - x0 - 0.3) ** 2 + (yy - y0) ** 2 / 0.6) / 30.0)
    image += 5 * np.exp(-((xx - x0 - 6) ** 2 + (yy - y0 - 2) ** 2) / 4.0)  # a clump
    image += rng.normal(scale=0.3, size=image.shape)
    image[5:9, 40:45] = np.nan
    radius, q, pa, order = 14.0, 0.7, 0.4, 3
    grid = np.abs(rng.normal(0.3, 0.05, size=(3, 3))) if case % 2 else np.empty((0, 0))
    # case 3: the box (penalty) binds; case 8: both first moves leave it (tied penalties)
    shift_box = {3: 0.6, 8: 0.3}.get(case, 7.0)
    maxiter = 6 if case == 5 else 400  # case 5: stops before converging
    ok = block_valid(image)

    def objective(c):
        if abs(c[0] - x0) > shift_box or abs(c[1] - y0) > shift_box:
            return 1e3
        d, s, n = asymmetry_sums(image, c[0], c[1], radius, q, pa, order, ok)
        b = (
            _reference_grid(grid, _fold_reference(2 * c[1]), _fold_reference(2 * c[0]), 0.25)
            if grid.size
            else 0.0
        )
        return (d - n * b) / s if n and s > 0 else 1e3

    start = np.array([x0, y0])
    simplex = np.array([start, start + [0.5, 0.0], start + [0.0, 0.5]])
    want = minimize(
        objective,
        start,
        method="Nelder-Mead",
        options={"xatol": 0.01, "fatol": 1e-4, "initial_simplex": simplex, "maxiter": maxiter},
    )
    setup = (x0, y0, shift_box, radius, q, pa, order, 0.25, 1e3)
    x, y, success, nfev = minimise_centre(image, ok, grid, setup, simplex, 0.01, 1e-4, maxiter)
    assert nfev == want.nfev
    assert success == want.success
    # the same operations in the same order: equal up to the last bits
    np.testing.assert_allclose([x, y], want.x, rtol=0, atol=1e-12)
