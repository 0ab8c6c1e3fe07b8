"""Real galaxies as the pipeline's stamps: 88 COSMOS HST galaxies re-observed as CANDELS F160W
(issue 29; the real-morphology suite).

The vendored folder :data:`REAL_DIR` holds 88 COSMOS HST ACS F814W cutouts (0.03"/px) with their
own ACS PSFs, in GalSim's ``RealGalaxyCatalog`` format (provenance in its ``README.md``), and a
visual kind for each (``kinds.csv``). A view of a galaxy is drawn the way
:func:`casnet.data.simulate.simulate_galaxy` draws its targets: ``galsim.RealGalaxy`` (the cutout
deconvolved by its own ACS PSF), rotated, shifted by a sub-pixel offset (a cutout is never centred
on a pixel), convolved with the simulator's F160W PSF (:func:`casnet.data.psf.psf_model`) and drawn
on the simulator's 0.06"/px grid with the pixel response (GalSim's ``method='auto'``); then the
simulator's survey noise is added: white + COSMOS-correlated sky noise at ``simulate.depth_5sigma``
(:func:`casnet.data.noise.sky_noise`) and the sources' Poisson noise
(:func:`casnet.data.noise.source_noise`) when ``simulate.exposure_time_s`` is set.

The F814W morphology stands in for F160W: no morphological K-correction is modelled (at z ~ 1
F814W sees rest-frame ~400 nm and F160W ~800 nm, where star-forming clumps stand out less against
the disk), so the suite asks how the networks read real structure, not how these galaxies would
look in H.

**Truth and its own noise.** ``truth`` is the render before the survey noise is added: the PSF-
convolved galaxy with the cutout's own HST noise in it, scaled with the flux and smoothed by the
re-convolution. It is the noise-free reference only where that noise is a small share of the
stamp's: each view's own noise is measured (:func:`measure_view`) and each galaxy is rendered no
brighter than ``max_own_noise_share`` allows. The rendered flux (``flux``, ``mag``) is the
cutout's whole sum, its own noise and any neighbour inside the cutout included.

**Galaxy pixels and S/N per pixel.** statmorph's ``sn_per_pixel``: the mean of pixel / sigma over
its Gini segmap, the pixels of the image smoothed by a Gaussian of sigma = 0.2 r_p brighter than
the mean of that smoothed image in an elliptical annulus of width 1 px at the Petrosian radius
r_p, the 8-connected region holding the brightest (statmorph 0.7 ``_segmap_gini``). Here the
segmap, r_p (eta 0.2, the project's :func:`casnet.morphology.petrosian.petrosian_radius`) and the
signal come from the truth, so the value is the expectation of statmorph's on the observed stamp,
and sigma per pixel is sqrt(noise_sigma^2 + own_noise_sigma^2 + truth / exposure) (statmorph's
weight map with the gain). statmorph distrusts its measurements below 2.5.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import galsim
import numpy as np
import pandas as pd
from astropy.io import fits
from scipy import ndimage

from casnet.core.layout import EVALUATION_ONLY
from casnet.data.io.store import StampStore, StoreWriter
from casnet.data.noise import sky_noise, source_noise
from casnet.data.psf import psf_model
from casnet.data.settings import RealSuiteConfig, SimulateConfig
from casnet.data.simulate import flux_from_mag, sky_sigma_per_pixel
from casnet.morphology.extent import noiseless_fit
from casnet.morphology.growth import growth_curve
from casnet.morphology.petrosian import petrosian_radius
from casnet.morphology.segmentation import smooth
from casnet.morphology.settings import MorphologyConfig
from casnet.morphology.shape import elliptical_radius, second_moments
from casnet.morphology.sky import MIN_SKY_PIXELS, sky_background

__all__ = [
    "CATALOG_FILE",
    "KINDS",
    "KINDS_FILE",
    "REAL_DIR",
    "RealStamps",
    "ViewMeasurement",
    "cutout_footprint",
    "draw_view",
    "kinds",
    "measure_view",
    "real_catalog",
    "render_real",
    "write_real_store",
]

#: the vendored COSMOS galaxies (``README.md`` there says where they come from)
REAL_DIR = Path(__file__).resolve().parent / "real_galaxies"
CATALOG_FILE = "cosmos_catalog.fits"
KINDS_FILE = "kinds.csv"
#: the visual kinds of ``kinds.csv`` (assigned by eye on the ACS images, 2026-12-07)
KINDS = ("clumpy disk", "lopsided disk", "irregular", "smooth disk", "spheroid", "pair/merger")

#: pixels inside the edge of a cutout's footprint left out when its own noise is measured: the
#: F160W PSF over the ACS one spreads the cutout's edge over ~2 px of the 0.06" grid
_FOOTPRINT_MARGIN_PX = 2.0
#: own-noise sky: pixels of the (FWHM 3 px smoothed) truth above 2 of its own noise sigmas,
#: grown by 3 px, are the galaxy's light, not its noise
_OWN_LIGHT_NSIGMA = 2.0
_LIGHT_GROW_PX = 3
_OWN_ITERATIONS = 3
#: fewest pixels of the footprint off the galaxy for its own noise to be measured on the render
_MIN_OWN_SKY_PIXELS = 2 * MIN_SKY_PIXELS
#: noise twins pooled per galaxy: the std of one twin's few footprint pixels scatters by 10-20%
_TWINS = 4
#: observed sky: pixels of the smoothed truth above 0.5 survey sigma, grown by 5 px, are left out
_SKY_LIGHT_NSIGMA = 0.5
_SKY_GROW_PX = 5
#: statmorph's Gini segmap: Gaussian smoothing sigma in units of r_p, annulus width (px)
_GINI_SMOOTH_RP = 0.2
_GINI_ANNULUS_PX = 1.0
_SMOOTH_FWHM_PX = 3.0
#: a galaxy below the detection threshold is found as the light above this fraction of the
#: smoothed truth's peak within this many px of the stamp centre
_PEAK_FRACTION = 0.2
_PEAK_BOX = 5


@lru_cache(maxsize=4)
def _catalog(folder: str) -> galsim.RealGalaxyCatalog:
    return galsim.RealGalaxyCatalog(CATALOG_FILE, dir=folder, preload=True)


def real_catalog(folder: Path | None = None) -> galsim.RealGalaxyCatalog:
    """The GalSim ``RealGalaxyCatalog`` of ``folder`` (default :data:`REAL_DIR`), read once per
    process."""
    folder = Path(folder or REAL_DIR)
    if not (folder / CATALOG_FILE).is_file():
        raise FileNotFoundError(f"{folder / CATALOG_FILE}: no real-galaxy catalogue")
    return _catalog(str(folder.resolve()))


def kinds(folder: Path | None = None) -> dict[int, str]:
    """IDENT -> visual kind (one of :data:`KINDS`) from ``folder/kinds.csv``."""
    path = Path(folder or REAL_DIR) / KINDS_FILE
    with path.open(newline="") as f:
        out = {int(row["IDENT"]): row["kind"] for row in csv.DictReader(f)}
    unknown = sorted({k for k in out.values() if k not in KINDS})
    if unknown:
        raise ValueError(f"{path}: unknown kinds {unknown}; allowed: {', '.join(KINDS)}")
    return out


@lru_cache(maxsize=4)
def _columns(folder: str) -> pd.DataFrame:
    """IDENT, MAG (F814W), the cutout's side (px) and the photometric redshift, in catalogue
    order."""
    with fits.open(Path(folder) / CATALOG_FILE) as hdul:
        main = hdul[1].data
        df = pd.DataFrame({"IDENT": main["IDENT"].astype(np.int64),
                           "MAG": main["MAG"].astype(np.float64)})  # fmt: skip
    fit_file = Path(folder) / CATALOG_FILE.replace(".fits", "_fits.fits")
    if fit_file.is_file():
        with fits.open(fit_file) as hdul:
            fit = hdul[1].data
            z = dict(zip(fit["IDENT"].astype(np.int64), fit["ZPHOT"], strict=True))
        df["ZPHOT"] = [float(z.get(i, np.nan)) for i in df["IDENT"]]
    else:
        df["ZPHOT"] = np.nan
    return df


@dataclass(frozen=True)
class RealStamps:
    """The rendered views.

    Attributes
    ----------
    catalog : DataFrame
        One row per view (columns in :func:`render_real`).
    image : (N, S, S) float32 ndarray
        Observed stamps: the truth + survey noise.
    truth : (N, S, S) float32 ndarray
        The render before the survey noise: the reference (it carries the galaxy's own, small,
        HST noise).
    params : dict
        The settings they were rendered with (``real``, ``simulate``): the store's metadata.
    """

    catalog: pd.DataFrame
    image: np.ndarray
    truth: np.ndarray
    params: dict = field(default_factory=dict)


def draw_view(
    profile: galsim.GSObject,
    sim: SimulateConfig,
    *,
    stamp_size: int | None = None,
    rotation_deg: float = 0.0,
    offset_px: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """``profile`` (arcsec units, centred on 0) rotated by ``rotation_deg`` counter-clockwise,
    shifted by ``offset_px`` (x, y) of the output grid, convolved with the simulator's PSF and
    drawn on its grid with the pixel response, as the simulator draws its targets; float64."""
    size = stamp_size or sim.stamp_size
    scale = sim.pixel_scale
    shifted = profile.rotate(rotation_deg * galsim.degrees).shift(
        offset_px[0] * scale, offset_px[1] * scale
    )
    image = galsim.Convolve(shifted, psf_model(sim)).drawImage(nx=size, ny=size, scale=scale)
    return np.asarray(image.array, dtype=np.float64)


def cutout_footprint(shape: tuple[int, int], *, side_px: float, rotation_deg: float = 0.0,
                     offset_px: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # fmt: skip
    """The pixels of a ``shape`` stamp inside a square cutout of side ``side_px`` rotated by
    ``rotation_deg`` counter-clockwise about the stamp centre shifted by ``offset_px`` (x, y):
    where a rendered view's own HST noise is (:func:`render_real` draws its views so)."""
    yy, xx = np.indices(shape, dtype=np.float64)
    dx = xx - ((shape[1] - 1) / 2 + offset_px[0])
    dy = yy - ((shape[0] - 1) / 2 + offset_px[1])
    a = math.radians(rotation_deg)
    u = dx * math.cos(a) + dy * math.sin(a)
    v = -dx * math.sin(a) + dy * math.cos(a)
    return (np.abs(u) <= side_px / 2) & (np.abs(v) <= side_px / 2)


