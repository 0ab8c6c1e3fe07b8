"""Neighbour removal before measurement: the galclean algorithm (Ferreira & Ferrari 2018).

Tohill et al. (2021, Sec. 3.1) clean every stamp with galclean before it is measured or shown to a
network: a neighbour left in the stamp would enter the curve of growth and, above all, the
asymmetry, and a CNN would learn to react to shapes that are not the galaxy's. galclean

1. measures the sky with the sources masked,
2. segments the stamp at ``median + k sigma`` of that sky (k = 4),
3. keeps the whole galaxy at the centre (its knots, arms and detached clumps, as the measurement
   groups them), grown by a margin that protects its faint outskirts: the target's light is never
   replaced,
4. grows every other source, ring by ring, while its light around it is still detectable (so no
   ring of its outskirts is left), and
5. replaces those pixels with sky.

The original tool (github.com/astroferreira/galclean) filled the regions with the sky median, which
leaves flat patches whose outlines are themselves shapes. Here each region is copied from a
randomly placed sky region of the same shape in the same stamp, so the patch carries the stamp's
own noise, its pixel-to-pixel correlation included (drizzled mosaics); only where no sky region
fits are values drawn independently from the stamp's sky pixels. The draws come from a generator
seeded per galaxy (:func:`galaxy_rng`): cleaning is reproducible, byte for byte, from
``(CleanConfig.seed, galaxy_id)``. The replaced pixels are returned (``CleanResult.replaced``) so
that the measurement can leave them out.

Detection, deblending and the choice of the target reuse :func:`casnet.morphology.segmentation
.segment`, and the two-pass sky :mod:`casnet.morphology.sky`, so that cleaning and measurement
agree on what a source is. Bad data never raise: they give a :class:`CleanResult` whose ``flag`` and
``flag_reasons`` say what happened (:class:`casnet.core.flags.CleanFlag`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from casnet.core.errors import CasnetInputError
from casnet.core.flags import CleanFlag, FlagCollector
from casnet.data.settings import CleanConfig
from casnet.morphology.segmentation import segment, smooth
from casnet.morphology.sky import Sky, first_guess_sky, masked_sky

__all__ = ["CleanFlag", "CleanResult", "clean_stamp", "galaxy_rng", "galclean", "stamp_rng"]

#: Threshold (in sky sigma) of the pass that only masks sources for the sky statistics: galclean's
#: ``measure_background`` detects at median + 2 sigma, low enough to catch the outskirts.
_MASK_NSIGMA = 2.0
#: Fewer sky pixels than this: the replacement values are drawn from a Gaussian of the sky mean and
#: sigma (flag NO_SKY) instead of from the sky pixels (too few values to stand for the noise
#: distribution). The sky statistics themselves need sky.MIN_SKY_PIXELS.
_MIN_POOL_PIXELS = 100
#: random placements tried for a sky region to copy into a region to replace
_OFFSET_TRIES = 64
#: a neighbour's replaced region grows, 1 px at a time, until the mean of the smoothed light in
#: the next ring falls below this many sky sigma (what is left around it is then invisible: the
#: issue's test is a ring mean within 0.5 sigma of the sky) ...
_RING_NSIGMA = 0.15
#: ... or by this many px at most (the wings of the brightest stars in a CANDELS stamp)
_MAX_GROW = 20
#: Sigma clipping of the sky statistics (the same as the measurement's defaults).
_CLIP_SIGMA = 3.0
_CLIP_ITERS = 5
#: Domain-separation prefix of the per-galaxy seed hash (changing it changes every cleaned image).
#: a fixed string, not the module path: moving the module must not change the draws (stores
#: cleaned before the move are reproduced byte for byte)
_RNG_DOMAIN = b"casnet.clean.galaxy_rng/v1"


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
        :class:`casnet.core.flags.FlagCollector`.
    sky_mean, sky_sigma : float
        Sigma-clipped sky level and per-pixel noise with the sources masked (NaN when undefined).
    replaced : 2-D bool ndarray
        The pixels that were replaced (for :func:`casnet.morphology.measure`'s ``replaced``: the
        measurement leaves them out, as it does masked neighbours).
    """

    image: np.ndarray
    replaced_fraction: float
    flag: int
    flag_reasons: str
    sky_mean: float
    sky_sigma: float
    replaced: np.ndarray


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


