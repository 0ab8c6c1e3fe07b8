"""Source detection and what belongs to the target (Tohill et al. 2021 Sec. 2.3, 3.1).

Sources are detected with photutils on a Gaussian-smoothed, sky-subtracted image. The target is
the *whole galaxy* at (or nearest to) the stamp centre: its knots, spiral arms, tidal features and
detached clumps included. A multi-threshold deblender (photutils at contrast 0.001) cuts a galaxy
into the pieces around each local maximum -- right for a catalogue of a field, wrong for the light
of one galaxy (MORFOMETRYKA and statmorph never shred their target) -- so the
pieces are only candidates, grouped again by :func:`group_sources`:

1. every deblended piece of the target's detection segment, and every other detection segment, is
   grown down to a low "join" level by a watershed of the smoothed image (a detached clump joins
   its galaxy there, as it would at a lower detection threshold);
2. neighbouring regions are merged from the highest saddle down (a dendrogram of the image);
3. when two regions meet at saddle level s, the one away from the centre stays a *distinct
   source* only if its own light above s -- sum(max(I - s, 0)), its prominence flux -- is at least
   ``source_contrast`` (default 3%) of the target detection segment's light; otherwise it is part
   of whatever it joins;
4. a distinct source is still part of the target when the valley between them is shallow (the
   saddle at least ``OVERLAP_SADDLE`` = 0.3 of the fainter peak): one body, a merging companion
   or a giant clump, whose light is the merger's asymmetry. Until 2026-12-01 distinct sources
   were always cut away: on the simulator's resolved clumps and overlapping companions that
   flagged ~30% of clumpy galaxies and mergers BLENDED with no neighbour in the stamp, and the
   mergers' measured A was 0.12 against a truth of 0.32.

Why the prominence flux: a knot or an arm sits on its galaxy's disk, so its pixel values are high
but its light above the saddle it shares with the disk is its own light only (1-3% of the galaxy
for the simulator's knots); a neighbour, even one that touches, rises from a saddle near the noise
and carries all its light above it. photutils' contrast counts the pedestal too, which is why it
splits arms and knots. Measured on 600 default simulated stamps against the simulator's own
attribution of light (``SimulatedGalaxy.scene`` vs ``truth``): at 3%, 1 of 219 pieces whose light
is the target's is cut off (a 13-pixel knot), and the neighbour pieces left with the target carry
mostly < 1% of the light (the exception: companions of mergers that overlap the target body,
which are part of the merging system by this criterion).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from photutils.segmentation import deblend_sources, detect_sources
from photutils.utils import NoDetectionsWarning
from scipy import ndimage
from skimage.segmentation import watershed

from casnet.morphology._components import may_split
from casnet.morphology.settings import JOIN_FRACTION, OVERLAP_SADDLE, SOURCE_CONTRAST

__all__ = [
    "JOIN_FRACTION",
    "OVERLAP_SADDLE",
    "SOURCE_CONTRAST",
    "Segmentation",
    "group_sources",
    "segment",
    "select_target",
    "smooth",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: two segments whose centres' distances to the stamp centre differ by less than this (px) are
#: equally close
_TIE_PX = 2.0
#: a detached region too faint to be a distinct source is the target's when its peak lies within
#: this many (elliptical, light-weighted) half-light radii of the target: ~1.5 Petrosian radii of
#: an exponential disk (R_p = 2.16 r_half at eta = 0.2), the paper's measurement aperture
EXTENT_RHALF = 3.0


@dataclass(frozen=True)
class Segmentation:
    """Segmentation of a stamp.

    Attributes
    ----------
    labels : 2-D int ndarray
        0 for background, a positive label per source.
    target : int
        Label of the target (0 when nothing was detected).
    ambiguous : bool
        Another segment is as close to the centre as the target.
    footprints : 2-D int ndarray, optional
        The same labels grown down to the join level (:data:`JOIN_FRACTION` of the threshold) by
        the watershed of :func:`group_sources`: where each source's faint outskirts lie (cleaning
        protects the target's and replaces the neighbours' down to it). None without grouping.
    """

    labels: np.ndarray
    target: int
    ambiguous: bool
    footprints: np.ndarray | None = None

    @property
    def target_mask(self) -> np.ndarray:
        """True on the target's pixels."""
        return self.labels == self.target

    @property
    def others_mask(self) -> np.ndarray:
        """True on the pixels of every segment but the target."""
        return (self.labels > 0) & (self.labels != self.target)


