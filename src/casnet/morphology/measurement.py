"""The conventional CAS measurement of one stamp: the role MORFOMETRYKA plays in the paper.

:func:`measure` chains the small concepts of this package (Tohill et al. 2021 Sec. 2.2-2.3):
sky -> segmentation -> shape -> curve of growth -> Petrosian radius -> concentration ->
asymmetry (with its sky-cell background term) -> SNR_p -> errors, and a last check that the values
are a galaxy's (:mod:`.plausibility`). It never raises for a bad galaxy: every problem becomes a
bit of ``flag`` and a sentence of ``flag_reasons``.

Why ~540 lines: this is the orchestration of the steps (each step's algorithm lives in its own
module), with the result type, the flags raised between steps and the idealised truth; kept in
one function so that the order of the steps reads like the paper's Sec. 2.2-2.3.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from scipy import ndimage

from casnet.core.flags import Flag, FlagCollector
from casnet.morphology.asymmetry import (
    asymmetry,
    signal_pixels,
    sky_cell_asymmetry,
    smooth_signal,
)
from casnet.morphology.concentration import concentration, light_radii
from casnet.morphology.extent import sky_pixels_needed
from casnet.morphology.growth import fill_masked, growth_curve
from casnet.morphology.petrosian import petrosian_radius
from casnet.morphology.plausibility import unphysical
from casnet.morphology.rotate import rotate180
from casnet.morphology.segmentation import Segmentation, segment, smooth
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.shape import elliptical_radius, second_moments
from casnet.morphology.sky import (
    Sky,
    first_guess_sky,
    masked_sky,
    sky_background,
)
from casnet.morphology.snr import snr_petrosian
from casnet.morphology.uncertainty import (
    NoiseCorrelation,
    asymmetry_error,
    concentration_error,
    noise_correlation,
)

__all__ = ["COLUMNS", "Measurement", "detect_target", "measure", "measure_truth"]

_NAN = float("nan")


@dataclass(frozen=True)
class Measurement:
    """Conventional non-parametric structure of one galaxy.

    Radii are semi-major axes in pixels; angles in radians counter-clockwise from +x; positions in
    pixel coordinates with the origin at the centre of pixel [0, 0] (x along columns). Values are
    NaN when a fatal flag is set (see :mod:`casnet.core.flags`); with UNPHYSICAL they are kept but
    are not a galaxy's (:mod:`casnet.morphology.plausibility`).
    """

    concentration: float  #: C = 5 log10(r80 / r20) inside aperture_rp x R_p
    asymmetry: float  #: A = sum|I - I180| / sum|I|, minimised over the centre, minus the sky term
    concentration_err: float  #: error of C (the noise and the sky, calibrated by simulation)
    asymmetry_err: float  #: error of A
    r20: float  #: semi-major axis (px) enclosing 20% of the light
    r80: float  #: semi-major axis (px) enclosing 80% of the light
    r_petro: float  #: Petrosian radius (px; eta = morphology.eta)
    q: float  #: axis ratio b/a of the target's second moments
    pa: float  #: position angle (rad, counter-clockwise from +x)
    x_centre: float  #: rotation centre of the asymmetry (px)
    y_centre: float  #: rotation centre of the asymmetry (px)
    x_centroid: float  #: light-weighted centroid (px)
    y_centroid: float  #: light-weighted centroid (px)
    asymmetry_raw: float  #: A before the background term
    asymmetry_bkg: float  #: the background term subtracted from A
    flux: float  #: light inside aperture_rp x R_p
    snr_p: float  #: Petrosian S/N (Tohill et al. 2021 Eq. 3)
    sky_mean: float  #: background level per pixel
    sky_sigma: float  #: background noise per pixel
    n_sky_cells: int  #: sky cells used for the asymmetry background term
    flag: int  #: bitmask of casnet.core.flags.Flag (the flags reference)
    flag_reasons: str  #: readable reasons, '; '-separated

    @property
    def ok(self) -> bool:
        """True when no flag at all is set."""
        return self.flag == 0

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain dict (one catalogue row)."""
        return asdict(self)


#: Catalogue columns, in order.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Measurement))