def _footprint(size: int, cutout_arcsec: float, scale: float, rotation_deg: float,
               offset_px: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # fmt: skip
    """:func:`cutout_footprint` less :data:`_FOOTPRINT_MARGIN_PX` on each side: the pixels
    where the own noise is measured."""
    side = cutout_arcsec / scale - 2 * _FOOTPRINT_MARGIN_PX
    return cutout_footprint((size, size), side_px=side, rotation_deg=rotation_deg,
                            offset_px=offset_px)  # fmt: skip


def _own_noise_on_render(unit: np.ndarray, footprint: np.ndarray) -> tuple[float, int]:
    """Sigma-clipped std of the render's own noise in ``footprint``, its light left out (the
    smoothed render above :data:`_OWN_LIGHT_NSIGMA` of a first, clipped estimate, grown), and the
    number of pixels it used. Scale-free: a render k times brighter gives k times the sigma."""
    if not footprint.any():
        return float("nan"), 0
    sky = sky_background(unit, mask=~footprint)
    smoothed = smooth(unit, _SMOOTH_FWHM_PX)
    for _ in range(_OWN_ITERATIONS):  # the first pass holds galaxy light: mask, measure again
        light = smoothed > sky.mean + _OWN_LIGHT_NSIGMA * sky.sigma
        light = ndimage.binary_dilation(light, iterations=_LIGHT_GROW_PX)
        sky = sky_background(unit, mask=~footprint | light)
        if sky.n_pixels == 0:
            break
    return sky.sigma, sky.n_pixels


def _noise_twin(
    catalog: galsim.RealGalaxyCatalog, index: int, sim: SimulateConfig, *, seed: int
) -> float:
    """Own noise per unit flux measured on noise twins of a galaxy: cutouts of its size filled
    with the catalogue's noise (its variance and the ACS correlation function), deconvolved by
    its ACS PSF, scaled as the galaxy is (1 / the cutout's sum) and drawn unrotated on the
    simulator's grid; the std of :data:`_TWINS` of them pooled over the footprint. For cutouts
    the galaxy fills, where the render has no pixel of its own noise to spare."""
    gal_image = catalog.getGalImage(index)
    psf_image = catalog.getPSFImage(index)
    noise_image, pixel_scale, var = catalog.getNoiseProperties(index)
    noise = catalog.getNoise(index, rng=galsim.BaseDeviate(seed))
    size_arcsec = gal_image.array.shape[0] * gal_image.scale
    size = 2 * math.ceil(size_arcsec / sim.pixel_scale / 2) + 17  # footprint + PSF wings
    fp = _footprint(size, size_arcsec, sim.pixel_scale, 0.0)
    if not fp.any():
        return float("nan")
    values = []
    for _ in range(_TWINS):
        twin_image = galsim.ImageD(gal_image.bounds, scale=gal_image.scale)
        twin_image.addNoise(noise)
        twin = galsim.RealGalaxy(
            (twin_image, psf_image, noise_image, pixel_scale, var),
            flux_rescale=1.0 / float(np.sum(gal_image.array)),
        )
        values.append(draw_view(twin, sim, stamp_size=size)[fp])
    return float(np.std(np.concatenate(values)))


def _own_noise_per_flux(
    unit: np.ndarray, cutout_arcsec: float, sim: SimulateConfig, *, rotation_deg: float,
    offset_px: tuple[float, float], twin: float,
) -> tuple[float, str]:  # fmt: skip
    """The own noise of a unit-flux render and where it was measured.

    On the render (``'truth'``) where the cutout's footprint keeps at least
    :data:`_MIN_OWN_SKY_PIXELS` pixels off the galaxy and some light was found to leave out;
    else the galaxy's noise twin (``'twin'``, :func:`_noise_twin`). On the 32 galaxies with
    >= 100 such pixels (unrotated) the two agree: render / twin median 0.94, 10-90% 0.84-1.05;
    with fewer, the galaxy's light reaches the pixels left and the render reads up to 4x high.
    """
    fp = _footprint(unit.shape[0], cutout_arcsec, sim.pixel_scale, rotation_deg, offset_px)
    sigma, n = _own_noise_on_render(unit, fp)
    if _MIN_OWN_SKY_PIXELS <= n < np.count_nonzero(fp) and sigma > 0:
        return sigma, "truth"
    return twin, "twin"


def _central(mask: np.ndarray, centre: tuple[float, float], *, connectivity: int = 1) -> np.ndarray:
    """The connected region of ``mask`` holding ``centre`` (x, y), or the one nearest to it."""
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity))
    if n == 0:
        return mask
    cy, cx = round(centre[1]), round(centre[0])
    label = labels[cy, cx]
    if label == 0:
        yy, xx = np.nonzero(labels)
        k = int(np.argmin((yy - centre[1]) ** 2 + (xx - centre[0]) ** 2))
        label = labels[yy[k], xx[k]]
    return labels == label


