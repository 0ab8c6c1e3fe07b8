"""Compiled inner loops of the asymmetry (numba).

The minimisation over the rotation centre evaluates ``sum |I - I_180|`` some 60 times per galaxy and
the background term rotates every sky cell at 9 sub-pixel shifts; as NumPy array expressions these
are dominated by per-call overhead (about 25 temporaries per evaluation). These kernels fuse the
interpolation, the aperture test and the sums into one pass over the aperture's pixels.

They use exactly the interpolation of :mod:`casnet.morphology.rotate` (cubic convolution, Keys
1981, a = -0.5, or bilinear; a counterpart whose stencil touches an invalid (NaN) pixel or leaves
the image is invalid), and tests compare them with it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "asymmetry_sums",
    "background_per_pixel",
    "block_valid",
    "cell_asymmetry",
    "fold",
    "minimise_centre",
]

_A = -0.5


@numba.njit(cache=True, inline="always")
def _weights(t: float, order: int):
    """Weights of the samples at offsets -1, 0, 1, 2 for a point at fraction ``t`` in [0, 1)."""
    if order == 1:
        return 0.0, 1.0 - t, t, 0.0
    x0, x1, x2, x3 = 1.0 + t, t, 1.0 - t, 2.0 - t
    w0 = _A * x0**3 - 5 * _A * x0**2 + 8 * _A * x0 - 4 * _A
    w1 = (_A + 2) * x1**3 - (_A + 3) * x1**2 + 1
    w2 = (_A + 2) * x2**3 - (_A + 3) * x2**2 + 1
    w3 = _A * x3**3 - 5 * _A * x3**2 + 8 * _A * x3 - 4 * _A
    return w0, w1, w2, w3


@numba.njit(cache=True, inline="always")
def _split(p2: float, order: int):
    """For counterparts at ``p2 - k`` (integer k): the integer base offset and the 4 weights.

    All pixels of an aperture share the fractional part of their counterpart's coordinate, so
    the weights are computed once per rotation centre, not per pixel.
    """
    base = math.floor(p2)
    t = p2 - base
    if t < 1e-12:
        t = 0.0
    elif t > 1 - 1e-12:
        base += 1
        t = 0.0
    return base, _weights(t, order)


@numba.njit(cache=True, inline="always")
def _sample(image, by: int, bx: int, wy, wx) -> float:
    """Sum of ``wy[a] wx[b] image[by - 1 + a, bx - 1 + b]``; NaN if a weighted pixel is invalid."""
    ny, nx = image.shape
    total = 0.0
    for a in range(4):
        if wy[a] == 0.0:
            continue
        j = by - 1 + a
        if j < 0 or j >= ny:
            return np.nan
        row = 0.0
        for b in range(4):
            if wx[b] == 0.0:
                continue
            i = bx - 1 + b
            if i < 0 or i >= nx:
                return np.nan
            v = image[j, i]
            if not math.isfinite(v):
                return np.nan
            row += wx[b] * v
        total += wy[a] * row
    return total


@numba.njit(cache=True)
def block_valid(image):
    """``ok[j, i]``: the 4x4 block ``image[j-1:j+3, i-1:i+3]`` lies inside and is all finite.

    Computed once per image so that a cubic sample at a non-integer position costs one lookup
    instead of 16 checks (the hot path of the asymmetry minimisation).
    """
    ny, nx = image.shape
    fin = np.empty((ny, nx), dtype=np.bool_)
    for j in range(ny):
        for i in range(nx):
            fin[j, i] = math.isfinite(image[j, i])
    rows = np.zeros((ny, nx), dtype=np.bool_)
    for j in range(1, ny - 2):
        for i in range(nx):
            rows[j, i] = fin[j - 1, i] and fin[j, i] and fin[j + 1, i] and fin[j + 2, i]
    ok = np.zeros((ny, nx), dtype=np.bool_)
    for j in range(ny):
        for i in range(1, nx - 2):
            ok[j, i] = rows[j, i - 1] and rows[j, i] and rows[j, i + 1] and rows[j, i + 2]
    return ok


@numba.njit(cache=True, inline="always")
def _sample_fast(image, ok, by: int, bx: int, wy, wx, generic: bool) -> float:
    """:func:`_sample` with the 4x4 validity looked up when every weight is nonzero."""
    if not generic:
        return _sample(image, by, bx, wy, wx)
    ny, nx = image.shape
    if by < 0 or by >= ny or bx < 0 or bx >= nx or not ok[by, bx]:
        return np.nan
    total = 0.0
    for a in range(4):
        r = image[by - 1 + a]
        total += wy[a] * (wx[0] * r[bx - 1] + wx[1] * r[bx] + wx[2] * r[bx + 1] + wx[3] * r[bx + 2])
    return total


@numba.njit(cache=True)
def asymmetry_sums(
    image, xc: float, yc: float, radius: float, q: float, pa: float, order: int, ok=None
):
    """``(sum |I - I_180|, sum |I|, N)`` over the valid pixels of the aperture.

    The aperture is the ellipse of semi-major axis ``radius``, axis ratio ``q`` and position
    angle ``pa`` centred on the rotation centre ``(xc, yc)``; a pixel counts when it and its
    rotated counterpart ``image(2 yc - y, 2 xc - x)`` are valid. ``ok`` is
    :func:`block_valid` of ``image`` (computed here when not given).
    """
    if ok is None:
        ok4 = block_valid(image)
    else:
        ok4 = ok
    ny, nx = image.shape
    c = math.cos(pa)
    s = math.sin(pa)
    r2 = radius * radius
    # Row by row, the aperture is the x-interval where the ellipse quadratic
    # a dx^2 + b dx + cc <= 0 (dx = x - xc): no per-pixel test, no pixel of the bounding box
    # outside the ellipse is visited (for q = 0.5 that is 60% of the box).
    inv_q2 = 1.0 / (q * q)
    qa = c * c + s * s * inv_q2
    qb_per_dy = 2.0 * c * s * (1.0 - inv_q2)
    qc_per_dy2 = s * s + c * c * inv_q2
    half_height = radius * math.sqrt(qa / (qa * qc_per_dy2 - 0.25 * qb_per_dy * qb_per_dy))
    j0 = max(0, math.ceil(yc - half_height))
    j1 = min(ny - 1, math.floor(yc + half_height))
    by0, wy = _split(2 * yc, order)
    bx0, wx = _split(2 * xc, order)
    generic = order == 3 and wy[0] != 0.0 and wx[0] != 0.0
    span = np.empty((max(j1 - j0 + 1, 0), 2), dtype=np.int64)  # each row's [i0, i1]
    imin, imax = nx, -1
    for j in range(j0, j1 + 1):
        dy = j - yc
        qb = qb_per_dy * dy
        disc = qb * qb - 4.0 * qa * (qc_per_dy2 * dy * dy - r2)
        if disc < 0.0:
            span[j - j0, 0], span[j - j0, 1] = 0, -1
            continue
        root = math.sqrt(disc)
        span[j - j0, 0] = max(0, math.ceil(xc + (-qb - root) / (2.0 * qa)))
        span[j - j0, 1] = min(nx - 1, math.floor(xc + (-qb + root) / (2.0 * qa)))
        imin, imax = min(imin, span[j - j0, 0]), max(imax, span[j - j0, 1])
    # Separable cubic sampling: all counterparts share the weights, so each image row is
    # filtered horizontally once per centre (4 products per entry) and a counterpart is a
    # vertical 4-tap sum of those (4 products) instead of a 4x4 stencil (16). The sums are
    # formed in the same order as _sample_fast's: the same numbers to the last bit.
    r0, c0 = max(0, by0 - j1 - 1), max(1, bx0 - imax)
    r1, c1 = min(ny - 1, by0 - j0 + 2), min(nx - 3, bx0 - imin)
    rows = _filter_rows(image, r0, r1 if generic else r0 - 1, c0, c1, wx)
    d_sum = 0.0
    s_sum = 0.0
    n = 0
    for j in range(j0, j1 + 1):
        for i in range(span[j - j0, 0], span[j - j0, 1] + 1):
            val = image[j, i]
            if not math.isfinite(val):
                continue
            by, bx = by0 - j, bx0 - i
            if not generic:
                rot = _sample(image, by, bx, wy, wx)
            elif by < 0 or by >= ny or bx < 0 or bx >= nx or not ok4[by, bx]:
                continue
            else:
                rot = 0.0
                for a in range(4):
                    rot += wy[a] * rows[by - 1 + a - r0, bx - c0]
            if not math.isfinite(rot):
                continue
            d_sum += abs(val - rot)
            s_sum += abs(val)
            n += 1
    return d_sum, s_sum, n


@numba.njit(cache=True, inline="always")
def _filter_rows(image, r0: int, r1: int, c0: int, c1: int, wx):
    """``out[r - r0, c - c0] = sum_b wx[b] image[r, c - 1 + b]`` for rows r0..r1, columns c0..c1
    (empty when the ranges are)."""
    out = np.empty((max(r1 - r0 + 1, 0), max(c1 - c0 + 1, 0)))
    for r in range(r0, r1 + 1):
        row = image[r]
        for c in range(c0, c1 + 1):
            out[r - r0, c - c0] = (
                wx[0] * row[c - 1] + wx[1] * row[c] + wx[2] * row[c + 1] + wx[3] * row[c + 2]
            )
    return out


@numba.njit(cache=True)
def cell_asymmetry(image, starts_y, starts_x, size: int, fy: float, fx: float, order: int, ok=None):
    """Mean ``|B - B_180|`` per pixel of each square cell, rotated about its centre + (fx, fy)/2.

    The counterpart of pixel ``x`` is ``2 c + f - x`` (``c`` the cell centre), i.e. the rotated
    cell is shifted by the fraction ``f``; counterparts may read the valid pixels around the cell.
    A cell with fewer than half its pixels paired gets NaN. ``ok``: :func:`block_valid`.
    """
    if ok is None:
        ok4 = block_valid(image)
    else:
        ok4 = ok
    out = np.empty(starts_y.size)
    fby, wy = _split(fy, order)
    fbx, wx = _split(fx, order)
    generic = order == 3 and wy[0] != 0.0 and wx[0] != 0.0
    for k in range(starts_y.size):
        y0 = starts_y[k]
        x0 = starts_x[k]
        by0 = 2 * y0 + (size - 1) + fby
        bx0 = 2 * x0 + (size - 1) + fbx
        total = 0.0
        n = 0
        for j in range(y0, y0 + size):
            for i in range(x0, x0 + size):
                val = image[j, i]
                if not math.isfinite(val):
                    continue
                rot = _sample_fast(image, ok4, by0 - j, bx0 - i, wy, wx, generic)
                if not math.isfinite(rot):
                    continue
                total += abs(val - rot)
                n += 1
        out[k] = total / n if 2 * n >= size * size else np.nan
    return out


@numba.njit(cache=True, inline="always")
def fold(shift: float) -> float:
    f = shift - math.floor(shift)
    return min(f, 1.0 - f)


@numba.njit(cache=True, inline="always")
def background_per_pixel(grid, step: float, shift_y: float, shift_x: float) -> float:
    """Bilinear interpolation of the sky cells' median noise term on the folded fraction grid
    (``SkyAsymmetry.per_pixel``; 0 when ``grid`` is empty, i.e. there is no cell)."""
    if grid.shape[0] == 0:
        return 0.0
    fy = fold(shift_y)
    fx = fold(shift_x)
    last = grid.shape[0] - 2
    iy = min(int(fy / step), last)
    ix = min(int(fx / step), last)
    ty = fy / step - iy
    tx = fx / step - ix
    return (1 - ty) * ((1 - tx) * grid[iy, ix] + tx * grid[iy, ix + 1]) + ty * (
        (1 - tx) * grid[iy + 1, ix] + tx * grid[iy + 1, ix + 1]
    )


@numba.njit(cache=True, inline="always")
def _corrected(image, ok, grid, setup, x, y):
    """The objective of the centre search: background-corrected A at rotation centre (x, y).

    ``setup`` is ``(x0, y0, shift_box, radius, q, pa, order, step, penalty)``.
    """
    x0, y0, shift_box, radius, q, pa, order, step, penalty = setup
    if abs(x - x0) > shift_box or abs(y - y0) > shift_box:
        return penalty
    d, s, n = asymmetry_sums(image, x, y, radius, q, pa, order, ok)
    if n == 0 or not s > 0:
        return penalty
    # the rotated image is shifted by 2c (mod 1): the fraction that sets the noise smoothing
    return (d - n * background_per_pixel(grid, step, 2 * y, 2 * x)) / s


@numba.njit(cache=True)
def minimise_centre(image, ok, grid, setup, simplex, xatol, fatol, maxiter):
    """Nelder-Mead over the rotation centre: ``(x, y, success, n_evaluations)``.

    A line-by-line port of SciPy's ``minimize(method="Nelder-Mead")`` (non-adaptive
    coefficients, ``initial_simplex``, ``xatol``, ``fatol``, ``maxiter``; SciPy 1.17) with the
    objective (:func:`_corrected`, arguments ``grid`` and ``setup``) compiled in: the same
    arithmetic in the same order, so the same centre (tests compare the two).
    Why: in Python, SciPy's bookkeeping cost ~30 us per evaluation against ~4 us for the
    objective itself.
    """
    sim = simplex.copy()
    fsim = np.empty(3)
    for k in range(3):
        fsim[k] = _corrected(image, ok, grid, setup, sim[k, 0], sim[k, 1])
    nfev = 3
    _sort_simplex(sim, fsim)
    iterations = 1
    while iterations < maxiter:
        dx = 0.0
        for j in range(1, 3):
            for i in range(2):
                dx = max(dx, abs(sim[j, i] - sim[0, i]))
        df = max(abs(fsim[0] - fsim[1]), abs(fsim[0] - fsim[2]))
        if dx <= xatol and df <= fatol:
            break
        # rho = 1, chi = 2, psi = 0.5, sigma = 0.5 (SciPy's non-adaptive coefficients)
        xb0 = (sim[0, 0] + sim[1, 0]) / 2
        xb1 = (sim[0, 1] + sim[1, 1]) / 2
        xr0 = 2 * xb0 - sim[2, 0]
        xr1 = 2 * xb1 - sim[2, 1]
        fxr = _corrected(image, ok, grid, setup, xr0, xr1)
        nfev += 1
        doshrink = False
        if fxr < fsim[0]:
            xe0 = 3 * xb0 - 2 * sim[2, 0]
            xe1 = 3 * xb1 - 2 * sim[2, 1]
            fxe = _corrected(image, ok, grid, setup, xe0, xe1)
            nfev += 1
            if fxe < fxr:
                sim[2, 0], sim[2, 1], fsim[2] = xe0, xe1, fxe
            else:
                sim[2, 0], sim[2, 1], fsim[2] = xr0, xr1, fxr
        elif fxr < fsim[1]:
            sim[2, 0], sim[2, 1], fsim[2] = xr0, xr1, fxr
        elif fxr < fsim[2]:
            xc0 = 1.5 * xb0 - 0.5 * sim[2, 0]
            xc1 = 1.5 * xb1 - 0.5 * sim[2, 1]
            fxc = _corrected(image, ok, grid, setup, xc0, xc1)
            nfev += 1
            if fxc <= fxr:
                sim[2, 0], sim[2, 1], fsim[2] = xc0, xc1, fxc
            else:
                doshrink = True
        else:
            xcc0 = 0.5 * xb0 + 0.5 * sim[2, 0]
            xcc1 = 0.5 * xb1 + 0.5 * sim[2, 1]
            fxcc = _corrected(image, ok, grid, setup, xcc0, xcc1)
            nfev += 1
            if fxcc < fsim[2]:
                sim[2, 0], sim[2, 1], fsim[2] = xcc0, xcc1, fxcc
            else:
                doshrink = True
        if doshrink:
            for j in range(1, 3):
                sim[j, 0] = sim[0, 0] + 0.5 * (sim[j, 0] - sim[0, 0])
                sim[j, 1] = sim[0, 1] + 0.5 * (sim[j, 1] - sim[0, 1])
                fsim[j] = _corrected(image, ok, grid, setup, sim[j, 0], sim[j, 1])
                nfev += 1
        iterations += 1
        _sort_simplex(sim, fsim)
    return sim[0, 0], sim[0, 1], iterations < maxiter, nfev


@numba.njit(cache=True, inline="always")
def _sort_simplex(sim, fsim) -> None:
    """Stable sort of the 3 vertices by value: ties (two penalised vertices) keep their order.

    SciPy sorts with ``np.argsort``, whose tie order is not specified (x86 SIMD sorts); on the
    machines tested it keeps ties in order too (a test covers tied penalties).
    """
    for k in range(1, 3):
        j = k
        while j > 0 and fsim[j] < fsim[j - 1]:
            fsim[j], fsim[j - 1] = fsim[j - 1], fsim[j]
            for i in range(2):
                sim[j, i], sim[j - 1, i] = sim[j - 1, i], sim[j, i]
            j -= 1