def _failed(flags: FlagCollector, sky: Sky | None = None, **known: float) -> Measurement:
    values: dict[str, float | int | str] = dict.fromkeys(COLUMNS, _NAN)
    values.update(n_sky_cells=0, flag=int(flags.flag), flag_reasons=flags.reasons)
    if sky is not None:
        values.update(sky_mean=sky.mean, sky_sigma=sky.sigma)
    values.update(known)
    return Measurement(**values)  # type: ignore[arg-type]


def _as_image(image: object, mask: object, flags: FlagCollector, min_size: int):
    """Validate the inputs; return (float image, invalid-pixel mask) or None with a fatal flag."""
    try:
        raw = np.asarray(image)
        if np.iscomplexobj(raw):
            flags.add(Flag.BAD_INPUT, "image is complex; pass a real array (e.g. its .real part)")
            return None
        arr = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        flags.add(Flag.BAD_INPUT, f"image is not numeric ({exc})")
        return None
    if arr.ndim != 2:
        flags.add(Flag.BAD_INPUT, f"image must be 2-D, got shape {arr.shape}")
        return None
    if min(arr.shape) < min_size:
        flags.add(Flag.BAD_INPUT, f"image {arr.shape} is smaller than min_size={min_size} px")
        return None
    invalid = ~np.isfinite(arr)
    n_bad = int(invalid.sum())
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != arr.shape:
            flags.add(Flag.BAD_INPUT, f"mask shape {m.shape} does not match image {arr.shape}")
            return None
        invalid |= m.astype(bool)
    if invalid.all():
        flags.add(Flag.BAD_INPUT, "no valid pixel (all NaN/inf or masked)")
        return None
    if invalid.any():
        flags.add(
            Flag.INVALID_PIXELS,
            f"{int(invalid.sum())} pixels excluded ({n_bad} NaN/inf, the rest masked)",
        )
    arr[invalid] = 0.0
    return arr, invalid


def detect_target(
    image: np.ndarray, sky: Sky, cfg: MorphologyConfig, *, invalid: np.ndarray | None = None
) -> Segmentation:
    """The detection step of :func:`measure`: segments of ``image`` and its target.

    Public so that comparisons (the statmorph benchmark) can hand another code exactly the
    segmentation casnet measured with.
    """
    return segment(
        image - sky.mean,
        threshold=cfg.detect_nsigma * sky.sigma,
        npixels=cfg.detect_npixels,
        smooth_fwhm=cfg.smooth_fwhm,
        mask=invalid,
        deblend=cfg.deblend,
        nlevels=cfg.deblend_nlevels,
        contrast=cfg.deblend_contrast,
        max_distance=cfg.target_radius,
        source_contrast=cfg.source_contrast,
        overlap_saddle=cfg.overlap_saddle,
        join_fraction=cfg.join_fraction,
    )