def stamp_rng(seed: int, image: np.ndarray) -> np.random.Generator:
    """The random stream of a stamp that has no galaxy id: derived (SHA-256) from ``seed`` and
    the stamp's pixels (float32, C order), so the same stamp is always cleaned the same way."""
    pixels = np.ascontiguousarray(np.asarray(image, dtype=np.float32)).tobytes()
    key = b"\x00".join((_RNG_DOMAIN, b"stamp", str(int(seed)).encode(), pixels))
    entropy = int.from_bytes(hashlib.sha256(key).digest(), "little")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def clean_stamp(
    image: np.ndarray, config: CleanConfig, galaxy_id: str | None = None
) -> CleanResult:
    """galclean one stamp exactly as the pipeline's clean stage does: the same settings and, for a
    galaxy with an id, the same random stream (:func:`galaxy_rng`); a stamp without an id gets a
    stream derived from its pixels (:func:`stamp_rng`). The one function the clean stage and the
    served model share (issue 17: no train/serve skew)."""
    rng = (
        galaxy_rng(config.seed, galaxy_id)
        if galaxy_id is not None
        else stamp_rng(config.seed, image)
    )
    return galclean(image, config=config, rng=rng)


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` dilated by a disk of ``radius`` px (Euclidean, like galclean's circular kernel)."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _grow_with_flux(
    region: np.ndarray, smoothed: np.ndarray, sigma: float, cfg: CleanConfig, allowed: np.ndarray
) -> np.ndarray:
    """``region`` grown by at least ``other_dilate`` px and on, ring by ring, while the mean of
    ``smoothed`` (sky-subtracted) in the next ring is at least ``_RING_NSIGMA`` sigma: a bright
    neighbour's wings reach farther than a faint one's (galclean's fixed margin left 11-15% of a
    neighbour's light as a ring at 1.5-1.9 sigma per pixel). Rings are measured where
    ``allowed`` (outside the target's protected zone)."""
    if not region.any():
        return region
    dist = ndimage.distance_transform_edt(~region)
    reach = cfg.other_dilate
    for k in range(cfg.other_dilate + 1, _MAX_GROW + 1):
        ring = (dist > k - 1) & (dist <= k) & allowed
        if not ring.any() or smoothed[ring].mean() < _RING_NSIGMA * sigma:
            break
        reach = k
    return dist <= reach


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
    sky = first_guess_sky(arr, mask=invalid, clip_sigma=_CLIP_SIGMA, maxiters=_CLIP_ITERS)
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
    return masked_sky(arr, sky, mask=invalid | sources, clip_sigma=_CLIP_SIGMA,
                      maxiters=_CLIP_ITERS)  # fmt: skip


def _result(
    image: np.ndarray,
    replaced: np.ndarray | None,
    flags: FlagCollector,
    sky: Sky | None = None,
) -> CleanResult:
    gone = np.zeros(image.shape, dtype=bool) if replaced is None else replaced
    return CleanResult(
        image=image,
        replaced_fraction=int(np.count_nonzero(gone)) / image.size,
        flag=int(flags.flag),
        flag_reasons=flags.reasons,
        sky_mean=float("nan") if sky is None else sky.mean,
        sky_sigma=float("nan") if sky is None else sky.sigma,
        replaced=gone,
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
       noise) with ``npixels`` and ``smooth_fwhm``; the target is the whole galaxy at the centre
       (its knots, arms and detached clumps grouped with it by
       :func:`~casnet.morphology.segmentation.group_sources`, ``source_contrast``), every distinct
       source a neighbour with a footprint down to ``join_fraction`` of the threshold.
    3. The protected zone is the target's footprint, grown by a disk of ``target_dilate`` px
       except over the cores (pixels above ``k_sigma``) of other sources. If the centre pixel is
       farther than ``target_dilate`` px from it, nothing is protected (``CENTRE_IS_SKY``).
    4. Each neighbour's footprint is grown by ``other_dilate`` px and on, ring by ring, while the
       mean smoothed light of the next ring is >= 0.15 sigma (at most 20 px): no ring of its light
       is left. Its pixels outside the protected zone, and every NaN/inf pixel, are replaced.
    5. Each connected region to replace is filled with the values of a randomly placed sky
       region of the same shape (finite pixels outside every grown source and outside the
       protected zone): sky values, as in galclean, that also keep the pixel-to-pixel noise
       correlation of drizzled images. Where no such placement is found after a few tries, the
       region gets independent draws from the sky pool; with fewer than 100 pool pixels, draws
       from a Gaussian of the sky mean and sigma (``NO_SKY``).

    ``BLENDED`` is raised when light of another source is knowingly left in the stamp: a
    neighbour's footprint touches the protected zone (they meet above the join level), so its
    wings on the target's side of the valley stay, and the galaxy's light under the neighbour's
    core goes with it.
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
        return _result(out, None, flags)
    arr[invalid] = 0.0  # placeholders: every step masks them

    # 1. Sky with the sources masked.
    sky = _sky(arr, invalid, cfg)
    if not sky.sigma > 0:
        flags.add(CleanFlag.FAILED, "sky sigma is zero or undefined (constant image?)")
        return _result(out, None, flags, sky)

    # 2. Segmentation at k sigma; the target is the whole galaxy at the centre (its knots, arms
    # and detached clumps grouped with it: segmentation.group_sources), each distinct source a
    # neighbour with its footprint down to the join level.
    threshold = cfg.k_sigma * sky.sigma
    seg = segment(
        arr - sky.mean,
        threshold=threshold,
        npixels=cfg.npixels,
        smooth_fwhm=cfg.smooth_fwhm,
        mask=invalid,
        deblend=True,
        source_contrast=cfg.source_contrast,
        overlap_saddle=cfg.overlap_saddle,
        join_fraction=cfg.join_fraction,
    )
    labels = seg.labels
    footprints = seg.footprints if seg.footprints is not None else labels

    # 3. Protected zone: the target's footprint grown by target_dilate.
    protected = np.zeros(arr.shape, dtype=bool)
    target_label = 0
    if seg.target == 0:
        flags.add(CleanFlag.CENTRE_IS_SKY, f"nothing detected above {cfg.k_sigma:g} sigma")
    else:
        body = footprints == seg.target
        ny, nx = arr.shape
        yy, xx = np.nonzero(body)
        dist = float(np.sqrt(np.min((yy - (ny - 1) / 2.0) ** 2 + (xx - (nx - 1) / 2.0) ** 2)))
        if dist > cfg.target_dilate:
            flags.add(
                CleanFlag.CENTRE_IS_SKY,
                f"nearest source {dist:.1f} px from the centre (> target_dilate="
                f"{cfg.target_dilate}): all sources removed",
            )
        else:
            target_label = seg.target
            # the margin protects the target's faint outskirts below the join level, not
            # another source's core: a touching neighbour's pixels above k sigma are replaced
            # even inside the margin (leaving them would leave a cut-off fragment of it, a
            # shape); the valley between the two is the target's
            cores = (labels > 0) & (labels != seg.target) & ~body
            protected = body | (_grow(body, cfg.target_dilate) & ~cores)

    # 4. Pixels to replace: each neighbour's footprint, grown until the light around it is gone
    # (no ring), outside the protected zone; NaN/inf anywhere.
    smoothed = smooth(np.where(invalid, 0.0, arr - sky.mean), cfg.smooth_fwhm)
    sources = footprints > 0
    replace = invalid.copy()
    for lab in np.unique(labels[(labels > 0) & (labels != target_label)]).tolist():
        own = footprints == lab
        region = _grow_with_flux(own, smoothed, sky.sigma, cfg, ~protected)
        replace |= region & ~protected
        if target_label and np.any(_grow(own, 1) & protected):
            flags.add(
                CleanFlag.BLENDED,
                f"a neighbour touches the target above {cfg.join_fraction * cfg.k_sigma:g} "
                "sigma: its wings on the target's side of the saddle are left in the stamp",
            )
        sources |= region
    n_replace = int(np.count_nonzero(replace))
    if n_replace == 0:
        return _result(out, None, flags, sky)

    # 5. Sky values: each region to replace is copied from a randomly placed sky region of the
    # same shape (drizzled mosaics have correlated noise: independent draws would leave patches
    # of a different texture, a shape a network could pick up); where none fits, independent
    # draws from the sky pool (finite, outside every grown segment and the protected zone).
    sky_mask = ~(sources | protected | invalid)
    pool = arr[sky_mask]
    if pool.size < _MIN_POOL_PIXELS:
        flags.add(
            CleanFlag.NO_SKY,
            f"{pool.size} sky pixels (< {_MIN_POOL_PIXELS}): Gaussian draws of the sky mean, sigma",
        )
        out[replace] = rng.normal(sky.mean, sky.sigma, size=n_replace).astype(np.float32)
        return _result(out, replace, flags, sky)
    regions, n_regions = ndimage.label(replace, structure=np.ones((3, 3), dtype=bool))
    for label in range(1, n_regions + 1):
        yy, xx = np.nonzero(regions == label)
        shift = _sky_offset(sky_mask, yy, xx, rng)
        if shift is not None:
            out[yy, xx] = arr[yy + shift[0], xx + shift[1]].astype(np.float32)
        else:
            out[yy, xx] = pool[rng.integers(0, pool.size, size=yy.size)].astype(np.float32)
    return _result(out, replace, flags, sky)


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
