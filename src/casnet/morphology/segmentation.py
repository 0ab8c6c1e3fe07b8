"""Source detection and choice of the target (Tohill et al. 2021 Sec. 2.3, 3.1).

Sources are detected with photutils on a Gaussian-smoothed, sky-subtracted image; the segment of
the target is deblended; the target is the segment at (or nearest to) the stamp centre, and every
other segment is masked for the measurement.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from photutils.segmentation import deblend_sources, detect_sources
from photutils.utils import NoDetectionsWarning
from scipy import ndimage

from casnet.morphology._components import may_split

__all__ = ["Segmentation", "segment", "select_target"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: two segments whose centres' distances to the stamp centre differ by less than this (px) are
#: equally close
_TIE_PX = 2.0


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
    """

    labels: np.ndarray
    target: int
    ambiguous: bool

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
        Deblend the target's segment (photutils multi-thresholding) so that a touching neighbour
        becomes its own segment and is masked.
    nlevels, contrast : int, float
        photutils deblending parameters.
    max_distance : float, optional
        Largest distance (px) of the target from the stamp centre (see :func:`select_target`).

    Returns
    -------
    Segmentation
        With ``target == 0`` when nothing was detected.
    """
    data = np.where(mask, 0.0, image) if mask is not None else image
    if smooth_fwhm > 0:
        data = ndimage.gaussian_filter(data, smooth_fwhm * _FWHM_TO_SIGMA, mode="nearest")
    empty = Segmentation(np.zeros(image.shape, dtype=np.int32), 0, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(data, threshold, npixels, mask=mask)
    if segm is None:
        return empty
    target, ambiguous = select_target(segm.data, max_distance=max_distance)
    if target == 0:
        return Segmentation(np.asarray(segm.data, dtype=np.int32), 0, False)
    # deblending costs ~2 ms and most targets have nothing it could split: an exact pre-test
    # (casnet.morphology._components) skips it only where photutils would not split at any level
    if deblend and may_split(data, segm.data == target, npixels):
        with warnings.catch_warnings():
            # photutils warns when a segment cannot be split further: that is a normal outcome.
            warnings.simplefilter("ignore")
            segm = deblend_sources(
                data,
                segm,
                npixels,
                labels=[target],
                n_levels=nlevels,
                contrast=contrast,
                progress_bar=False,
            )
        target, ambiguous = select_target(segm.data, max_distance=max_distance)
    return Segmentation(np.asarray(segm.data, dtype=np.int32), target, ambiguous)
