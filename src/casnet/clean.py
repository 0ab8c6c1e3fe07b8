"""Neighbour removal before measurement: the galclean algorithm (Ferreira & Ferrari 2018).

Tohill et al. (2021, Sec. 3.1) clean every stamp with galclean before it is measured or shown to a
network: a neighbour left in the stamp would enter the curve of growth and, above all, the
asymmetry, and a CNN would learn to react to shapes that are not the galaxy's. galclean

1. measures the sky with the sources masked,
2. segments the stamp at ``median + k sigma`` of that sky (k = 4),
3. keeps the segment at the centre, grown by a margin that protects its faint outskirts,
4. grows every other segment by a margin that catches the outskirts of the neighbours, and
5. replaces those pixels with sky.

The original tool (github.com/astroferreira/galclean) filled the regions with the sky median, which
leaves flat patches whose outlines are themselves shapes; here each replaced pixel is a value drawn
at random, with replacement, from the actual sky pixels of the same stamp, so the patch carries the
stamp's own one-point noise distribution (including any non-Gaussian tail) and no outline. The draws
come from a generator seeded per galaxy (:func:`galaxy_rng`): cleaning is reproducible, byte for
byte, from ``(CleanConfig.seed, galaxy_id)``.

Detection, deblending and the choice of the target reuse :func:`casnet.morphology.segmentation
.segment`, and the sky statistics :mod:`casnet.morphology.sky`, so that cleaning and measurement
agree on what a source is. Bad data never raise: they give a :class:`CleanResult` whose ``flag`` and
``flag_reasons`` say what happened (:class:`CleanFlag`).

Limitation: the drawn values are independent, so where the real noise is correlated (drizzled HST
mosaics) the replaced patches have white noise of the right amplitude but not the correlation.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from casnet.config import CleanConfig
from casnet.errors import CasnetInputError
from casnet.morphology.flags import FlagCollector
from casnet.morphology.segmentation import segment
from casnet.morphology.sky import Sky, rough_sky, sky_background

__all__ = ["CleanFlag", "CleanResult", "galaxy_rng", "galclean"]

#: Threshold (in sky sigma) of the pass that only masks sources for the sky statistics: galclean's
#: ``measure_background`` detects at median + 2 sigma, low enough to catch the outskirts.
_MASK_NSIGMA = 2.0
#: Fewer sky pixels than this: the masked sky statistics fall back to the robust unmasked estimate,
#: and the replacement values are drawn from a Gaussian of the sky mean and sigma (flag NO_SKY)
#: instead of from the sky pixels (too few values to stand for the noise distribution).
_MIN_SKY_PIXELS = 100
#: random placements tried for a sky region to copy into a region to replace
_OFFSET_TRIES = 64
#: Sigma clipping of the sky statistics (the same as the measurement's defaults).
_CLIP_SIGMA = 3.0
_CLIP_ITERS = 5
#: Domain-separation prefix of the per-galaxy seed hash (changing it changes every cleaned image).
_RNG_DOMAIN = b"casnet.clean.galaxy_rng/v1"


class CleanFlag(enum.IntFlag):
    """Bitmask of cleaning problems (stable numbers: they are stored in catalogues)."""

    NONE = 0
    #: no segment at, or within ``target_dilate`` px of, the centre: nothing protected, every
    #: detected source is treated as a neighbour
    CENTRE_IS_SKY = 1
    #: light of another source is left in the stamp: the target's detection segment holds more than
    #: one deblended source, or another segment reaches into the protected zone of the target
    BLENDED = 2
    #: too few sky pixels: replacements drawn from a Gaussian of the sky mean and sigma
    NO_SKY = 4
    #: NaN/inf pixels were present; they were replaced by sky draws too (even inside the target)
    INVALID_PIXELS = 8
    #: nothing could be cleaned (no valid pixel, constant image): the image is returned as is
    FAILED = 16


@dataclass(frozen=True)
class CleanResult:
    """A cleaned stamp and what was done to it.

    Attributes
    ----------
    image : 2-D float32 ndarray
        The cleaned stamp, same shape as the input.
    replaced_fraction : float
        Fraction of the stamp's pixels that were replaced by sky draws (neighbours and their
        margins, plus NaN/inf pixels).
    flag : int
        :class:`CleanFlag` bits.
    flag_reasons : str
        ``'; '``-joined ``'NAME: reason'`` (empty when clean), as
        :class:`casnet.morphology.flags.FlagCollector`.
    sky_mean, sky_sigma : float
        Sigma-clipped sky level and per-pixel noise with the sources masked (NaN when undefined).
    """

    image: np.ndarray
    replaced_fraction: float
    flag: int
    flag_reasons: str
    sky_mean: float
    sky_sigma: float


def galaxy_rng(seed: int, galaxy_id: str) -> np.random.Generator:
    """Independent, stable random stream of one galaxy.

    The stream must not depend on the order in which galaxies are processed (parallel workers,
    resumed runs) nor on the process: Python's ``hash()`` of a string is salted per process, so the
    seed is derived with SHA-256 instead. Exactly: the 32-byte digest of
    ``b"casnet.clean.galaxy_rng/v1" + b"\\x00" + str(seed).encode() + b"\\x00" +
    galaxy_id.encode("utf-8")``, read as a little-endian integer, is the entropy of a NumPy
    ``SeedSequence`` that seeds ``np.random.default_rng`` (PCG64).

    Parameters
    ----------
    seed : int
        Master seed (``CleanConfig.seed``), >= 0.
    galaxy_id : str
        The galaxy's catalogue id (pass ``str(i)`` for a numeric id).

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CasnetInputError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(galaxy_id, str):
        raise CasnetInputError(
            f"galaxy_id must be a str (use str(id) for a number), got {type(galaxy_id).__name__}"
        )
    key = b"\x00".join((_RNG_DOMAIN, str(int(seed)).encode(), galaxy_id.encode("utf-8")))
    entropy = int.from_bytes(hashlib.sha256(key).digest(), "little")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` dilated by a disk of ``radius`` px (Euclidean, like galclean's circular kernel)."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _check_input(
    image: object, config: object, rng: object
) -> tuple[np.ndarray, CleanConfig, np.random.Generator]:
    if config is None:
        config = CleanConfig()
    elif not isinstance(config, CleanConfig):
        raise CasnetInputError(f"config must be a CleanConfig, got {type(config).__name__}")
    if rng is None:
        rng = np.random.default_rng(config.seed)
    elif not isinstance(rng, np.random.Generator):
        raise CasnetInputError(
            f"rng must be a numpy.random.Generator (see galaxy_rng), got {type(rng).__name__}"
        )
    arr = np.asarray(image)
    if arr.ndim != 2 or arr.size == 0:
        raise CasnetInputError(f"image must be a non-empty 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise CasnetInputError(f"image must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64), config, rng


def _sky(arr: np.ndarray, invalid: np.ndarray, cfg: CleanConfig) -> Sky:
    """Sky statistics with the sources masked (galclean's ``measure_background``).

    A robust median/MAD estimate sets a low (2 sigma) detection threshold; the detected sources,
    grown by ``other_dilate``, are masked and the sigma-clipped statistics of what is left are the
    sky. Without the mask a galaxy that fills the stamp inflates sigma, hence the threshold, and
    faint neighbours would survive. Falls back to the unmasked estimate when too little is left.
    """
    sky = rough_sky(arr, mask=invalid)
    if not sky.sigma > 0:
        # MAD is 0 when more than half the pixels share one value; the clipped std may not be.
        sky = sky_background(arr, mask=invalid, clip_sigma=_CLIP_SIGMA, maxiters=_CLIP_ITERS)
    if not sky.sigma > 0:
        return sky
    first = segment(
        arr - sky.mean,
        threshold=_MASK_NSIGMA * sky.sigma,
        npixels=cfg.npixels,
        smooth_fwhm=cfg.smooth_fwhm,
        mask=invalid,
        deblend=False,
    )
    sources = _grow(first.labels > 0, cfg.other_dilate)
    masked = sky_background(
        arr, mask=invalid | sources, clip_sigma=_CLIP_SIGMA, maxiters=_CLIP_ITERS
    )
    if masked.n_pixels >= _MIN_SKY_PIXELS and masked.sigma > 0:
        return masked
    return sky


def _result(
    image: np.ndarray, n_replaced: int, flags: FlagCollector, sky: Sky | None = None
) -> CleanResult:
    return CleanResult(
        image=image,
        replaced_fraction=n_replaced / image.size,
        flag=int(flags.flag),
        flag_reasons=flags.reasons,
        sky_mean=float("nan") if sky is None else sky.mean,
        sky_sigma=float("nan") if sky is None else sky.sigma,
    )


def galclean(
    image: np.ndarray,
    *,
    config: CleanConfig | None = None,
    rng: np.random.Generator | None = None,
) -> CleanResult:
    """Replace every source but the central galaxy with sky (galclean, Ferreira & Ferrari 2018).

    Parameters
    ----------
    image : 2-D array-like
        The stamp, target near its centre, in any linear unit, sky not subtracted (the returned
        image keeps the sky level). NaN/inf pixels are allowed (flagged and replaced).
    config : CleanConfig, optional
        ``k_sigma``, ``npixels``, ``smooth_fwhm``, ``target_dilate``, ``other_dilate``; default:
        galclean's values. ``config.seed`` is used only when ``rng`` is not given.
    rng : numpy.random.Generator, optional
        Source of the replacement draws; pass ``galaxy_rng(config.seed, galaxy_id)`` so that every
        galaxy is cleaned reproducibly whatever the processing order. Default:
        ``np.random.default_rng(config.seed)`` (deterministic, but the same stream for all stamps).

    Returns
    -------
    CleanResult
        Never raises for bad data. Same image and same generator state give identical bytes.

    Notes
    -----
    Steps (the numbers are ``config`` fields):

    1. Sky mean and sigma with sources masked (a 2-sigma detection pass, grown by
       ``other_dilate``), sigma-clipped.
    2. :func:`~casnet.morphology.segmentation.segment` on the sky-subtracted stamp at
       ``k_sigma`` sigma (the sigma-clipped mean stands for galclean's median: they agree on sky
       noise) with ``npixels`` and ``smooth_fwhm``; the target's segment is deblended.
    3. The protected zone is the target's whole *detection* segment (all its deblended pieces: a
       piece may be a knot or spiral arm of the galaxy, and cutting it out would bias the asymmetry
       low) grown by a disk of ``target_dilate`` px. If the centre pixel is farther than
       ``target_dilate`` px from every segment, nothing is protected (``CENTRE_IS_SKY``).
    4. Every other segment is grown by a disk of ``other_dilate`` px; its pixels outside the
       protected zone, and every NaN/inf pixel, are replaced.
    5. Each connected region to replace is filled with the values of a randomly placed sky
       region of the same shape (finite pixels outside every grown segment and outside the
       protected zone): sky values, as in galclean, that also keep the pixel-to-pixel noise
       correlation of drizzled images. Where no such placement is found after a few tries, the
       region gets independent draws from the sky pool; with fewer than 100 pool pixels, draws
       from a Gaussian of the sky mean and sigma (``NO_SKY``).

    ``BLENDED`` is raised when light of another source is knowingly left in the stamp: the
    target's detection segment was split by deblending (a touching neighbour, or a clumpy galaxy:
    the two cannot be told apart here), or pixels of another segment lie in the protected zone.
    Finite pixels of the protected zone are never modified. An all-NaN or constant image is
    returned as is (as float32) with ``FAILED``; with nothing detected only NaN/inf pixels are
    replaced.
    """
    arr, cfg, rng = _check_input(image, config, rng)
    flags = FlagCollector(CleanFlag.NONE, fatal=CleanFlag.FAILED)
    out = arr.astype(np.float32)
    invalid = ~np.isfinite(arr)
    n_invalid = int(np.count_nonzero(invalid))
    if n_invalid:
        flags.add(CleanFlag.INVALID_PIXELS, f"{n_invalid} NaN/inf pixels")
    if n_invalid == arr.size:
        flags.add(CleanFlag.FAILED, "no finite pixel: image returned as is")
        return _result(out, 0, flags)
    arr[invalid] = 0.0  # placeholders: every step masks them

    # 1. Sky with the sources masked.
    sky = _sky(arr, invalid, cfg)
    if not sky.sigma > 0:
        flags.add(CleanFlag.FAILED, "sky sigma is zero or undefined (constant image?)")
        return _result(out, 0, flags, sky)

    # 2. Segmentation at k sigma, target at the centre.
    seg = segment(
        arr - sky.mean,
        threshold=cfg.k_sigma * sky.sigma,
        npixels=cfg.npixels,
        smooth_fwhm=cfg.smooth_fwhm,
        mask=invalid,
        deblend=True,
    )
    labels = seg.labels
    detected = labels > 0

    # 3. Protected zone: the target's detection segment, i.e. the connected component (photutils'
    # 8-connectivity; deblended pieces tile their parent exactly) holding the target.
    protected = np.zeros(arr.shape, dtype=bool)
    target = protected  # the target's detection segment (empty when nothing is protected)
    if seg.target == 0:
        flags.add(CleanFlag.CENTRE_IS_SKY, f"nothing detected above {cfg.k_sigma:g} sigma")
    else:
        parents, _ = ndimage.label(detected, structure=np.ones((3, 3), dtype=bool))
        parent = parents == parents[labels == seg.target][0]
        ny, nx = arr.shape
        yy, xx = np.nonzero(parent)
        dist = float(np.sqrt(np.min((yy - (ny - 1) / 2.0) ** 2 + (xx - (nx - 1) / 2.0) ** 2)))
        if dist > cfg.target_dilate:
            flags.add(
                CleanFlag.CENTRE_IS_SKY,
                f"nearest source {dist:.1f} px from the centre (> target_dilate="
                f"{cfg.target_dilate}): all sources removed",
            )
        else:
            target = parent
            protected = _grow(parent, cfg.target_dilate)
            n_pieces = np.unique(labels[parent]).size
            if n_pieces > 1:
                flags.add(
                    CleanFlag.BLENDED,
                    f"the target's segment deblends into {n_pieces} sources (all kept)",
                )
            intruding = int(np.count_nonzero(protected & detected & ~parent))
            if intruding:
                flags.add(
                    CleanFlag.BLENDED,
                    f"{intruding} pixels of other sources lie within target_dilate="
                    f"{cfg.target_dilate} px of the target (kept)",
                )

    # 4. Pixels to replace: other sources grown, outside the protected zone; NaN/inf anywhere.
    others = _grow(detected & ~target, cfg.other_dilate)
    replace = (others & ~protected) | invalid
    n_replace = int(np.count_nonzero(replace))
    if n_replace == 0:
        return _result(out, 0, flags, sky)

    # 5. Sky values: each region to replace is copied from a randomly placed sky region of the
    # same shape (drizzled mosaics have correlated noise: independent draws would leave patches
    # of a different texture, a shape a network could pick up); where none fits, independent
    # draws from the sky pool (finite, outside every grown segment and the protected zone).
    sky_mask = ~(others | protected | invalid)
    pool = arr[sky_mask]
    if pool.size < _MIN_SKY_PIXELS:
        flags.add(
            CleanFlag.NO_SKY,
            f"{pool.size} sky pixels (< {_MIN_SKY_PIXELS}): Gaussian draws of the sky mean, sigma",
        )
        out[replace] = rng.normal(sky.mean, sky.sigma, size=n_replace).astype(np.float32)
        return _result(out, n_replace, flags, sky)
    regions, n_regions = ndimage.label(replace, structure=np.ones((3, 3), dtype=bool))
    for label in range(1, n_regions + 1):
        yy, xx = np.nonzero(regions == label)
        shift = _sky_offset(sky_mask, yy, xx, rng)
        if shift is not None:
            out[yy, xx] = arr[yy + shift[0], xx + shift[1]].astype(np.float32)
        else:
            out[yy, xx] = pool[rng.integers(0, pool.size, size=yy.size)].astype(np.float32)
    return _result(out, n_replace, flags, sky)


def _sky_offset(
    sky_mask: np.ndarray, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator
) -> tuple[int, int] | None:
    """A random shift moving every pixel (yy, xx) onto sky, or None after ``_OFFSET_TRIES``."""
    ny, nx = sky_mask.shape
    lo_y, hi_y = -int(yy.min()), ny - 1 - int(yy.max())
    lo_x, hi_x = -int(xx.min()), nx - 1 - int(xx.max())
    for _ in range(_OFFSET_TRIES):
        dy = int(rng.integers(lo_y, hi_y + 1))
        dx = int(rng.integers(lo_x, hi_x + 1))
        if (dy or dx) and sky_mask[yy + dy, xx + dx].all():
            return dy, dx
    return None
