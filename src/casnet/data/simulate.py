"""GalSim stamps of CANDELS-like galaxies with their noiseless truth (the embedded data source).

Populations a CANDELS user would recognise (Tohill et al. 2021 Sec. 2.1, Figs. 1-3):

- ``disk``: bulge (Sersic n 2-6) + exponential disk, bulge-to-total from a Beta distribution;
- ``clumpy``: a disk whose light is partly in GalSim ``RandomKnots`` (star-forming clumps);
- ``merger``: a close pair (companion 1.5-3.5 r_half away) with a one-sided tidal plume;
- ``spheroid``: compact, high-n (3.5-6) single Sersic.

H magnitudes follow number counts N(m) ~ 10^(mag_slope m); half-light radii a log-normal
size-magnitude relation. Unrelated neighbours (galaxies and stars) are scattered in a fraction of
the stamps so that cleaning has work to do. Noise reaches the CANDELS-deep depth (5-sigma
point-source limit H = 27.7 in a 0.2 arcsec-radius aperture), part white and part correlated with
the COSMOS correlation function (``galsim.getCOSMOSNoise``, see :mod:`.noise`), as in drizzled
HST mosaics. A
redshift-like label z (0-7) rises with magnitude, for plots.

The truth is the noiseless, PSF-convolved image of the target alone (its tidal plume included,
its companion and the neighbours excluded). Deterministic: galaxy ``i`` draws every random number
from a stream seeded by ``(seed, i)``, so a stamp does not depend on which other stamps are made,
in which order, or by which worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import galsim
import numpy as np

from casnet.data.noise import aperture_noise_std, circle_weights, sky_noise, source_noise
from casnet.data.psf import psf_model
from casnet.data.settings import SimulateConfig

__all__ = [
    "KINDS",
    "SimulatedGalaxy",
    "disk_galaxy",
    "flux_from_mag",
    "galaxy_id",
    "point_source_fraction",
    "sersic_profile",
    "simulate",
    "simulate_galaxy",
    "simulation_rng",
    "sky_sigma_per_pixel",
    "write_stamps",
]

#: radius (arcsec) of the aperture in which the 5-sigma point-source depth is quoted
_DEPTH_APERTURE_ARCSEC = 0.2
#: half-light radius of a spheroid relative to a disk of the same magnitude
_SPHEROID_SIZE = 0.6
#: Sersic indices are drawn on this grid: GalSim caches the (expensive) Hankel tables per n
_N_STEP = 0.1
#: population kinds, stored as the ``kind`` column
KINDS = ("disk", "clumpy", "merger", "spheroid")
#: limits the FFT size GalSim may use for a 101x101 stamp (accuracy stays well below the noise)
_GSPARAMS = galsim.GSParams(folding_threshold=5e-3, maximum_fft_size=4096)


@dataclass(frozen=True)
class SimulatedGalaxy:
    """One simulated stamp.

    Attributes
    ----------
    index : int
        Position in the simulation (the stream it was drawn from).
    galaxy_id : str
        Stable id ``sim<seed>-<index>``.
    image : 2-D float32 ndarray
        Observed stamp: target + companion + neighbours + PSF + noise.
    truth : 2-D float32 ndarray
        Noiseless, PSF-convolved image of the target alone.
    sky_sigma : float
        Per-pixel noise added (white + correlated).
    params : dict
        What was drawn (kind, magnitude, half-light radius in px, z, ...).
    """

    index: int
    galaxy_id: str
    image: np.ndarray
    truth: np.ndarray
    sky_sigma: float
    params: dict = field(default_factory=dict)
    #: noiseless, PSF-convolved image of everything in the stamp (target, companion, neighbours):
    #: ``scene - truth`` is the light of the other sources, what cleaning must remove (kept in
    #: memory only; the stores hold ``image`` and ``truth``)
    scene: np.ndarray | None = None


def galaxy_id(seed: int, index: int) -> str:
    """Stable string id of simulated galaxy ``index`` of the simulation with ``seed``."""
    return f"sim{seed}-{index:07d}"


def simulation_rng(seed: int, index: int) -> np.random.Generator:
    """Independent random stream of the simulation's galaxy ``index`` (NumPy ``SeedSequence`` of
    (seed, index)); galaxies with a catalogue id use :func:`casnet.data.clean.galaxy_rng`."""
    return np.random.default_rng([seed, index])


def flux_from_mag(mag: float, zero_point: float) -> float:
    """Counts per second of an AB magnitude for the given zero point."""
    return 10.0 ** (-0.4 * (mag - zero_point))


def sky_sigma_per_pixel(cfg: SimulateConfig) -> float:
    """Per-pixel sky noise giving a 5-sigma point-source limit of ``depth_5sigma``.

    A point source of that (total) magnitude is detected at 5 sigma in a 0.2 arcsec-radius
    aperture (the CANDELS convention, Grogin et al. 2011): the light of the PSF inside the
    aperture is 5 times the noise of the sum over it, the correlated share of the noise counted
    (:func:`casnet.data.noise.aperture_noise_std`). Counting only the per-pixel noise and the
    total flux, as before 2026-12-01, made the real limit H = 26.9 where the parameter said 27.7.
    """
    f_lim = flux_from_mag(cfg.depth_5sigma, cfg.zero_point)
    radius = _DEPTH_APERTURE_ARCSEC / cfg.pixel_scale
    inside = point_source_fraction(cfg, radius)
    return inside * f_lim / (5.0 * aperture_noise_std(radius, cfg.correlated_noise_fraction))


def point_source_fraction(cfg: SimulateConfig, radius: float) -> float:
    """Share of a point source's light (the simulation's PSF, drawn centred on a pixel) inside a
    circle of ``radius`` px."""
    size = 2 * int(np.ceil(radius)) + 41
    star = psf_model(cfg).drawImage(nx=size, ny=size, scale=cfg.pixel_scale).array
    return float(np.sum(star * circle_weights(radius, size)) / np.sum(star))


def _draw_mag(rng: np.random.Generator, lo: float, hi: float, slope: float) -> float:
    """Inverse-CDF draw from N(m) ~ 10^(slope m) on [lo, hi]."""
    if abs(slope) < 1e-9:
        return float(rng.uniform(lo, hi))
    k = slope * math.log(10.0)
    u = rng.random()
    return float(math.log(math.exp(k * lo) + u * (math.exp(k * hi) - math.exp(k * lo))) / k)


def sersic_profile(n: float, r_half: float, flux: float) -> galsim.GSObject:
    """A Sersic profile of index ``n`` (rounded to the grid GalSim caches, within its supported
    range), half-light radius ``r_half`` (") and total ``flux``."""
    n = min(max(round(n / _N_STEP) * _N_STEP, 0.3), 6.2)  # GalSim's supported range
    return galsim.Sersic(n=n, half_light_radius=r_half, flux=flux, gsparams=_GSPARAMS)


def disk_galaxy(rng, flux: float, r_half: float, *, clumpy: bool, seed: int):
    """Bulge + disk (optionally clumpy) of total ``flux``, half-light radius ~``r_half`` (")."""
    bt = float(rng.beta(0.8, 2.0))
    n_bulge = float(rng.uniform(2.0, 6.0))
    n_disk = float(rng.uniform(0.5, 1.5))
    q_disk = float(rng.uniform(0.2, 1.0))
    q_bulge = float(rng.uniform(0.6, 1.0))
    beta = float(rng.uniform(0.0, 180.0)) * galsim.degrees
    disk_r = r_half * float(rng.uniform(1.0, 1.3))
    bulge_r = r_half * float(rng.uniform(0.2, 0.5))
    parts = []
    info = {"bt": bt, "n_bulge": n_bulge, "n_disk": n_disk, "q": q_disk, "pa_deg": beta.deg,
            "knot_fraction": 0.0}  # fmt: skip
    if bt < 0.98:
        disk_flux = flux * (1 - bt)
        disk = sersic_profile(n_disk, disk_r, disk_flux)
        if clumpy:
            frac = float(rng.uniform(0.25, 0.6))
            knots = galsim.RandomKnots(
                int(rng.integers(10, 60)),
                half_light_radius=disk_r * 1.2,
                flux=disk_flux * frac,
                rng=galsim.BaseDeviate(seed),
                gsparams=_GSPARAMS,
            )
            disk = disk.withFlux(disk_flux * (1 - frac)) + knots
            info["knot_fraction"] = frac
        parts.append(disk.shear(q=q_disk, beta=beta))
    if bt > 0.02:
        parts.append(sersic_profile(n_bulge, bulge_r, flux * bt).shear(q=q_bulge, beta=beta))
    return (galsim.Add(parts) if len(parts) > 1 else parts[0]), info


def _target(rng, kind: str, flux: float, r_half: float, seed: int):
    """The target (and, for mergers, its companion) in arcsec units."""
    companion = None
    if kind == "spheroid":
        n = float(rng.uniform(3.5, 6.0))
        q = float(rng.uniform(0.6, 1.0))
        beta = float(rng.uniform(0.0, 180.0))
        gal = sersic_profile(n, r_half, flux).shear(q=q, beta=beta * galsim.degrees)
        info = {"bt": 1.0, "n_bulge": n, "n_disk": float("nan"), "q": q, "pa_deg": beta,
                "knot_fraction": 0.0}  # fmt: skip
    else:
        gal, info = disk_galaxy(rng, flux, r_half, clumpy=kind == "clumpy", seed=seed)
    if kind == "merger":
        # A close pair: companion 1.5-3.5 r_half away and a one-sided tidal plume from the target.
        angle = float(rng.uniform(0, 2 * np.pi))
        sep = r_half * float(rng.uniform(1.5, 3.5))
        ratio = float(rng.uniform(0.2, 0.9))
        comp, _ = disk_galaxy(rng, flux * ratio, r_half * 0.8, clumpy=False, seed=seed + 1)
        companion = comp.shift(sep * math.cos(angle), sep * math.sin(angle))
        plume_flux = flux * float(rng.uniform(0.08, 0.25))
        plume = galsim.Exponential(half_light_radius=r_half * 1.5, flux=plume_flux)
        plume = plume.shear(q=0.25, beta=math.degrees(angle) * galsim.degrees)
        gal = gal.withFlux(flux - plume_flux) + plume.shift(
            0.7 * sep * math.cos(angle), 0.7 * sep * math.sin(angle)
        )
        info["companion_ratio"] = ratio
    info.setdefault("companion_ratio", 0.0)
    return gal, companion, info


def _neighbours(rng, cfg: SimulateConfig) -> list[galsim.GSObject]:
    """Unrelated galaxies and stars away from the centre."""
    out = []
    half = cfg.stamp_size * cfg.pixel_scale / 2
    for _ in range(int(rng.integers(1, 4))):
        pos = rng.uniform(-0.9 * half, 0.9 * half, size=2)
        if math.hypot(*pos) < 20 * cfg.pixel_scale:  # keep the centre for the target
            continue
        flux = flux_from_mag(float(rng.uniform(20.5, 26.0)), cfg.zero_point)
        if rng.random() < cfg.star_fraction:
            out.append(galsim.DeltaFunction(flux=flux).shift(*pos))
        else:
            r = float(rng.uniform(0.1, 0.5))
            q = float(rng.uniform(0.3, 1.0))
            nb = galsim.Exponential(half_light_radius=r, flux=flux, gsparams=_GSPARAMS)
            out.append(nb.shear(q=q, beta=float(rng.uniform(0, 180)) * galsim.degrees).shift(*pos))
    return out


def simulate_galaxy(index: int, cfg: SimulateConfig) -> SimulatedGalaxy:
    """Render galaxy ``index`` of the simulation described by ``cfg``."""
    rng = simulation_rng(cfg.seed, index)
    gs_seed = int(rng.integers(1, 2**31 - 1))
    scale, size = cfg.pixel_scale, cfg.stamp_size
    u = rng.random()
    cuts = np.cumsum([cfg.clumpy_fraction, cfg.merger_fraction, cfg.spheroid_fraction])
    kind = ("clumpy", "merger", "spheroid", "disk")[int(np.searchsorted(cuts, u, side="right"))]
    mag = _draw_mag(rng, *cfg.mag_range, cfg.mag_slope)
    median_r = cfg.rhalf_px_at_23 * 10 ** (cfg.rhalf_mag_slope * (mag - 23.0))
    r_half_px = median_r * 10 ** (cfg.rhalf_scatter_dex * float(rng.standard_normal()))
    if kind == "spheroid":
        # early types are smaller than late types of the same luminosity: 0.2-0.4 dex at fixed
        # mass in CANDELS (van der Wel et al. 2014); 0.6 (0.22 dex). The 0.4 used before left
        # them unresolved by the drizzled F160W PSF (median C of the noiseless spheroids 3.18,
        # bulge+disk 2.98; now 3.41)
        r_half_px *= _SPHEROID_SIZE
    r_half_px = float(np.clip(r_half_px, *cfg.rhalf_range_px))
    flux = flux_from_mag(mag, cfg.zero_point)
    target, companion, info = _target(rng, kind, flux, r_half_px * scale, gs_seed)
    offset = rng.uniform(-0.5, 0.5, size=2) * scale  # cutouts are never centred on a pixel
    target = target.shift(*offset)
    neighbours = _neighbours(rng, cfg) if rng.random() < cfg.neighbour_fraction else []
    z = float(np.clip(0.5 + 0.45 * (mag - 20.0) + 0.5 * rng.standard_normal(), 0.0, 7.0))

    psf = psf_model(cfg)
    truth = galsim.Convolve(target, psf).drawImage(nx=size, ny=size, scale=scale).array
    others = [companion.shift(*offset)] if companion is not None else []
    others += neighbours
    scene = galsim.ImageD(size, size, scale=scale)
    scene.array[:] = truth
    if others:
        galsim.Convolve(galsim.Add(others), psf).drawImage(scene, add_to_image=True)

    sigma = sky_sigma_per_pixel(cfg)
    noisy = scene.array + sky_noise(
        rng,
        scene.array.shape,
        sigma=sigma,
        correlated_fraction=cfg.correlated_noise_fraction,
    )
    if cfg.exposure_time_s:
        # drawn after the sky noise: the sky realisation does not depend on the exposure
        noisy += source_noise(rng, scene.array, cfg.exposure_time_s)
    params = {
        "kind": kind,
        "mag": mag,
        "r_half_px": r_half_px,
        "z": z,
        "n_neighbours": len(neighbours),
        "x_offset_px": float(offset[0] / scale),
        "y_offset_px": float(offset[1] / scale),
        **info,
    }
    return SimulatedGalaxy(
        index,
        galaxy_id(cfg.seed, index),
        noisy.astype(np.float32),
        truth.astype(np.float32),
        sigma,
        params,
        scene.array.astype(np.float32),
    )


def simulate(cfg: SimulateConfig, n: int, start: int = 0) -> Iterator[SimulatedGalaxy]:
    """Galaxies ``start`` .. ``start + n - 1``."""
    for i in range(start, start + n):
        yield simulate_galaxy(i, cfg)


def write_stamps(
    cfg: SimulateConfig, n: int, out: str | Path, *, progress: bool = True
) -> list[Path]:
    """Simulate ``n`` galaxies as FITS stamps in the folder ``out`` (``casnet stamps``).

    Each ``stamp_NNNNN.fits`` holds the observed image in its primary HDU and the noiseless truth
    in HDU ``TRUTH``; the header records the seed, index, sky noise, pixel scale, galaxy id and
    every simulated parameter (``HIERARCH SIM <NAME>``; an undefined, NaN one is left out: FITS
    headers cannot hold NaN).
    """
    import sys

    from astropy.io import fits
    from tqdm import tqdm

    from casnet.data.io.fits import write_image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    galaxies = simulate(cfg, n=n)
    for g in tqdm(galaxies, total=n, desc="stamps", file=sys.stderr, disable=not progress):
        header = fits.Header()
        header["SEED"] = (cfg.seed, "casnet simulate master seed")
        header["INDEX"] = (g.index, "galaxy index in the simulation")
        header["SKYSIG"] = (g.sky_sigma, "per-pixel sky noise added")
        header["PIXSCALE"] = (cfg.pixel_scale, "arcsec/pixel")
        header["GALID"] = (g.galaxy_id, "casnet galaxy id")
        for key, value in g.params.items():
            if isinstance(value, float) and not math.isfinite(value):
                continue
            header[f"HIERARCH SIM {key.upper()}"] = value
        path = out / f"stamp_{g.index:05d}.fits"
        write_image(path, g.image, header=header, extra={"TRUTH": g.truth})
        paths.append(path)
    return paths
