"""Where does the simulator fail to cover real morphology? (``casnet benchmark realgap``, issue 29)

The first step of issue 29 item 2: measure, at matched magnitude and size, how the real COSMOS
galaxies of the real-morphology suite (:func:`casnet.data.real.render_real`) differ from the
simulator's (:mod:`casnet.data.simulate`), so that the simulator can be widened with evidence.

**Two sets, measured the same way.** The real suite's views (``evaluate.real``) and ``n``
simulated galaxies drawn with the project's simulator at the real views' magnitudes
(``mag_range`` the views' range padded by :data:`MAG_PAD`, drawn flat in magnitude:
``mag_slope = 0``, so every real magnitude has simulated neighbours; no unrelated neighbours:
``neighbour_fraction = 0``, the real stamps have none). Per stamp: the conventional measurement
of the observed stamp (:func:`casnet.morphology.measure`); the *reference*, the conventional
measurement of the noise-free stamp (:func:`casnet.evaluation.real.reference`: ``measure_truth``
at the observed stamp's measured noise, centred on the light-weighted centroid, for both sets;
for a real view with its own HST noise taken off A); the smoothness statistics of the noise-free
stamp at the reference's centre and aperture (:func:`smoothness`); statmorph's S/N per pixel and
the Petrosian radius of the noise-free stamp (:func:`casnet.data.real.measure_view`); and, where
a model is given, the network's C and A of the observed stamp.

**Matching.** Each real view is matched to its :data:`K_MATCH` nearest simulated galaxies in
(H magnitude / :data:`MAG_SCALE`, log10 R_p / :data:`SIZE_SCALE_DEX`) (:func:`match`), R_p the
noise-free stamp's Petrosian radius (eta 0.2) for both; the scaled distance of the farthest
match says how well the simulator covers that magnitude and size.

**The real reference is not noise-free.** A real view's noise-free render carries the COSMOS
cutout's own HST noise (own S/N per pixel ~1-20), and the residual statistics are the most
noise-sensitive of all: on the default suite the positive residual of that own noise alone is
as large as the S it sits in for a third of the views. Rather than subtract a sky term (which
over-corrects wherever the galaxy's own residual dominates), each comparison is *noise-matched*:
every simulated galaxy matched to a real view is measured again with that view's own noise
added to its noise-free stamp, a noise twin of the cutout (:func:`noise_twins`: a cutout of the
galaxy's size filled with the catalogue's correlated noise, deconvolved by its ACS PSF and
re-rendered at the view's rotation and offset, scaled to the simulated galaxy's flux; four 90
degree rotations of :data:`TWINS` twins give eight fields, used in turn), and with the same own-
noise correction of A. The simulated distribution a real view is compared with is therefore
the simulator's galaxies as they would look with that view's own noise: a real galaxy outside
it differs by more than its own noise can make.

**What is reported** (:func:`realgap_report`), per visual kind and overall: for C and A of the
reference, the smoothness S, the light fraction in residual peaks, the number of peaks, their
one-sidedness and the centroid offset, the real median, the matched simulated median and the
shares of real views above the matched simulated 95th and 99th percentiles (below the 5th and
1st too); the joint (A, S) region (:func:`orthant_depth`); the same for the observed stamps'
conventional C and A (no noise matching: both carry the survey noise, the real views in
addition the <= ``max_own_noise_share`` own noise); and the network residuals (net - reference)
of real views against their matched simulated galaxies and per S/N-per-pixel bin. Figures: the
A-S and C-A planes (noise-matched simulated density, real views by kind), the real views outside
the simulated region beside their nearest and their clumpiest matched simulated galaxies
(:func:`plot_outside`), and the network residuals against S/N (:func:`plot_residuals`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import ndimage
from scipy.spatial import cKDTree

from casnet.core.config import override
from casnet.core.figures import save_figure
from casnet.core.flags import BAD_VALUES
from casnet.core.layout import TARGETS
from casnet.data.settings import RealSuiteConfig, SimulateConfig
from casnet.morphology import measure
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.shape import elliptical_radius

__all__ = [
    "BOXCAR_RP",
    "INNER_RP",
    "K_MATCH",
    "MAG_SCALE",
    "MIN_BOXCAR_PX",
    "OUTER_RP",
    "PEAK_CONTRAST",
    "QUANTITIES",
    "SIZE_SCALE_DEX",
    "RealGap",
    "Smoothness",
    "boxcar_size",
    "format_realgap",
    "headline_agreement",
    "match",
    "noise_smoothness",
    "noise_twins",
    "orthant_depth",
    "percentile_of",
    "plot_outside",
    "plot_plane",
    "plot_residuals",
    "realgap",
    "realgap_report",
    "residual_image",
    "smoothness",
]

#: the smoothness aperture: an elliptical annulus from INNER_RP to OUTER_RP x R_p (statmorph's
#: ``petro_fraction_cas`` and ``petro_extent_cas``; Lotz et al. 2004: the centre, whose light is
#: concentrated by the PSF and a bulge whatever the galaxy, is left out)
INNER_RP = 0.25
OUTER_RP = 1.5
#: boxcar side in units of R_p (Conselice 2003: 0.3 R_p(eta 0.2); Lotz 2004 and statmorph 0.25)
BOXCAR_RP = 0.25
#: smallest boxcar (px): the F160W PSF's FWHM is 3 px on the 0.06" grid; a 1-px boxcar (R_p < 6 px
#: in statmorph's int(0.25 R_p)) smooths nothing and gives S = 0 for any galaxy
MIN_BOXCAR_PX = 3
#: Gaussian FWHM / sigma
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: a residual peak: a pixel brighter than its boxcar-smoothed value by at least this share of it
PEAK_CONTRAST = 0.1
#: pixels of a connected peak for it to count as one in ``n_peaks`` (about the PSF's core)
MIN_PEAK_PX = 3
#: the clumpiness: S of the image first smoothed by a Gaussian of the F160W PSF's FWHM (3 px at
#: 0.06"/px; design guide section 8), a matched filter for the smallest clumps the PSF lets
#: through, against a boxcar of at least 5 px, outside at least 3.5 px from the centre (there a
#: smooth PSF-convolved Sersic leaves a core residual: at 3.5 px n = 1-4 Sersics of r_half 1-8
#: px give <= 0.011). A real noise-free stamp's own noise adds ~0.06 to its S (median, of 0.085)
#: but ~0.02 to its clumpiness (of 0.08): the statistic that can tell structure from that noise
CLUMPINESS: dict[str, float] = {"presmooth_fwhm": 3.0, "min_boxcar": 5, "min_inner_px": 3.5}
#: peak light (share of the annulus light) below which ``peak_dipole`` is NaN: a pixel or two of
#: residual is "one-sided" by construction
MIN_DIPOLE_LIGHT = 0.01
#: matching scales: a real view's neighbours are the nearest in (mag / MAG_SCALE,
#: log10 R_p / SIZE_SCALE_DEX)
MAG_SCALE = 0.5
SIZE_SCALE_DEX = 0.1
#: simulated neighbours per real view
K_MATCH = 50
#: simulated magnitudes span the real views' padded by this (mag)
MAG_PAD = 0.25
#: noise twins drawn per real view (each used in its four 90-degree rotations)
TWINS = 2
#: quantities compared with the matched simulated galaxies: column -> (label, reading)
QUANTITIES: dict[str, tuple[str, str]] = {
    "ref_asymmetry": ("A (noise-free)", "asymmetry of the noise-free stamp"),
    "smoothness": ("S (noise-free)", "statmorph's S: positive residual / light, 0.25-1.5 R_p"),
    "clumpiness": ("S_psf (noise-free)", "S of the PSF-filtered stamp (CLUMPINESS)"),
    "peak_fraction": ("peak light", "light in PSF-filtered residual peaks (> 10% over I_s)"),
    "n_peaks": ("peaks", "connected residual peaks of >= 3 px"),
    "peak_dipole": ("peak one-sidedness", "|sum r e^(i theta)| / sum r over the peaks"),
    "centroid_offset": ("centroid offset", "light centroid - asymmetry centre, in R_p"),
    "ref_concentration": ("C (noise-free)", "concentration of the noise-free stamp"),
}
#: the joint regions: name -> the S column paired with the noise-free A
JOINT: dict[str, str] = {"a_spsf": "clumpiness", "a_s": "smoothness"}
#: observed-stamp quantities compared without noise matching
OBSERVED: dict[str, str] = {"conv_asymmetry": "A (observed)", "conv_concentration": "C (observed)"}
#: bins of statmorph's S/N per pixel for the network residuals (the real suite's)
SN_EDGES = (0.0, 1.0, 2.5, 5.0, np.inf)
#: the real suite's headline cut: S/N per pixel at least this (statmorph distrusts less)
HEADLINE_SN = 2.5
#: own S/N per pixel of a real view's noise-free stamp below which it is itself a noisy
#: reference (casnet.evaluation.real: the A correction is good to ~0.03 above it)
OWN_SN = 8.0
#: real views drawn in the outside figure (one view per galaxy)
N_OUTSIDE = 8


# --------------------------------------------------------------------------- the statistic


def boxcar_size(r_petro: float, *, min_px: int = MIN_BOXCAR_PX) -> int:
    """The boxcar side (px): the odd integer nearest ``BOXCAR_RP * r_petro``, at least
    ``min_px`` (odd: an even boxcar shifts the smoothed image by half a pixel, which alone
    leaves a residual on any steep profile)."""
    if not (np.isfinite(r_petro) and r_petro > 0):
        raise ValueError(f"r_petro must be a positive number, got {r_petro!r}")
    size = 2 * math.floor(BOXCAR_RP * r_petro / 2) + 1
    return max(int(min_px), size)


def _filtered(image: np.ndarray, fwhm: float) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float64)
    if fwhm > 0:
        return ndimage.gaussian_filter(arr, fwhm / _FWHM_PER_SIGMA, mode="reflect")
    return arr


def residual_image(
    image: np.ndarray,
    r_petro: float,
    *,
    presmooth_fwhm: float = 0.0,
    min_boxcar: int = MIN_BOXCAR_PX,
) -> np.ndarray:
    """``I - I_s``: the image (first smoothed by a Gaussian of FWHM ``presmooth_fwhm`` px, if
    any) less its boxcar smoothing (:func:`boxcar_size`; edges reflected)."""
    arr = _filtered(image, presmooth_fwhm)
    box = boxcar_size(r_petro, min_px=min_boxcar)
    return arr - ndimage.uniform_filter(arr, size=box, mode="reflect")


def noise_smoothness(
    noise: np.ndarray,
    r_petro: float,
    *,
    mask: np.ndarray | None = None,
    presmooth_fwhm: float = 0.0,
    min_boxcar: int = MIN_BOXCAR_PX,
) -> float:
    """The sky term per pixel: the mean positive residual of a noise image (statmorph's
    ``_sky_smoothness``; Lotz et al. 2004), over ``mask`` (default all pixels)."""
    res = residual_image(noise, r_petro, presmooth_fwhm=presmooth_fwhm, min_boxcar=min_boxcar)
    res = np.clip(res, 0.0, None)
    return float(res[mask].mean() if mask is not None else res.mean())


@dataclass(frozen=True)
class Smoothness:
    """The residual statistics of :func:`smoothness`."""

    smoothness: float  #: S = (sum max(I - I_s, 0) - N b) / sum I over the annulus
    peak_fraction: float  #: sum of the residual in peak pixels / sum I
    n_peaks: int  #: connected peaks of at least MIN_PEAK_PX pixels
    peak_dipole: float  #: one-sidedness of the peak light: 0 even around the centre, 1 one side
    boxcar_px: int
    n_pixels: int  #: pixels in the annulus
    flux: float  #: sum I over the annulus


def smoothness(
    image: np.ndarray,
    *,
    centre: tuple[float, float],
    r_petro: float,
    q: float = 1.0,
    pa: float = 0.0,
    sky: float | np.ndarray = 0.0,
    presmooth_fwhm: float = 0.0,
    min_boxcar: int = MIN_BOXCAR_PX,
    min_inner_px: float = 0.0,
) -> Smoothness:
    """Smoothness (clumpiness) S and the light in residual peaks of a background-free image.

    .. math:: S = \\frac{\\sum_{ann} \\max(I - I_s, 0) - \\sum_{ann} b}{\\sum_{ann} I}

    over the elliptical annulus :data:`INNER_RP` - :data:`OUTER_RP` x ``r_petro`` (axis ratio
    ``q``, major axis at ``pa`` radians) about ``centre`` (x, y; the asymmetry centre), ``I_s``
    the boxcar-smoothed image (:func:`boxcar_size`). This follows statmorph's ``smoothness``
    (Lotz et al. 2004, Eq. 11; Conselice 2003 without the factor 10: negative residuals count 0,
    the centre is left out) with casnet's elliptical Petrosian aperture (the A aperture) instead
    of statmorph's circle, an odd boxcar of at least 3 px, and the sky term ``b`` per pixel
    (``sky``: a number, or an image, e.g. 0 where there is no noise; :func:`noise_smoothness`).

    Peaks: annulus pixels with ``I - I_s > PEAK_CONTRAST * I_s`` (a contrast, not a noise
    threshold: it reads a noise-free stamp). ``peak_fraction`` is their residual light over
    ``sum I`` (no sky term), ``n_peaks`` the 8-connected groups of >= :data:`MIN_PEAK_PX`
    pixels and ``peak_dipole`` ``|sum r exp(i theta)| / sum r`` over the peak pixels (theta the
    angle about ``centre``): 0 when the peak light is even around the centre, 1 when it is all on
    one side. NaN (and 0 peaks) when the annulus holds no positive light.

    Raises
    ------
    ValueError
        ``image`` not 2-D, ``r_petro`` not positive, or ``q`` outside (0, 1].
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {arr.shape}")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q!r}")
    box = boxcar_size(r_petro, min_px=min_boxcar)
    arr = _filtered(np.where(np.isfinite(arr), arr, 0.0), presmooth_fwhm)
    smoothed = ndimage.uniform_filter(arr, size=box, mode="reflect")
    res = arr - smoothed
    yy, xx = np.indices(arr.shape)
    radius = elliptical_radius(xx - centre[0], yy - centre[1], q, pa)
    inner = max(INNER_RP * r_petro, min_inner_px)
    ann = (radius >= inner) & (radius <= OUTER_RP * r_petro)
    flux = float(arr[ann].sum())
    n = int(ann.sum())
    if not (n and flux > 0):
        return Smoothness(np.nan, np.nan, 0, np.nan, box, n, flux)
    b = np.broadcast_to(np.asarray(sky, dtype=np.float64), arr.shape)
    s = (float(np.clip(res[ann], 0.0, None).sum()) - float(b[ann].sum())) / flux
    peaks = ann & (res > PEAK_CONTRAST * np.abs(smoothed)) & (res > 0)
    light = res[peaks]
    labels, count = ndimage.label(peaks, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(0, int)
    dipole = np.nan
    if light.sum() >= MIN_DIPOLE_LIGHT * flux:
        theta = np.arctan2(yy[peaks] - centre[1], xx[peaks] - centre[0])
        dipole = float(np.abs(np.sum(light * np.exp(1j * theta))) / light.sum())
    return Smoothness(
        smoothness=s,
        peak_fraction=float(light.sum()) / flux,
        n_peaks=int((sizes >= MIN_PEAK_PX).sum()),
        peak_dipole=dipole,
        boxcar_px=box,
        n_pixels=n,
        flux=flux,
    )


# --------------------------------------------------------------------------- matching


def match(
    real: pd.DataFrame, sims: pd.DataFrame, *, k: int = K_MATCH
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` simulated galaxies nearest each real view in (``mag`` / :data:`MAG_SCALE`,
    log10 ``r_petro_px`` / :data:`SIZE_SCALE_DEX`).

    Returns
    -------
    indices, distances : (n_real, k) arrays
        Row positions in ``sims`` (nearest first) and the scaled distances. A real view with no
        finite magnitude or size gets -1 and inf.

    Raises
    ------
    ValueError
        ``k`` not positive, or fewer usable simulated galaxies than ``k``.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")

    def coords(df: pd.DataFrame) -> np.ndarray:
        r = df["r_petro_px"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.where(r > 0, np.log10(r), np.nan)
        return np.column_stack([df["mag"].to_numpy(float) / MAG_SCALE, size / SIZE_SCALE_DEX])

    s = coords(sims)
    usable = np.flatnonzero(np.isfinite(s).all(axis=1))
    if usable.size < k:
        raise ValueError(f"{usable.size} usable simulated galaxies, fewer than k = {k}")
    tree = cKDTree(s[usable])
    r = coords(real)
    ok = np.isfinite(r).all(axis=1)
    idx = np.full((len(real), k), -1, dtype=np.int64)
    dist = np.full((len(real), k), np.inf)
    if ok.any():
        d, i = tree.query(r[ok], k=k)
        d, i = np.asarray(d).reshape(-1, k), np.asarray(i).reshape(-1, k)
        idx[ok], dist[ok] = usable[i], d
    return idx, dist


def percentile_of(value: float, sample: np.ndarray) -> float:
    """Share of the finite ``sample`` below ``value``, ties counted half (NaN when either is
    missing): 0.97 means above 97% of the sample."""
    x = np.asarray(sample, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not (np.isfinite(value) and x.size):
        return float("nan")
    return float((np.sum(x < value) + 0.5 * np.sum(x == value)) / x.size)


def orthant_depth(point: tuple[float, float], sample: np.ndarray) -> tuple[float, float]:
    """How far into the upper right of a 2-D ``sample`` (N, 2) ``point`` lies.

    The depth of a point is the share of the sample at least as large in both coordinates (its
    upper orthant): 1 at the lower left, 1/N for the sample's most extreme members, 0 beyond
    them all in either coordinate. Returns the point's depth and the share of the sample's
    members more extreme than it (their depth, each among the sample, lower than the point's):
    below 0.05 the point is outside the region that holds the 95% least extreme members (the
    sample's 95% region in this ordering), below 0.01 outside its 99%; a point beyond every
    member in A (or in S) is outside both. NaN with a non-finite point or fewer than 2 finite
    members.
    """
    x = np.asarray(sample, dtype=np.float64).reshape(-1, 2)
    x = x[np.isfinite(x).all(axis=1)]
    p = np.asarray(point, dtype=np.float64)
    if not (np.isfinite(p).all() and len(x) >= 2):
        return float("nan"), float("nan")
    depth = float(np.mean((x[:, 0] >= p[0]) & (x[:, 1] >= p[1])))
    own = ((x[None, :, 0] >= x[:, None, 0]) & (x[None, :, 1] >= x[:, None, 1])).mean(axis=1)
    return depth, float(np.mean(own < depth))


# --------------------------------------------------------------------------- measuring


def _values(ref, raw: Smoothness | None, band: Smoothness | None) -> dict[str, float]:
    """The compared quantities of one stamp (NaN where the reference has a BAD_VALUES flag):
    statmorph's S from ``raw``, the clumpiness and the peaks from ``band`` (the PSF-filtered
    residual, :data:`CLUMPINESS`)."""
    bad = bool(int(ref.flag) & int(BAD_VALUES))
    out = {
        "ref_concentration": np.nan if bad else float(ref.concentration),
        "ref_asymmetry": np.nan if bad else float(ref.asymmetry),
        "ref_r_petro": float(ref.r_petro),
        "centroid_offset": np.nan,
        "smoothness": np.nan,
        "clumpiness": np.nan,
        "peak_fraction": np.nan,
        "n_peaks": np.nan,
        "peak_dipole": np.nan,
    }
    if not bad and np.isfinite(ref.r_petro) and ref.r_petro > 0:
        out["centroid_offset"] = float(
            math.hypot(ref.x_centroid - ref.x_centre, ref.y_centroid - ref.y_centre) / ref.r_petro
        )
    if raw is not None:
        out["smoothness"] = raw.smoothness
    if band is not None:
        out.update(
            clumpiness=band.smoothness,
            peak_fraction=band.peak_fraction,
            n_peaks=float(band.n_peaks),
            peak_dipole=band.peak_dipole,
        )
    return out


def _noise_free(
    truth: np.ndarray,
    *,
    noise_sigma: float,
    own_sigma: float,
    own_region: np.ndarray | None,
    morph: MorphologyConfig,
) -> dict[str, float]:
    """The reference measurement and the residual statistics of one noise-free stamp."""
    from casnet.evaluation.real import reference

    ref, term = reference(
        truth, noise_sigma=noise_sigma, own_sigma=own_sigma, own_region=own_region, morph=morph
    )
    raw = band = None
    bad = bool(int(ref.flag) & int(BAD_VALUES))
    if not bad and np.isfinite(ref.r_petro) and ref.r_petro > 0 and 0 < ref.q <= 1:
        where = {
            "centre": (ref.x_centre, ref.y_centre),
            "r_petro": ref.r_petro,
            "q": ref.q,
            "pa": ref.pa,
        }
        raw = smoothness(truth, **where)
        band = smoothness(truth, **where, **CLUMPINESS)
    return {**_values(ref, raw, band), "ref_own_noise_term": term, "ref_flag": int(ref.flag)}


def _observed(image: np.ndarray, morph: MorphologyConfig) -> dict[str, float]:
    m = measure(np.asarray(image, np.float64), config=morph)
    bad = bool(int(m.flag) & int(BAD_VALUES))
    return {
        "conv_concentration": np.nan if bad else float(m.concentration),
        "conv_asymmetry": np.nan if bad else float(m.asymmetry),
        "snr_p": float(m.snr_p),
        "conv_flag": int(m.flag),
    }


def noise_twins(
    row: pd.Series, sim: SimulateConfig, *, size: int, twins: int = TWINS, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Own-noise fields of a real view at unit flux and the footprints they fill.

    ``twins`` cutouts of the galaxy's size filled with the COSMOS catalogue's noise for it (its
    variance and ACS correlation), deconvolved by its ACS PSF as ``galsim.RealGalaxy`` does,
    scaled as the galaxy is (1 / the cutout's sum) and drawn with the view's rotation and offset
    on the simulator's grid (:func:`casnet.data.real.draw_view`); each in its four 90-degree
    rotations about the stamp centre (the square footprint maps onto itself but for the
    sub-pixel offset, which rotates with it). Returns the fields and the matching footprints
    (:func:`casnet.data.real.cutout_footprint`, rotated alike).
    """
    import galsim

    from casnet.data.real import cutout_footprint, draw_view, real_catalog

    catalog = real_catalog()
    index = int(row["cosmos_index"])
    gal_image = catalog.getGalImage(index)
    psf_image = catalog.getPSFImage(index)
    noise_image, pixel_scale, var = catalog.getNoiseProperties(index)
    total = float(np.sum(gal_image.array))
    rotation = float(row["rotation_deg"])
    offset = (float(row["x_offset_px"]), float(row["y_offset_px"]))
    region = cutout_footprint(
        (size, size),
        side_px=float(row["cutout_arcsec"]) / sim.pixel_scale,
        rotation_deg=rotation,
        offset_px=offset,
    )
    fields, regions = [], []
    for t in range(twins):
        stream = np.random.default_rng([seed, index, int(row["view"]), t, 3])
        rng = galsim.BaseDeviate(int(stream.integers(1, 2**31 - 1)))
        noise = catalog.getNoise(index, rng=rng)
        image = galsim.ImageD(gal_image.bounds, scale=gal_image.scale)
        image.addNoise(noise)
        twin = galsim.RealGalaxy(
            (image, psf_image, noise_image, pixel_scale, var), flux_rescale=1.0 / total
        )
        drawn = draw_view(twin, sim, stamp_size=size, rotation_deg=rotation, offset_px=offset)
        for k in range(4):
            fields.append(np.rot90(drawn, k))
            regions.append(np.rot90(region, k))
    return fields, regions


@dataclass
class RealGap:
    """What :func:`realgap` measured.

    Attributes
    ----------
    real : DataFrame
        One row per real view: the render's catalogue, the observed, reference and smoothness
        columns, the network's values where run, the matching (``match_distance``: scaled
        distance of the farthest of the k matches) and, per compared quantity Q, ``Q_pct`` (its
        percentile among the noise-matched simulated values) and ``Q_sim_p05`` ... ``Q_sim_p99``.
    sims : DataFrame
        One row per simulated galaxy: the simulator's catalogue and the same measured columns
        (noise-free: no own noise).
    pairs : DataFrame
        One row per (real view, matched simulated galaxy): ``real_row``, ``sim_row``, ``rank``
        and the noise-matched values of the simulated galaxy.
    matches : (n_real, k) int array
        Rows of ``sims`` matched to each real view, nearest first.
    real_truth, sim_truth : arrays
        The noise-free stamps (for the figures).
    settings : dict
        What was run (n, k, simulator overrides, model, timings).
    """

    real: pd.DataFrame
    sims: pd.DataFrame
    pairs: pd.DataFrame
    matches: np.ndarray
    real_truth: np.ndarray
    sim_truth: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)


def _progress(items: Iterable, total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, disable=not enabled)


def _simulated(
    sim_cfg: SimulateConfig, n: int, morph: MorphologyConfig, progress: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    from casnet.data.real import measure_view
    from casnet.data.simulate import flux_from_mag, simulate

    rows, images, truths = [], [], []
    for g in _progress(simulate(sim_cfg, n), n, "realgap: simulate", progress):
        image = np.asarray(g.image, np.float64)
        truth = np.asarray(g.truth, np.float64)
        view = measure_view(
            image,
            truth,
            own_noise_sigma=0.0,
            nominal_sigma=g.sky_sigma,
            exposure_s=sim_cfg.exposure_time_s,
            morphology=morph,
        )
        row = {
            "galaxy_id": g.galaxy_id,
            **g.params,
            "flux": flux_from_mag(g.params["mag"], sim_cfg.zero_point),
            "noise_sigma": view.noise_sigma,
            "sn_per_pixel": view.sn_per_pixel,
            "r_petro_px": view.r_petro_px,
        }
        row.update(_observed(image, morph))
        row.update(
            _noise_free(
                truth, noise_sigma=view.noise_sigma, own_sigma=0.0, own_region=None, morph=morph
            )
        )
        rows.append(row)
        images.append(g.image)
        truths.append(g.truth)
    return pd.DataFrame(rows), np.stack(images), np.stack(truths)


def _network(model: str, images: np.ndarray, batch_size: int = 512) -> pd.DataFrame:
    from casnet.evaluation.predictor import Predictor

    return Predictor(model, batch_size=batch_size).predict(images)


def realgap(
    n: int = 1500,
    *,
    sim: SimulateConfig | None = None,
    real_cfg: RealSuiteConfig | None = None,
    morph: MorphologyConfig | None = None,
    k: int = K_MATCH,
    twins: int = TWINS,
    model: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RealGap:
    """Measure the real suite and ``n`` simulated galaxies the same way and match them.

    Parameters
    ----------
    n : int
        Simulated galaxies (drawn with ``sim`` at the real views' magnitudes, flat in magnitude,
        without neighbours: the module docstring).
    sim, real_cfg, morph
        The simulator (and instrument), the real suite (``evaluate.real``) and the conventional
        measurement's settings.
    k : int
        Simulated galaxies matched to each real view (:func:`match`).
    twins : int
        Own-noise twins per real view (x 4 rotations) for the noise-matched comparison.
    model : str, optional
        A combined model (folder or ``models:/`` URI) whose network residuals are compared;
        None: none.

    Raises
    ------
    ValueError
        ``n`` smaller than ``k``, or ``k`` / ``twins`` not positive.
    """
    from casnet.data.real import cutout_footprint, render_real
    from casnet.data.simulate import flux_from_mag

    if k < 1 or twins < 1:
        raise ValueError(f"k and twins must be positive integers, got k={k!r}, twins={twins!r}")
    if n < k:
        raise ValueError(f"n must be at least k = {k}, got {n!r}")
    sim, morph = sim or SimulateConfig(), morph or MorphologyConfig()
    real_cfg = real_cfg or RealSuiteConfig()
    say = log or (lambda _m: None)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    stamps = render_real(real_cfg, sim)
    real = stamps.catalog.reset_index(drop=True).copy()
    size = stamps.truth.shape[1]
    regions = []
    rows = []
    for i in _progress(range(len(real)), len(real), "realgap: real views", progress):
        row = real.iloc[i]
        region = cutout_footprint(
            (size, size),
            side_px=float(row["cutout_arcsec"]) / sim.pixel_scale,
            rotation_deg=float(row["rotation_deg"]),
            offset_px=(float(row["x_offset_px"]), float(row["y_offset_px"])),
        )
        regions.append(region)
        values = _observed(stamps.image[i], morph)
        values.update(
            _noise_free(
                np.asarray(stamps.truth[i], np.float64),
                noise_sigma=float(row["noise_sigma"]),
                own_sigma=float(row["own_noise_sigma"]),
                own_region=region,
                morph=morph,
            )
        )
        rows.append(values)
    real = pd.concat([real, pd.DataFrame(rows)], axis=1)
    # the noise-free stamp's own S/N per pixel: sn_per_pixel's signal over the own noise alone
    with np.errstate(divide="ignore", invalid="ignore"):
        real["ref_sn_per_pixel"] = (
            real["sn_per_pixel"]
            * np.hypot(real["noise_sigma"], real["own_noise_sigma"])
            / real["own_noise_sigma"]
        )
    timings["real_s"] = time.perf_counter() - t0
    say(
        f"real suite: {len(real)} views of {real['cosmos_ident'].nunique()} galaxies "
        f"({timings['real_s']:.0f} s)"
    )

    t0 = time.perf_counter()
    mags = real["mag"].to_numpy(float)
    lo, hi = float(np.nanmin(mags)) - MAG_PAD, float(np.nanmax(mags)) + MAG_PAD
    sim_cfg = override(
        sim, source="realgap", mag_range=(lo, hi), mag_slope=0.0, neighbour_fraction=0.0
    )
    sims, sim_images, sim_truth = _simulated(sim_cfg, n, morph, progress)
    timings["simulate_s"] = time.perf_counter() - t0
    say(f"simulated: {n} galaxies at H {lo:.2f}-{hi:.2f} ({timings['simulate_s']:.0f} s)")

    if model is not None:
        t0 = time.perf_counter()
        for frame, images in ((real, stamps.image), (sims, sim_images)):
            preds = _network(model, images)
            for t in TARGETS:
                frame[f"net_{t}"] = preds[t].to_numpy(float)
        timings["network_s"] = time.perf_counter() - t0

    matches, dist = match(real, sims, k=k)
    real["match_distance"] = dist[:, -1]
    real["match_distance_median"] = np.median(dist, axis=1)

    # the noise-matched comparison: every matched simulated galaxy with the view's own noise
    t0 = time.perf_counter()
    pair_rows = []
    sim_flux = sims["mag"].map(lambda m: flux_from_mag(m, sim.zero_point)).to_numpy(float)
    for i in _progress(range(len(real)), len(real), "realgap: noise-matched", progress):
        row = real.iloc[i]
        if matches[i, 0] < 0:
            continue
        fields, fregions = noise_twins(row, sim, size=size, twins=twins, seed=real_cfg.seed)
        own_unit = float(row["own_noise_sigma"]) / float(row["flux"])
        for rank, j in enumerate(matches[i]):
            f = rank % len(fields)
            flux = sim_flux[j]
            noisy = np.asarray(sim_truth[j], np.float64) + fields[f] * flux
            values = _noise_free(
                noisy,
                noise_sigma=float(row["noise_sigma"]),
                own_sigma=own_unit * flux,
                own_region=fregions[f],
                morph=morph,
            )
            pair_rows.append({"real_row": i, "sim_row": int(j), "rank": rank, **values})
    pairs = pd.DataFrame(pair_rows)
    timings["noise_matched_s"] = time.perf_counter() - t0
    say(f"noise-matched: {len(pairs)} pairs ({timings['noise_matched_s']:.0f} s)")

    real = _percentiles(real, sims, pairs, matches)
    settings = {
        "n": n,
        "k": k,
        "twins": twins,
        "model": model,
        "mag_range": [lo, hi],
        "mag_slope": 0.0,
        "neighbour_fraction": 0.0,
        "sim_seed": sim.seed,
        "real": real_cfg.model_dump(mode="json"),
        "timings_s": timings,
    }
    return RealGap(real, sims, pairs, matches, np.asarray(stamps.truth), sim_truth, settings)


def _percentiles(
    real: pd.DataFrame, sims: pd.DataFrame, pairs: pd.DataFrame, matches: np.ndarray
) -> pd.DataFrame:
    """Per real view: each quantity's percentile among its noise-matched simulated values and
    their 1/5/95/99th percentiles; the joint (A, S) depth; the observed values' percentiles
    among the matched simulated observed values; the matched simulated network residuals."""
    real = real.copy()
    groups = dict(tuple(pairs.groupby("real_row"))) if len(pairs) else {}
    cols: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        cols.setdefault(name, []).append(value)

    net = all(f"net_{t}" in sims and f"net_{t}" in real for t in TARGETS)
    for i in range(len(real)):
        g = groups.get(i)
        for q in QUANTITIES:
            sample = g[q].to_numpy(float) if g is not None else np.zeros(0)
            put(f"{q}_pct", percentile_of(float(real[q].iloc[i]), sample))
            finite = sample[np.isfinite(sample)]
            for p in (1, 5, 50, 95, 99):
                put(f"{q}_sim_p{p:02d}", float(np.percentile(finite, p)) if finite.size else np.nan)
        for name, s_col in JOINT.items():
            point = (float(real["ref_asymmetry"].iloc[i]), float(real[s_col].iloc[i]))
            sample = (
                g[["ref_asymmetry", s_col]].to_numpy(float) if g is not None else np.zeros((0, 2))
            )
            depth, share = orthant_depth(point, sample)
            put(f"{name}_depth", depth)
            put(f"{name}_depth_pct", share)
        rows = matches[i][matches[i] >= 0]
        for q in OBSERVED:
            sample = sims[q].to_numpy(float)[rows]
            put(f"{q}_pct", percentile_of(float(real[q].iloc[i]), sample))
            finite = sample[np.isfinite(sample)]
            for p in (5, 95, 99):
                put(f"{q}_sim_p{p:02d}", float(np.percentile(finite, p)) if finite.size else np.nan)
        if net:
            for t in TARGETS:
                res = (sims[f"net_{t}"] - sims[f"ref_{t}"]).to_numpy(float)[rows]
                res = res[np.isfinite(res)]
                put(f"net_{t}_sim_residual", float(np.median(res)) if res.size else np.nan)
                put(
                    f"net_{t}_sim_residual_p05",
                    float(np.percentile(res, 5)) if res.size else np.nan,
                )
                put(
                    f"net_{t}_sim_residual_p95",
                    float(np.percentile(res, 95)) if res.size else np.nan,
                )
    real = pd.concat([real, pd.DataFrame(cols, index=real.index)], axis=1)
    if net:
        for t in TARGETS:
            real[f"net_{t}_residual"] = real[f"net_{t}"] - real[f"ref_{t}"]
            sims[f"net_{t}_residual"] = sims[f"net_{t}"] - sims[f"ref_{t}"]
    return real


# --------------------------------------------------------------------------- the report


def _share(mask: np.ndarray, valid: np.ndarray) -> float:
    return float(mask[valid].mean()) if valid.any() else float("nan")


def _kind_rows(real: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    kinds = sorted(set(real["kind"].astype(str)))
    return [("all", real)] + [(k, real[real["kind"].astype(str) == k]) for k in kinds]


def _entry(d: pd.DataFrame, pairs: pd.DataFrame, net: bool) -> dict[str, Any]:
    """The report's numbers over the real views ``d`` (a kind, a selection)."""
    entry: dict[str, Any] = {"n_views": len(d), "n_galaxies": int(d["cosmos_ident"].nunique())}
    for q in QUANTITIES:
        pct = d[f"{q}_pct"].to_numpy(float)
        valid = np.isfinite(pct)
        rows = d.index[valid]
        sim_vals = pairs[pairs["real_row"].isin(rows)][q] if len(pairs) else pd.Series([])
        entry[q] = {
            "n": int(valid.sum()),
            "real_median": float(np.nanmedian(d[q])) if valid.any() else np.nan,
            "sim_median": float(np.nanmedian(sim_vals)) if len(sim_vals) else np.nan,
            "above_p95": _share(d[q].to_numpy(float) > d[f"{q}_sim_p95"].to_numpy(float), valid),
            "above_p99": _share(d[q].to_numpy(float) > d[f"{q}_sim_p99"].to_numpy(float), valid),
            "below_p05": _share(d[q].to_numpy(float) < d[f"{q}_sim_p05"].to_numpy(float), valid),
            "below_p01": _share(d[q].to_numpy(float) < d[f"{q}_sim_p01"].to_numpy(float), valid),
            "galaxies_above_p95": int(
                d.loc[valid & (d[q] > d[f"{q}_sim_p95"]).to_numpy(), "cosmos_ident"].nunique()
            ),
        }
    for name in JOINT:
        share = d[f"{name}_depth_pct"].to_numpy(float)
        valid = np.isfinite(share)
        entry[f"joint_{name}"] = {
            "n": int(valid.sum()),
            "outside_95": _share(share < 0.05, valid),
            "outside_99": _share(share < 0.01, valid),
        }
    for q in OBSERVED:
        pct = d[f"{q}_pct"].to_numpy(float)
        valid = np.isfinite(pct)
        v = d[q].to_numpy(float)
        entry[q] = {
            "n": int(valid.sum()),
            "real_median": float(np.nanmedian(v)) if valid.any() else np.nan,
            "above_p95": _share(v > d[f"{q}_sim_p95"].to_numpy(float), valid),
            "above_p99": _share(v > d[f"{q}_sim_p99"].to_numpy(float), valid),
            "below_p05": _share(v < d[f"{q}_sim_p05"].to_numpy(float), valid),
        }
    if net:
        for t in TARGETS:
            res = d[f"net_{t}_residual"].to_numpy(float)
            sim_res = d[f"net_{t}_sim_residual"].to_numpy(float)
            valid = np.isfinite(res) & np.isfinite(sim_res)
            entry[f"net_{t}"] = {
                "n": int(valid.sum()),
                "real_mean_residual": float(res[valid].mean()) if valid.any() else np.nan,
                "real_median_residual": (float(np.median(res[valid])) if valid.any() else np.nan),
                "real_rms_residual": (
                    float(np.sqrt(np.mean(res[valid] ** 2))) if valid.any() else np.nan
                ),
                "sim_matched_median_residual": (
                    float(sim_res[valid].mean()) if valid.any() else np.nan
                ),
                "below_sim_p05": _share(
                    res < d[f"net_{t}_sim_residual_p05"].to_numpy(float), valid
                ),
                "above_sim_p95": _share(
                    res > d[f"net_{t}_sim_residual_p95"].to_numpy(float), valid
                ),
            }
    return entry


def _selections(real: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """Subsets of the real views that test the comparison's robustness: the suite's headline
    S/N per pixel, and the own S/N of the noise-free stamp (below ~8 it is a noisy reference)."""
    sn = real["sn_per_pixel"].to_numpy(float)
    own = real["ref_sn_per_pixel"].to_numpy(float)
    return [
        (f"sn_per_pixel >= {HEADLINE_SN:g}", sn >= HEADLINE_SN),
        (f"own S/N >= {OWN_SN:g}", own >= OWN_SN),
        (f"own S/N < {OWN_SN:g}", own < OWN_SN),
    ]


def realgap_report(gap: RealGap) -> dict[str, Any]:
    """Per kind (and overall): for each compared quantity the real and matched simulated
    medians and the shares of real views above the matched simulated 95th / 99th percentiles and
    below the 5th / 1st; the joint (A, S) region; the observed C and A; the network residuals;
    and the matching's coverage."""
    real, sims, pairs = gap.real, gap.sims, gap.pairs
    report: dict[str, Any] = {
        "settings": gap.settings,
        "n_real_views": len(real),
        "n_real_galaxies": int(real["cosmos_ident"].nunique()),
        "n_sim": len(sims),
        "sim_kinds": {str(k): int(v) for k, v in sims["kind"].value_counts().items()},
        "n_real_ref_flagged": int(real["ref_asymmetry"].isna().sum()),
        "match_distance_median": float(np.nanmedian(real["match_distance"])),
        "match_distance_p90": float(np.nanpercentile(real["match_distance"], 90)),
        "share_poorly_matched": float(np.mean(real["match_distance"] > 2.0)),
        "sim_mag_range": gap.settings.get("mag_range"),
        "real_r_petro_px": [float(np.nanpercentile(real["r_petro_px"], p)) for p in (5, 50, 95)],
        "sim_r_petro_px": [float(np.nanpercentile(sims["r_petro_px"], p)) for p in (5, 50, 95)],
        "quantities": {
            q: {"label": label, "reading": reading} for q, (label, reading) in QUANTITIES.items()
        },
        "by_kind": {},
    }
    net = "net_asymmetry_residual" in real
    for kind, d in _kind_rows(real):
        report["by_kind"][kind] = _entry(d, pairs, net)
    report["by_selection"] = {
        name: _entry(real[mask], pairs, net) for name, mask in _selections(real)
    }
    if net:
        report["network_by_sn"] = _network_by_sn(real, sims)
        report["agreement"] = headline_agreement(gap)
    return report


#: the agreement scores :func:`headline_agreement` reports (keys of
#: :func:`casnet.evaluation.real.real_scores`)
AGREEMENT_KEYS = ("n", "net_conv_r", "net_conv_slope", "net_ref_r", "net_ref_slope",
                  "net_ref_reverse_slope", "conv_ref_r", "conv_ref_slope",
                  "conv_ref_reverse_slope", "rmse_ratio")  # fmt: skip


def headline_agreement(gap: RealGap) -> list[dict[str, Any]]:
    """The real suite's headline scores (:func:`casnet.evaluation.real.real_scores`: network
    and conventional against each other and the noise-free reference, S/N per pixel >=
    :data:`HEADLINE_SN`) on three sets measured the same way: the real views, the simulated
    galaxies at the same magnitudes, and those of them matched to the headline views (the union
    of their :data:`K_MATCH` nearest in magnitude and size).

    Two things follow from it (issue 29's targets). Whether the network's trouble on the real
    views is real morphology or the regime (faint, small galaxies: the network's A is shrunk on
    the simulated galaxies of the same magnitudes and size too). And what any network can reach
    against the conventional measurement: a perfect network (one that returns the noise-free
    reference) has r = ``conv_ref_r`` and slope = ``conv_ref_reverse_slope`` (the reference's
    slope on the conventional value) against it; a target above those is out of reach.
    """
    from casnet.evaluation.real import real_scores

    real, sims = gap.real, gap.sims
    head = real["sn_per_pixel"].to_numpy(float) >= HEADLINE_SN
    sim_head = sims["sn_per_pixel"].to_numpy(float) >= HEADLINE_SN
    matched = np.zeros(len(sims), bool)
    rows = gap.matches[head]
    matched[rows[rows >= 0]] = True
    sets = (("real views", real[head]), ("simulated, same magnitudes", sims[sim_head]),
            ("simulated, matched to those views", sims[sim_head & matched]))  # fmt: skip
    out = []
    for name, d in sets:
        for t in TARGETS:
            s = real_scores(d, t)
            out.append({"set": name, "target": t, **{k: s[k] for k in AGREEMENT_KEYS}})
    return out


def _network_by_sn(real: pd.DataFrame, sims: pd.DataFrame) -> list[dict[str, Any]]:
    """Mean and RMS of net - reference per S/N-per-pixel bin, real views and simulated."""
    out = []
    for lo, hi in itertools.pairwise(SN_EDGES):
        for name, d in (("real", real), ("simulated", sims)):
            sn = d["sn_per_pixel"].to_numpy(float)
            sel = (sn >= lo) & (sn < hi)
            row: dict[str, Any] = {"sn_bin": f"{lo:g}-{hi:g}", "set": name, "n": int(sel.sum())}
            for t in TARGETS:
                res = d[f"net_{t}_residual"].to_numpy(float)[sel]
                res = res[np.isfinite(res)]
                row[f"{t}_mean"] = float(res.mean()) if res.size else np.nan
                row[f"{t}_median"] = float(np.median(res)) if res.size else np.nan
                row[f"{t}_rms"] = float(np.sqrt(np.mean(res**2))) if res.size else np.nan
            out.append(row)
    return out


def _pc(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.0%}"


def _num(x: float, digits: int = 3) -> str:
    return "-" if not np.isfinite(x) else f"{x:.{digits}f}"


def _selection_table(report: dict[str, Any]) -> list[str]:
    """Robustness: the main shares in the selections of :func:`_selections`."""
    sel = report.get("by_selection", {})
    if not sel:
        return []
    lines = [
        "",
        "The same shares over subsets (is the gap the noise of the real references?):",
        "",
        "| views | N (galaxies) | A > p95 | S_psf > p95 | centroid offset > p95 "
        "| C < p5 | joint (A, S_psf) outside 95% |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in sel.items():
        lines.append(
            f"| {name} | {e['n_views']} ({e['n_galaxies']}) | "
            f"{_pc(e['ref_asymmetry']['above_p95'])} | {_pc(e['clumpiness']['above_p95'])} | "
            f"{_pc(e['centroid_offset']['above_p95'])} | "
            f"{_pc(e['ref_concentration']['below_p05'])} | "
            f"{_pc(e['joint_a_spsf']['outside_95'])} |"
        )
    return lines


def _agreement_table(report: dict[str, Any]) -> list[str]:
    """The headline agreement (:func:`headline_agreement`) as a table, with what a perfect
    network would score against the conventional measurement."""
    rows = report.get("agreement")
    if not rows:
        return []
    lines = [
        "",
        f"The real suite's headline scores (sn_per_pixel >= {HEADLINE_SN:g}) on the real views "
        "and on simulated galaxies at the same magnitudes, measured the same way: network (net) "
        "and conventional (conv) against each other and against the noise-free reference "
        "(ref); slope of the first on the second, reverse slope the second on the first. "
        "*Perfect network*: a network that returned the noise-free reference would score "
        "r = conv-ref r and slope = conv-ref reverse slope against the conventional value.",
        "",
        "| target | set | N | net-conv r | net-conv slope | net-ref r | net-ref slope "
        "| ref-on-net slope | RMSE ratio | conv-ref r | conv-ref slope "
        "| perfect network: r / slope vs conv |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['set']} | {r['n']} | {_num(r['net_conv_r'], 2)} | "
            f"{_num(r['net_conv_slope'], 2)} | {_num(r['net_ref_r'], 2)} | "
            f"{_num(r['net_ref_slope'], 2)} | {_num(r['net_ref_reverse_slope'], 2)} | "
            f"{_num(r['rmse_ratio'], 2)} | {_num(r['conv_ref_r'], 2)} | "
            f"{_num(r['conv_ref_slope'], 2)} | {_num(r['conv_ref_r'], 2)} / "
            f"{_num(r['conv_ref_reverse_slope'], 2)} |"
        )
    return lines


def _pair_row(label: str, by_kind: dict, quantity: str, keys: tuple[str, str],
              fmt: Callable[[float], str] = _pc) -> str:  # fmt: skip
    """One table row: per visual kind, ``first / second`` of ``by_kind[kind][quantity]``."""
    cells = [f"{fmt(stats[quantity][keys[0]])} / {fmt(stats[quantity][keys[1]])}"
             for stats in by_kind.values()]  # fmt: skip
    return f"| {label} | " + " | ".join(cells) + " |"


def format_realgap(report: dict[str, Any]) -> str:
    """Markdown: the coverage, per kind the shares outside the matched simulated 95/99% regions,
    the medians, the observed values and the network residuals."""
    s = report["settings"]
    lo, hi = s["mag_range"]
    lines = [
        f"{report['n_real_views']} real views of {report['n_real_galaxies']} COSMOS galaxies "
        f"against {report['n_sim']} simulated galaxies (H {lo:.2f}-{hi:.2f}, flat in magnitude, "
        f"no neighbours; kinds {report['sim_kinds']}); each view matched to its {s['k']} "
        f"nearest in (H / {MAG_SCALE:g} mag, log R_p / {SIZE_SCALE_DEX:g} dex): scaled distance "
        f"of the farthest match median {report['match_distance_median']:.2f}, 90th percentile "
        f"{report['match_distance_p90']:.2f}; {report['share_poorly_matched']:.0%} of views "
        "beyond 2. R_p (px) 5/50/95%: real "
        + "/".join(f"{v:.1f}" for v in report["real_r_petro_px"])
        + ", simulated "
        + "/".join(f"{v:.1f}" for v in report["sim_r_petro_px"])
        + ". Simulated values are noise-matched: each matched galaxy measured with the real "
        "view's own HST noise added (twins of the cutout's noise).",
        "",
        "Share of real views above the matched simulated 95th / 99th percentile "
        "(noise-free stamps; the joint (A, S): outside the simulated 95% / 99% upper-orthant "
        "region):",
        "",
    ]
    kinds = list(report["by_kind"])
    head = (
        "| quantity | "
        + " | ".join(f"{k} (N={report['by_kind'][k]['n_views']})" for k in kinds)
        + " |"
    )
    rule = [head, "|---" * (len(kinds) + 1) + "|"]  # the per-kind tables' header
    lines += rule
    by_kind = report["by_kind"]
    for q, (label, _) in QUANTITIES.items():
        lines.append(_pair_row(label, by_kind, q, ("above_p95", "above_p99")))
    for name, s_col in JOINT.items():
        label = f"joint (A, {QUANTITIES[s_col][0].split()[0]})"
        lines.append(_pair_row(label, by_kind, f"joint_{name}", ("outside_95", "outside_99")))
    for q, label in OBSERVED.items():
        lines.append(_pair_row(f"{label}, not noise-matched", by_kind, q,
                               ("above_p95", "above_p99")))  # fmt: skip
    lines += _selection_table(report)
    below = "Share of real views below the matched simulated 5th / 1st percentile:"
    lines += ["", below, "", *rule]
    for q, (label, _) in QUANTITIES.items():
        lines.append(_pair_row(label, by_kind, q, ("below_p05", "below_p01")))
    lines += ["", "Medians, real / matched simulated (noise-matched):", "", *rule]
    for q, (label, _) in QUANTITIES.items():
        digits = 1 if q == "n_peaks" else 3
        lines.append(_pair_row(label, by_kind, q, ("real_median", "sim_median"),
                               lambda v, d=digits: _num(v, d)))  # fmt: skip
    if "network_by_sn" in report:
        lines += [
            "",
            "Network residuals (net - noise-free reference), real views: median / RMS; "
            "their matched simulated galaxies (not noise-matched): mean of the median; "
            "share of real views below the matched simulated 5th percentile:",
            "",
            "| kind | N | A real median / RMS | A sim | A below sim p5 | C real median / RMS "
            "| C sim | C below sim p5 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in kinds:
            e = report["by_kind"][k]
            a, c = e["net_asymmetry"], e["net_concentration"]
            lines.append(
                f"| {k} | {a['n']} | {_num(a['real_median_residual'])} / "
                f"{_num(a['real_rms_residual'])} | {_num(a['sim_matched_median_residual'])} | "
                f"{_pc(a['below_sim_p05'])} | {_num(c['real_median_residual'], 2)} / "
                f"{_num(c['real_rms_residual'], 2)} | {_num(c['sim_matched_median_residual'], 2)}"
                f" | {_pc(c['below_sim_p05'])} |"
            )
        lines += [
            "",
            "Network residuals per S/N per pixel (median / RMS):",
            "",
            "| S/N per pixel | set | N | A | C |",
            "|---|---|---|---|---|",
        ]
        for r in report["network_by_sn"]:
            lines.append(
                f"| {r['sn_bin']} | {r['set']} | {r['n']} | "
                f"{_num(r['asymmetry_median'])} / {_num(r['asymmetry_rms'])} | "
                f"{_num(r['concentration_median'], 2)} / "
                f"{_num(r['concentration_rms'], 2)} |"
            )
    lines += _agreement_table(report)
    t = s.get("timings_s", {})
    lines += [
        "",
        "Run time: " + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in t.items()),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _kind_colours(real: pd.DataFrame) -> dict[str, str]:
    return {k: f"C{i % 10}" for i, k in enumerate(sorted(set(real["kind"].astype(str))))}


def plot_plane(gap: RealGap, out: str | Path) -> Path:
    """The A-S_psf, A-S, C-A, peak one-sidedness-centroid offset and peaks-peak light planes:
    the noise-matched simulated values (grey density: every matched pair) with the real views by
    kind; and the magnitude-size plane of both sets (the matching)."""
    real, pairs, sims = gap.real, gap.pairs, gap.sims
    colours = _kind_colours(real)
    fig = Figure(figsize=(14.0, 8.6))
    axes = fig.subplots(2, 3).ravel()
    panels = (
        ("ref_asymmetry", "clumpiness"),
        ("ref_asymmetry", "smoothness"),
        ("ref_concentration", "ref_asymmetry"),
        ("peak_dipole", "centroid_offset"),
        ("n_peaks", "peak_fraction"),
    )
    for ax, (x, y) in zip(axes[:5], panels, strict=True):
        both = pd.concat([pairs[[x, y]], real[[x, y]]]).to_numpy(float)
        both = both[np.isfinite(both).all(axis=1)]
        if both.size:
            (x0, y0), (x1, y1) = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
            x1, y1 = max(x1, x0 + 1e-6), max(y1, y0 + 1e-6)
            p = pairs[[x, y]].to_numpy(float)
            p = p[np.isfinite(p).all(axis=1)]
            if len(p):
                ax.hexbin(
                    p[:, 0],
                    p[:, 1],
                    gridsize=40,
                    cmap="Greys",
                    bins="log",
                    mincnt=1,
                    extent=(x0, x1, y0, y1),
                )
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        for kind, c in colours.items():
            d = real[real["kind"].astype(str) == kind]
            ax.scatter(
                d[x],
                d[y],
                s=10,
                color=c,
                label=f"{kind} ({len(d)})",
                edgecolors="k",
                linewidths=0.2,
            )
        ax.set_xlabel(QUANTITIES[x][0])
        ax.set_ylabel(QUANTITIES[y][0])
    axes[0].set_title(
        f"grey: the {gap.settings.get('k', '')} simulated galaxies matched to each "
        "view, with its own noise",
        fontsize=8,
    )
    axes[0].legend(fontsize=6, markerscale=1.5)
    ax = axes[5]
    ax.scatter(sims["mag"], sims["r_petro_px"], s=3, c="0.6", label=f"simulated ({len(sims)})")
    for kind, c in colours.items():
        d = real[real["kind"].astype(str) == kind]
        ax.scatter(d["mag"], d["r_petro_px"], s=10, color=c, edgecolors="k", linewidths=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("H (AB mag)")
    ax.set_ylabel("R_p (px, noise-free)")
    ax.legend(fontsize=7)
    ax.set_title("matching plane", fontsize=8)
    return save_figure(fig, out)


def _crop(image: np.ndarray, half: int) -> np.ndarray:
    ny, nx = image.shape
    cy, cx = ny // 2, nx // 2
    return image[max(cy - half, 0) : cy + half + 1, max(cx - half, 0) : cx + half + 1]


def outside_views(gap: RealGap, n: int = N_OUTSIDE) -> pd.DataFrame:
    """The real views furthest outside the matched simulated (A, S_psf) distribution, one view
    per galaxy: the lowest joint depth share first, ties broken by the larger of the A and
    S_psf percentiles."""
    real = gap.real
    d = real[np.isfinite(real["a_spsf_depth_pct"])].copy()
    d["_order"] = d["a_spsf_depth_pct"] - 1e-3 * np.fmax(
        d["ref_asymmetry_pct"], d["clumpiness_pct"]
    )
    d = d.sort_values(["_order", "a_spsf_depth"]).drop_duplicates("cosmos_ident")
    return d.head(n).drop(columns="_order")


def _band(image: np.ndarray, r_petro: float) -> np.ndarray:
    """The PSF-filtered residual the clumpiness sums (:data:`CLUMPINESS`)."""
    return residual_image(
        image,
        r_petro,
        presmooth_fwhm=CLUMPINESS["presmooth_fwhm"],
        min_boxcar=int(CLUMPINESS["min_boxcar"]),
    )


def plot_outside(gap: RealGap, out: str | Path, *, n: int = N_OUTSIDE) -> Path:
    """One row per real view outside the simulated (A, S_psf) region (:func:`outside_views`):
    its noise-free stamp and PSF-filtered residual, its three nearest matched simulated galaxies
    (mag, size), and the clumpiest (largest noise-matched S_psf) of its matches with its
    residual; simulated stamps drawn noise-free, titles give their noise-matched A and S_psf."""
    picks = outside_views(gap, n)
    cols = 7
    fig = Figure(figsize=(2.0 * cols, 2.3 * max(len(picks), 1)))
    axes = fig.subplots(max(len(picks), 1), cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    pairs = gap.pairs.set_index(["real_row", "sim_row"])
    for r, (i, row) in enumerate(picks.iterrows()):
        rp = float(row["ref_r_petro"]) if np.isfinite(row["ref_r_petro"]) else 10.0
        half = int(np.clip(1.6 * rp, 12, 50))
        truth = np.asarray(gap.real_truth[i], np.float64)
        matched = gap.matches[i][gap.matches[i] >= 0]
        sub = gap.pairs[gap.pairs["real_row"] == i].dropna(subset=["clumpiness"])
        clumpiest = int(sub.loc[sub["clumpiness"].idxmax(), "sim_row"]) if len(sub) else None
        panels = [
            (
                truth,
                f"{row['kind']}, H {row['mag']:.1f} ({row['galaxy_id']})\n"
                f"A {row['ref_asymmetry']:.2f} S_psf {row['clumpiness']:.3f}",
                False,
            ),
            (
                _band(truth, rp),
                f"residual; peak light {row['peak_fraction']:.2f}\n"
                f"pct: A {row['ref_asymmetry_pct']:.2f}, "
                f"S_psf {row['clumpiness_pct']:.2f}",
                True,
            ),
        ]
        for j in list(matched[:3]) + ([clumpiest] if clumpiest is not None else []):
            s = gap.sims.iloc[j]
            pv = pairs.loc[(i, j)] if (i, j) in pairs.index else None
            pv = pv.iloc[0] if isinstance(pv, pd.DataFrame) else pv
            a_s = "" if pv is None else f"A {pv['ref_asymmetry']:.2f} S_psf {pv['clumpiness']:.3f}"
            tag = "clumpiest match" if j == clumpiest else "nearest"
            panels.append(
                (
                    np.asarray(gap.sim_truth[j], np.float64),
                    f"sim {s['kind']} ({tag}), H {s['mag']:.1f}\n{a_s}",
                    False,
                )
            )
        if clumpiest is not None:
            srp = float(gap.sims["ref_r_petro"].iloc[clumpiest])
            srp = srp if np.isfinite(srp) and srp > 0 else rp
            panels.append((_band(gap.sim_truth[clumpiest], srp), "its residual", True))
        for c, (image, title, diverging) in enumerate(panels[:cols]):
            ax = axes[r][c]
            im = _crop(image, half)
            if diverging:
                v = float(np.nanpercentile(np.abs(im), 99.5)) or 1.0
                ax.imshow(im, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
            else:
                top = float(np.nanpercentile(im, 99.8)) or 1.0
                ax.imshow(
                    np.arcsinh(np.clip(im, 0, None) / (0.05 * top)), origin="lower", cmap="gray_r"
                )
            ax.set_title(title, fontsize=6)
    fig.suptitle(
        "Real views outside the simulated (A, S_psf) region (noise-free, with the "
        "PSF-filtered residual) beside their nearest matched simulated galaxies (H, "
        "R_p) and the clumpiest of their matches (noise-free)",
        fontsize=9,
    )
    return save_figure(fig, out)


def plot_residuals(gap: RealGap, out: str | Path) -> Path:
    """Network - reference against S/N per pixel: simulated (grey) and real views by kind, A
    (left) and C (right)."""
    real, sims = gap.real, gap.sims
    colours = _kind_colours(real)
    fig = Figure(figsize=(11.0, 4.2))
    axes = fig.subplots(1, 2)
    for ax, t in zip(axes, TARGETS[::-1], strict=True):
        col = f"net_{t}_residual"
        if col not in real:
            continue
        ax.scatter(sims["sn_per_pixel"], sims[col], s=3, c="0.65", label="simulated")
        for kind, c in colours.items():
            d = real[real["kind"].astype(str) == kind]
            ax.scatter(
                d["sn_per_pixel"], d[col], s=10, color=c, label=kind, edgecolors="k", linewidths=0.2
            )
        ax.axhline(0, c="k", lw=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("S/N per pixel (statmorph's)")
        ax.set_ylabel(f"{t}: network - noise-free reference")
        v = pd.concat([sims[col], real[col]]).to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size:
            lo, hi = np.percentile(v, [1, 99])
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    axes[0].legend(fontsize=6, markerscale=1.5)
    return save_figure(fig, out)
