"""Can multi-threshold deblending split a segment? An exact, compiled pre-test (numba).

photutils' ``deblend_sources`` thresholds a segment at ``nlevels`` levels and splits it when, at
some level, two or more connected (8-connectivity) components of the pixels above the level each
hold at least ``npixels`` pixels (then applies the contrast criterion and a watershed). That costs
about 2 ms per segment, and for most targets it finds nothing to split: noise bumps on a galaxy
are local maxima but hold far fewer than ``npixels`` pixels above the saddle that joins them to the
galaxy. :func:`may_split` answers "could any level give two components of ``npixels``?" in tens of
microseconds, from the component tree of the segment (union-find over pixels in decreasing order,
the way a max-tree is built): two components seen separately at a level ``L`` are both present,
with at least their sizes at ``L``, just before the pixel that joins them is added. So a split at
any level requires a union of two components that each hold at least ``npixels`` pixels at that
moment. The test is necessary, not sufficient: when it says True, photutils decides (levels are
discrete, and the contrast criterion may still refuse); when it says False, photutils would not
have split the segment at any level, so skipping it leaves the segmentation unchanged.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["may_split"]


@numba.njit(cache=True, inline="always")
def _find(parent, p: int) -> int:
    root = p
    while parent[root] != root:
        root = parent[root]
    while parent[p] != root:  # path compression
        nxt = parent[p]
        parent[p] = root
        p = nxt
    return root


@numba.njit(cache=True)
def _may_split(data, where, npixels: int) -> bool:
    ny, nx = data.shape
    flat = data.ravel()
    idx = np.flatnonzero(where.ravel())
    if idx.size < 2 * npixels:
        return False
    order = np.argsort(-flat[idx], kind="mergesort")
    parent = np.full(ny * nx, -1, dtype=np.int64)  # -1: not added yet
    size = np.zeros(ny * nx, dtype=np.int64)
    for k in order:
        p = idx[k]
        parent[p] = p
        size[p] = 1
        y, x = p // nx, p % nx
        for dy in range(-1, 2):
            yy = y + dy
            if yy < 0 or yy >= ny:
                continue
            for dx in range(-1, 2):
                xx = x + dx
                if (dy == 0 and dx == 0) or xx < 0 or xx >= nx:
                    continue
                q = yy * nx + xx
                if parent[q] < 0:
                    continue
                rp, rq = _find(parent, p), _find(parent, q)
                if rp == rq:
                    continue
                # sizes here bound the parts' sizes at any level that separates them (they may
                # include the joining pixel: the test stays conservative)
                if min(size[rp], size[rq]) >= npixels:
                    return True
                if size[rp] < size[rq]:
                    rp, rq = rq, rp
                parent[rq] = rp
                size[rp] += size[rq]
    return False


def may_split(data: np.ndarray, where: np.ndarray, npixels: int) -> bool:
    """Whether multi-threshold deblending could split the segment ``where`` of ``data``.

    Parameters
    ----------
    data : 2-D ndarray
        The (smoothed) image the deblending thresholds.
    where : 2-D bool ndarray
        The segment's pixels.
    npixels : int
        Minimum number of connected pixels of a deblended component.

    Returns
    -------
    bool
        False only when no threshold yields two components of ``npixels`` pixels (8-connected).
    """
    return bool(
        _may_split(
            np.ascontiguousarray(data, dtype=np.float64),
            np.ascontiguousarray(where, dtype=np.bool_),
            int(npixels),
        )
    )