def measure(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    config: MorphologyConfig | None = None,
    noiseless_sigma: float | None = None,
    centre: tuple[float, float] | None = None,
    target_mask: np.ndarray | None = None,
    replaced: np.ndarray | None = None,
) -> Measurement:
    """Measure C, A and their companions on one stamp.

    Parameters
    ----------
    image : 2-D array-like
        The stamp, the target near its centre, in counts (any linear unit). NaN/inf pixels are
        excluded and flagged.
    mask : 2-D bool array-like, optional
        True on pixels to exclude (bad pixels, known neighbours).
    config : MorphologyConfig, optional
        Settings; default: the paper's values.
    noiseless_sigma : float, optional
        Declares a noiseless image with no background (the simulator's truth): the sky is taken
        as mean 0 and this sigma (pass the noise of the matching observed stamp, so that the
        detection threshold, SNR_p and errors refer to the same depth), and the asymmetry
        background term is 0 (with no noise, "sky" cells only hold the galaxy's faint outskirts).
    centre : (x, y), optional
        A known centre: the apertures are centred on it (instead of the light-weighted centroid)
        and the asymmetry minimisation starts there. For the simulator's truth.
    target_mask : 2-D bool array-like, optional
        The target's pixels, known: no detection and no neighbour masking (for a noiseless image
        of the target alone, see :func:`measure_truth`).
    replaced : 2-D bool array-like, optional
        Pixels that cleaning replaced by sky (:attr:`casnet.data.clean.CleanResult.replaced`): they
        are excluded as the measurement's own neighbour masks are (filled azimuthally for the
        curve of growth, left out of the asymmetry with their rotated counterparts) and not
        flagged (the cleaning's flags say what was done). Without it, a touching neighbour's
        replaced core left a hole in the galaxy whose sky the asymmetry counted: +0.03 to +0.11 in
        A for a clumpy disk with a neighbour 14-22 px away, within 0.01 with it.

    Returns
    -------
    Measurement
        Never raises for bad data: problems are reported in ``flag`` / ``flag_reasons``.
    """
    cfg = config or MorphologyConfig()
    flags = FlagCollector()
    checked = _as_image(image, mask, flags, cfg.min_size)
    if checked is None:
        return _failed(flags)
    arr, invalid = checked
    if replaced is not None:
        known_gone = np.asarray(replaced, dtype=bool)
        if known_gone.shape != arr.shape:
            flags.add(Flag.BAD_INPUT, f"replaced {known_gone.shape} does not match {arr.shape}")
            return _failed(flags)
        if (invalid | known_gone).all():
            flags.add(Flag.BAD_INPUT, "no valid pixel (all replaced, NaN/inf or masked)")
            return _failed(flags)
        invalid = invalid | known_gone

    # 1. Sky: a robust first guess for detection; the sigma-clipped sky once sources are masked.
    known = noiseless_sigma is not None
    if known:
        sky = Sky(0.0, float(noiseless_sigma), int((~invalid).sum()))
    else:
        sky = first_guess_sky(
            arr, mask=invalid, clip_sigma=cfg.sky_clip_sigma, maxiters=cfg.sky_clip_iters
        )
    # A sigma at float-rounding level of the pixel values is a constant image, not noise.
    scale = float(np.max(np.abs(arr[~invalid])))
    if not (sky.sigma > 1e-10 * scale and np.isfinite(sky.mean)):
        flags.add(Flag.SKY_FAILED, "sky sigma is zero or undefined (constant image?)")
        return _failed(flags, sky)

    # 2. Segmentation and the target.
    if target_mask is not None:
        known_target = np.asarray(target_mask, dtype=bool) & ~invalid
        seg = Segmentation(known_target.astype(np.int32), int(known_target.any()), False)
    else:
        seg = detect_target(arr, sky, cfg, invalid=invalid)
    if seg.target == 0:
        flags.add(
            Flag.NO_SOURCE,
            f"nothing above {cfg.detect_nsigma} sigma of the sky within "
            f"{cfg.target_radius:g} px of the centre",
        )
        return _failed(flags, sky)
    sources = seg.labels > 0
    if cfg.mask_dilate:
        sources = ndimage.binary_dilation(sources, iterations=cfg.mask_dilate)
    if not known:
        sky = masked_sky(arr, sky, mask=invalid | sources, clip_sigma=cfg.sky_clip_sigma,
                         maxiters=cfg.sky_clip_iters)  # fmt: skip
    img = arr - sky.mean
    if seg.ambiguous:
        flags.add(Flag.AMBIGUOUS_TARGET, "two sources are equally close to the stamp centre")
    target = seg.target_mask
    if target[0].any() or target[-1].any() or target[:, 0].any() or target[:, -1].any():
        flags.add(Flag.EDGE, "the target's segment touches the stamp edge")

    # 3. Shape from second moments of the target's pixels.
    shape = second_moments(img, target & ~invalid)
    if shape is None:
        flags.add(Flag.NON_POSITIVE_FLUX, "the target has no positive flux")
        return _failed(flags, sky)
    if centre is not None:
        shape = replace(shape, x=float(centre[0]), y=float(centre[1]))
    measured_q, measured_pa = shape.q, shape.pa
    if cfg.aperture_shape == "circle":
        shape = replace(shape, q=1.0, pa=0.0)
    excluded = invalid | seg.others_mask
    yy, xx = np.indices(img.shape)
    radius = elliptical_radius(xx - shape.x, yy - shape.y, shape.q, shape.pa)
    shape_cols = {"q": measured_q, "pa": measured_pa, "x_centroid": shape.x, "y_centroid": shape.y}

    # 4. Curve of growth (neighbours filled azimuthally) and the Petrosian radius.
    def petrosian(img: np.ndarray):
        filled = fill_masked(np.where(excluded, 0.0, img), excluded, radius)
        curve = growth_curve(
            filled,
            x0=shape.x,
            y0=shape.y,
            q=shape.q,
            pa=shape.pa,
            subsample=cfg.subsample,
            subsample_radius=cfg.subsample_radius,
        )
        eta = _petrosian_definition(cfg)
        return curve, petrosian_radius(curve, **eta)

    curve, r_p = petrosian(img)
    if not r_p > 0:
        flags.add(Flag.NO_PETROSIAN, f"eta never fell to {cfg.eta} inside the stamp")
        return _failed(flags, sky, **shape_cols)

    # 4b. The sky from where the galaxy is not. The detection mask stops at 1.5 sigma, and a
    # large galaxy's wings below it filled the sky pixels (+4 to +15 sigma of the sky mean, C
    # 0.2-0.45 low): the sky is re-measured beyond sky_exclude_rp R_p and the curve of growth
    # redone with it. It must come from at least as many pixels as the aperture has, or its error
    # would dominate the total flux's: else the galaxy fills the stamp (STAMP_FILLED).
    if not known:
        outer = (radius > cfg.sky_exclude_rp * r_p) & ~invalid & ~sources
        n_outer = int(np.count_nonzero(outer))
        needed = sky_pixels_needed(r_p, shape.q, cfg)
        if n_outer < needed:
            flags.add(
                Flag.STAMP_FILLED,
                f"{n_outer} sky pixels beyond {cfg.sky_exclude_rp:g} R_p (the aperture has "
                f"{needed}): the galaxy fills the stamp, its sky holds the galaxy's wings",
            )
        else:
            far = sky_background(
                arr, mask=~outer, clip_sigma=cfg.sky_clip_sigma, maxiters=cfg.sky_clip_iters
            )
            if far.sigma > 0 and abs(far.mean - sky.mean) > sky.sigma / np.sqrt(n_outer):
                sky = far
                img = arr - sky.mean
                curve, r_p = petrosian(img)
                if not r_p > 0:
                    flags.add(Flag.NO_PETROSIAN, f"eta never fell to {cfg.eta} inside the stamp")
                    return _failed(flags, sky, **shape_cols)
    # 5. Asymmetry with the sky-cell background term, minimised over the rotation centre.
    sky_pixels = ~(invalid | sources) if not known else np.zeros_like(invalid)
    cells = sky_cell_asymmetry(
        img,
        sky_pixels,
        cell_size=cfg.sky_cell_size,
        order=cfg.interpolation_order,
        max_cells=cfg.max_sky_cells,
    )
    if cells.n_cells < cfg.min_sky_cells and not known:
        flags.add(
            Flag.FEW_SKY_CELLS,
            f"{cells.n_cells} sky cells of {cfg.sky_cell_size} px (need {cfg.min_sky_cells})",
        )
    # the noise's own correlation (drizzled mosaics), for the signal term and the errors
    correlation = NoiseCorrelation.white() if known else noise_correlation(img, sky_pixels)
    centroid = (shape.x, shape.y)
    max_shift = cfg.max_centre_shift_rp * r_p
    data = np.where(excluded, np.nan, img)

    def rotation(x0: float, y0: float, r_p: float):
        return asymmetry(
            data,
            x0=x0,
            y0=y0,
            radius=cfg.asymmetry_aperture_rp * r_p,
            q=shape.q,
            pa=shape.pa,
            background=cells,
            order=cfg.interpolation_order,
            xtol=cfg.centre_xtol,
            max_shift=max_shift,
        )

    ar = rotation(shape.x, shape.y, r_p)
    # 5b. The apertures move to the asymmetry centre (Conselice 2003, statmorph): the galaxy's
    # light-weighted centroid is pulled off its centre by knots and tidal features (3 px on a
    # clumpy disk with r20 = 3 px), which inflated r20 and biased C low for exactly the galaxies
    # asymmetry is for. R_p, the asymmetry aperture and the minimisation are redone there.
    if cfg.aperture_centre == "asymmetry" and centre is None and np.isfinite(ar.raw):
        before = shape, radius, curve, r_p
        shape = replace(shape, x=ar.x, y=ar.y)
        radius = elliptical_radius(xx - shape.x, yy - shape.y, shape.q, shape.pa)
        curve, r_p = petrosian(img)
        if r_p > 0:
            ar = rotation(ar.x, ar.y, r_p)
        else:  # no Petrosian radius around the new centre: keep the centroid's
            shape, radius, curve, r_p = before
    shape_cols["r_petro"] = r_p
    r_asym = cfg.asymmetry_aperture_rp * r_p
    if cfg.asymmetry_signal_nsigma is not None and cells.n_cells and np.isfinite(ar.raw):
        ar = _signal_noise_term(img, excluded, correlation, ar, cells, shape, r_asym, cfg)
    if not ar.converged:
        flags.add(Flag.NOT_CONVERGED, "the asymmetry-centre minimiser did not converge")
    if max(abs(ar.x - centroid[0]), abs(ar.y - centroid[1])) > max_shift - 2 * cfg.centre_xtol:
        flags.add(
            Flag.CENTRE_SHIFT,
            f"asymmetry centre reached the {max_shift:.1f} px limit around the centroid",
        )

    # 6. Concentration inside aperture_rp x R_p.
    r_tot = cfg.aperture_rp * r_p
    if max(r_tot, r_asym) > curve.r_inside:
        flags.add(
            Flag.APERTURE_CLIPPED,
            f"aperture of {max(r_tot, r_asym):.1f} px exceeds the stamp ({curve.r_inside:.1f} px)",
        )
    total = float(curve.flux_at(r_tot))
    if not total > 0:
        flags.add(Flag.NON_POSITIVE_FLUX, f"light inside {cfg.aperture_rp} R_p is {total:.3g}")
        return _failed(flags, sky, **shape_cols)
    r20, r80 = light_radii(curve, total)
    c = concentration(r20, r80)

    # 7-8. SNR_p and errors.
    snr = snr_petrosian(float(curve.flux_at(r_p)), r_p, shape.q, sky.sigma)
    c_err, a_err = _errors(img, excluded, correlation, sky, curve, ar, cells, shape, r_asym, cfg)
    result = Measurement(
        concentration=c,
        asymmetry=ar.asymmetry,
        concentration_err=c_err,
        asymmetry_err=a_err,
        r20=r20,
        r80=r80,
        r_petro=r_p,
        q=measured_q,
        pa=measured_pa,
        x_centre=ar.x,
        y_centre=ar.y,
        x_centroid=centroid[0],
        y_centroid=centroid[1],
        asymmetry_raw=ar.raw,
        asymmetry_bkg=ar.background,
        flux=total,
        snr_p=snr,
        sky_mean=sky.mean,
        sky_sigma=sky.sigma,
        n_sky_cells=cells.n_cells,
        flag=int(flags.flag),
        flag_reasons=flags.reasons,
    )
    # 9. Every step ran, but are the values a galaxy's? (issue 28: R_p 0.5 px, A -2 with flag 0)
    problems = unphysical(result)
    for reason in problems:
        flags.add(Flag.UNPHYSICAL, reason)
    if problems:
        result = replace(result, flag=int(flags.flag), flag_reasons=flags.reasons)
    return result