def select_target(
    labels: np.ndarray,
    centre: tuple[float, float] | None = None,
    *,
    max_distance: float | None = None,
) -> tuple[int, bool]:
    """Label of the segment at, or nearest to, ``centre``.

    Parameters
    ----------
    labels : 2-D int ndarray
        Segmentation image.
    centre : (x, y), optional
        Default: the geometric centre of the stamp.
    max_distance : float, optional
        When no segment covers ``centre``, the nearest one is rejected if its centre (mean pixel
        position) is farther than this (px): the stamp of an undetected galaxy must not be
        measured on a neighbour.

    Returns
    -------
    (label, ambiguous)
        ``label`` is 0 when there is no (close enough) segment. ``ambiguous`` is True when the
        centre pixel lies on no segment and another segment's centre is within 2 px as close to
        ``centre`` as the chosen one's.
    """
    ny, nx = labels.shape
    xc, yc = centre if centre is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    iy, ix = round(yc), round(xc)
    yy, xx = np.nonzero(labels)
    if yy.size == 0:
        return 0, False
    lab = labels[yy, xx]
    if 0 <= iy < ny and 0 <= ix < nx and labels[iy, ix] > 0:
        return int(labels[iy, ix]), False
    d2 = (xx - xc) ** 2 + (yy - yc) ** 2
    n = int(lab.max()) + 1
    best = np.full(n, np.inf)
    np.minimum.at(best, lab, d2)
    order = np.argsort(best)
    first = int(order[0])
    if max_distance is not None:
        # Accept by the segment's centre, not its nearest pixel: a bright neighbour's wide
        # segment can reach close to the stamp centre when the target itself is undetected.
        members = lab == first
        cx, cy = xx[members].mean(), yy[members].mean()
        if (cx - xc) ** 2 + (cy - yc) ** 2 > max_distance**2:
            return 0, False
    # Ambiguous when another segment's centre is about as close to the stamp centre as the
    # target's: centres (mean pixel positions) are stable against noise, segment edges are not.
    counts = np.bincount(lab, minlength=n)
    mx = np.bincount(lab, weights=xx, minlength=n) / np.maximum(counts, 1)
    my = np.bincount(lab, weights=yy, minlength=n) / np.maximum(counts, 1)
    dist = np.where(counts > 0, np.hypot(mx - xc, my - yc), np.inf)
    others = np.delete(dist, first)
    ambiguous = bool(others.size and np.min(others) - dist[first] < _TIE_PX)
    return first, ambiguous


def smooth(image: np.ndarray, fwhm: float) -> np.ndarray:
    """The detection image: ``image`` convolved with a Gaussian of ``fwhm`` px (0: unchanged)."""
    if fwhm <= 0:
        return image
    return ndimage.gaussian_filter(image, fwhm * _FWHM_TO_SIGMA, mode="nearest")


def _saddles(data: np.ndarray, regions: np.ndarray) -> dict[tuple[int, int], float]:
    """Highest level at which each pair of touching regions meet: max over 8-adjacent pixel pairs
    (one in each region) of the lower of the two values."""
    out: dict[tuple[int, int], float] = {}
    ny, nx = regions.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = regions[: ny - dy, max(dx, 0) : nx + min(dx, 0)]
        b = regions[dy:, max(-dx, 0) : nx - max(dx, 0)]
        va = data[: ny - dy, max(dx, 0) : nx + min(dx, 0)]
        vb = data[dy:, max(-dx, 0) : nx - max(dx, 0)]
        touch = (a != b) & (a > 0) & (b > 0)
        if not touch.any():
            continue
        lo = np.minimum(a[touch], b[touch])
        hi = np.maximum(a[touch], b[touch])
        level = np.minimum(va[touch], vb[touch])
        for i, j, v in zip(lo.tolist(), hi.tolist(), level.tolist(), strict=True):
            if v > out.get((i, j), -np.inf):
                out[(i, j)] = v
    return out