@dataclass(frozen=True)
class ViewMeasurement:
    """What :func:`measure_view` measures on one view (its fields are catalogue columns)."""

    noise_sigma: float
    survey_noise_sigma: float
    sn_per_pixel: float
    n_galaxy_pixels: int
    r_petro_px: float
    stamp_fits: bool
    x_centroid_px: float
    y_centroid_px: float


def measure_view(
    image: np.ndarray,
    truth: np.ndarray,
    *,
    own_noise_sigma: float,
    nominal_sigma: float,
    exposure_s: float | None,
    morphology: MorphologyConfig | None = None,
) -> ViewMeasurement:
    """Noise, S/N per pixel and fit of one view (module docstring).

    ``noise_sigma``: sigma-clipped std of ``image`` over the stamp's sky (the smoothed truth
    above 0.5 ``nominal_sigma``, grown by 5 px, left out); ``survey_noise_sigma``: the same of
    ``image - truth`` (the survey noise alone, as added). The centre is the light-weighted
    centroid of the truth's central detection (``morphology``'s threshold at ``nominal_sigma``).
    """
    morph = morphology or MorphologyConfig()
    size = truth.shape[0]
    light = smooth(truth, _SMOOTH_FWHM_PX) > _SKY_LIGHT_NSIGMA * nominal_sigma
    light = ndimage.binary_dilation(light, iterations=_SKY_GROW_PX)
    noise_sigma = sky_background(image, mask=light).sigma
    survey_sigma = sky_background(image - truth, mask=light).sigma

    # the centre: the light-weighted centroid of the central detection; the detection threshold
    # is the measurement's (detect_nsigma on the smoothed stamp), or a fifth of the smoothed
    # truth's central peak for a galaxy too faint to reach it (most views fainter than H ~ 27)
    middle = ((size - 1) / 2, (size - 1) / 2)
    smoothed = smooth(truth, morph.smooth_fwhm)
    box = slice(int(middle[0]) - _PEAK_BOX, int(middle[0]) + _PEAK_BOX + 1)
    peak = float(smoothed[box, box].max())
    threshold = min(morph.detect_nsigma * nominal_sigma, _PEAK_FRACTION * peak)
    region = _central(smoothed > threshold, middle)
    shape = second_moments(truth, region)
    centre = middle if shape is None else (shape.x, shape.y)
    q, pa = (1.0, 0.0) if shape is None else (shape.q, shape.pa)
    fit = noiseless_fit(truth, centre, nominal_sigma, morph)
    curve = growth_curve(truth, x0=centre[0], y0=centre[1], q=q, pa=pa, subsample=2,
                         subsample_radius=0.0)  # fmt: skip
    r_p = petrosian_radius(curve, eta=morph.eta, inner=morph.annulus_inner,
                           outer=morph.annulus_outer)  # fmt: skip
    sn, n_seg = float("nan"), 0
    if np.isfinite(r_p) and noise_sigma > 0:
        smoothed = ndimage.gaussian_filter(truth, _GINI_SMOOTH_RP * r_p, mode="constant")
        yy, xx = np.indices(truth.shape)
        radius = elliptical_radius(xx - centre[0], yy - centre[1], q, pa)
        annulus = np.abs(radius - r_p) <= _GINI_ANNULUS_PX / 2
        if annulus.any():
            brightest = np.unravel_index(int(np.argmax(smoothed)), smoothed.shape)
            seg = _central(smoothed >= smoothed[annulus].mean(), brightest[::-1], connectivity=2)
            seg &= truth >= 0
            var = noise_sigma**2 + own_noise_sigma**2
            if exposure_s:
                var = var + np.clip(truth, 0.0, None) / exposure_s
            var = np.broadcast_to(var, truth.shape)
            n_seg = int(np.count_nonzero(seg))
            if n_seg:
                sn = float(np.mean(truth[seg] / np.sqrt(var[seg])))
    return ViewMeasurement(
        noise_sigma=float(noise_sigma),
        survey_noise_sigma=float(survey_sigma),
        sn_per_pixel=sn,
        n_galaxy_pixels=n_seg,
        r_petro_px=float(r_p),
        stamp_fits=bool(fit.fits),
        x_centroid_px=float(centre[0] - middle[0]),
        y_centroid_px=float(centre[1] - middle[1]),
    )