def _signal_noise_term(img, excluded, correlation, ar, cells, shape, r_asym, cfg):
    """The asymmetry with the sky term withheld from signal pixels (:func:`.signal_pixels`), at
    the centre the minimiser chose."""
    ny, nx = img.shape
    half = int(np.ceil(r_asym)) + 3  # the aperture's box: nothing outside it counts
    y0, y1 = max(int(ar.y) - half, 0), min(int(ar.y) + half + 2, ny)
    x0, x1 = max(int(ar.x) - half, 0), min(int(ar.x) + half + 2, nx)
    data = np.where(excluded, np.nan, img)
    rotated = rotate180(data, (ar.x, ar.y), order=cfg.interpolation_order)[y0:y1, x0:x1]
    data = data[y0:y1, x0:x1]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = elliptical_radius(xx - ar.x, yy - ar.y, shape.q, shape.pa) <= r_asym
    valid = inside & np.isfinite(data) & np.isfinite(rotated)
    signal = smooth_signal(np.where(valid, data - rotated, 0.0), valid)[valid]
    b = cells.per_pixel(2 * ar.y, 2 * ar.x)
    # the smoothing shrinks the residual's noise as it shrinks any noise of this correlation
    shrink = correlation.smoothed_std(1.0)
    if not 0 < shrink <= 1:
        return ar
    s = b * np.sqrt(np.pi / 2)
    n_signal = signal_pixels(signal, s, shrink * s, cfg.asymmetry_signal_nsigma)
    withheld = n_signal * b / ar.abs_flux
    return replace(ar, asymmetry=ar.asymmetry + withheld, background=ar.background - withheld)


