"""GalSim stamps of CANDELS-like galaxies with their noiseless truth.

Each galaxy is a bulge (Sersic) + disk (exponential) system, optionally clumpy (GalSim
``RandomKnots``), optionally with a close companion and a tidal-like off-centre component, with
unrelated neighbours scattered in the stamp; convolved with the F160W-like PSF, drawn at
``pixel_scale`` and given sky noise at the configured depth. The truth is the noiseless,
PSF-convolved image of the target alone.

Deterministic: galaxy ``i`` draws every random number from a stream seeded by ``(seed, i)``, so a
stamp does not depend on which other stamps are made, in which order, or by which worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import galsim
import numpy as np

from casnet.config import SimulateConfig
from casnet.sources.psf import airy_psf

__all__ = [
    "SimulatedGalaxy",
    "flux_from_mag",
    "galaxy_rng",
    "simulate",
    "simulate_galaxy",
    "sky_sigma_per_pixel",
]

#: radius (arcsec) of the aperture in which the 5-sigma point-source depth is quoted
_DEPTH_APERTURE_ARCSEC = 0.2


@dataclass(frozen=True)
class SimulatedGalaxy:
    """One simulated stamp.

    Attributes
    ----------
    index : int
        Position in the simulation (the stream it was drawn from).
    image : 2-D float32 ndarray
        Observed stamp: target + neighbours + PSF + noise.
    truth : 2-D float32 ndarray
        Noiseless, PSF-convolved image of the target alone.
    sky_sigma : float
        Per-pixel noise added.
    params : dict
        What was drawn (magnitude, half-light radius in px, bulge fraction, ...).
    """

    index: int
    image: np.ndarray
    truth: np.ndarray
    sky_sigma: float
    params: dict = field(default_factory=dict)


def galaxy_rng(seed: int, index: int) -> np.random.Generator:
    """Independent random stream of galaxy ``index`` (NumPy ``SeedSequence`` of (seed, index))."""
    return np.random.default_rng([seed, index])


def flux_from_mag(mag: float, zero_point: float) -> float:
    """Counts per second of an AB magnitude for the given zero point."""
    return 10.0 ** (-0.4 * (mag - zero_point))


def sky_sigma_per_pixel(cfg: SimulateConfig) -> float:
    """Per-pixel sky noise giving a 5-sigma point-source limit of ``depth_5sigma``.

    The limit refers to a 0.2 arcsec-radius aperture (CANDELS convention), so
    sigma_pix = F_lim / (5 sqrt(N_aperture)).
    """
    f_lim = flux_from_mag(cfg.depth_5sigma, cfg.zero_point)
    n_pix = math.pi * (_DEPTH_APERTURE_ARCSEC / cfg.pixel_scale) ** 2
    return f_lim / (5.0 * math.sqrt(n_pix))


def _bulge_disk(rng: np.random.Generator, flux: float, r_half: float, knots: bool, seed: int):
    """Bulge + disk of total ``flux`` and rough half-light radius ``r_half`` (arcsec)."""
    bt = float(rng.beta(0.8, 1.6))  # most galaxies disk-dominated, a tail of spheroids
    n_bulge = float(rng.uniform(2.0, 6.0))
    q_disk = float(rng.uniform(0.2, 1.0))
    q_bulge = float(rng.uniform(0.6, 1.0))
    beta = float(rng.uniform(0.0, 180.0))
    disk_r = r_half * float(rng.uniform(0.9, 1.3))
    bulge_r = r_half * float(rng.uniform(0.25, 0.6))
    parts = []
    if bt < 0.98:
        disk = galsim.Exponential(half_light_radius=disk_r, flux=flux * (1 - bt))
        if knots:
            frac = float(rng.uniform(0.2, 0.6))
            clumps = galsim.RandomKnots(
                int(rng.integers(8, 40)),
                half_light_radius=disk_r,
                flux=flux * (1 - bt) * frac,
                rng=galsim.BaseDeviate(seed),
            )
            disk = disk.withFlux(flux * (1 - bt) * (1 - frac)) + clumps
        parts.append(disk.shear(q=q_disk, beta=beta * galsim.degrees))
    if bt > 0.02:
        bulge = galsim.Sersic(n=n_bulge, half_light_radius=bulge_r, flux=flux * bt)
        parts.append(bulge.shear(q=q_bulge, beta=beta * galsim.degrees))
    info = {"bt": bt, "n_bulge": n_bulge, "q": q_disk if bt < 0.5 else q_bulge, "pa_deg": beta}
    return galsim.Add(parts) if len(parts) > 1 else parts[0], info


def simulate_galaxy(index: int, cfg: SimulateConfig) -> SimulatedGalaxy:
    """Render galaxy ``index`` of the simulation described by ``cfg``."""
    rng = galaxy_rng(cfg.seed, index)
    gs_seed = int(rng.integers(1, 2**31 - 1))
    scale = cfg.pixel_scale
    psf = airy_psf(cfg)
    mag = float(rng.uniform(*cfg.mag_range))
    r_half_px = float(np.exp(rng.uniform(*np.log(cfg.rhalf_range_px))))
    flux = flux_from_mag(mag, cfg.zero_point)
    knots = bool(rng.random() < cfg.knots_fraction)
    target, info = _bulge_disk(rng, flux, r_half_px * scale, knots, gs_seed)
    # A small sub-pixel offset: real cutouts are never centred exactly on a pixel.
    offset = rng.uniform(-0.5, 0.5, size=2) * scale
    target = target.shift(*offset)
    companion = bool(rng.random() < cfg.companion_fraction)
    extra = []
    if companion:
        # Merger / close pair: a companion 1.5-3.5 r_half away and a faint one-sided tidal plume.
        angle = rng.uniform(0, 2 * np.pi)
        sep = r_half_px * scale * rng.uniform(1.5, 3.5)
        comp, _ = _bulge_disk(
            rng, flux * rng.uniform(0.2, 0.8), r_half_px * scale * 0.7, False, gs_seed + 1
        )
        extra.append(comp.shift(sep * np.cos(angle), sep * np.sin(angle)))
        plume = galsim.Exponential(
            half_light_radius=r_half_px * scale * 1.5, flux=flux * rng.uniform(0.05, 0.2)
        )
        plume = plume.shear(q=0.3, beta=float(np.degrees(angle)) * galsim.degrees)
        extra.append(plume.shift(0.6 * sep * np.cos(angle), 0.6 * sep * np.sin(angle)))
    neighbours = []
    if rng.random() < cfg.neighbour_fraction:
        half = cfg.stamp_size * scale / 2
        for _ in range(int(rng.integers(1, 4))):
            pos = rng.uniform(-0.9 * half, 0.9 * half, size=2)
            if np.hypot(*pos) < 25 * scale:
                continue
            nflux = flux_from_mag(float(rng.uniform(21.0, 26.0)), cfg.zero_point)
            if rng.random() < 0.3:
                neighbours.append(galsim.DeltaFunction(flux=nflux).shift(*pos))  # a star
            else:
                nb = galsim.Exponential(half_light_radius=float(rng.uniform(0.1, 0.4)), flux=nflux)
                neighbours.append(nb.shift(*pos))
    size = cfg.stamp_size
    target_image = galsim.Convolve(target + galsim.Add(extra) if extra else target, psf)
    truth = target_image.drawImage(nx=size, ny=size, scale=scale).array
    scene = truth.copy()
    for nb in neighbours:
        scene += galsim.Convolve(nb, psf).drawImage(nx=size, ny=size, scale=scale).array
    sigma = sky_sigma_per_pixel(cfg)
    noisy = scene + rng.normal(0.0, sigma, size=scene.shape)
    params = {
        "mag": mag,
        "r_half_px": r_half_px,
        "knots": knots,
        "companion": companion,
        "n_neighbours": len(neighbours),
        **info,
    }
    return SimulatedGalaxy(index, noisy.astype(np.float32), truth.astype(np.float32), sigma, params)


def simulate(
    cfg: SimulateConfig, n: int | None = None, start: int = 0
) -> Iterator[SimulatedGalaxy]:
    """Galaxies ``start`` .. ``start + n - 1`` (default ``cfg.n``)."""
    for i in range(start, start + (cfg.n if n is None else n)):
        yield simulate_galaxy(i, cfg)