def _ladder(cfg: RealSuiteConfig) -> np.ndarray:
    lo, hi = cfg.mag_offset_range
    return np.linspace(lo, hi, cfg.views) if cfg.views > 1 else np.array([lo])


def _rotation(cfg: RealSuiteConfig, view: int, rng: np.random.Generator) -> float:
    angle = float(rng.uniform(0.0, 360.0))  # drawn whatever the policy: the offsets stay put
    if cfg.rotation == "grid":
        return 360.0 * view / cfg.views
    return angle if cfg.rotation == "random" else 0.0


def render_real(
    cfg: RealSuiteConfig,
    sim: SimulateConfig,
    *,
    indices: Sequence[int] | None = None,
    folder: Path | None = None,
) -> RealStamps:
    """Render the views of the vendored real galaxies as the simulator's stamps.

    Parameters
    ----------
    cfg : RealSuiteConfig
        Views, magnitudes, rotations, seed.
    sim : SimulateConfig
        The instrument: PSF, pixel scale, stamp size (unless ``cfg.stamp_size``), zero point,
        depth and noise.
    indices : sequence of int, optional
        Catalogue rows (0-based) to render; default all (the first ``cfg.max_galaxies``).
    folder : Path, optional
        Another RealGalaxyCatalog folder with a ``kinds.csv`` (default :data:`REAL_DIR`).

    Returns
    -------
    RealStamps
        Catalogue columns:

        - ``galaxy_id`` (``cosmos<IDENT>-v<view>``, unique), ``cosmos_ident``, ``cosmos_index``
          (catalogue row), ``kind`` (``kinds.csv``), ``view``, ``rotation_deg``,
          ``x_offset_px`` / ``y_offset_px`` (the sub-pixel shift drawn);
        - ``mag`` (H, AB, of all the cutout's light), ``mag_f814w`` (the catalogue's MAG),
          ``mag_offset`` (their difference), ``flux`` (counts/s at ``sim.zero_point``: the total
          the render is scaled to), ``flux_in_stamp`` (the truth's sum: ``flux`` less the PSF
          wings beyond the stamp, 1.2% with the default PSF and stamp);
        - ``noise_sigma``: the observed stamp's per-pixel noise, sigma-clipped (3 sigma, which
          reads a Gaussian's sigma 1.3% low) over the stamp's sky, the smoothed truth above 0.5
          survey sigma grown by 5 px left out; ``survey_noise_sigma``: the same on
          ``image - truth`` (the noise added);
        - ``own_noise_sigma``: the galaxy's own noise in the truth, sigma-clipped over the
          cutout's footprint with the galaxy's light left out (``own_noise_from`` ``truth``), or,
          where the galaxy fills its cutout (fewer than 100 such pixels), the std of its noise
          twins (``twin``: cutouts of its size holding only the catalogue's noise, rendered the
          same way, unrotated); ``own_noise_twin_sigma``: the twins' value for
          every view, a check; ``own_noise_share``: own / (own + survey) variance, the share of
          the noise variance in the galaxy's pixels that is its own;
        - ``sn_per_pixel`` (statmorph's, module docstring) over ``n_galaxy_pixels`` pixels,
          ``r_petro_px`` (the truth's, eta 0.2), ``stamp_fits`` (the measurement's apertures and
          sky fit: :func:`casnet.morphology.extent.noiseless_fit`), ``x_centroid_px`` /
          ``y_centroid_px`` (the truth's light-weighted centroid from the stamp centre);
        - ``cutout_arcsec`` (side of the HST cutout), ``zphot`` (the catalogue's photometric
          redshift).

    Raises
    ------
    ValueError
        An index outside the catalogue.

    Notes
    -----
    Deterministic: view ``k`` of the galaxy with IDENT ``i`` draws its angle and offset from the
    stream ``(seed, i, k, 0)``, its noise from ``(seed, i, k, 1)`` and the galaxy's noise twins
    from ``(seed, i, 2)``, so a view does not depend on which other galaxies are rendered.
    Magnitudes: the views of a galaxy are evenly spaced over ``F814W + mag_offset_range``, the
    whole ladder moved fainter as far as needed for every view's own-noise share (its measured
    own noise against ``sim``'s nominal survey noise) to stay at or below
    ``cfg.max_own_noise_share``.
    """
    folder = Path(folder or REAL_DIR)
    catalog = real_catalog(folder)
    columns = _columns(str(folder.resolve()))
    kind_of = kinds(folder)
    n_all = catalog.nobjects
    if indices is None:
        indices = range(min(n_all, cfg.max_galaxies or n_all))
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < n_all]
    if bad:
        raise ValueError(f"indices must be catalogue rows 0..{n_all - 1}, got {bad[:5]}")
    size = cfg.stamp_size or sim.stamp_size
    sigma = sky_sigma_per_pixel(sim)
    share = cfg.max_own_noise_share
    ladder = _ladder(cfg)
    morph = MorphologyConfig()
    rows, images, truths = [], [], []
    for index in indices:
        ident = int(columns["IDENT"].iloc[index])
        mag_f814w = float(columns["MAG"].iloc[index])
        gal = galsim.RealGalaxy(catalog, index=index, flux=1.0)
        cutout = catalog.getGalImage(index)
        cutout_arcsec = cutout.array.shape[0] * cutout.scale
        twin = _noise_twin(catalog, index, sim, seed=_seed(cfg.seed, ident))
        views = []
        for view in range(cfg.views):
            geo = np.random.default_rng([cfg.seed, ident, view, 0])
            rotation = _rotation(cfg, view, geo)
            sub = (float(geo.uniform(-0.5, 0.5)), float(geo.uniform(-0.5, 0.5)))
            unit = draw_view(gal, sim, stamp_size=size, rotation_deg=rotation, offset_px=sub)
            own_unit, own_from = _own_noise_per_flux(unit, cutout_arcsec, sim,
                                                     rotation_deg=rotation, offset_px=sub,
                                                     twin=twin)  # fmt: skip
            views.append((rotation, sub, unit, own_unit, own_from))
        # the floor: every view at or below the own-noise share (the ladder moves as a whole)
        shift = 0.0
        if share < 1.0:
            for offset, (_, _, _, own_unit, _) in zip(ladder, views, strict=True):
                if own_unit > 0:
                    f_max = sigma / own_unit * math.sqrt(share / (1.0 - share))
                    mag_min = sim.zero_point - 2.5 * math.log10(f_max)
                    shift = max(shift, mag_min - (mag_f814w + float(offset)))
        for view, (offset, (rotation, sub, unit, own_unit, own_from)) in enumerate(
            zip(ladder, views, strict=True)
        ):
            mag = mag_f814w + float(offset) + shift
            flux = flux_from_mag(mag, sim.zero_point)
            truth = unit * flux
            rng = np.random.default_rng([cfg.seed, ident, view, 1])
            noise = sky_noise(rng, truth.shape, sigma=sigma,
                              correlated_fraction=sim.correlated_noise_fraction)  # fmt: skip
            noisy = truth + noise
            if sim.exposure_time_s:
                noisy += source_noise(rng, truth, sim.exposure_time_s)
            truth32, image32 = truth.astype(np.float32), noisy.astype(np.float32)
            own = own_unit * flux
            m = measure_view(image32.astype(np.float64), truth32.astype(np.float64),
                             own_noise_sigma=own, nominal_sigma=sigma,
                             exposure_s=sim.exposure_time_s, morphology=morph)  # fmt: skip
            rows.append({
                "galaxy_id": f"cosmos{ident}-v{view}",
                "cosmos_ident": ident,
                "cosmos_index": index,
                "kind": kind_of.get(ident, "unknown"),
                "view": view,
                "rotation_deg": rotation,
                "x_offset_px": sub[0],
                "y_offset_px": sub[1],
                "mag": mag,
                "mag_f814w": mag_f814w,
                "mag_offset": mag - mag_f814w,
                "flux": flux,
                "flux_in_stamp": float(truth32.sum(dtype=np.float64)),
                "noise_sigma": m.noise_sigma,
                "survey_noise_sigma": m.survey_noise_sigma,
                "own_noise_sigma": own,
                "own_noise_from": own_from,
                "own_noise_twin_sigma": twin * flux,
                "own_noise_share": own**2 / (own**2 + m.survey_noise_sigma**2),
                "sn_per_pixel": m.sn_per_pixel,
                "n_galaxy_pixels": m.n_galaxy_pixels,
                "r_petro_px": m.r_petro_px,
                "stamp_fits": m.stamp_fits,
                "x_centroid_px": m.x_centroid_px,
                "y_centroid_px": m.y_centroid_px,
                "cutout_arcsec": cutout_arcsec,
                "zphot": float(columns["ZPHOT"].iloc[index]),
            })  # fmt: skip
            images.append(image32)
            truths.append(truth32)
    shape = (0, size, size)
    for row in rows:
        row[EVALUATION_ONLY] = True  # travels through any stage: no network may learn them
    return RealStamps(
        catalog=pd.DataFrame(rows),
        image=np.stack(images) if images else np.zeros(shape, np.float32),
        truth=np.stack(truths) if truths else np.zeros(shape, np.float32),
        params={"real": cfg.model_dump(mode="json"), "simulate": sim.model_dump(mode="json")},
    )


def _seed(seed: int, ident: int) -> int:
    """A GalSim seed (1 .. 2^31 - 1) for the noise twins of a galaxy."""
    return int(np.random.default_rng([seed, ident, 2]).integers(1, 2**31 - 1))


def write_real_store(stamps: RealStamps, out: str | Path, *, chunk_size: int = 64) -> StampStore:
    """Write ``stamps`` as a stamp store (arrays ``image`` and ``truth``, the catalogue; meta
    ``stage: real-suite`` with the settings)."""
    n = len(stamps.catalog)
    size = stamps.image.shape[1:] if stamps.image.ndim == 3 else (0, 0)
    meta = {"stage": "real-suite", "n": n, "params": stamps.params}
    with StoreWriter(out, stamp_shape=tuple(size), arrays=("image", "truth"),
                     chunk_size=chunk_size, meta=meta, resume=False) as writer:  # fmt: skip
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            writer.append(
                stamps.catalog.iloc[lo:hi],
                {"image": stamps.image[lo:hi], "truth": stamps.truth[lo:hi]},
            )
    return StampStore(out)