def _petrosian_definition(cfg: MorphologyConfig) -> dict[str, float]:
    """The Petrosian radius's definition (eta and its annulus), shared by the measurement and the
    re-draws of sigma_C, so that both find R_p the same way."""
    return {"eta": cfg.eta, "inner": cfg.annulus_inner, "outer": cfg.annulus_outer}


def _errors(img, excluded, correlation, sky, curve, ar, cells, shape, r_asym, cfg):
    """sigma_C and sigma_A (:mod:`.uncertainty`) with the stamp's noise correlation: C by
    re-drawing the curve of growth, A by re-drawing noise on the smoothed galaxy."""
    # a seed from the pixels: reproducible, and different stamps get different draws
    seed = zlib.crc32(np.ascontiguousarray(img).view(np.uint8))
    c_err = concentration_error(
        curve,
        sky_sigma=sky.sigma,
        n_sky=sky.n_pixels,
        correlation=correlation,
        **_petrosian_definition(cfg),
        aperture_rp=cfg.aperture_rp,
        gain=cfg.gain,
        seed=seed,
    )
    valid = ~excluded
    a_err = asymmetry_error(
        smooth_signal(img, valid),
        x=ar.x,
        y=ar.y,
        radius=r_asym,
        q=shape.q,
        pa=shape.pa,
        order=cfg.interpolation_order,
        sky_sigma=sky.sigma,
        correlation=correlation,
        gain=cfg.gain,
        seed=seed,
    )
    # the background term's own error: the median over n sky cells, sqrt(pi / 2) std / sqrt(n),
    # times N / S (with the signal pixels' term, A no longer moves with it as the raw value does)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        values = cells.cell_values(2 * ar.y, 2 * ar.x) / sky.sigma
    if values.size > 1 and ar.abs_flux > 0 and np.isfinite(sky.sigma):
        bkg_err = np.sqrt(np.pi / 2) * float(np.std(values)) / np.sqrt(values.size)
        a_err = float(np.hypot(a_err, ar.n_pixels * bkg_err / (ar.abs_flux / sky.sigma)))
    return c_err, a_err