def group_sources(
    data: np.ndarray,
    pieces: np.ndarray,
    target: int,
    *,
    join_level: float,
    source_contrast: float = SOURCE_CONTRAST,
    overlap_saddle: float = OVERLAP_SADDLE,
    reference_flux: float | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Group candidate pieces into sources: the target (the whole galaxy) and distinct neighbours.

    Parameters
    ----------
    data : 2-D ndarray
        The smoothed, sky-subtracted image the pieces were detected on.
    pieces : 2-D int ndarray
        Candidate pieces (deblended pieces and detection segments), 0 for background.
    target : int
        Label of the piece at the centre.
    join_level : float
        Level down to which the pieces are grown by a watershed of ``data`` before they are
        compared (a detached clump joins its galaxy there).
    source_contrast : float
        A region joining another at saddle level s is a distinct source when sum(max(I - s, 0))
        over it is at least this fraction of ``reference_flux``.
    overlap_saddle : float
        A distinct source joining the target at a saddle of at least this fraction of the
        fainter peak is the target's (one body); above 1 never.
    reference_flux : float, optional
        Default: the light (positive ``data``) of the target's connected component in ``pieces``.
    mask : 2-D bool ndarray, optional
        Pixels the watershed must not enter.

    Returns
    -------
    (labels, footprints)
        ``labels``: ``pieces`` relabelled so that every piece of the target carries ``target``'s
        label and each other source keeps the label of one of its pieces; ``footprints``: the same
        labels on the watershed regions (down to ``join_level``).
    """
    if target == 0 or not np.any(pieces == target):
        raise ValueError(f"target label {target!r} is not in the pieces")
    grow = data > join_level
    if mask is not None:
        grow &= ~mask
    grow |= pieces > 0
    basins = watershed(-data, markers=pieces, mask=grow, connectivity=2)
    if reference_flux is None:
        parents, _ = ndimage.label(pieces > 0, structure=np.ones((3, 3), dtype=bool))
        parent = parents == parents[pieces == target][0]
        reference_flux = float(np.clip(data[parent], 0.0, None).sum())
    floor = source_contrast * reference_flux
    n = int(basins.max()) + 1
    root = np.arange(n)

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = int(root[i])
        return i

    members: dict[int, np.ndarray] = {}
    flat = basins.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(n + 1))
    values = data.ravel()
    for lab in range(1, n):
        members[lab] = values[order[bounds[lab] : bounds[lab + 1]]]

    def prominence(lab: int, level: float) -> float:
        v = members[lab]
        return float(np.sum(v[v > level] - level))

    # Kruskal from the highest saddle down: the dendrogram of the image, cut where two distinct
    # sources meet. The target's own prominence never matters: it is the galaxy at the centre.
    for (i, j), level in sorted(_saddles(data, basins).items(), key=lambda kv: -kv[1]):
        a, b = find(i), find(j)
        if a == b:
            continue
        ta, tb = a == find(target), b == find(target)
        if ta or tb:
            other = b if ta else a
            # a distinct source that stands on the galaxy's body, not on the sky, is part of it
            # ... and so is a distinct source joined by a shallow valley: one body, whose light
            # never falls towards the sky between the two peaks (a merger, a giant clump)
            merge = prominence(other, level) < floor or level >= overlap_saddle * min(
                members[other].max(), members[find(target)].max()
            )
        else:
            merge = min(prominence(a, level), prominence(b, level)) < floor
        if merge:
            keep, drop = (a, b) if (ta or (not tb and a < b)) else (b, a)
            root[drop] = keep
            members[keep] = np.concatenate([members[keep], members.pop(drop)])
    group = np.array([find(i) for i in range(n)])
    group[0] = 0
    # A small region that never joined anything (a detached knot, not a distinct source) is the
    # target's when it lies inside the target's aperture: EXTENT_RHALF half-light radii.
    alone = [lab for lab in set(group[1:].tolist()) - {target}
             if prominence(lab, join_level) < floor]  # fmt: skip
    if alone:
        inside = _inside_extent(data, basins, group == target, group, alone, EXTENT_RHALF)
        group[np.isin(group, inside)] = target
    return group[pieces], group[basins]


def _inside_extent(
    data: np.ndarray,
    basins: np.ndarray,
    is_target: np.ndarray,
    group: np.ndarray,
    labels: list,
    rhalf: float,
) -> list[int]:
    """Which of the regions ``labels`` peak inside ``rhalf`` (light-weighted, elliptical)
    half-light radii of the target."""
    if not labels:
        return []
    region = is_target[basins]
    weights = np.where(region, np.clip(data, 0.0, None), 0.0)
    total = weights.sum()
    if not total > 0:
        return []
    yy, xx = np.indices(data.shape)
    x0, y0 = (weights * xx).sum() / total, (weights * yy).sum() / total
    dx, dy = xx - x0, yy - y0
    mxx, myy, mxy = ((weights * v).sum() / total for v in (dx * dx, dy * dy, dx * dy))
    # elliptical radius from the second moments (q = b / a, the major axis along the eigenvector)
    evals, evecs = np.linalg.eigh(np.array([[mxx, mxy], [mxy, myy]]))
    q = float(np.sqrt(max(evals[0], 1e-12) / max(evals[1], 1e-12)))
    u = dx * evecs[0, 1] + dy * evecs[1, 1]
    v = dx * evecs[0, 0] + dy * evecs[1, 0]
    radius = np.hypot(u, v / q)
    order = np.argsort(radius[region])
    cum = np.cumsum(weights[region][order])
    r_half = float(radius[region][order][np.searchsorted(cum, 0.5 * cum[-1])])
    limit = rhalf * max(r_half, 1.0)
    out = []
    for lab in labels:
        members = group[basins] == lab
        peak = np.argmax(np.where(members, data, -np.inf))
        if radius.ravel()[peak] <= limit:
            out.append(lab)
    return out


def segment(
    image: np.ndarray,
    *,
    threshold: float,
    npixels: int,
    smooth_fwhm: float = 2.0,
    mask: np.ndarray | None = None,
    deblend: bool = True,
    nlevels: int = 32,
    contrast: float = 0.001,
    max_distance: float | None = None,
    source_contrast: float = SOURCE_CONTRAST,
    join_fraction: float = JOIN_FRACTION,
    overlap_saddle: float = OVERLAP_SADDLE,
) -> Segmentation:
    """Detect sources and pick the target.

    Parameters
    ----------
    image : 2-D ndarray
        Sky-subtracted stamp; masked pixels may hold anything.
    threshold : float
        Detection threshold on the smoothed image (same units as ``image``).
    npixels : int
        Minimum number of connected pixels of a source.
    smooth_fwhm : float
        FWHM (px) of the Gaussian smoothing; 0 disables it.
    mask : 2-D bool ndarray, optional
        Pixels to ignore (bad pixels).
    deblend : bool
        Find the distinct sources in the target's segment (photutils multi-thresholding for the
        candidate pieces, then :func:`group_sources`) so that a touching neighbour becomes its own
        segment and is masked while the galaxy's own knots and arms stay in the target; detached
        segments that join the target at the join level and are not distinct sources become part
        of it too. False: the detection segments as they are.
    nlevels, contrast : int, float
        photutils deblending parameters of the candidate pieces.
    max_distance : float, optional
        Largest distance (px) of the target from the stamp centre (see :func:`select_target`).
    source_contrast, join_fraction, overlap_saddle : float
        :func:`group_sources`' contrast, its join level as a fraction of ``threshold``, and its
        shallow-valley rule.

    Returns
    -------
    Segmentation
        With ``target == 0`` when nothing was detected.
    """
    data = smooth(np.where(mask, 0.0, image) if mask is not None else image, smooth_fwhm)
    empty = Segmentation(np.zeros(image.shape, dtype=np.int32), 0, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(data, threshold, npixels, mask=mask)
    if segm is None:
        return empty
    target, ambiguous = select_target(segm.data, max_distance=max_distance)
    if target == 0:
        return Segmentation(np.asarray(segm.data, dtype=np.int32), 0, False)
    if not deblend:
        return Segmentation(np.asarray(segm.data, dtype=np.int32), target, ambiguous)
    parent = segm.data == target
    reference = float(np.clip(data[parent], 0.0, None).sum())
    # deblending costs ~2 ms and most targets have nothing it could split: an exact pre-test
    # (casnet.morphology._components) skips it only where photutils would not split at any level
    if may_split(data, parent, npixels):
        with warnings.catch_warnings():
            # photutils warns when a segment cannot be split further: that is a normal outcome.
            warnings.simplefilter("ignore")
            deblended = deblend_sources(
                data,
                segm,
                npixels,
                labels=[target],
                n_levels=nlevels,
                contrast=contrast,
                progress_bar=False,
            )
        split_target, _ = select_target(deblended.data, max_distance=max_distance)
        # the pieces of a target that covers no centre pixel can all lie farther than
        # max_distance while their parent's mean position did not: the parent stays the target
        # (the science run of 2026-12-07 crashed on one such galaxy, tests/data/README.md)
        if split_target != 0:
            segm, target = deblended, split_target
    labels, footprints = group_sources(
        data,
        np.asarray(segm.data, dtype=np.int32),
        target,
        join_level=join_fraction * threshold,
        source_contrast=source_contrast,
        overlap_saddle=overlap_saddle,
        reference_flux=reference,
        mask=mask,
    )
    target, ambiguous = select_target(labels, max_distance=max_distance)
    return Segmentation(labels.astype(np.int32), target, ambiguous, footprints.astype(np.int32))