def measure_truth(
    truth: np.ndarray,
    *,
    centre: tuple[float, float] | None,
    sky_sigma: float,
    config: MorphologyConfig | None = None,
) -> Measurement:
    """The idealised truth: C and A of a noiseless, PSF-convolved image of the target alone.

    No detection, deblending or masks: the target is every pixel of the smoothed image above the
    detection threshold of the matching observed stamp (``detect_nsigma * sky_sigma``; the shape,
    q and pa come from those pixels, as they would from the target's segment), the apertures are
    centred on the known ``centre`` and the asymmetry background term is 0. Thresholds, SNR_p and
    errors refer to ``sky_sigma``, the observed stamp's noise. A bias of the segmentation, the
    masks or the sky of :func:`measure` therefore shows as a difference from this value.

    Parameters
    ----------
    truth : 2-D array-like
        Noiseless image of the target alone, no background.
    centre : (x, y) or None
        Known centre of the target (None: the light-weighted centroid).
    sky_sigma : float
        Per-pixel noise of the matching observed stamp (> 0).
    config : MorphologyConfig, optional
    """
    cfg = config or MorphologyConfig()
    arr = np.asarray(truth, dtype=np.float64)
    mask = None
    if arr.ndim == 2 and sky_sigma > 0:
        finite = np.where(np.isfinite(arr), arr, 0.0)
        mask = smooth(finite, cfg.smooth_fwhm) > cfg.detect_nsigma * sky_sigma
        if not mask.any():  # fainter than the threshold everywhere: the brightest pixel
            mask.flat[int(np.argmax(finite))] = True
    return measure(arr, config=cfg, noiseless_sigma=sky_sigma, centre=centre, target_mask=mask)
